"""The container files: one source of truth for the pins, a lock that resolves for
CPython 3.10, clean hadolint/shellcheck, `make image` without an engine, and `doctor`.
(No Docker engine or Apptainer runs here: the images themselves are not built.)"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from apps_hpc.provenance import identity
from apps_hpc.tools import doctor
from apps_hpc.tools.doctor import lock_versions
from tests.helpers import require

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
LOCK = REPO / "apps_hpc" / "data" / "requirements-cp310.lock"
BIN = Path(sys.executable).parent


def _versions() -> dict[str, str]:
    pins = {}
    for line in (REPO / "apps_hpc" / "data" / "versions.env").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            pins[key] = value
    return pins


def _tool(name: str) -> str:
    path = shutil.which(name) or str(BIN / name)
    if not Path(path).exists():
        require(False, f"{name} not installed")
    return path


def test_dockerfile_args_match_versions_env() -> None:
    args = dict(re.findall(r"^ARG (\w+)=(.*)$", (DOCKER / "Dockerfile").read_text(), re.M))
    for key, value in _versions().items():
        assert args.get(key) == value, key


def test_apptainer_definitions_match_versions_env() -> None:
    pins = _versions()
    standalone = (DOCKER / "apps-hpc-standalone.def").read_text()
    assert f"From: {pins['CUDA_IMAGE']}" in standalone
    for text in (standalone, (DOCKER / "apps-hpc.def").read_text()):
        labels = dict(re.findall(r"^\s+apps-hpc\.([\w-]+) (\S+)$", text, re.M))
        assert labels == {
            "python": pins["PYTHON_VERSION"],
            "torch": pins["TORCH_VERSION"],
            "vllm": pins["VLLM_VERSION"],
            "flash-attn": pins["FLASH_ATTN_VERSION"],
        }
        assert "apps-hpc doctor --strict" in text.split("%test", 1)[1]


def test_the_image_tells_jobs_what_it_is() -> None:
    """The variables apps_hpc/provenance/identity.py reads are set by the Dockerfile from build
    arguments `make image` passes, declared after the last RUN (a changed build argument
    busts the cache of every RUN after it: a new commit must rebuild only the last layer)."""
    dockerfile = (DOCKER / "Dockerfile").read_text()
    last_run = dockerfile.rindex("\nRUN ")
    env = dict(re.findall(r"(APPS_HPC_\w+)=\$\{(\w+)\}", dockerfile[last_run:]))
    assert set(env) == {
        identity.ENV_GIT_SHA,
        identity.ENV_GIT_DIRTY,
        identity.ENV_IMAGE,
        identity.ENV_LOCK_SHA,
    }
    make = (REPO / "Makefile").read_text()
    for arg in env.values():
        assert dockerfile.index(f"ARG {arg}=") > last_run, arg
        assert f"--build-arg {arg}=$(" in make, arg
    # the SIF from the image inherits them; the standalone one sets what it can know
    assert "Bootstrap: docker-daemon" in (DOCKER / "apps-hpc.def").read_text()
    standalone = (DOCKER / "apps-hpc-standalone.def").read_text()
    for name in (identity.ENV_LOCK_SHA, identity.ENV_IMAGE):
        assert f"export {name}=" in standalone, name


def test_lock_matches_versions_env_and_pyproject_extras() -> None:
    lock, pins = lock_versions(LOCK), _versions()
    for dist, key in (
        ("torch", "TORCH_VERSION"),
        ("vllm", "VLLM_VERSION"),
        ("llamafactory", "LLAMAFACTORY_VERSION"),
        ("deepspeed", "DEEPSPEED_VERSION"),
        ("transformers", "TRANSFORMERS_VERSION"),
    ):
        assert lock[dist] == pins[key], dist
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for req in project["dependencies"] + project["optional-dependencies"]["train"]:
        name = re.split(r"[<>=!~ ]", req, maxsplit=1)[0].lower()
        assert name in lock, f"{name} (pyproject) is not in the lock"
        exact = re.search(r"==([\w.]+)", req)
        if exact:
            assert lock[name] == exact.group(1), req
    assert "flash_attn" in pins["FLASH_ATTN_WHEEL"] and "cp310" in pins["FLASH_ATTN_WHEEL"]


def test_doctor_reads_the_lock_and_pins_as_package_data_and_the_images_install_them() -> None:
    import tomllib

    assert doctor.LOCK == LOCK and doctor.LOCK.parent.parent == identity.PACKAGE_DIR
    assert doctor.VERSIONS.parent == doctor.LOCK.parent
    assert lock_versions() == lock_versions(LOCK) and "torch" in lock_versions()
    assert doctor._flash_attn_pin() == _versions()["FLASH_ATTN_VERSION"]
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "data/requirements-cp310.lock" in data["package-data"]["apps_hpc"]
    assert "data/versions.env" in data["package-data"]["apps_hpc"]
    assert not (DOCKER / "requirements-cp310.lock").exists()  # one lock
    assert not (DOCKER / "versions.env").exists()  # one set of pins
    copy = "COPY apps_hpc/data/requirements-cp310.lock apps_hpc/data/versions.env"
    assert f"{copy} /opt/apps-hpc/apps_hpc/data/" in (DOCKER / "Dockerfile").read_text()
    install = (DOCKER / "install.sh").read_text()
    assert "$here/../apps_hpc/data/requirements-cp310.lock" in install
    assert "$here/../apps_hpc/data/versions.env" in install


def test_hadolint_dockerfile() -> None:
    r = subprocess.run(
        [_tool("hadolint"), str(DOCKER / "Dockerfile")], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout


def test_shellcheck_every_shell_script() -> None:
    scripts = [
        REPO / ".ci" / "run",
        *sorted((REPO / "slurm").glob("*")),
        *sorted(DOCKER.glob("*.sh")),
    ]
    r = subprocess.run([_tool("shellcheck"), *map(str, scripts)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


def test_make_image_without_an_engine_fails_clearly() -> None:
    if (
        shutil.which("docker")
        and subprocess.run(["docker", "info"], capture_output=True).returncode == 0
    ):
        pytest.skip("a Docker engine runs here")
    r = subprocess.run(["make", "-s", "image"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode != 0 and "no Docker engine here" in r.stderr


def test_doctor_on_a_cpu_machine_skips_gpu_checks(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "apps_hpc", "doctor", "--root", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    lines = r.stdout.splitlines()
    if not any(line.startswith("[ok  ] cuda") for line in lines):  # no GPU here
        assert r.returncode == 0, r.stdout + r.stderr
        for name in ("cuda", "flash-attn kernel", "nccl"):
            assert any(line.startswith(f"[skip] {name}:") for line in lines), name
    assert any(line.startswith("[ok  ] experiment root") for line in lines)


def test_doctor_fails_on_an_unwritable_root(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = subprocess.run(
        [sys.executable, "-m", "apps_hpc", "doctor", "--root", str(blocker / "sub")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1
    assert "[FAIL] experiment root" in r.stdout and "1 check(s) failed" in r.stderr


def _python310() -> str | None:
    candidates = sorted(Path.home().glob(".pyenv/versions/3.10*/bin/python3.10"))
    if candidates:  # a pyenv shim on PATH may not be runnable
        return str(candidates[-1])
    return shutil.which("python3.10")


@pytest.mark.slow
def test_lock_resolves_with_cpython_310(tmp_path: Path) -> None:
    python = _python310()
    if python is None:
        if os.environ.get("CI"):
            pytest.fail("no CPython 3.10 in CI")
        pytest.skip("no CPython 3.10 here")
    report = tmp_path / "report.json"
    r = subprocess.run(
        [
            python,
            "-m",
            "pip",
            "install",
            "-q",
            "--dry-run",
            "--ignore-installed",
            "--report",
            str(report),
            "-r",
            str(LOCK),
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, DS_BUILD_OPS="0"),
        timeout=1200,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    resolved = {
        i["metadata"]["name"].lower().replace("_", "-"): i["metadata"]["version"]
        for i in json.loads(report.read_text())["install"]
    }
    assert resolved == lock_versions(LOCK)
