"""The sampling stage for real: the transformers engine on the tiny model, real test
prompts from ../shared/apps, shards, resume after a kill, merge, then eval end to end.
And the vLLM adapter checked against the pinned vLLM wheel's real signatures."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from apps_hpc.provenance.manifest import read_manifest
from apps_hpc.sample.engines import EngineOptions, Sampling, vllm_llm_kwargs, vllm_sampling_kwargs
from tests.helpers import read_jsonl, require, run_cli

pytest.importorskip("transformers", reason="the transformers engine needs the train extra")


def _cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, check=check)


@pytest.fixture(scope="module")
def prompts(shared_apps: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data")
    _cli("prepare", "--apps", str(shared_apps), "--out", str(out))
    return out / "prompts.jsonl"


def _sample(model: Path, prompts: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return _cli(
        "sample",
        "-q",
        "--model",
        str(model),
        "--prompts",
        str(prompts),
        "--out",
        str(out),
        "--engine",
        "transformers",
        "--n",
        "2",
        "--max-tokens",
        "24",
        *extra,
    )


@pytest.mark.slow
def test_sample_then_eval_end_to_end(
    tiny_model_dir: Path, prompts: Path, shared_apps: Path, tmp_path: Path
) -> None:
    r = _sample(tiny_model_dir, prompts, tmp_path / "samples" / "base")
    merged = tmp_path / "samples" / "base.jsonl"
    assert r.stdout.strip() == str(merged)
    assert "9 problems, 18 completions" in r.stderr and "tokens/s" in r.stderr
    recs = read_jsonl(merged)
    assert [x["problem_id"] for x in recs] == [0, 1, 2, 3, 4, 5, 2303, 2365, 4136]
    assert all(len(x["codes"]) == len(x["completions"]) == 2 and x["model"] == "base" for x in recs)
    manifest = read_manifest(tmp_path / "samples" / "base" / "manifest.json")
    assert manifest["sample"]["base"]["throughput"]["0/1"]["completions"] == 18
    results = tmp_path / "base-results.jsonl"
    _cli(
        "eval",
        "-q",
        "--samples",
        str(merged),
        "--apps",
        str(shared_apps / "test-sample.jsonl"),
        "--out",
        str(results),
    )
    assert [x["n"] for x in read_jsonl(results)] == [2] * 9


@pytest.mark.slow
def test_shards_give_the_same_samples_as_one_run(
    tiny_model_dir: Path, prompts: Path, tmp_path: Path
) -> None:
    _sample(tiny_model_dir, prompts, tmp_path / "one")
    for i in (1, 0):
        r = _sample(tiny_model_dir, prompts, tmp_path / "two", "--shard", f"{i}/2")
    assert r.stdout.strip() == str(tmp_path / "two.jsonl")  # merged once both are done
    assert read_jsonl(tmp_path / "one.jsonl") == [
        x | {"model": "one"} for x in read_jsonl(tmp_path / "two.jsonl")
    ]


@pytest.mark.slow
def test_resume_after_a_kill_in_the_middle_of_a_shard(
    tiny_model_dir: Path, prompts: Path, tmp_path: Path
) -> None:
    out = tmp_path / "s"
    shard = out / "shard-00000-of-00001.jsonl"
    cmd = [
        sys.executable,
        "-m",
        "apps_hpc",
        "sample",
        "-q",
        "--model",
        str(tiny_model_dir),
        "--prompts",
        str(prompts),
        "--out",
        str(out),
        "--engine",
        "transformers",
        "--n",
        "2",
        "--max-tokens",
        "24",
    ]
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not shard.exists() or len(read_jsonl(shard)) < 2):
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    done = len(shard.read_text().splitlines())
    assert 2 <= done < 9
    with shard.open("a") as fh:
        fh.write('{"problem_id": 99, "spl')  # a torn last line, as a kill can leave
    _sample(tiny_model_dir, prompts, out)
    ids = [x["problem_id"] for x in read_jsonl(shard)]
    assert len(ids) == len(set(ids)) == 9
    fresh = tmp_path / "fresh"
    _sample(tiny_model_dir, prompts, fresh)
    assert sorted(read_jsonl(shard), key=lambda x: x["problem_id"]) == [
        x | {"model": "s"} for x in read_jsonl(tmp_path / "fresh.jsonl")
    ]


@pytest.mark.slow
def test_merge_names_a_missing_shard(tiny_model_dir: Path, prompts: Path, tmp_path: Path) -> None:
    _sample(tiny_model_dir, prompts, tmp_path / "m", "--shard", "0/3")
    r = _cli("merge-samples", str(tmp_path / "m"), "--prompts", str(prompts), check=False)
    assert r.returncode == 2
    assert f"missing shard {tmp_path / 'm' / 'shard-00001-of-00003.jsonl'}" in r.stderr


def test_gpus_all_without_a_gpu_is_a_clear_error(
    tiny_model_dir: Path, prompts: Path, tmp_path: Path
) -> None:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "apps_hpc",
            "sample",
            "--model",
            str(tiny_model_dir),
            "--prompts",
            str(prompts),
            "--out",
            str(tmp_path / "g"),
            "--gpus",
            "all",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 2 and "no GPU visible" in r.stderr


# --- the vLLM adapter against the pinned vLLM (0.4.0.post1, the container's) -----------

VLLM_PIN = "vllm==0.4.0.post1"


@pytest.fixture(scope="module")
def vllm_wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    cache = Path(os.environ.get("APPS_HPC_CACHE", Path.home() / ".cache" / "apps-hpc"))
    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob("vllm-0.4.0.post1-*.whl"))
    if not wheels:
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                VLLM_PIN,
                "--no-deps",
                "--python-version",
                "3.10",
                "--only-binary=:all:",
                "--platform",
                "manylinux1_x86_64",
                "-d",
                str(cache),
            ],
            capture_output=True,
            text=True,
        )
        wheels = sorted(cache.glob("vllm-0.4.0.post1-*.whl"))
        if not wheels:
            require(False, f"{VLLM_PIN} wheel not downloadable here: {r.stderr[-500:]}")
    return zipfile.ZipFile(wheels[0])


def _params(wheel: zipfile.ZipFile, module: str, cls: str, method: str) -> set[str]:
    tree = ast.parse(wheel.read(module))
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == method:
                    args = item.args
                    return {a.arg for a in args.args + args.kwonlyargs} - {"self"}
    raise AssertionError(f"{module}: {cls}.{method} not found")


def _fields(wheel: zipfile.ZipFile, module: str, cls: str) -> set[str]:
    tree = ast.parse(wheel.read(module))
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == cls:
            return {
                s.target.id
                for s in node.body
                if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)
            }
    raise AssertionError(f"{module}: {cls} not found")


def test_vllm_adapter_matches_the_pinned_api(vllm_wheel: zipfile.ZipFile) -> None:
    opts = EngineOptions(model="m", sampling=Sampling())
    llm = _params(vllm_wheel, "vllm/entrypoints/llm.py", "LLM", "__init__")
    engine_args = _fields(vllm_wheel, "vllm/engine/arg_utils.py", "EngineArgs")
    assert set(vllm_llm_kwargs(opts)) <= llm | engine_args
    sp = _params(vllm_wheel, "vllm/sampling_params.py", "SamplingParams", "__init__")
    assert set(vllm_sampling_kwargs(Sampling(), 7)) <= sp
    generate = _params(vllm_wheel, "vllm/entrypoints/llm.py", "LLM", "generate")
    assert {"prompts", "sampling_params", "use_tqdm"} <= generate  # VllmEngine.generate
    out = _params(vllm_wheel, "vllm/outputs.py", "RequestOutput", "__init__")
    assert {"request_id", "outputs", "finished"} <= out
    assert {"text", "token_ids"} <= _params(
        vllm_wheel, "vllm/outputs.py", "CompletionOutput", "__init__"
    )


def test_other_sampling_settings_redo_the_samples(
    tiny_model_dir: Path, prompts: Path, tmp_path: Path
) -> None:
    out = tmp_path / "s"
    _sample(tiny_model_dir, prompts, out)
    same = _sample(tiny_model_dir, prompts, out)
    assert "0 problems" in same.stderr and "redone" not in same.stderr
    other = _sample(tiny_model_dir, prompts, out, "--temperature", "0.9")
    assert "9 samples made from another prompt, model or sampling settings are redone" in (
        other.stderr
    )
    assert "9 problems, 18 completions" in other.stderr
    provenances = {x["provenance"] for x in read_jsonl(tmp_path / "s.jsonl")}
    assert len(provenances) == 9  # one per prompt, all of the new settings


def test_out_as_the_merged_file(tiny_model_dir: Path, prompts: Path, tmp_path: Path) -> None:
    """`--out x.jsonl` is the merged file, its shards in x/ (it crashed with
    IsADirectoryError after sampling everything)."""
    r = _sample(tiny_model_dir, prompts, tmp_path / "sft.jsonl")
    assert r.stdout.strip() == str(tmp_path / "sft.jsonl")
    assert (tmp_path / "sft" / "shard-00000-of-00001.jsonl").is_file()
    assert len(read_jsonl(tmp_path / "sft.jsonl")) == 9
    assert not list(tmp_path.rglob("*.tmp"))


def test_merge_without_prompts_names_an_incomplete_shard(
    tiny_model_dir: Path, prompts: Path, tmp_path: Path
) -> None:
    out = tmp_path / "m"
    _sample(tiny_model_dir, prompts, out)
    shard = out / "shard-00000-of-00001.jsonl"
    shard.write_text("".join(shard.read_text().splitlines(keepends=True)[:4]))
    r = _cli("merge-samples", str(out), check=False)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert f"incomplete shard {shard}: 4 of 9 problems" in r.stderr
