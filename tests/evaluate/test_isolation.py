"""The namespaces sandbox: what a program can see and touch, and the evaluator run as an
unprivileged user (uid 65534 through setpriv when the tests run as root, as in CI) with
hostile programs aimed at what that user owns. See tests/unprivileged.py."""

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
from apps_hpc.evaluate.namespaces import covering, id_maps
from tests.helpers import REPO, apps_row, needs, require, run_one
from tests.unprivileged import NOBODY, unprivileged_command

ROOT = os.geteuid() == 0
OK = "contained"


def _namespaces(pool) -> None:
    require(
        pool.isolation.startswith("namespaces"),
        f"the kernel refused namespaces here: {pool.isolation}",
    )


def _check(pool, body: str) -> Verdict:
    """Run `body` (which prints OK when contained) as one program; return its verdict."""
    return run_one(pool, "import io, os, ctypes\n" + body, ["x"], [OK]).verdict


def test_covering_drops_nested_paths() -> None:
    paths = ["/usr/lib/python3", "/usr", "/opt/venv/lib", "/opt/venv", "/opt/venv2", "rel"]
    assert covering(paths) == ["/opt/venv", "/opt/venv2", "/usr"]


def test_id_maps_root_maps_the_sandbox_user_too() -> None:
    assert id_maps(1000, 100, None, None).uids == ((1000, 1000),)
    assert id_maps(1000, 100, None, None).deny_setgroups
    root = id_maps(0, 0, 61003, 65534)
    assert root.uids == ((0, 0), (61003, 61003)) and not root.deny_setgroups
    assert root.text(root.gids) == "0 0 1\n65534 65534 1\n"


def test_program_sees_only_its_own_processes(pool) -> None:
    _namespaces(pool)
    body = "pids = [p for p in os.listdir('/proc') if p.isdigit()]\n"
    body += f"print({OK!r} if pids == ['1'] else pids)"
    assert _check(pool, body) is Verdict.PASS


def test_program_holds_no_capability(pool) -> None:
    _namespaces(pool)
    body = (
        "caps = [l.split()[1] for l in io.open('/proc/self/status') if l.startswith('CapEff')]\n"
        f"print({OK!r} if caps == ['0000000000000000'] else caps)"
    )
    assert _check(pool, body) is Verdict.PASS


def test_nothing_private_is_visible(pool) -> None:
    _namespaces(pool)
    hidden = ["/etc/shadow", "/home", str(REPO / "README.md"), str(REPO / "tests")]
    if "/root/" not in sys.base_prefix + "/":
        hidden.append("/root")
    body = f"print({OK!r} if not any(os.path.exists(p) for p in {hidden!r}) else 'seen')"
    assert _check(pool, body) is Verdict.PASS


def test_filesystem_is_read_only_but_scratch_tmp_and_shm(pool) -> None:
    _namespaces(pool)
    body = (
        "def can_write(p):\n    try:\n        io.open(p, 'w').write('x')\n        return True\n"
        "    except OSError:\n        return False\n"
        f"bad = [p for p in ('/usr/x', {sys.prefix + '/x'!r}, '/x', '/etc/x') if can_write(p)]\n"
        "good = all(can_write(p) for p in ('f', '/tmp/f', '/dev/shm/f'))\n"
        f"print({OK!r} if good and not bad else (good, bad))"
    )
    assert _check(pool, body) is Verdict.PASS


def test_tmp_is_fresh_for_every_program(pool) -> None:
    _namespaces(pool)
    body = f"print({OK!r} if os.listdir('/dev/shm') == [] else 'left')\nio.open('/dev/shm/m', 'w')"
    assert _check(pool, body) is Verdict.PASS
    assert _check(pool, body) is Verdict.PASS


# ---------------------------------------------------------------- as an unprivileged user

CONTAINED = {
    "write-results": "try:\n    io.open(RESULTS + '/evil.txt', 'w').write('x')\n"
    "    print('escaped')\nexcept OSError:\n    print(OK)",
    "append-results": "try:\n    io.open(RESULTS + '/hostile.jsonl', 'a').write('{}\\n')\n"
    "    print('escaped')\nexcept OSError:\n    print(OK)",
    "signal-victim": "libc = ctypes.CDLL(None)\nr = libc.kill(VICTIM, 9)\nlibc.kill(-1, 9)\n"
    "print(OK if r != 0 else 'escaped')",
    "list-proc": "pids = [p for p in os.listdir('/proc') if p.isdigit()]\n"
    "print(OK if pids == ['1'] else pids)",
    "read-secret": "try:\n    io.open(SECRET).read()\n    print('escaped')\n"
    "except OSError:\n    print(OK)",
    "read-shadow": "try:\n    io.open('/etc/shadow').read()\n    print('escaped')\n"
    "except OSError:\n    print(OK)",
}
# tests/test_sandbox.py's attacks, with the verdicts it expects
ATTACKS = {
    "infinite-loop": ("while True:\n    pass", {"timeout"}),
    "sleep": ("import time\ntime.sleep(3600)", {"timeout"}),
    "huge-alloc": ("x = bytearray(100 * 2**30)\nprint(OK)", {"runtime_error"}),
    "fork-bomb": (
        "import posix\ntry:\n    while True:\n        posix.fork()\nexcept OSError:\n    pass\n"
        "while True:\n    pass",
        {"timeout", "runtime_error"},
    ),
    "daemon": (
        "import posix, time\nif posix.fork() == 0:\n    posix.setsid()\n    time.sleep(600)\n"
        "print(OK)",
        {"pass"},
    ),
    "big-output": ("s = 'x' * 2**20\nfor _ in range(1024):\n    print(s)", {"runtime_error"}),
    "big-file": (
        "f = io.open('big', 'wb')\nfor _ in range(1024):\n    f.write(b'x' * 2**20)\nprint(OK)",
        {"runtime_error"},
    ),
    "socket": (
        "import socket\nsocket.create_connection(('127.0.0.1', 22), timeout=2)\nprint(OK)",
        {"runtime_error"},
    ),
    "kill-parent": (
        "libc = ctypes.CDLL(None)\nlibc.kill(os.getppid(), 9)\nlibc.kill(-1, 9)\nprint(OK)",
        {"pass"},
    ),
}


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    """A folder of the evaluating user (65534 as root): results/, a private secret."""
    work = Path(tempfile.mkdtemp(prefix="apps-hpc-isolation-"))
    (work / "results").mkdir()
    (work / "secret.txt").write_text("s3cret")
    (work / "secret.txt").chmod(0o600)
    work.chmod(0o755)
    if ROOT:
        for path in (work, work / "results", work / "secret.txt"):
            os.chown(path, NOBODY, NOBODY)
    yield work
    shutil.rmtree(work, ignore_errors=True)


def _victim() -> subprocess.Popen[bytes]:
    """A process of the evaluating user that is not part of the evaluation."""
    drop = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    return subprocess.Popen([*(drop if ROOT else []), "sleep", "600"])


def _write_inputs(work: Path, victim: int) -> dict[int, set[str]]:
    """One problem per program; returns the verdicts each may get."""
    prelude = (
        f"import io, os, ctypes\nOK = {OK!r}\nRESULTS = {str(work / 'results')!r}\n"
        f"SECRET = {str(work / 'secret.txt')!r}\nVICTIM = {victim}\n"
    )
    programs = {name: (code, {"pass"}) for name, code in CONTAINED.items()} | ATTACKS
    allowed, rows, samples = {}, [], []
    for pid, (code, verdicts) in enumerate(programs.values()):
        rows.append(apps_row(["x\n"], [OK + "\n"], pid))
        samples.append(
            {
                "problem_id": pid,
                "split": "test",
                "difficulty": "interview",
                "model": "hostile",
                "codes": [prelude + code],
            }
        )
        allowed[pid] = verdicts
    for name, items in (("test.jsonl", rows), ("samples.jsonl", samples)):
        (work / name).write_text("".join(json.dumps(x) + "\n" for x in items))
        if ROOT:
            os.chown(work / name, NOBODY, NOBODY)
    return allowed


def _uid_processes_since(uid: int, since: float, but: int) -> list[int]:
    ticks, boot = os.sysconf("SC_CLK_TCK"), time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
    found = []
    for entry in os.listdir("/proc"):
        try:
            if not entry.isdigit() or int(entry) == but or os.stat(f"/proc/{entry}").st_uid != uid:
                continue
            with open(f"/proc/{entry}/stat", "rb") as fh:
                start = int(fh.read().rsplit(b")", 1)[1].split()[19]) / ticks + boot
        except (OSError, IndexError):
            continue
        if start >= since - 1:
            found.append(int(entry))
    return found


def test_unprivileged_evaluator_contains_hostile_programs(workdir: Path) -> None:
    began = time.time()
    victim = _victim()
    try:
        allowed = _write_inputs(workdir, victim.pid)
        out = workdir / "results" / "hostile.jsonl"
        argv = [
            sys.executable,
            "-m",
            "apps_hpc",
            "eval",
            "-q",
            "--workers",
            "2",
            "--timeout",
            "1",
            "--budget",
            "3",
            "--memory-mb",
            "1024",
            "--isolation",
            "namespaces",
            "--samples",
            str(workdir / "samples.jsonl"),
            "--apps",
            str(workdir / "test.jsonl"),
            "--out",
            str(out),
        ]
        env = dict(os.environ, HOME=str(workdir), PYTHONDONTWRITEBYTECODE="1")
        run = subprocess.run(
            unprivileged_command(argv),
            capture_output=True,
            text=True,
            cwd=workdir,
            env=env,
            timeout=300,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        assert "sandbox: namespaces" in run.stderr
        assert victim.poll() is None, "the victim was killed"
        # nothing but the results and the evaluator's own verdict cache (one file per writer)
        assert sorted(os.listdir(workdir / "results")) == ["hostile.jsonl", "verdict-cache"]
        cached = os.listdir(workdir / "results" / "verdict-cache")
        assert len(cached) == 1 and cached[0].endswith(".jsonl"), cached
        assert (workdir / "secret.txt").read_text() == "s3cret"
        records = [json.loads(line) for line in out.read_text().splitlines()]
        got = {r["problem_id"]: r["verdicts"][0] for r in records}
        assert len(records) == len(allowed) == len(got)
        assert {p: v for p, v in got.items() if v not in allowed[p]} == {}
        uid = NOBODY if ROOT else os.getuid()
        assert _uid_processes_since(uid, began, but=victim.pid) == []
    finally:
        victim.kill()
        victim.wait()


def _tiny_problem(work: Path) -> list[str]:
    """One standard-input problem, a right and a wrong program; the eval options."""
    row = apps_row(["2\n"], ["4\n"])
    sample = {
        "problem_id": 0,
        "split": "test",
        "difficulty": "interview",
        "model": "m",
        "codes": ["print(2 * int(input()))", "print(5)"],
    }
    (work / "test.jsonl").write_text(json.dumps(row) + "\n")
    (work / "samples.jsonl").write_text(json.dumps(sample) + "\n")
    return ["--samples", str(work / "samples.jsonl"), "--apps", str(work / "test.jsonl")]


@needs(ROOT, "making the kernel refuse user namespaces needs root")
def test_refused_namespaces_fall_back_with_one_warning(tmp_path: Path) -> None:
    refuse = [sys.executable, str(REPO / "tests" / "unprivileged.py"), "refuse-userns"]
    evaluate = [sys.executable, "-m", "apps_hpc", "eval", "-q", "--workers", "2"]
    args = _tiny_problem(tmp_path)
    out = tmp_path / "results.jsonl"
    run = subprocess.run(
        [*refuse, *evaluate, *args, "--out", str(out)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-3000:]
    warnings = [line for line in run.stderr.splitlines() if "namespaces refused" in line]
    assert len(warnings) == 1 and "max_user_namespaces=0" in warnings[0], run.stderr
    assert "NOT isolated" in warnings[0]
    assert "sandbox: none" in run.stderr
    assert json.loads(out.read_text())["verdicts"] == ["pass", "wrong_answer"]
    strict = subprocess.run(
        [
            *refuse,
            *evaluate,
            *args,
            "--out",
            str(tmp_path / "strict.jsonl"),
            "--isolation",
            "namespaces",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert strict.returncode != 0 and "failed to start (isolation namespaces)" in strict.stderr


def test_a_checkout_under_tmp_keeps_its_isolation(tmp_path: Path) -> None:
    """CI may clone the repository (and its venv) under /tmp, which every program gets a
    fresh tmpfs on: the kept paths there are bound back, read-only, so namespaces hold."""
    assert str(tmp_path).startswith("/tmp/")
    shutil.copytree(REPO / "apps_hpc", tmp_path / "apps_hpc")
    script = (
        "from apps_hpc.evaluate.pool import EvalPool, PoolOptions, Job\n"
        "from apps_hpc.evaluate.harness import TestSpec\n"
        "code = 'import heapq, os\\nprint(int(input()) + 1)\\nprint(os.listdir(\"/tmp\"))'\n"
        "import json\n"
        "with EvalPool(PoolOptions(workers=1, isolation='namespaces')) as pool:\n"
        "    job = Job(key=('t', 1), code=code, spec=TestSpec(None, ['1\\n'], ['2\\n']))\n"
        "    [(_, r)] = list(pool.run([job]))\n"
        "    print(json.dumps([pool.isolation, r.verdict.value, r.failure['got']]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    isolation, verdict, got = json.loads(out.stdout.splitlines()[-1])
    assert isolation.startswith("namespaces"), out.stderr
    # the program ran (its imports worked) and saw a fresh /tmp with the checkout bound in
    printed, listing = got.splitlines()
    assert (verdict, printed) == ("wrong_answer", "2")
    assert f"'{tmp_path.parts[2]}'" in listing and "sandbox" in listing
