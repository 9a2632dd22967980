"""A warm evaluation worker: `python -m apps_hpc.evaluate.worker` (started by pool.py).

It imports the header's modules (numpy...) once, cuts its own network, becomes a child
subreaper, then for each program it is sent forks a child that enters the sandbox and
runs every test (`harness.run_program`). It never runs a program itself.

Protocol (pipes from the trusted evaluator): length-prefixed pickles on the original
stdin/stdout. A job holds the program, its problem's `Probe` (the inputs, never the
expected outputs: the child is forked from this process and could read its memory) and
options. The child writes one framed JSON record per test on a pipe of its own (never
pickle: what an untrusted process writes is parsed as data only); the worker checks the
framing and relays each record at once as ("record", index, bytes); the evaluator
compares it and may answer "stop" (a wrong answer: the reference stops there); the
worker then kills the child. Last comes the `Run`.
"""

from __future__ import annotations

import gc
import importlib
import os
import pickle
import select
import signal
import struct
import sys
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from apps_hpc.core.limits import Limits
from apps_hpc.evaluate import sandbox, tree, wire
from apps_hpc.evaluate.harness import (
    Probe,
    Timer,
    lift_int_digits_limit,
    reliability_guard,
    run_program,
)
from apps_hpc.evaluate.semantics import HEADER_MODULES, PRELOADED_MODULES

CACHE_SIZE = 4
_ESCAPED = 70  # the child's exit status when the program's run did not end normally
_FRAME = struct.Struct("<Q")


def send(stream: BinaryIO, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_FRAME.pack(len(data)) + data)
    stream.flush()


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    """`size` bytes, fewer only at end of file (an unbuffered stream returns less)."""
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def recv(stream: BinaryIO) -> Any:
    head = _read_exact(stream, _FRAME.size)
    if len(head) < _FRAME.size:
        return None
    (size,) = _FRAME.unpack(head)
    data = _read_exact(stream, size)
    if len(data) < size:
        return None
    return pickle.loads(data)


@dataclass(frozen=True)
class Run:
    """What happened to one program's child (its records went to the evaluator first)."""

    status: str  # ok | cpu_limit | wall_limit | crashed | stopped (by the evaluator)
    records: int  # how many well-formed records the child sent
    cpu_s: float
    wall_s: float
    detail: str = ""


def _child(code: str, probe: Probe, cfg: dict[str, Any], scratch: str, fd: int) -> None:
    """Runs in the forked child: never returns. Exit 0 once every record is written."""
    status = _ESCAPED
    try:
        limits: Limits = cfg["limits"]
        cfg["tree"].join(cfg["cgroup"])  # first: everything after counts
        sandbox.enter(scratch, fd, limits, cfg["identity"])
        _seed_rngs()
        lift_int_digits_limit()
        sys.setrecursionlimit(limits.recursion_limit)  # a recorded setting (Limits)
        timer = Timer(limits.test_timeout_s, limits.wall_factor)
        reliability_guard()
        emit = _emitter(fd, record_cap(limits))
        run_program(code, probe, timer, limits.output_cap, emit, cfg["all_tests"])
        status = 0
    finally:  # e.g. SystemExit from a call-based program: no more records, exit 70
        os._exit(status)


def record_cap(limits: Limits) -> int:
    """The largest record, in bytes: the output cap in UTF-8, with room for escapes."""
    return 2 * limits.output_cap + 4096


def _emitter(fd: int, cap: int) -> Callable[[int, dict[str, Any]], None]:
    def emit(index: int, record: dict[str, Any]) -> None:
        data = wire.frame(index, record)
        if len(data) > cap:
            error = f"more than {cap} bytes of output to send"
            too_big = {"kind": "error", "outcome": "runtime_error", "error": error}
            data = wire.frame(index, too_big | {"got": None, "walls": record["walls"]})
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]

    return emit


def _seed_rngs() -> None:
    """Programs that use `random`/`np.random` get the same draws in every run."""
    import random

    import numpy as np

    random.seed(0)
    np.random.seed(0)


class Relay:
    """Cuts the child's byte stream into records and passes each to the evaluator as it
    arrives; anything that is not the next record in turn (a frame out of sequence, one
    too many, too large) is a violation: the child is stopped, the program failed."""

    def __init__(self, tests: int, cap: int, out: BinaryIO) -> None:
        self.tests, self.cap, self.out = max(tests, 1), cap, out
        self.buffer, self.records, self.violation = bytearray(), 0, ""

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while not self.violation and len(self.buffer) >= wire.FRAME.size:
            index, size = wire.FRAME.unpack_from(self.buffer)
            if index != self.records or self.records >= self.tests or size > self.cap:
                self.violation = "the program wrote into the result channel"
                self.buffer.clear()
                return
            end = wire.FRAME.size + size
            if len(self.buffer) < end:
                return
            send(self.out, ("record", index, bytes(self.buffer[wire.FRAME.size : end])))
            del self.buffer[:end]
            self.records += 1


@dataclass
class Watch:
    """What the worker saw while a child ran."""

    timed_out: bool = False
    stopped: bool = False
    tree: str = ""  # which limit of the whole process tree stopped it (cpu | memory)
    tree_cpu_s: float = 0.0  # the tree's CPU seconds when last summed


def _check_tree(pid: int, cfg: dict[str, Any], watch: Watch) -> None:
    """Sum the program's processes; stop them all at the CPU budget or the memory limit
    (each process has its own rlimits; forked ones would multiply them)."""
    limits: Limits = cfg["limits"]
    usage = cfg["tree"].usage(cfg["cgroup"])
    watch.tree_cpu_s = max(watch.tree_cpu_s, usage.cpu_s)
    if usage.cpu_s > limits.program_budget_s:
        watch.tree = "cpu"
    elif usage.oom or usage.rss_mb > limits.memory_mb:
        watch.tree = "memory"
    if watch.tree:
        _kill(pid)
        cfg["tree"].kill(cfg["cgroup"])


def _read_chunk(fd: int, relay: Relay) -> bool:
    """Relay what is there; False at end of file."""
    try:
        data = os.read(fd, 1 << 20)
    except BlockingIOError:
        return True
    if data and not relay.violation:
        relay.feed(data)
    return bool(data)


def _watch(
    pid: int, fd: int, proto: BinaryIO, deadline: float, relay: Relay, cfg: dict[str, Any]
) -> Watch:
    """Relay the child's records until it exits; stop it when the evaluator says so,
    when it breaks the channel's rules, when its process tree passes a limit, or at the
    wall deadline."""
    watch = Watch()
    pidfd = os.pidfd_open(pid)
    proto_fd = proto.fileno()
    waiting = [fd, pidfd, proto_fd]
    next_check = time.monotonic() + tree.TREE_POLL_S
    try:
        while True:
            now = time.monotonic()
            left = deadline - now
            if left <= 0:
                watch.timed_out = True
                return watch
            if now >= next_check:
                if not watch.tree:
                    _check_tree(pid, cfg, watch)
                next_check = now + tree.TREE_POLL_S
            wait = min(left, max(next_check - now, 0.0))
            ready, _, _ = select.select(waiting, [], [], wait)
            if fd in ready and not _read_chunk(fd, relay):
                waiting.remove(fd)
            if proto_fd in ready:
                waiting.remove(proto_fd)
                if recv(proto) == "stop":  # None: the evaluator closed the pipe
                    watch.stopped = True
                    _kill(pid)
            if relay.violation:
                _kill(pid)
            if pidfd in ready:
                break
    finally:
        os.close(pidfd)
    _drain(fd, waiting, relay)
    return watch


def _kill(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _drain(fd: int, waiting: list[int], relay: Relay) -> None:
    """What the child wrote before it exited is in the pipe; bounded, since a stray
    grandchild may keep writing."""
    os.set_blocking(fd, False)
    for _ in range(64):
        if fd not in waiting or not _read_chunk(fd, relay):
            break
        if not select.select([fd], [], [], 0)[0]:
            break


def _classify(status: int, cpu_s: float, limits: Limits, watch: Watch) -> str:
    if watch.timed_out:
        return "wall_limit"
    if watch.stopped:
        return "stopped"
    if watch.tree:
        return "cpu_limit" if watch.tree == "cpu" else "crashed"
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        return "ok"
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu_s >= limits.program_budget_s):
        return "cpu_limit"
    return "crashed"


def run_sandboxed(code: str, probe: Probe, cfg: dict[str, Any], base: Path, out: Any) -> Run:
    """Fork a sandboxed child for one program, relay its records to the evaluator
    (`out`: the protocol's streams), wait for it, clean up after it."""
    limits: Limits = cfg["limits"]
    scratch = sandbox.make_scratch(base, cfg["identity"])
    cfg = cfg | {"cgroup": cfg["tree"].start(limits)}
    r, w = os.pipe()
    start = time.monotonic()
    pid = sandbox.fork_program(cfg["identity"])
    if pid == 0:
        os.close(r)
        _child(code, probe, cfg, str(scratch), w)
    os.close(w)
    relay = Relay(len(probe.inputs), record_cap(limits), out[1])
    try:
        watch = _watch(pid, r, out[0], start + limits.wall_deadline_s, relay, cfg)
        if watch.timed_out:
            _kill(pid)
        _, status, usage = os.wait4(pid, 0)
    finally:
        os.close(r)
    wall = time.monotonic() - start
    cfg["tree"].kill(cfg["cgroup"])
    sandbox.reap(pid)
    if cfg["tree"].finish(cfg["cgroup"]) and not watch.tree:
        watch.tree = "memory"  # the kernel's OOM killer, at the cgroup's memory.max
    sandbox.remove_scratch(scratch)
    cpu = max(usage.ru_utime + usage.ru_stime, watch.tree_cpu_s)
    state = "crashed" if relay.violation else _classify(status, cpu, limits, watch)
    detail = relay.violation or _describe(status)
    if watch.tree == "memory":
        detail = f"the program's processes together held more than {limits.memory_mb} MB"
    return Run(state, relay.records, cpu, wall, detail)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    if os.WEXITSTATUS(status) == _ESCAPED:
        return f"exit {_ESCAPED}: a BaseException (e.g. SystemExit) left the test"
    return f"exit {os.WEXITSTATUS(status)}"


def _claim_protocol() -> tuple[BinaryIO, BinaryIO]:
    """Keep private copies of the pipes to the evaluator; stdio then points elsewhere so
    nothing else can write into the protocol."""
    proto_in = os.fdopen(os.dup(0), "rb", buffering=0)  # unbuffered: select() sees all
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
    for name in (*HEADER_MODULES, *PRELOADED_MODULES):
        importlib.import_module(name)
    gc.collect()
    gc.freeze()  # forked children never scan (and so never copy) the worker's objects
    base = Path(tempfile.mkdtemp(prefix="apps-hpc-sandbox-"))
    os.chmod(base, 0o711)
    user = sandbox.describe(cfg["identity"])
    hello = {"ready": True, "pid": os.getpid(), "network": network, "user": user}
    send(proto_out, hello | {"isolation": isolation})
    cache: OrderedDict[Any, Probe] = OrderedDict()
    streams = (proto_in, proto_out)
    try:
        while (job := recv(proto_in)) is not None:
            if not isinstance(job, dict):  # a "stop" that crossed the child's end
                continue
            if job.get("probe") is not None:
                cache[job["key"]] = job["probe"]
                while len(cache) > CACHE_SIZE:
                    cache.popitem(last=False)
            cache.move_to_end(job["key"])
            options = cfg | job["options"]
            send(proto_out, run_sandboxed(job["code"], cache[job["key"]], options, base, streams))
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
