"""Logging: every module logs through `logging.getLogger(__name__)`; one handler, on
stderr, is set up by whoever owns the process (the CLI, or the job on a node)."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(message)s"
VERBOSE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def level_for(verbose: int, quiet: bool) -> int:
    """-q: warnings and errors only; default: info; -v: debug."""
    if quiet:
        return logging.WARNING
    return logging.DEBUG if verbose > 0 else logging.INFO


def setup_logging(level: int = logging.INFO, verbose: bool = False) -> None:
    """One stderr handler on the `apps_hpc` logger (replacing an earlier one)."""
    logger = logging.getLogger("apps_hpc")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(VERBOSE_FORMAT if verbose else FORMAT))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
