"""`python -m apps_hpc` is the `apps-hpc` command."""

from apps_hpc.cli import main

if __name__ == "__main__":
    main()
