"""Runs one untrusted program against its tests, inside the sandboxed child.

This is the only place a generated program is executed: `worker.py` forks a child, the
child enters the sandbox (`sandbox.enter`), then calls `run_program`, which follows the
reference harness: the program runs as there (`exec(src, {})`, then module `tmp_sol`)
under a 4 s timer, then each test runs in the same module with a fresh timer. Timers
count CPU time (`ITIMER_PROF`), with a wall-clock backstop (`ITIMER_REAL`, `wall_factor`
times longer) for programs that sleep or block, so a verdict does not depend on machine
load.

It never decides a verdict: the child holds the tests' inputs only, and `emit` sends
one record per test (what the program printed or returned, or its error: `wire.py`) to
the evaluator, which compares it with the expected output outside this process. It
stops by itself only at an error (the evaluator stops it at a wrong answer).
"""

from __future__ import annotations

import builtins
import io
import signal
import sys
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from unittest.mock import mock_open

from apps_hpc.evaluate import wire
from apps_hpc.evaluate.semantics import (
    DETAIL_CHARS,
    fix_inputs,
    join_lines,
    module_source,
    uses_solution_class,
)


@dataclass(frozen=True)
class Probe:
    """What the child gets of a problem: the method name (None = standard input) and
    the tests' inputs. Never the expected outputs."""

    fn_name: str | None
    inputs: list[Any]


@dataclass(frozen=True)
class TestSpec:
    """A problem's tests, kept by the evaluator: the method name and inputs and outputs."""

    fn_name: str | None
    inputs: list[Any]
    outputs: list[Any]

    def probe(self) -> Probe:
        """What the child may see: the inputs of the tests that have an output."""
        return Probe(self.fn_name, list(self.inputs[: len(self.outputs)]))


class TimeoutException(Exception):
    """Raised by the timer; an Exception, so a bare `except:` can swallow it, as there."""


class OutputLimitExceeded(Exception):
    """The program printed more than the output cap."""


# How many timeouts the wall-clock backstop (not CPU time) decided: those depend on the
# machine's load, so the evaluator runs such a program again before it records them.
WALL_TIMEOUTS = [0]


def _on_timer(signum: int, frame: object) -> None:
    if signum == signal.SIGALRM:
        WALL_TIMEOUTS[0] += 1
    print("alarm went off")  # the reference prints this into the captured stdout
    raise TimeoutException


class Timer:
    """A per-step limit: CPU seconds, and a wall-clock backstop."""

    def __init__(self, cpu_s: float, wall_factor: float) -> None:
        self.cpu_s, self.wall_s = cpu_s, cpu_s * wall_factor
        signal.signal(signal.SIGPROF, _on_timer)
        signal.signal(signal.SIGALRM, _on_timer)

    def arm(self) -> None:
        signal.setitimer(signal.ITIMER_PROF, self.cpu_s)
        signal.setitimer(signal.ITIMER_REAL, self.wall_s)

    def disarm(self) -> None:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.setitimer(signal.ITIMER_REAL, 0)


class CappedStringIO(io.StringIO):
    """The capture buffer: a StringIO that refuses to grow past `cap` characters."""

    def __init__(self, cap: int) -> None:
        super().__init__()
        self.cap, self.size, self.overflowed = cap, 0, False

    def write(self, s: str) -> int:
        self.size += len(s)
        if self.size > self.cap:
            self.overflowed = True
            raise OutputLimitExceeded(f"more than {self.cap} characters of output")
        return super().write(s)


class Capture:
    """sys.stdout replaced by a StringIO for one test; what was printed lands in value."""

    def __init__(self, cap: int) -> None:
        self.cap, self.overflowed, self.value = cap, False, ""

    def __enter__(self) -> Capture:
        self._saved = sys.stdout
        self._buf = CappedStringIO(self.cap)
        # The reference's "no-op" close takes one argument, so `sys.stdout.close()`
        # raises TypeError there (a runtime error): kept as it is.
        self._buf.close = lambda x: 1  # type: ignore[method-assign,assignment]
        sys.stdout = self._buf
        return self

    def __exit__(self, *exc: object) -> None:
        self.value = self._buf.getvalue()
        self.overflowed = self._buf.overflowed
        vars(self._buf).pop("close", None)  # its real close, so freeing it cannot raise
        del self._buf
        sys.stdout = self._saved


_STDIN_ATTRS = ("read", "readlines", "readline")


def _lazy_mock_open(inputs: str) -> Any:
    """`builtins.open` for one test: the reference's `mock_open(read_data=inputs)`, built
    on the first call only (building a MagicMock costs more than most tests)."""
    made: list[Any] = []

    def fake_open(*args: Any, **kwargs: Any) -> Any:
        if not made:
            made.append(mock_open(read_data=inputs))
        return made[0](*args, **kwargs)

    return fake_open


def _call_with_stdin(method: Any, inputs: str) -> None:
    """Call `code()` with stdin patched as the reference's `unittest.mock.patch` stack
    does, in its order: the original `sys.stdin`'s read/readlines/readline, then
    `sys.stdin` itself, then `builtins.open`; all undone afterwards."""
    lines = iter(inputs.split("\n"))
    original, real_open = sys.stdin, builtins.open
    had = {name: name in getattr(original, "__dict__", {}) for name in _STDIN_ATTRS}
    saved = {name: getattr(original, name) for name in _STDIN_ATTRS if had[name]}
    original.read = lambda *a: inputs
    original.readlines = lambda *a: inputs.split("\n")
    original.readline = lambda *a: next(lines)
    sys.stdin = io.StringIO(inputs)
    builtins.open = _lazy_mock_open(inputs)
    try:
        method()
    except SystemExit:
        pass
    finally:
        builtins.open, sys.stdin = real_open, original
        for name in _STDIN_ATTRS:
            if had[name]:
                setattr(original, name, saved[name])
            else:
                delattr(original, name)


def last_line(exc: BaseException) -> str:
    """The exception's last line, as a traceback ends; "timeout" for the timer."""
    if isinstance(exc, TimeoutException):
        return "timeout"
    lines = traceback.format_exception_only(type(exc), exc)
    return lines[-1].strip() if lines else type(exc).__name__


def _error_record(exc: BaseException, got: str | None) -> dict[str, Any]:
    outcome = "timeout" if isinstance(exc, TimeoutException) else "runtime_error"
    error = last_line(exc)[: DETAIL_CHARS + 1]  # the evaluator keeps no more
    return {"kind": "error", "outcome": outcome, "error": error, "got": got}


def _stdin_test(method: Any, inputs: Any, timer: Timer, cap: int) -> dict[str, Any]:
    inputs = join_lines(inputs)
    error: BaseException | None = None
    with Capture(cap) as output:
        timer.arm()
        try:
            _call_with_stdin(method, inputs)
            timer.disarm()
        except Exception as exc:
            timer.disarm()
            error = exc
    if error is not None:
        return _error_record(error, output.value[: DETAIL_CHARS + 1])
    if output.overflowed:
        got = output.value[: DETAIL_CHARS + 1]
        error_line = f"more than {cap} characters of output"
        return {"kind": "error", "outcome": "runtime_error", "error": error_line, "got": got}
    return {"kind": "out", "text": output.value}


def _call_test(method: Any, inputs: Any, timer: Timer) -> dict[str, Any]:
    """Call the method; its return value, encoded as plain data inside the timer (an
    encoding that runs the program's code, e.g. a list subclass, is bounded too)."""
    timer.arm()
    try:
        output = method(*inputs)
        try:
            value = wire.encode(output)
        except (wire.WireError, RecursionError):
            value = {"t": "opaque", "v": type(output).__name__}
        timer.disarm()
    except Exception as exc:
        timer.disarm()
        return _error_record(exc, None)
    return {"kind": "ret", "value": value}


# The names pyext 0.7 drops from the program's globals before building the module: the
# keys its own module's globals had when it was imported (`g_backup`).
PYEXT_DROPPED = frozenset(
    {
        "__builtins__",
        "__cached__",
        "__doc__",
        "__file__",
        "__loader__",
        "__name__",
        "__package__",
        "__spec__",
    }
)
# `RuntimeModule.from_objects(name, docstring, **names)`: its own parameters.
PYEXT_PARAMETERS = ("name", "docstring")


def module_names(namespace: dict[Any, Any]) -> dict[str, Any]:
    """The names pyext passes as keyword arguments to the function that builds the
    module, raising the TypeError that call raises there: a top-level name that is one of
    its parameters (`name = "alex"`, `docstring = ...`, a module-level `from os import *`
    bringing `os.name`), or a key that is not a string."""
    names = {k: v for k, v in namespace.items() if k not in PYEXT_DROPPED}
    if not all(isinstance(k, str) for k in names):
        raise TypeError("keywords must be strings")
    for parameter in PYEXT_PARAMETERS:
        if parameter in names:
            raise TypeError(f"from_objects() got multiple values for argument {parameter!r}")
    return names


def _as_module(namespace: dict[str, Any]) -> types.ModuleType:
    """The module `tmp_sol` the reference builds from the names a program defined
    (pyext's `RuntimeModule.from_string`), registered in `sys.modules` only after the
    program ran."""
    module = types.ModuleType("tmp_sol", "")
    module.__dict__.update(module_names(namespace))
    module.__file__ = "<runtime_module>"
    sys.modules["tmp_sol"] = module
    return module


def load_module(code: str, call_based: bool, timer: Timer) -> Any:
    """Run the program as the reference does; return what the tests call methods on.

    As there, the program runs with `exec(src, {})`: in an empty globals dict (no
    `__name__`, so classes get `__module__ == "builtins"` and `@dataclass` works), and
    compiled without this module's `from __future__ import annotations` (dont_inherit),
    so its annotations are evaluated when a function or class is defined.
    Any Exception (syntax error, top-level error, timer) propagates: a compile error.
    """
    source = module_source(code, call_based)
    namespace: dict[str, Any] = {}
    timer.arm()
    try:
        exec(compile(source, "<string>", "exec", dont_inherit=True), namespace)
        target: Any = _as_module(namespace)
        if call_based and uses_solution_class(code):
            target = target.Solution()
    finally:
        timer.disarm()
    return target


Emit = Callable[[int, dict[str, Any]], None]


def run_program(
    code: str, probe: Probe, timer: Timer, output_cap: int, emit: Emit, all_tests: bool
) -> int:
    """Every test of one program, in order, each record handed to `emit` (with the
    count of wall-clock timeouts so far); stops at the first error unless all_tests.
    Returns how many records it emitted."""
    call_based = probe.fn_name is not None
    try:
        target = load_module(code, call_based, timer)
        method = getattr(target, probe.fn_name if call_based else "code")
    except Exception as exc:
        error = last_line(exc)[: DETAIL_CHARS + 1]
        emit(0, {"kind": "compile", "error": error, "walls": WALL_TIMEOUTS[0]})
        return 1
    for index, inputs in enumerate(probe.inputs):
        if call_based:
            record = _call_test(method, fix_inputs(inputs), timer)
        else:
            record = _stdin_test(method, inputs, timer, output_cap)
        emit(index, record | {"walls": WALL_TIMEOUTS[0]})
        if record["kind"] == "error" and not all_tests:
            return index + 1
    return len(probe.inputs)


def lift_int_digits_limit() -> None:
    """Python's int/str conversion limit (4,300 digits since 3.10.7 / 3.11) was off in the
    run that recorded the reference's results: the model-style corpus's train 2055 #1
    converts a 59,049-digit string there and passes. So it is off here too; the CPU-time
    limits still bound the (quadratic) conversion."""
    if hasattr(sys, "set_int_max_str_digits"):
        sys.set_int_max_str_digits(0)


# Applied in the child just before the program runs, as the reference's reliability_guard
# does: a generated program sees the same crippled os/shutil/subprocess/builtins.
_GUARDED_OS = (
    "kill",
    "system",
    "putenv",
    "remove",
    "removedirs",
    "rmdir",
    "fchdir",
    "setuid",
    "fork",
    "forkpty",
    "killpg",
    "rename",
    "renames",
    "truncate",
    "replace",
    "unlink",
    "fchmod",
    "fchown",
    "chmod",
    "chown",
    "chroot",
    "lchflags",
    "lchmod",
    "lchown",
    "getcwd",
    "chdir",
)
_BLOCKED_MODULES = ("ipdb", "joblib", "resource", "psutil", "tkinter")


def reliability_guard() -> None:
    """Disable what the reference disables (defence in depth, and the same verdicts:
    e.g. `exit()` is None, `import resource` fails)."""
    import faulthandler
    import os
    import shutil
    import subprocess

    faulthandler.disable()
    builtins.exit = None  # type: ignore[assignment]
    builtins.quit = None  # type: ignore[assignment]
    os.environ["OMP_NUM_THREADS"] = "1"
    for name in _GUARDED_OS:
        setattr(os, name, None)
    shutil.rmtree = shutil.move = shutil.chown = None  # type: ignore[assignment]
    subprocess.Popen = None  # type: ignore[assignment,misc]
    builtins.help = None  # type: ignore[assignment]
    for name in _BLOCKED_MODULES:
        sys.modules[name] = None  # type: ignore[assignment]
