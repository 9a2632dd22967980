"""Issue 23, "The evaluator survives any bytes": records that cannot be decoded within
the evaluator's bounds (`wire.Bounds`, the output line cap) are the runtime error of the
program that sent them; the other programs of the same file keep their verdicts and the
run completes. Run through `apps-hpc eval` as uid 65534 (as root) with namespaces on."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apps_hpc.evaluate import wire
from apps_hpc.evaluate.semantics import Outcome, count_lines, judge
from tests.evaluate.test_isolation import ROOT
from tests.helpers import FAST_LIMITS, apps_row
from tests.unprivileged import NOBODY, unprivileged_command

# Writes one raw record (test 0) into the result channel, then leaves.
_RAW = (
    "import os, struct\n"
    "def send(text):\n"
    "    data = text.encode()\n"
    "    frame = struct.pack('<IQ', 0, len(data)) + data\n"
    "    for fd in range(3, 64):\n"
    "        try:\n"
    "            if os.readlink(f'/proc/self/fd/{fd}').startswith('pipe:'):\n"
    "                os.write(fd, frame)\n"
    "        except OSError:\n"
    "            pass\n"
    "    os._exit(0)\n"
)
_DEEP = "send('{\"kind\": \"out\", \"x\": ' + '[' * 100000 + ']' * 100000 + '}')"
_DTYPE = 'send(\'{"kind": "ret", "value": {"t": "np", "d": "(268435456,)<i8", "v": 0}}\')'
_LIST = "send('{\"kind\": \"ret\", \"value\": ' + '[' * 600 + ']' * 600 + '}')"
_NEST = "def f(x):\n    v = x\n    for _ in range(600):\n        v = [v]\n    return v"
STDIN = {  # problem 0: print the input back
    "honest": ("print(input())", "pass"),
    "nested-100000-deep": (_RAW + _DEEP, "runtime_error"),
    "3-million-lines": ("print('7\\n' * 3_000_000)", "runtime_error"),
    "honest-2": ("s = input()\nprint(s)", "pass"),
}
CALL = {  # problem 1: f(x) = x
    "honest": ("def f(x):\n    return x", "pass"),
    "numpy-dtype-256M": (_RAW + _DTYPE, "runtime_error"),
    "list-600-deep": (_RAW + _LIST, "runtime_error"),
    "returns-list-600-deep": (_NEST, "wrong_answer"),  # the encoder sends it as opaque
}


@pytest.fixture
def work() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="apps-hpc-hostile-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _write(work: Path) -> None:
    stdin_row = apps_row(["5"], ["5"], 0)
    call_row = apps_row([], [], 1) | {
        "input_output": json.dumps({"inputs": [[5]], "outputs": [5], "fn_name": "f"})
    }
    samples = [
        {"problem_id": i, "split": "test", "difficulty": "interview", "model": "m", "codes": codes}
        for i, codes in enumerate([[c for c, _ in STDIN.values()], [c for c, _ in CALL.values()]])
    ]
    for name, rows in (("test.jsonl", [stdin_row, call_row]), ("samples.jsonl", samples)):
        (work / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
        if ROOT:
            os.chown(work / name, NOBODY, NOBODY)
    if ROOT:
        os.chown(work, NOBODY, NOBODY)


def test_a_hostile_record_is_its_programs_runtime_error_and_the_run_completes(
    work: Path,
) -> None:
    _write(work)
    out = work / "results.jsonl"
    argv = [sys.executable, "-m", "apps_hpc", "eval", "-q", "--workers", "2"]
    argv += ["--isolation", "namespaces", "--timeout", "2", "--budget", "6"]
    argv += ["--memory-mb", str(FAST_LIMITS.memory_mb), "--out", str(out)]
    argv += ["--samples", str(work / "samples.jsonl"), "--apps", str(work / "test.jsonl")]
    env = dict(os.environ, HOME=str(work), PYTHONDONTWRITEBYTECODE="1")
    run = subprocess.run(
        unprivileged_command(argv), capture_output=True, text=True, cwd=work, env=env, timeout=600
    )
    assert run.returncode == 0, run.stderr[-3000:]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    records.sort(key=lambda r: r["problem_id"])
    assert [r["verdicts"] for r in records] == [
        [v for _, v in STDIN.values()],
        [v for _, v in CALL.values()],
    ]


def _payload(record: str) -> bytes:
    return record.encode()


@pytest.mark.parametrize(
    "record",
    [
        '{"kind": "ret", "value": ' + "[" * 100_000 + "]" * 100_000 + "}",
        '{"kind": "ret", "value": ' + "[" * 300 + "]" * 300 + "}",
        '{"kind": "ret", "value": [' + "0," * 2_000_000 + "0]}",
        '{"kind": "ret", "value": ' + "9" * 5000 + "}",
        '{"kind": "ret", "value": {"t": "np", "d": "(268435456,)<i8", "v": 0}}',
        '{"kind": "ret", "value": {"t": "ndarray", "d": "<U9999", "s": [10000], "v": []}}',
        '{"kind": "ret", "value": {"t": "ndarray", "d": "<i8", "s": [268435456], "v": [1]}}',
        '{"kind": "ret", "value": {"t": "ndarray", "d": "<i8", "s": [-1], "v": [1]}}',
        '{"kind": "ret", "value": {"t": "ndarray", "d": "|O", "s": [1], "v": [1]}}',
        '{"kind": "ret", "value": {"t": "fraction", "v": [{"t": "int", "v": "0x'
        + "f" * 60_000
        + '"}, 3]}}',
        '{"kind": "ret", "value": {"t": "decimal", "v": "' + "1" * 200_000 + '"}}',
        '{"kind": "error", "x": "' + "a" * (17 * 1024 * 1024) + '"}',
    ],
    ids=lambda r: r[25:60],
)
def test_records_beyond_the_bounds_are_runtime_errors(record: str) -> None:
    judged = judge(_payload(record), [5], True)
    assert judged.outcome is Outcome.RUNTIME_ERROR
    assert judged.error and judged.error.startswith("result channel:")


def test_a_large_stdout_record_is_read_as_one_string() -> None:
    text = "7 7\n" * 1_000_000 + "[" * 10_000
    record = wire.frame(0, {"kind": "out", "text": text, "walls": 0})[wire.FRAME.size :]
    assert wire.read_record(record) == {"kind": "out", "text": text, "walls": 0}


def test_the_line_cap_counts_as_splitlines_does() -> None:
    for text in ["", "a", "a\n", "a\r\nb", "a\rb\n\n", "x\u2028y\x85z\x0b", "\n" * 7]:
        assert count_lines(text) == len(text.splitlines()), repr(text)
    record = wire.frame(0, {"kind": "out", "text": "7\n" * 11, "walls": 0})[wire.FRAME.size :]
    assert judge(record, "7", False, line_cap=10).outcome is Outcome.RUNTIME_ERROR
    assert judge(record, "7", False, line_cap=11).outcome is Outcome.PASS


def test_big_ints_travel_as_hex_and_compare_exactly() -> None:
    value: Any = [10**8000, -(10**9000) + 1]
    data = json.loads(json.dumps(wire.encode(value)))
    assert data[0]["t"] == "int"
    assert wire.decode(data) == value
