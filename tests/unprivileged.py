"""Run a command as an unprivileged user, or where the kernel refuses user namespaces.

Both are what clusters give the evaluator, and CI runs as root, so the tests make them:

* `unprivileged_command(argv)`: as root, `setpriv` to uid/gid 65534 inside a private
  mount namespace in which the Python installation, the venv and the repository are
  reachable even when an ancestor (e.g. /root) is not searchable by others: a tmpfs
  covers that ancestor and holds only those folders, bound back in. Not root: argv.
* `python tests/unprivileged.py refuse-userns CMD...` (as root): CMD runs in a user
  namespace whose `user.max_user_namespaces` is 0 (root and the sandbox uids mapped),
  so its own unshare(CLONE_NEWUSER) fails as on a kernel that refuses it.
"""

from __future__ import annotations

import os
import shlex
import stat
import sys
from pathlib import Path

NOBODY = 65534
REPO = Path(__file__).resolve().parents[1]


def _hidden_ancestor(path: Path) -> Path | None:
    """The highest ancestor of `path` that others cannot search (none: None)."""
    for parent in [*reversed(path.parents), path][1:]:
        if not parent.stat().st_mode & stat.S_IXOTH:
            return parent
    return None


def reach_script(paths: list[Path]) -> str:
    """Shell lines (run as root in a private mount namespace) after which every path in
    `paths` is reachable by any user: each hidden ancestor becomes a tmpfs holding only
    the needed paths."""
    lines: list[str] = ["mount -t tmpfs tmpfs /mnt"]  # staging, in this namespace only
    covered: dict[Path, list[tuple[int, Path]]] = {}
    for i, path in enumerate(paths):
        hidden = _hidden_ancestor(path)
        if hidden is not None:
            lines.append(f"mkdir /mnt/{i} && mount --rbind {path} /mnt/{i}")
            covered.setdefault(hidden, []).append((i, path))
    for hidden, items in covered.items():
        lines.append(f"mount -t tmpfs -o mode=755 tmpfs {hidden}")
        for i, path in items:
            lines.append(f"mkdir -p {path} && mount --rbind /mnt/{i} {path}")
    return "\n".join(lines)


def unprivileged_command(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    needed = [Path(p).resolve() for p in {sys.base_prefix, sys.prefix, str(REPO)}]
    script = "set -e\n" + reach_script(needed)
    setpriv = f"setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups --"
    script += f"\nexec {setpriv} {shlex.join(argv)}"
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script]


def refuse_userns(argv: list[str]) -> None:
    """Exec argv in a user namespace that may not create user namespaces (root only)."""
    sys.path.insert(0, str(REPO))
    from apps_hpc.evaluate.namespaces import CLONE_NEWUSER, IdMaps, enter_user_namespace

    pairs = ((0, 0), *((u, u) for u in range(61000, 61200)))  # one write: < 4 KiB
    groups = ((0, 0), (NOBODY, NOBODY))
    enter_user_namespace(CLONE_NEWUSER, IdMaps(pairs, groups, False))
    Path("/proc/sys/user/max_user_namespaces").write_text("0")
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    if sys.argv[1] == "refuse-userns":
        refuse_userns(sys.argv[2:])
