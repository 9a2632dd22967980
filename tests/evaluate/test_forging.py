"""Nothing to forge: a program that tries to decide its own verdict gets the verdict its
actual output earns. The problem's expected output is a secret no input reveals, so a
program can pass only by finding it in its own process (which never holds it) or by
making the evaluator believe what it did not print. Run in the warm pool as root (the
children run as a sandbox uid) and through `apps-hpc eval` as uid 65534."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from apps_hpc.core.schema import Verdict
from apps_hpc.evaluate import wire
from apps_hpc.evaluate.semantics import Outcome, judge
from tests.evaluate.test_isolation import ROOT, _uid_processes_since
from tests.helpers import FAST_LIMITS, apps_row, run_one
from tests.unprivileged import NOBODY, unprivileged_command

SECRET = "forge-secret-7f3a9c"
INPUTS = ["1\n", "2\n", "3\n"]
OUTPUTS = [f"{SECRET}-{i}\n" for i in range(3)]

# Writes `data` into every pipe the process holds but its stdio: the result channel.
_CHANNEL = (
    "import os\n"
    "def write_channel(data):\n"
    "    for fd in range(3, 64):\n"
    "        try:\n"
    "            if os.readlink(f'/proc/self/fd/{fd}').startswith('pipe:'):\n"
    "                os.write(fd, data)\n"
    "        except OSError:\n"
    "            pass\n"
)
# A record of the new kind, well formed, claiming the secret was printed.
_FRAME = "import json, struct\n" + (
    "def frame(i, text):\n"
    "    data = json.dumps({'kind': 'out', 'text': text, 'walls': 0}).encode()\n"
    "    return struct.pack('<IQ', i, len(data)) + data\n"
)

# name -> (program, the verdict it earns)
FORGERIES = {
    # the channel: the old answer format, garbage, a frame ahead of its turn
    "old-answer-then-exit": (
        _CHANNEL + 'write_channel(b\'{"outcomes": ["pass", "pass", "pass"]}\')\nos._exit(0)',
        Verdict.RUNTIME_ERROR,
    ),
    "garbage-in-channel": (
        _CHANNEL + "write_channel(b'\\xff' * 64)\nprint('x')",
        Verdict.RUNTIME_ERROR,
    ),
    "frame-out-of-turn": (
        _CHANNEL + _FRAME + f"write_channel(frame(1, {SECRET!r}))\nprint('x')",
        Verdict.RUNTIME_ERROR,
    ),
    "frames-then-exit": (  # claims guessed outputs for every test: judged as printed
        _CHANNEL
        + _FRAME
        + "write_channel(b''.join(frame(i, 'guess') for i in range(3)))\nos._exit(0)",
        Verdict.WRONG_ANSWER,
    ),
    # exits before the harness sees what it printed
    "print-then-os-exit": ("import os\nprint('guess')\nos._exit(0)", Verdict.RUNTIME_ERROR),
    # patches what compared outputs in the program's process before
    "patch-comparison": (
        "import sys, builtins\n"
        "for name, mod in list(sys.modules.items()):\n"
        "    if name.startswith('apps_hpc') and mod is not None:\n"
        "        for attr in dir(mod):\n"
        "            if 'match' in attr or 'compar' in attr or attr == 'judge':\n"
        "                setattr(mod, attr, lambda *a, **k: True)\n"
        "builtins.set = lambda *a: 1\n"
        "print('wrong')",
        Verdict.WRONG_ANSWER,
    ),
    # searches its stack and the garbage collector for the expected output
    "read-expected-from-memory": (
        "import sys, gc\n"
        "found = None\n"
        "f = sys._getframe()\n"
        "while f is not None and found is None:\n"
        "    for k, v in f.f_locals.items():\n"
        "        if k in ('expected', 'outputs', 'spec'):\n"
        "            found = v\n"
        "    f = f.f_back\n"
        "for o in gc.get_objects():\n"
        "    if found is None and isinstance(o, dict) and 'outputs' in o:\n"
        "        found = o['outputs']\n"
        "for o in gc.get_objects():\n"
        "    if found is None and isinstance(o, list) and o and isinstance(o[0], str)\\\n"
        f"            and o[0].startswith({SECRET[:6]!r}):\n"
        "        found = o\n"
        "print(found if isinstance(found, str) else 'nothing found')",
        Verdict.WRONG_ANSWER,
    ),
}


@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_forgery_gets_its_honest_verdict(pool, name: str) -> None:
    code, verdict = FORGERIES[name]
    result = run_one(pool, code, INPUTS, OUTPUTS)
    assert result.verdict is verdict, (result.verdict, result.detail, result.failure)
    if verdict is Verdict.RUNTIME_ERROR and "exit" in name:
        assert result.tests == [-1, -1, -1]


def test_the_honest_program_passes_and_the_pool_survives(pool) -> None:
    right = f"print({SECRET!r} + '-' + str(int(input()) - 1))"
    assert run_one(pool, right, INPUTS, OUTPUTS).verdict is Verdict.PASS
    for code, _ in FORGERIES.values():
        run_one(pool, code, INPUTS, OUTPUTS)
    assert run_one(pool, right, INPUTS, OUTPUTS).verdict is Verdict.PASS


LYING = {
    "eq-object": "class Liar:\n    def __eq__(self, other):\n        return True\n",
    "list-subclass": "class Liar(list):\n    def __eq__(self, other):\n        return True\n",
    "int-subclass": "class Liar(int):\n    def __eq__(self, other):\n        return True\n",
}


@pytest.mark.parametrize("name", sorted(LYING))
def test_a_returned_value_whose_eq_lies_is_judged_by_its_data(pool, name: str) -> None:
    """The difference docs/evaluator.md lists: the reference would count these as passing."""
    code = LYING[name] + "def f(x):\n    return Liar()\n"
    result = run_one(pool, code, [[1], [2]], [[7], [8]], fn_name="f")
    assert result.verdict is Verdict.WRONG_ANSWER


def test_call_based_forgery_of_the_comparison(pool) -> None:
    code = (
        "import sys\n"
        "for mod in list(sys.modules.values()):\n"
        "    for attr in ('call_output_matches', 'call_comparison'):\n"
        "        if mod is not None and hasattr(mod, attr):\n"
        "            setattr(mod, attr, lambda *a: True)\n"
        "def f(x):\n    return x\n"
    )
    assert run_one(pool, code, [[1]], [[2]], fn_name="f").verdict is Verdict.WRONG_ANSWER
    assert run_one(pool, code, [[2]], [[2]], fn_name="f").verdict is Verdict.PASS


def test_an_unknown_record_is_a_runtime_error() -> None:
    for payload in (b"{}", b"\xff", b'{"kind": "ret", "value": {"t": "evil"}}'):
        assert judge(payload, ["1"], True).outcome is Outcome.RUNTIME_ERROR
    out = wire.frame(0, {"kind": "out", "text": "1\n"})[wire.FRAME.size :]
    assert judge(out, "1\n", False).outcome is Outcome.PASS
    assert judge(out, "2\n", False).outcome is Outcome.WRONG_ANSWER
    assert judge(out, "1\n", True).outcome is Outcome.RUNTIME_ERROR  # not a call record


# ---------------------------------------------------------------- as uid 65534, via the CLI


def _write_problem(work: Path) -> None:
    row = apps_row(INPUTS, OUTPUTS)
    codes = [code for code, _ in FORGERIES.values()]
    sample = {"problem_id": 0, "split": "test", "difficulty": "interview", "model": "forger"}
    (work / "test.jsonl").write_text(json.dumps(row) + "\n")
    (work / "samples.jsonl").write_text(json.dumps(sample | {"codes": codes}) + "\n")
    if ROOT:
        for path in (work, work / "test.jsonl", work / "samples.jsonl"):
            os.chown(path, NOBODY, NOBODY)


@pytest.fixture
def work() -> Iterator[Path]:
    """A folder the evaluating user (65534 as root) can reach (pytest's tmp is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="apps-hpc-forge-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_unprivileged_evaluator_gives_forgeries_their_verdicts(work: Path) -> None:
    _write_problem(work)
    out = work / "results.jsonl"
    argv = [sys.executable, "-m", "apps_hpc", "eval", "-q", "--workers", "2"]
    argv += ["--timeout", "1", "--budget", "3", "--memory-mb", str(FAST_LIMITS.memory_mb)]
    argv += ["--samples", str(work / "samples.jsonl"), "--apps", str(work / "test.jsonl")]
    argv += ["--out", str(out)]
    began = time.time()
    env = dict(os.environ, HOME=str(work), PYTHONDONTWRITEBYTECODE="1")
    run = subprocess.run(
        unprivileged_command(argv), capture_output=True, text=True, cwd=work, env=env, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    [record] = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["verdicts"] == [v.value for _, v in FORGERIES.values()]
    assert _uid_processes_since(NOBODY if ROOT else os.getuid(), began, but=-1) == []
