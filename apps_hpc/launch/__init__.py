"""Sending stages to SLURM (or the local executor) through submitit: cluster profiles,
job arrays, afterok chains, requeue on preemption, status and cancel."""
