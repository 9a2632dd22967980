"""The tree limits' mode (evaluate/tree.py): cgroup v2 detection from fake /proc text,
the values a program's cgroup gets, and, where this machine has a delegated cgroup v2,
a real run in one."""

from __future__ import annotations

import dataclasses

import pytest

from apps_hpc.core.schema import Verdict
from apps_hpc.evaluate import tree
from apps_hpc.evaluate.pool import EvalPool, PoolOptions
from tests.evaluate.test_hostile import HOARDERS, OK, PRELUDE, SPINNERS
from tests.helpers import FAST_LIMITS, run_one

V2_MOUNTINFO = (
    "24 30 0:22 / /sys rw,nosuid - sysfs sysfs rw\n"
    "30 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec - cgroup2 cgroup2 rw,nsdelegate\n"
)
V1_MOUNTINFO = (
    "30 24 0:26 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755\n"
    "31 30 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
    "32 30 0:28 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n"
)
JOB = "/system.slice/slurmstepd.scope/job_42/step_0/user/task_0"
V2_CGROUP = f"0::{JOB}\n"
V1_CGROUP = "9:memory:/slurm/uid_0/job_42\n8:pids:/\n1:name=systemd:/\n"


def _files(subtree: str, writable: set[str]):
    folder = "/sys/fs/cgroup" + JOB

    def read(path: str) -> str | None:
        return subtree if path == f"{folder}/cgroup.subtree_control" else None

    return read, lambda path: path in writable, folder


def test_delegated_cgroup_v2_is_used() -> None:
    read, writable, folder = _files("cpu memory pids\n", set())
    writable = {folder, f"{folder}/cgroup.procs"}.__contains__
    assert tree.plan(V2_MOUNTINFO, V2_CGROUP, read, writable) == (folder, folder)


@pytest.mark.parametrize(
    ("mountinfo", "cgroup", "subtree", "writable", "why"),
    [
        (V1_MOUNTINFO, V1_CGROUP, "memory pids", True, "no cgroup v2 mounted"),
        (V2_MOUNTINFO, V1_CGROUP, "memory pids", True, "in no cgroup v2"),
        (V2_MOUNTINFO, "0::/\n", "memory pids", True, "root cgroup"),
        (V2_MOUNTINFO, V2_CGROUP, "cpu pids", True, "does not delegate memory"),
        (V2_MOUNTINFO, V2_CGROUP, "", True, "does not delegate memory+pids"),
        (V2_MOUNTINFO, V2_CGROUP, "memory pids", False, "is not writable"),
    ],
)
def test_cgroup_v2_refused(mountinfo, cgroup, subtree, writable, why) -> None:
    read, _, _ = _files(subtree, set())
    folder, reason = tree.plan(mountinfo, cgroup, read, lambda path: writable)
    assert folder is None
    assert why in reason


def test_mount_and_own_cgroup_parsing() -> None:
    assert tree.cgroup2_mount(V2_MOUNTINFO) == "/sys/fs/cgroup"
    assert tree.cgroup2_mount(V1_MOUNTINFO) is None
    hybrid = V1_MOUNTINFO + "33 30 0:29 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
    assert tree.cgroup2_mount(hybrid) == "/sys/fs/cgroup/unified"
    assert tree.own_cgroup(V2_CGROUP) == JOB
    assert tree.own_cgroup(V1_CGROUP + "0::/user.slice\n") == "/user.slice"
    assert tree.own_cgroup(V1_CGROUP) is None


def test_program_cgroup_values() -> None:
    """memory.max is the memory limit in bytes, pids.max the process limit, no swap."""
    values = tree.limit_values(1024, 64, swap=True)
    assert values == {"memory.max": str(1 << 30), "pids.max": "64", "memory.swap.max": "0"}
    assert "memory.swap.max" not in tree.limit_values(1024, 64, swap=False)


def test_fields_of_cpu_stat_and_events() -> None:
    text = "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n"
    assert tree._fields(text)["usage_usec"] == 2_500_000
    assert tree._fields("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")["oom_kill"] == 1


def test_mode_named_in_words() -> None:
    assert "cgroup v2 per program" in tree.describe("cgroup2")
    words = tree.describe("proc", "no cgroup v2 mounted")
    assert "summed from /proc" in words and "no cgroup v2 mounted" in words
    assert tree.mode() in ("cgroup2", "proc")


def test_real_cgroup_v2_per_program() -> None:
    """Where this process's cgroup v2 delegates memory and pids: the workers use a
    cgroup per program and say so. Not a `require`: CI runs on VMs with cgroup v1 only,
    where no job can have it, so it skips there too (the pure parts are tested above)."""
    folder, why = tree.detect()
    if folder is None:
        pytest.skip(f"needs a delegated cgroup v2 ({why}); CI's VMs have cgroup v1 only")
    limits = dataclasses.replace(FAST_LIMITS, test_timeout_s=30.0)
    with EvalPool(PoolOptions(workers=1, limits=limits)) as pool:
        assert "a cgroup v2 per program" in pool.isolation
        spun = run_one(pool, PRELUDE + SPINNERS, ["x"], [OK])
        held = run_one(pool, PRELUDE + HOARDERS, ["x"], [OK])
        fine = run_one(pool, "print(input())", ["x"], ["x"])
    assert spun.verdict is Verdict.TIMEOUT, spun
    assert held.verdict is Verdict.RUNTIME_ERROR, held
    assert fine.verdict is Verdict.PASS, fine


MECHANICS = """
import os, sys, time
from apps_hpc.evaluate import tree
tree.CONTROLLERS = ()  # a hierarchy without controllers: no memory.max, pids.max
tree.limit_values = lambda *args, **kwargs: {}
class L: memory_mb, max_procs = 1024, 64
t = tree.CgroupTree(sys.argv[1])
handle = t.start(L)
pid = os.fork()
if pid == 0:
    t.join(handle)
    for _ in range(2):
        if os.fork() == 0:
            break
    end = time.time() + 30
    while time.time() < end:
        pass
    os._exit(0)
deadline = time.time() + 20
while t.usage(handle).cpu_s < 0.3 and time.time() < deadline:
    time.sleep(0.05)
cpu = t.usage(handle).cpu_s
t.kill(handle)
os.waitpid(pid, 0)
time.sleep(0.2)
left = tree._read_at("cgroup.procs", handle)
oom = t.finish(handle)
print(cpu >= 0.3, repr(left), oom, os.path.exists(f"{sys.argv[1]}/apps-hpc-{os.getpid()}/p1"))
"""


def test_cgroup_mechanics_on_a_controllerless_v2_hierarchy(tmp_path) -> None:
    """What a program's cgroup does besides the kernel's limits, on the cgroup v2
    hierarchy a cgroup v1 machine mounts without controllers (/sys/fs/cgroup/unified):
    the child joins it, cpu.stat counts its forked spinners, cgroup.kill stops them all,
    and the cgroup is removed. In a subprocess: it moves itself into a cgroup."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from tests.helpers import require

    mount = tree.cgroup2_mount(Path("/proc/self/mountinfo").read_text())
    require(os.geteuid() == 0 and mount and os.access(mount, os.W_OK), "root, a cgroup2 mount")
    folder = Path(mount) / f"apps-hpc-test-{os.getpid()}"
    folder.mkdir()
    try:
        run = subprocess.run(
            [sys.executable, "-c", MECHANICS, str(folder)], capture_output=True, text=True
        )
        assert run.stdout.split() == ["True", "''", "False", "False"], run.stderr[-2000:]
    finally:
        for sub in sorted(folder.rglob("*"), reverse=True):
            if sub.is_dir():
                sub.rmdir()
        folder.rmdir()
