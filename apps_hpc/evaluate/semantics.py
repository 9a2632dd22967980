"""The reference APPS harness's rules, as pure functions.

The reference is codeparrot apps_metric / hendrycks `testing_util.run_test` (the harness
behind the published numbers), implemented here from a description of its behaviour; the
"Where we differ on purpose" in docs/evaluator.md lists every deliberate difference. Nothing in
this module runs a program: `harness.py` does, inside the sandboxed child.
"""

from __future__ import annotations

import json
import traceback
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np

from apps_hpc.evaluate import wire

# The reference prepends exactly these statements, one per line, in this order.
HEADER = (
    "import sys\n"
    "import time\n"
    "import itertools\n"
    "from itertools import accumulate, product, permutations, combinations\n"
    "import collections\n"
    "from collections import Counter, OrderedDict, deque, defaultdict, ChainMap\n"
    "from functools import lru_cache\n"
    "import math\n"
    "from math import sqrt, sin, cos, tan, ceil, fabs, floor, gcd, exp, log, log2\n"
    "import fractions\n"
    "from typing import List, Tuple\n"
    "import numpy as np\n"
    "import random\n"
    "import heapq\n"
    "from heapq import *\n"
)

# Modules the header imports: a warm worker imports them once before it forks.
HEADER_MODULES = (
    "sys",
    "time",
    "itertools",
    "collections",
    "functools",
    "math",
    "fractions",
    "typing",
    "numpy",
    "random",
    "heapq",
)

# Imported by the warm worker too, before the reliability guard: numpy < 2 runs `lscpu`
# through subprocess when `numpy.testing` is first imported (scipy imports it), which the
# guard forbids; the reference's numpy 2 does not (docs/program-environment.md).
PRELOADED_MODULES = ("numpy.random", "numpy.testing")

# The third-party packages programs may import (the `programs` extra; the container has
# the same): each is tested to import inside the sandbox.
PROGRAM_PACKAGES = ("numpy", "scipy", "sympy", "networkx", "pandas", "sortedcontainers")

STDIN_PRELUDE = "stdin = sys.stdin\nstdout = sys.stdout\ndef code():\n"


class Outcome(str, Enum):
    """What one test of one program gave."""

    PASS = "pass"
    WRONG_ANSWER = "wrong_answer"
    RUNTIME_ERROR = "runtime_error"
    TIMEOUT = "timeout"
    COMPILE_ERROR = "compile_error"

    def reference_code(self) -> bool | int:
        """The reference encoding: True, False, -1 (error or timeout), -2 (compile)."""
        return _REFERENCE_CODES[self]


_REFERENCE_CODES: dict[Outcome, bool | int] = {
    Outcome.PASS: True,
    Outcome.WRONG_ANSWER: False,
    Outcome.RUNTIME_ERROR: -1,
    Outcome.TIMEOUT: -1,
    Outcome.COMPILE_ERROR: -2,
}


def _is_import(line: str) -> bool:
    return line.startswith("from ") or line.startswith("import ")


def wrap_stdin_program(code: str) -> str:
    """Rewrite a standard-input program as the reference does.

    Import lines at column 0 before the first other line stay at module level; every
    other line (and later import lines) gets a leading tab and becomes the body of
    `def code()`, which is called once per test.
    """
    out: list[str] = []
    started = False
    for line in code.split("\n"):
        if not _is_import(line):
            if not started:
                out.append(STDIN_PRELUDE)
                started = True
            out.append("\t" + line + "\n")
        elif started:
            out.append("\t" + line + "\n")
        else:
            out.append(line + "\n")
    return "".join(out)


def module_source(code: str, call_based: bool) -> str:
    """The text the reference execs as module `tmp_sol`."""
    return HEADER + (code if call_based else wrap_stdin_program(code))


def uses_solution_class(code: str) -> bool:
    """Call-based programs containing the text `class Solution` are called on one
    shared `Solution()` instance; others on the module itself."""
    return "class Solution" in code


def _int_keys(value: dict) -> dict:
    return {int(k): v for k, v in value.items()}


def fix_inputs(inputs: Any) -> Any:
    """JSON has only string keys: a dict first argument becomes `[{int(k): v}]`
    (a singleton list: the other arguments are dropped, as in the reference)."""
    try:
        if isinstance(inputs[0], dict):
            return [_int_keys(inputs[0])]
    except Exception:
        pass
    return inputs


def fix_expected(expected: Any) -> Any:
    """The same key fix-up for the expected output (or its first element)."""
    try:
        if isinstance(expected, dict):
            expected = [_int_keys(expected)]
    except Exception:
        pass
    try:
        if isinstance(expected[0], dict):
            expected = [_int_keys(expected[0])]
    except Exception:
        pass
    return expected


def call_comparison(output: Any, expected: Any) -> Any:
    """The reference's call-based comparison, operation for operation: `output ==
    expected`, `or output == expected[0]` for a non-empty list, tuples as lists. Returns
    what the reference records, which need not be a bool (a numpy array compared with a
    scalar gives an array); raises where the reference raises (e.g. the truth value of a
    many-element array inside `or`), and the caller records -1 then."""
    if isinstance(output, tuple):
        output = list(output)
    result = output == expected
    if isinstance(expected, list) and expected:
        result = result or (output == expected[0])
    try:
        if isinstance(output[0], tuple):
            result = result or ([list(x) for x in output] == expected[0])
    except Exception:
        pass
    return result


def reference_value(result: Any) -> Any:
    """The reference's collapse of a recorded result: a numpy array becomes its first
    element (`.item(0)`), a numpy bool a bool."""
    if isinstance(result, np.ndarray):
        result = result.item(0)
    if isinstance(result, np.bool_):
        result = bool(result)
    return result


def call_output_matches(output: Any, expected: Any) -> bool:
    """Did a call-based test pass, as the reference counts it (`result > 0` after the
    collapse)? May raise, as `call_comparison` does."""
    value = reference_value(call_comparison(output, expected))
    if isinstance(value, bool):
        return value
    return isinstance(value, (int, float)) and value > 0


def join_lines(value: Any) -> Any:
    """Standard-input tests give lists of lines or strings; lists are joined by "\\n"."""
    return "\n".join(value) if isinstance(value, list) else value


def _float_lines_close(out: list[str], gt: list[str]) -> bool:
    try:
        out_f, gt_f = [float(x) for x in out], [float(x) for x in gt]
        return len(out_f) == len(gt_f) and bool(np.allclose(out_f, gt_f))
    except Exception:
        return False


def _token_sets(lines: list[str]) -> set[frozenset[str]]:
    """The reference's set of per-line token sets (one per distinct line's tokens)."""
    return {frozenset(line.split()) for line in lines}


def _rounded(sets: set[frozenset[str]]) -> set[frozenset[float]]:
    return {frozenset(round(float(t), 3) for t in s) for s in sets}


def stdin_output_matches(out: list[str], expected: str) -> bool:
    """The reference's comparison cascade for standard-input programs.

    `out` is the captured stdout split with `splitlines()`; `expected` the joined string.
    """
    joined = "\n".join(out)
    if joined.strip() == expected.strip():
        return True
    if "\n".join(line.strip() for line in out).strip() == expected.strip():
        return True
    if out == [expected]:
        return True
    gt_lines = [x.strip() for x in expected.split("\n") if x]
    if out == [gt_lines] or out == gt_lines:
        return True
    out = [line for line in out if len(line)]
    if out == [gt_lines] or out == gt_lines or _float_lines_close(out, gt_lines):
        return True
    # The reference compares `out` with the list of gt's token sets here: equal only when
    # both are empty, which the comparisons above have already found.
    gt_sets = _token_sets(gt_lines)
    out_sets = _token_sets(out) - {frozenset()}  # lines without tokens are dropped
    ok = out_sets == gt_sets
    try:
        ok = ok or _rounded(out_sets) == _rounded(gt_sets)
    except Exception:
        pass
    return ok


@dataclass(frozen=True)
class Judged:
    """One test's outcome, decided outside the program's process from its record: what
    the program produced (`got`: text, or the returned value) and the error's last line;
    `walls`: wall-clock timeouts in the child so far."""

    outcome: Outcome
    got: Any = None
    error: str | None = None
    walls: int = 0


# The most lines of one test's output the evaluator compares (`str.splitlines` lines):
# more is a runtime error, as more characters than the output cap is.
OUTPUT_LINE_CAP = 1 << 20
# What `str.splitlines` breaks a line at; "\r\n" is one break.
_LINE_BREAKS = ("\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")


def count_lines(text: str) -> int:
    """`len(text.splitlines())`, in linear time and without building the lines."""
    if not text:
        return 0
    breaks = sum(text.count(mark) for mark in _LINE_BREAKS) - text.count("\r\n")
    return breaks + (0 if text[-1] in _LINE_BREAKS else 1)


def judge(
    payload: bytes, expected: Any, call_based: bool, line_cap: int = OUTPUT_LINE_CAP
) -> Judged:
    """A child's record for one test, against the expected output, with the reference's
    rules. A record that is not one the harness writes, or one beyond the bounds the
    evaluator decodes (`wire.Bounds`, `line_cap`), is a runtime error."""
    try:
        record = wire.read_record(payload)
        walls = record.get("walls", 0)
        walls = walls if isinstance(walls, int) and not isinstance(walls, bool) else 0
        return _judge(record, fix_expected(expected), call_based, walls, line_cap)
    except wire.WireError as exc:
        return Judged(Outcome.RUNTIME_ERROR, None, f"result channel: {exc}")


def _text(record: dict[str, Any], name: str) -> str | None:
    value = record.get(name)
    if value is not None and not isinstance(value, str):
        raise wire.WireError(f"{name} is not text")
    return value


def _judge(
    record: dict[str, Any], expected: Any, call_based: bool, walls: int, line_cap: int
) -> Judged:
    kind = record["kind"]
    if kind == "compile":
        return Judged(Outcome.COMPILE_ERROR, None, _text(record, "error"), walls)
    if kind == "error":
        outcome = Outcome.TIMEOUT if record.get("outcome") == "timeout" else Outcome.RUNTIME_ERROR
        return Judged(outcome, _text(record, "got"), _text(record, "error"), walls)
    if kind == "out" and not call_based:
        text = _text(record, "text") or ""
        if len(text) > line_cap and count_lines(text) > line_cap:
            got = text[: DETAIL_CHARS + 1]
            return Judged(
                Outcome.RUNTIME_ERROR, got, f"more than {line_cap} lines of output", walls
            )
        ok = stdin_output_matches(text.splitlines(), join_lines(expected))
        return Judged(
            Outcome.PASS if ok else Outcome.WRONG_ANSWER, text[: DETAIL_CHARS + 1], None, walls
        )
    if kind == "ret" and call_based:
        return _judge_value(wire.decode(record.get("value")), expected, walls)
    raise wire.WireError(
        f"a {kind!r} record for a {'call-based' if call_based else 'standard-input'} test"
    )


def _judge_value(value: Any, expected: Any, walls: int) -> Judged:
    """The reference compares inside its try: an exception there is a runtime error."""
    try:
        ok = call_output_matches(value, expected)
    except Exception as exc:
        line = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return Judged(Outcome.RUNTIME_ERROR, None, line, walls)
    return (
        Judged(Outcome.PASS, None, None, walls)
        if ok
        else Judged(Outcome.WRONG_ANSWER, value, None, walls)
    )


def collapse(outcomes: list[Outcome]) -> Outcome:
    """One verdict per program: pass iff every test passed, else the first failure's
    outcome (what an early-stopping run sees first)."""
    for outcome in outcomes:
        if outcome is not Outcome.PASS:
            return outcome
    return Outcome.PASS


# Per-program failure detail (the results records' "failures" entries).
DETAIL_CHARS = 300
_FAILURE_TEXT_FIELDS = ("input", "expected", "got", "error")


def truncate(text: str | None, limit: int = DETAIL_CHARS) -> str | None:
    """At most `limit` characters; a cut text ends with "…"."""
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + "…"


def render_value(value: Any) -> str:
    """A call-based value as text: JSON when it can be, else its repr."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        pass
    try:
        return repr(value)
    except Exception:
        return f"<{type(value).__name__} object>"


def _as_text(value: Any, call_based: bool) -> str:
    if call_based:
        return render_value(value)
    value = join_lines(value)
    return value if isinstance(value, str) else render_value(value)


def failure_detail(
    test: int, spec_in: Any, spec_out: Any, call_based: bool, got: Any, error: str | None
) -> dict[str, Any]:
    """Why a program failed, for the results record: the first failing test's index, its
    input and expected output, what the program produced (`got`: text for standard
    input, the returned value for call-based; None for nothing) and the error's last
    line (None for a wrong answer). Each text is cut to DETAIL_CHARS."""
    if got is not None and not isinstance(got, str):
        got = render_value(got)
    return {
        "test": test,
        "input": truncate(_as_text(spec_in, call_based)),
        "expected": truncate(_as_text(spec_out, call_based)),
        "got": truncate(got),
        "error": truncate(error),
    }


def clean_failure(value: Any) -> dict[str, Any] | None:
    """A failure entry read from an untrusted child or an old file: the contract's shape
    (texts cut to DETAIL_CHARS), or None if it is not one."""
    if not isinstance(value, dict):
        return None
    test = value.get("test")
    if not isinstance(test, int) or isinstance(test, bool) or test < 0:
        return None
    clean: dict[str, Any] = {"test": test}
    for name in _FAILURE_TEXT_FIELDS:
        text = value.get(name)
        if text is not None and not isinstance(text, str):
            return None
        clean[name] = _printable(truncate(text))
    return clean


def _printable(text: str | None) -> str | None:
    """Lone surrogates (a program may print them) cannot be written as UTF-8: replaced."""
    if text is None:
        return None
    return text.encode("utf-8", "replace").decode("utf-8")
