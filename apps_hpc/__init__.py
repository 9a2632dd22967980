"""apps-hpc: fine-tune, sample and evaluate code LLMs on APPS, reproducibly, on SLURM."""

__version__ = "0.1.0"
