"""A warm evaluation worker: `python -m apps_hpc.evaluate.worker` (started by pool.py).

It imports the header's modules (numpy...) once, cuts its own network, becomes a child
subreaper, then for each program it is sent forks a child that enters the sandbox and
runs every test (`harness.run_program`). It never runs a program itself.

Protocol (pipes from the trusted evaluator): length-prefixed pickles on the original
stdin/stdout. The child answers on a pipe of its own with JSON, never pickle: what an
untrusted process writes is parsed as data only.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import pickle
import select
import signal
import struct
import sys
import tempfile
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from apps_hpc.evaluate import sandbox
from apps_hpc.evaluate.harness import (
    WALL_TIMEOUTS,
    TestSpec,
    Timer,
    lift_int_digits_limit,
    reliability_guard,
    run_program,
)
from apps_hpc.evaluate.semantics import HEADER_MODULES, Outcome, clean_failure

MAX_PAYLOAD = 4 * 1024 * 1024
CACHE_SIZE = 4
_FRAME = struct.Struct("<Q")


def send(stream: BinaryIO, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_FRAME.pack(len(data)) + data)
    stream.flush()


def recv(stream: BinaryIO) -> Any:
    head = stream.read(_FRAME.size)
    if len(head) < _FRAME.size:
        return None
    (size,) = _FRAME.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        return None
    return pickle.loads(data)


@dataclass(frozen=True)
class Run:
    """What happened to one program in its child."""

    status: str  # ok | cpu_limit | wall_limit | crashed
    outcomes: list[str]
    cpu_s: float
    wall_s: float
    strays: int
    detail: str = ""
    wall_timeouts: int = 0  # timeouts decided by the wall clock, not CPU time
    failure: dict[str, Any] | None = None  # the child's account of its first failing test


def _child(code: str, spec: TestSpec, cfg: dict[str, Any], scratch: str, fd: int) -> None:
    """Runs in the forked child: never returns."""
    status = 70
    try:
        limits: sandbox.Limits = cfg["limits"]
        sandbox.enter(scratch, fd, limits, cfg["identity"])
        _seed_rngs()
        lift_int_digits_limit()
        timer = Timer(limits.test_timeout_s, limits.wall_factor)
        reliability_guard()
        run = run_program(code, spec, timer, limits.output_cap, cfg["all_tests"])
        answer = {
            "outcomes": [o.value for o in run.outcomes],
            "failure": run.failure,
            "wall_timeouts": WALL_TIMEOUTS[0],
        }
        os.write(fd, json.dumps(answer).encode())
        status = 0
    except BaseException as exc:  # e.g. SystemExit from a call-based program
        os.write(fd, json.dumps({"error": f"{type(exc).__name__}: {exc}"[:500]}).encode())
    finally:
        os._exit(status)


def _seed_rngs() -> None:
    """Programs that use `random`/`np.random` get the same draws in every run."""
    import random

    import numpy as np

    random.seed(0)
    np.random.seed(0)


def _read_chunk(fd: int, chunks: list[bytes]) -> bool:
    """Read what is there; False at end of file. Beyond MAX_PAYLOAD data is dropped."""
    try:
        data = os.read(fd, 65536)
    except BlockingIOError:
        return True
    if data and sum(map(len, chunks)) < MAX_PAYLOAD:
        chunks.append(data)
    return bool(data)


def _read_until_exit(pid: int, fd: int, deadline: float) -> tuple[bytes, bool]:
    """Read the child's answer until it exits; True if the wall deadline hit first."""
    chunks: list[bytes] = []
    pidfd = os.pidfd_open(pid)
    waiting = [fd, pidfd]
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return b"".join(chunks), True
            ready, _, _ = select.select(waiting, [], [], left)
            if fd in ready and not _read_chunk(fd, chunks):
                waiting.remove(fd)
            if pidfd in ready:
                break
    finally:
        os.close(pidfd)
    os.set_blocking(fd, False)  # what the child wrote before it exited is in the pipe
    for _ in range(MAX_PAYLOAD // 65536):  # bounded: a stray grandchild may keep writing
        if fd not in waiting or not _read_chunk(fd, chunks):
            break
        if not select.select([fd], [], [], 0)[0]:
            break
    return b"".join(chunks), False


def _parse(payload: bytes) -> dict[str, Any]:
    """The child's answer: {"outcomes": [...]} or {"error": "..."}; {} if unreadable."""
    try:
        answer = json.loads(payload.decode())
        if isinstance(answer.get("outcomes"), list):
            answer["outcomes"] = [Outcome(v).value for v in answer["outcomes"]]
        return answer if isinstance(answer, dict) else {}
    except (ValueError, UnicodeDecodeError, AttributeError):
        return {}


def _classify(payload: bytes, status: int, cpu_s: float, limits: sandbox.Limits) -> str:
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 and "outcomes" in _parse(payload):
        return "ok"
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu_s >= limits.program_budget_s):
        return "cpu_limit"
    return "crashed"


def run_sandboxed(code: str, spec: TestSpec, cfg: dict[str, Any], base: Path) -> Run:
    """Fork a sandboxed child for one program, wait for it, clean up after it."""
    limits: sandbox.Limits = cfg["limits"]
    scratch = sandbox.make_scratch(base, cfg["identity"])
    r, w = os.pipe()
    start = time.monotonic()
    pid = sandbox.fork_program(cfg["identity"])
    if pid == 0:
        os.close(r)
        _child(code, spec, cfg, str(scratch), w)
    os.close(w)
    try:
        payload, timed_out = _read_until_exit(pid, r, start + limits.wall_deadline_s)
        if timed_out:
            os.killpg(pid, signal.SIGKILL)
        _, status, usage = os.wait4(pid, 0)
    finally:
        os.close(r)
    wall = time.monotonic() - start
    strays = sandbox.reap(pid)
    sandbox.remove_scratch(scratch)
    cpu = usage.ru_utime + usage.ru_stime
    state = "wall_limit" if timed_out else _classify(payload, status, cpu, limits)
    answer = _parse(payload)
    outcomes = answer.get("outcomes", []) if state == "ok" else []
    walls = answer.get("wall_timeouts", 0) if state == "ok" else int(timed_out)
    detail = _describe(status, answer)
    failure = clean_failure(answer.get("failure")) if state == "ok" else None
    walls = int(walls) if isinstance(walls, int) else 1
    return Run(state, outcomes, cpu, wall, strays, detail, walls, failure)


def _describe(status: int, answer: dict[str, Any]) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    if answer.get("error"):
        return str(answer["error"])
    return f"exit {os.WEXITSTATUS(status)}"


def _claim_protocol() -> tuple[BinaryIO, BinaryIO]:
    """Keep private copies of the pipes to the evaluator; stdio then points elsewhere so
    nothing else can write into the protocol."""
    proto_in = os.fdopen(os.dup(0), "rb")
    proto_out = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(2, 1)
    os.close(null)
    return proto_in, proto_out


def serve(proto_in: BinaryIO, proto_out: BinaryIO) -> None:
    cfg = recv(proto_in)
    if cfg is None:
        return
    try:
        cfg["identity"], network, isolation = sandbox.setup_worker(cfg)
    except Exception as exc:  # the kernel refused a namespace: the pool decides what next
        send(proto_out, {"ready": False, "error": str(exc)})
        return
    sandbox.become_subreaper()
    for name in (*HEADER_MODULES, "numpy.random"):
        importlib.import_module(name)
    gc.collect()
    gc.freeze()  # forked children never scan (and so never copy) the worker's objects
    base = Path(tempfile.mkdtemp(prefix="apps-hpc-sandbox-"))
    os.chmod(base, 0o711)
    user = sandbox.describe(cfg["identity"])
    hello = {"ready": True, "pid": os.getpid(), "network": network, "user": user}
    send(proto_out, hello | {"isolation": isolation})
    cache: OrderedDict[Any, TestSpec] = OrderedDict()
    try:
        while (job := recv(proto_in)) is not None:
            if job.get("spec") is not None:
                cache[job["key"]] = job["spec"]
                while len(cache) > CACHE_SIZE:
                    cache.popitem(last=False)
            cache.move_to_end(job["key"])
            run = run_sandboxed(job["code"], cache[job["key"]], cfg | job["options"], base)
            send(proto_out, run)
    finally:
        sandbox.remove_scratch(base)


def main() -> None:
    proto_in, proto_out = _claim_protocol()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the evaluator decides when we stop
    serve(proto_in, proto_out)
    sys.exit(0)


if __name__ == "__main__":
    # Import ourselves under the package name so pickled classes resolve on both sides.
    from apps_hpc.evaluate.worker import main as package_main

    package_main()
