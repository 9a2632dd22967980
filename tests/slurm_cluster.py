"""The `slurm_cluster` fixture: a throwaway single-node SLURM cluster for the tests.

`tests/conftest.py` provides it to every test; a test that asks for it (or a module with
`pytestmark = pytest.mark.usefixtures("slurm_cluster")`) gets the cluster. It runs
`slurm/local-cluster.sh start` (as root; about 8 s from cold) once per session and
stops the cluster at the end only if it started it. Without root or the SLURM packages it
skips (fails when $CI is set). The cluster: name "appshpc", one node with 4 CPUs and 2 fake
GPUs (gres gpu:2), default partition "debug", accounting through slurmdbd (so `sacct` knows
final states). Its configuration is in its own folder, never in /etc/slurm: while the
fixture is active, SLURM_CONF points at it (`local-cluster.sh env`), so every sbatch, sacct,
scontrol and `apps-hpc` process the tests start talks to this cluster and to no site's SLURM.
See slurm/local-cluster.sh.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import require

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "slurm" / "local-cluster.sh"
DEFAULT_STATE_DIR = "/tmp/apps-hpc-slurm"
START_TIMEOUT_S = 300


@dataclass(frozen=True)
class SlurmCluster:
    """What the tests may need to know about the running cluster."""

    state_dir: Path  # state, logs (state_dir / "log"), fake GPU devices
    conf: Path  # its slurm.conf (state_dir / "etc"): what SLURM_CONF is set to
    script: Path  # slurm/local-cluster.sh
    started_here: bool  # False: it was already running and is left running
    name: str = "appshpc"
    partition: str = "debug"
    gpus: int = 2
    cpus: int = 4


def _unavailable(reason: str) -> None:
    require(False, f"SLURM cluster unavailable: {reason}")


def _missing_commands() -> list[str]:
    return [
        cmd
        for cmd in ("sbatch", "slurmctld")
        if shutil.which(cmd) is None and not Path("/usr/sbin", cmd).exists()
    ]


def _script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
        check=False,
        env=env,
    )


def slurm_conf(env: dict[str, str] | None = None) -> Path:
    """The cluster's slurm.conf, from `local-cluster.sh env` ("export SLURM_CONF=...")."""
    done = _script("env", env=env)
    words = shlex.split(done.stdout)
    assert done.returncode == 0 and words[:1] == ["export"], done.stdout + done.stderr
    name, _, value = words[1].partition("=")
    assert name == "SLURM_CONF", done.stdout
    return Path(value)


TWO_NODE_DIR = "/tmp/apps-hpc-slurm-2n"
TWO_NODE_PORT = "16917"  # beside the one-node cluster's 16817-16819: both may run at once


@pytest.fixture(scope="module")
def two_node_cluster() -> Iterator[SlurmCluster]:
    """A cluster of its own with two nodes (two slurmd on this machine), started for the
    module that asks for it and removed after it (`APPS_HPC_SLURM_NODES=2`)."""
    if os.geteuid() != 0 or _missing_commands():
        _unavailable("needs root and the SLURM packages")
    env = {
        **os.environ,
        "APPS_HPC_SLURM_DIR": os.environ.get("APPS_HPC_SLURM2_DIR", TWO_NODE_DIR),
        "APPS_HPC_SLURM_PORT": os.environ.get("APPS_HPC_SLURM2_PORT", TWO_NODE_PORT),
        "APPS_HPC_SLURM_NODES": "2",
    }
    started = _script("start", env=env)
    if started.returncode != 0:
        _script("stop", "--purge", env=env)
        pytest.fail(f"local-cluster.sh start (2 nodes) failed:\n{started.stdout}{started.stderr}")
    conf = slurm_conf(env)
    state_dir = Path(env["APPS_HPC_SLURM_DIR"])
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("SLURM_CONF", str(conf))
            yield SlurmCluster(state_dir=state_dir, conf=conf, script=SCRIPT, started_here=True)
    finally:
        _script("stop", "--purge", env=env)


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    if os.geteuid() != 0:
        _unavailable("needs root (slurm/local-cluster.sh starts the daemons)")
    missing = _missing_commands()
    if missing:
        _unavailable(
            f"{', '.join(missing)} not installed "
            "(apt-get install -y --no-install-recommends $(slurm/local-cluster.sh packages))"
        )

    already_running = _script("status").returncode == 0
    if not already_running:
        started = _script("start")
        if started.returncode != 0:
            pytest.fail(
                f"slurm/local-cluster.sh start failed (rc {started.returncode}):\n"
                f"{started.stdout}{started.stderr}"
            )
    state_dir = Path(os.environ.get("APPS_HPC_SLURM_DIR", DEFAULT_STATE_DIR))
    conf = slurm_conf()
    cluster = SlurmCluster(
        state_dir=state_dir, conf=conf, script=SCRIPT, started_here=not already_running
    )
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("SLURM_CONF", str(conf))
            yield cluster
    finally:
        if not already_running:
            _script("stop")
