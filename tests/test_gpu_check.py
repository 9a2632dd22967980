"""`make gpu-check` on a machine without a CUDA GPU (this project's): it says so and
runs nothing; its per-check reporting, exercised on CPU with real steps."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from apps_hpc.tools.gpu_check import Step, cuda_gpus, main, run_step
from tests.helpers import REPO


def test_make_gpu_check_without_a_gpu_says_skipped() -> None:
    if cuda_gpus():
        pytest.skip("a CUDA GPU is here: `make gpu-check` runs for real")
    r = subprocess.run(["make", "-s", "gpu-check"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("no CUDA GPU: skipped")
    said: list[str] = []
    assert main(said.append) == 0 and len(said) == 1


def test_a_step_reports_ok_or_its_error_in_one_line(tmp_path: Path) -> None:
    def writes(folder: Path) -> str:
        (folder / "x").write_text("1")
        return "wrote x"

    def breaks(folder: Path) -> str:
        raise RuntimeError("first line\nCUDA error: out of memory")

    good = run_step(Step("good", writes), tmp_path)
    assert good.status == "ok" and good.detail.startswith("wrote x (")
    bad = run_step(Step("bad", breaks), tmp_path)
    assert bad.line() == "[FAIL] bad: RuntimeError: CUDA error: out of memory"
