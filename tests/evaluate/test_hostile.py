"""Hostile programs, round 2 (issue 23): the evaluator's secrets, the kernel keyring,
system calls an untrusted process never needs, and limits that fork would multiply.
Each program prints OK when it was contained. They run as root (a pool of this process,
namespaces on, and without them) and as uid 65534 (`apps-hpc eval` through setpriv, see
tests/unprivileged.py), with secrets planted in the evaluator's environment."""

from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from apps_hpc.core.schema import Verdict
from apps_hpc.evaluate.pool import EvalPool, PoolOptions
from apps_hpc.evaluate.tree import TREE_POLL_S as sandbox_poll
from tests.helpers import FAST_LIMITS, apps_row, run_one
from tests.unprivileged import NOBODY, unprivileged_command

ROOT = os.geteuid() == 0
OK = "contained"
# The planted secrets: "plant3d" + 32 hex digits. The programs look for them with a
# pattern that does not match itself, so their own code is never a false find.
SECRETS = {
    "HF_TOKEN": "plant3d" + uuid.uuid4().hex,
    "AWS_SECRET_ACCESS_KEY": "plant3d" + uuid.uuid4().hex,
    "SOME_OTHER_SECRET": "plant3d" + uuid.uuid4().hex,
}
PRELUDE = f"import ctypes, io, os, re\nOK = {OK!r}\nlibc = ctypes.CDLL(None, use_errno=True)\n"

SEARCH_MEMORY = r"""
libc.prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE: /proc/self/* readable again
pattern = re.compile(rb'plant3d[0-9a-f]{32}')
found = pattern.findall(io.open('/proc/self/environ', 'rb').read())
for name in ('/proc/self/cmdline', '/proc/1/environ'):
    try:
        found += pattern.findall(io.open(name, 'rb').read())
    except OSError:
        pass
found += pattern.findall(repr(dict(os.environ)).encode())
mem = io.open('/proc/self/mem', 'rb', buffering=0)
for line in io.open('/proc/self/maps').read().splitlines():
    fields = line.split()
    if fields[1][0] != 'r' or fields[-1] in ('[vvar]', '[vsyscall]', '[vvar_vclock]'):
        continue
    start, end = (int(x, 16) for x in fields[0].split('-'))
    while start < end:
        size = min(end - start, 1 << 22)
        try:
            mem.seek(start)
            chunk = mem.read(size)
        except (OSError, OverflowError, ValueError):
            break
        found += pattern.findall(chunk)
        start += size
print(OK if not found else 'leaked %d' % len(found))
"""

# The kernel's keyrings are not namespaced: a program gets a fresh, empty session
# keyring and no keyring system call at all.
KEYRING = r"""
SYS = {'x86_64': (248, 249, 250), 'aarch64': (217, 218, 219)}[os.uname().machine]
add_key, request_key, keyctl = SYS
r1 = libc.syscall(add_key, b'user', b'verdict', b'pass', 4, ctypes.c_long(-3))
r2 = libc.syscall(keyctl, 0, ctypes.c_long(-3), 0)  # KEYCTL_GET_KEYRING_ID, session
r3 = libc.syscall(request_key, b'user', b'verdict', None, 0)
r4 = libc.syscall(keyctl, 0, ctypes.c_long(-4), 0)  # the user keyring
print(OK if (r1, r2, r3, r4) == (-1, -1, -1, -1) and ctypes.get_errno() == 1 else (r1, r2, r3, r4))
"""

SESSION_KEYRING_EMPTY = r"""
try:
    keys = io.open('/proc/keys').read()
except OSError:
    keys = ''
print(OK if 'verdict' not in keys and 'apps-hpc-test' not in keys else keys)
"""


def _denied(name: str, call: str) -> str:
    """A program that makes a system call and prints OK when it failed with EPERM."""
    return (
        f"import platform\nr = {call}\ne = ctypes.get_errno()\n"
        f"print(OK if r == -1 and e == 1 else ('{name}', r, e))"
    )


NR = {
    "x86_64": {
        "ptrace": 101,
        "mount": 165,
        "unshare": 272,
        "setns": 308,
        "perf": 298,
        "bpf": 321,
        "clone": 56,
    },
    "aarch64": {
        "ptrace": 117,
        "mount": 40,
        "unshare": 97,
        "setns": 268,
        "perf": 241,
        "bpf": 280,
        "clone": 220,
    },
}
_M = f"NR = {NR!r}[os.uname().machine]\n"
# A nested user namespace would give back the capability to mount a tmpfs of any size
# (the 608 MB in RAM): unshare and clone are refused, and so is the mount.
NESTED_TMPFS = r"""
r1 = libc.unshare(0x10000000 | 0x00020000)  # CLONE_NEWUSER | CLONE_NEWNS
e1 = ctypes.get_errno()
import posix
pid = posix.fork()
if pid == 0:  # the child tries once more after a fork, then mounts
    r = libc.unshare(0x10000000 | 0x00020000)
    m = libc.mount(b'none', b'/tmp', b'tmpfs', 0, b'size=700m')
    posix._exit(0 if (r, m) == (-1, -1) and ctypes.get_errno() == 1 else 3)
ok = posix.waitpid(pid, 0)[1] == 0
r2 = libc.mount(b'none', b'/tmp', b'tmpfs', 0, b'size=700m')
print(OK if (r1, e1, r2, ok) == (-1, 1, -1, True) else (r1, e1, r2, ok))
"""

SYSCALLS = {
    "ptrace-traceme": _M + _denied("ptrace", "libc.syscall(NR['ptrace'], 0, 0, 0, 0)"),
    "ptrace-attach-parent": _M + _denied("ptrace", "libc.ptrace(16, os.getppid() or 1, 0, 0)"),
    "process_vm_readv": _denied("process_vm_readv", "libc.process_vm_readv(1, 0, 0, 0, 0, 0)"),
    "process_vm_writev": _denied("process_vm_writev", "libc.process_vm_writev(1, 0, 0, 0, 0, 0)"),
    "bpf": _M + _denied("bpf", "libc.syscall(NR['bpf'], 0, 0, 0)"),
    "perf_event_open": _M + _denied("perf", "libc.syscall(NR['perf'], 0, 0, -1, -1, 0)"),
    "mount-tmpfs": _M + _denied("mount", "libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)"),
    "unshare-user": _M + _denied("unshare", "libc.unshare(0x10000000)"),
    "unshare-mount": _M + _denied("unshare", "libc.unshare(0x00020000)"),
    "setns": _M + _denied("setns", "libc.setns(0, 0)"),
    # clone(CLONE_NEWUSER | SIGCHLD): a nested user namespace through clone
    "clone-newuser": _M
    + _denied("clone", "libc.syscall(NR['clone'], 0x10000000 | 17, 0, 0, 0, 0)"),
    "nested-userns-tmpfs": NESTED_TMPFS,
}

# Programs APPS solutions are like still run under the filter: threads, fork, numpy.
ALLOWED = {
    "threads": "import threading\nout = []\nts = [threading.Thread(target=out.append, "
    "args=(i,)) for i in range(8)]\n[t.start() for t in ts]\n[t.join() for t in ts]\n"
    "print(OK if sorted(out) == list(range(8)) else out)",
    "fork-and-wait": "import posix\npid = posix.fork()\nif pid == 0:\n    posix._exit(7)\n"
    "print(OK if posix.waitpid(pid, 0)[1] >> 8 == 7 else 'no')",
    "pool": "from concurrent.futures import ThreadPoolExecutor\n"
    "with ThreadPoolExecutor(4) as ex:\n    r = sum(ex.map(abs, range(-50, 50)))\n"
    "print(OK if r == 2500 else r)",
    "numpy": "import numpy as np\nprint(OK if int(np.arange(10).sum()) == 45 else 'no')",
    "recursion": "import sys\nsys.setrecursionlimit(10**6)\n"
    "def f(n):\n    return 0 if n == 0 else 1 + f(n - 1)\nprint(OK if f(50000) == 50000 else 'no')",
}

PROGRAMS = {
    "search-memory": SEARCH_MEMORY,
    "keyring": KEYRING,
    "session-keyring-empty": SESSION_KEYRING_EMPTY,
    **SYSCALLS,
    **ALLOWED,
}


def _plant_session_key() -> None:
    """This process joins a session keyring of its own holding a key "apps-hpc-test",
    as a login's credentials would be (the workers inherit it)."""
    libc = ctypes.CDLL(None, use_errno=True)
    keyctl, add_key = {"x86_64": (250, 248), "aarch64": (219, 217)}[os.uname().machine]
    libc.syscall(keyctl, 1, b"apps-hpc-test-session")  # KEYCTL_JOIN_SESSION_KEYRING
    libc.syscall(add_key, b"user", b"apps-hpc-test", b"secret", 6, ctypes.c_long(-3))


@pytest.fixture(scope="module", params=["namespaces", "none"])
def planted_pool(request: pytest.FixtureRequest) -> Iterator[EvalPool]:
    """A pool started with secrets in the evaluator's environment."""
    saved = dict(os.environ)
    os.environ.update(SECRETS)
    _plant_session_key()
    try:
        options = PoolOptions(workers=2, limits=FAST_LIMITS, isolation=request.param)
        with EvalPool(options) as pool:
            yield pool
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_hostile_program_is_contained(planted_pool: EvalPool, name: str) -> None:
    result = run_one(planted_pool, PRELUDE + PROGRAMS[name], ["x"], [OK])
    assert result.verdict is Verdict.PASS, (name, result.failure, result.detail)


# ---------------------------------------------------------------- as uid 65534


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    work = Path(tempfile.mkdtemp(prefix="apps-hpc-hostile-"))
    work.chmod(0o755)
    yield work
    shutil.rmtree(work, ignore_errors=True)


def _write_inputs(work: Path, programs: dict[str, str]) -> list[str]:
    rows, samples = [], []
    for pid, code in enumerate(programs.values()):
        rows.append(apps_row(["x\n"], [OK + "\n"], pid))
        sample = {"problem_id": pid, "split": "test", "difficulty": "interview"}
        samples.append(sample | {"model": "hostile", "codes": [PRELUDE + code]})
    for name, items in (("test.jsonl", rows), ("samples.jsonl", samples)):
        (work / name).write_text("".join(json.dumps(x) + "\n" for x in items))
    if ROOT:
        for path in work.iterdir():
            os.chown(path, NOBODY, NOBODY)
        os.chown(work, NOBODY, NOBODY)
    return list(programs)


def test_unprivileged_evaluator_contains_round_two(workdir: Path) -> None:
    names = _write_inputs(workdir, PROGRAMS)
    out = workdir / "results.jsonl"
    argv = [sys.executable, "-m", "apps_hpc", "eval", "-q", "--workers", "2"]
    argv += ["--timeout", "2", "--budget", "4", "--memory-mb", "1024"]
    argv += ["--isolation", "namespaces", "--samples", str(workdir / "samples.jsonl")]
    argv += ["--apps", str(workdir / "test.jsonl"), "--out", str(out)]
    env = dict(os.environ, HOME=str(workdir), PYTHONDONTWRITEBYTECODE="1", **SECRETS)
    run = subprocess.run(
        unprivileged_command(argv),
        capture_output=True,
        text=True,
        cwd=workdir,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    records = [json.loads(line) for line in out.read_text().split("\n") if line]
    got = {names[r["problem_id"]]: r["verdicts"][0] for r in records}
    failures = {r["problem_id"]: r.get("failures") for r in records if r["verdicts"] != ["pass"]}
    assert got == dict.fromkeys(names, "pass"), failures


# ---------------------------------------------------------------- the whole process tree

SPINNERS = """
import posix, signal
for _ in range(3):
    if posix.fork() == 0:
        signal.signal(signal.SIGXCPU, signal.SIG_IGN)
        while True:
            pass
for _ in range(3):
    posix.wait()
print(OK)
"""
HOARDERS = """
import posix, time
for _ in range(5):
    if posix.fork() == 0:
        block = bytearray(250 * 2**20)
        for i in range(0, len(block), 4096):
            block[i] = 1
        time.sleep(60)
time.sleep(60)
"""


@pytest.fixture(scope="module")
def patient_pool() -> Iterator[EvalPool]:
    """A 3 s CPU budget for the program, no shorter limit for its one test."""
    limits = dataclasses.replace(FAST_LIMITS, test_timeout_s=30.0)
    with EvalPool(PoolOptions(workers=1, limits=limits)) as pool:
        yield pool


def test_forked_spinners_share_one_cpu_budget(patient_pool: EvalPool) -> None:
    """Three forked children that ignore SIGXCPU (each would stop at its own 4 s rlimit:
    12 CPU-s, then the parent prints OK): the CPU of all counts against the program's
    3 s budget, and the program is stopped there."""
    result = run_one(patient_pool, PRELUDE + SPINNERS, ["x"], [OK])
    assert result.verdict is Verdict.TIMEOUT, result
    budget = FAST_LIMITS.program_budget_s
    assert budget <= result.cpu_s <= budget + 3 * 2 * sandbox_poll, result


def test_forked_children_share_one_memory_limit(patient_pool: EvalPool) -> None:
    """Five children of 250 MB each (1.25 GB) under a 1 GB limit: stopped."""
    result = run_one(patient_pool, PRELUDE + HOARDERS, ["x"], [OK])
    assert result.verdict is Verdict.RUNTIME_ERROR, result
    assert "together held more than" in result.detail + str(result.failure), result


SLEEPERS = """
import posix, time as clock
for _ in range(40):
    if posix.fork() == 0:
        clock.sleep(60)
clock.sleep(1.5)
print(OK)
"""


def test_pages_a_fork_shares_count_once(patient_pool: EvalPool) -> None:
    """40 sleeping children of an honest program (each shares the worker's ~60 MB of
    pages): not stopped at the 1 GB limit (summed as RSS they were: 2.4 GB)."""
    result = run_one(patient_pool, PRELUDE + SLEEPERS, ["x"], [OK])
    assert result.verdict is Verdict.PASS, result


# ---------------------------------------------------------------- the tmpfs cap

# /tmp and /dev/shm are each a tmpfs of Limits.tmp_mb (64 MB) per program with namespaces:
# files of 8 MB (under RLIMIT_FSIZE's 16 MB) until the write fails with ENOSPC.
TMPFS_CAP = r"""
def fill(where):
    written = 0
    try:
        for i in range(40):
            fd = os.open('%s/f%d' % (where, i), os.O_WRONLY | os.O_CREAT, 0o600)
            for _ in range(8):
                os.write(fd, b'x' * 2**20)
                written += 1
            os.close(fd)
    except OSError as exc:
        return written, exc.errno
    return written, 0
got = [fill('/tmp'), fill('/dev/shm')]
print(OK if all(e == 28 and n <= 64 for n, e in got) else got)
"""
FINE = "print(input().replace('x', OK))"


@pytest.fixture(scope="module")
def namespaced_pool() -> Iterator[EvalPool]:
    with EvalPool(PoolOptions(workers=2, limits=FAST_LIMITS, isolation="namespaces")) as pool:
        yield pool


def test_tmpfs_is_capped_per_program(namespaced_pool: EvalPool) -> None:
    """Writing past the cap fails for the program (ENOSPC); the evaluator and the
    other programs of the batch keep their verdicts."""
    from apps_hpc.evaluate.harness import TestSpec
    from apps_hpc.evaluate.pool import Job

    codes = [PRELUDE + FINE, PRELUDE + TMPFS_CAP, PRELUDE + TMPFS_CAP, PRELUDE + FINE]
    jobs = [Job(("tmpfs", i), code, TestSpec(None, ["x"], [OK])) for i, code in enumerate(codes)]
    results = {job.key[1]: result for job, result in namespaced_pool.run(jobs)}
    assert {i: r.verdict for i, r in results.items()} == dict.fromkeys(range(4), Verdict.PASS), [
        r.failure for r in results.values()
    ]


# ------------------------------------------- the whole process tree, as uid 65534


def test_unprivileged_evaluator_limits_the_tree(workdir: Path) -> None:
    """As uid 65534 with namespaces: forked SIGXCPU-ignoring spinners share one CPU
    budget, five 250 MB children one memory limit, the tmpfs is capped, a nested user
    namespace cannot mount one; the honest program in the same file passes."""
    work = workdir / "tree"
    work.mkdir()
    programs = {"fine": FINE, "spinners": SPINNERS, "hoarders": HOARDERS}
    programs |= {"tmpfs-cap": TMPFS_CAP, "nested-userns-tmpfs": NESTED_TMPFS, "fine2": FINE}
    names = _write_inputs(work, programs)
    out = work / "results.jsonl"
    argv = [sys.executable, "-m", "apps_hpc", "eval", "-q", "--workers", "2"]
    argv += ["--timeout", "30", "--budget", "3", "--memory-mb", "1024"]
    argv += ["--isolation", "namespaces", "--samples", str(work / "samples.jsonl")]
    argv += ["--apps", str(work / "test.jsonl"), "--out", str(out)]
    env = dict(os.environ, HOME=str(work), PYTHONDONTWRITEBYTECODE="1")
    run = subprocess.run(
        unprivileged_command(argv), capture_output=True, text=True, cwd=work, env=env, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    records = [json.loads(line) for line in out.read_text().split("\n") if line]
    got = {names[r["problem_id"]]: r["verdicts"][0] for r in records}
    want = dict.fromkeys(names, "pass") | {"spinners": "timeout", "hoarders": "runtime_error"}
    assert got == want, {names[r["problem_id"]]: r["failures"] for r in records}
    failures = {names[r["problem_id"]]: str(r["failures"]) for r in records}
    assert "together held more than" in failures["hoarders"], failures["hoarders"]
