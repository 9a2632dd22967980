"""`make gpu-check` (= `python -m apps_hpc.tools.gpu_check`): on one CUDA GPU, run what can run
there without the container, and print what passed.

    make gpu-check                                   # this checkout's .venv
    make gpu-check GPU_PYTHON=python3                # a bare GPU machine's own Python/torch,
                                                     # after: pip install -e '.[train]'

Checks, in order (each prints one line: ok / FAIL / skip):
1. `apps-hpc doctor`'s GPU checks: CUDA and the GPUs, a flash-attn kernel (skip when
   flash-attn is not installed: it is not on PyPI), NCCL;
2. the train stage for real: `llamafactory-cli train` with bf16 on the tiny model (a few
   steps, the bundled mini-APPS set), through `apps_hpc.train.stage.train`;
3. the transformers sampling engine on CUDA: the sample stage on the trained model.
Everything runs in a temporary folder, offline (the tiny model is built locally). Without
a CUDA GPU it says "no CUDA GPU: skipped" and exits 0; a failed check exits 1. It makes
no assumption on the Python or torch version (the container's are 3.10 / 2.1).
"""

from __future__ import annotations

import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from apps_hpc.core.checks import Check
from apps_hpc.core.jsonl import iter_jsonl

TRAIN_SETS = [
    "train.deepspeed=null",
    "train.nproc_per_node=1",
    "train.overrides.max_steps=4",
    "train.overrides.save_steps=4",
    "train.overrides.logging_steps=1",
    "train.overrides.per_device_train_batch_size=2",
    "train.overrides.gradient_accumulation_steps=1",
    "train.overrides.cutoff_len=512",
    "train.overrides.bf16=true",
    "train.overrides.preprocessing_num_workers=1",
    "train.overrides.trust_remote_code=false",
]


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[Path], str]  # returns what it saw; raises on failure


def cuda_gpus() -> int:
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def run_step(step: Step, folder: Path) -> Check:
    """One check, timed; an exception is a FAIL with its last line."""
    start = time.monotonic()
    try:
        detail = step.run(folder)
    except Exception as exc:  # a check reports, it does not stop the others
        traceback.print_exc(file=sys.stderr)
        last = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
        return Check(step.name, "fail", f"{type(exc).__name__}: {last}")
    return Check(step.name, "ok", f"{detail} ({time.monotonic() - start:.0f}s)")


def _experiment(folder: Path) -> object:
    from apps_hpc.core.config import load_experiment, parse_sets
    from apps_hpc.tools.demo import BUNDLED_APPS
    from apps_hpc.tools.tiny_model import tiny_model

    model = folder / "tiny-model"
    if not (model / "config.json").exists():
        tiny_model(model)
    sets = [f"root={folder}", f"model={model}", f"apps={BUNDLED_APPS}", *TRAIN_SETS]
    return load_experiment(Path("demo"), parse_sets(sets))


def train_bf16(folder: Path) -> str:
    from apps_hpc.experiment import stage_configs as sc
    from apps_hpc.hub.paths import apply_offline
    from apps_hpc.prepare.stage import prepare
    from apps_hpc.train.stage import train

    exp = _experiment(folder)
    apply_offline(exp.hub_dir)  # type: ignore[attr-defined]
    prepare(sc.prepare_config(exp))  # type: ignore[arg-type]
    out = train(exp)  # type: ignore[arg-type]
    rendered = (out / "llamafactory.yaml").read_text()
    if "bf16: true" not in rendered or not (out / "model.safetensors").is_file():
        raise RuntimeError(f"{out}: no bf16 run or no model.safetensors")
    return f"llamafactory-cli train, bf16, 4 steps -> {out / 'model.safetensors'}"


def sample_cuda(folder: Path) -> str:
    import dataclasses

    from apps_hpc.experiment import stage_configs as sc
    from apps_hpc.sample.stage import sample

    exp = _experiment(folder)
    model = str(exp.train_dir)  # type: ignore[attr-defined]
    cfg = sc.sample_config(exp, "sft", model, engine="transformers", progress=False)  # type: ignore[arg-type]
    cfg = dataclasses.replace(cfg, sampling=dataclasses.replace(cfg.sampling, n=2, max_tokens=16))
    merged = sample(cfg)
    lines = list(iter_jsonl(merged)) if merged.is_file() else []
    if not lines:
        raise RuntimeError(f"{merged}: no samples")
    return f"transformers engine on cuda: {len(lines)} problems x 2 -> {merged}"


STEPS = [
    Step("train (LlamaFactory, bf16)", train_bf16),
    Step("sample (transformers, cuda)", sample_cuda),
]


def gpu_checks() -> list[Check]:
    from apps_hpc.tools.doctor import check_flash_attn, check_nccl, check_torch_cuda

    cuda, gpus = check_torch_cuda()
    flash = check_flash_attn(gpus)
    if flash.status == "fail" and "import failed" in flash.detail:
        flash = Check(flash.name, "skip", "flash-attn not installed (not on PyPI)")
    return [cuda, flash, check_nccl(gpus)]


def main(say: Callable[[str], None] = print) -> int:
    """Run every check on the GPU; return the exit code."""
    if cuda_gpus() == 0:
        say("no CUDA GPU: skipped (make gpu-check needs one CUDA GPU; nothing was run)")
        return 0
    checks = gpu_checks()
    with tempfile.TemporaryDirectory(prefix="apps-hpc-gpu-check-") as tmp:
        checks += [run_step(step, Path(tmp)) for step in STEPS]
    for check in checks:
        say(check.line())
    failed = sum(c.status == "fail" for c in checks)
    say(f"gpu-check: {len(checks) - failed} passed or skipped, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
