"""The evaluator's per-program limits: one declaration of each limit's type, allowed
values, default and meaning.

A plain frozen dataclass that imports nothing beyond the standard library: the sandbox
worker imports it, and a program judged there must find the interpreter (and
`sys.modules`) as the reference harness left it. Each field's metadata holds its meaning
and its bounds in pydantic's `Field` words (`description`, `gt`, `ge`): `core/schema.py`
builds the validating schema from them and the CLI its option types and help
(`cli/common.schema_option`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MIB = 1024 * 1024


def _about(text: str, **bounds: float) -> dict[str, Any]:
    return {"description": text, **bounds}


@dataclass(frozen=True)
class Limits:
    """Per-program limits. Times are CPU seconds; wall clock only backs them up."""

    test_timeout_s: float = field(
        default=4.0, metadata=_about("CPU seconds per test (the reference's signal.alarm(4))", gt=0)
    )
    program_budget_s: float = field(
        default=11.0,
        metadata=_about(
            "CPU seconds for all tests of one program (the reference's 10 s + 1)", gt=0
        ),
    )
    wall_factor: float = field(
        default=3.0, metadata=_about("wall-clock backstop = this factor x the CPU limit", ge=1)
    )
    memory_mb: int = field(
        default=4096, metadata=_about("address-space limit per program in MiB (RLIMIT_AS)", ge=64)
    )
    file_size_mb: int = field(
        default=16, metadata=_about("largest file a program may write, MiB (RLIMIT_FSIZE)", ge=1)
    )
    # RLIMIT_NPROC counts processes AND threads of the sandbox user: room for a program's
    # thread pools (ThreadPoolExecutor's largest default is 32 threads) while a fork
    # bomb still stops at 64 processes, each under the CPU and address-space limits.
    max_procs: int = field(
        default=64, metadata=_about("processes and threads per program (RLIMIT_NPROC)", ge=1)
    )
    max_open_files: int = field(
        default=64, metadata=_about("open file descriptors per program (RLIMIT_NOFILE)", ge=16)
    )
    max_output_mb: int = field(
        default=64, metadata=_about("captured stdout per test, millions of characters", ge=1)
    )
    tmp_mb: int = field(
        default=64, metadata=_about("size of the program's private /tmp and /dev/shm, MiB", ge=1)
    )
    max_output_lines: int = field(
        default=1 << 20, metadata=_about("lines of output per test the evaluator compares", ge=1)
    )
    # Python's default, as in the reference run without IPython installed (pyext imports
    # IPython if it can, and jedi then raises the limit to 3,000): docs/program-environment.md.
    recursion_limit: int = field(
        default=1000,
        metadata=_about("sys.setrecursionlimit of the program (Python's default)", ge=50),
    )

    @property
    def output_cap(self) -> int:
        return self.max_output_mb * MIB

    @property
    def wall_deadline_s(self) -> float:
        return self.program_budget_s * self.wall_factor + 1.0


__all__ = ["MIB", "Limits"]
