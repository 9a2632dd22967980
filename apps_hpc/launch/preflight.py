"""Preflight: before anything is queued, check what the chosen stages will need, so that
no job fails after hours of GPU time for a reason that could be seen from the login node.

`apps-hpc submit ...` (also with `--dry-run`) and `apps-hpc doctor --config EXP --cluster P`
run these checks; each prints one line (`apps_hpc.tools.doctor.Check`). A `fail` stops the
submission (nothing is queued, nothing is written); a `warn` is printed and the
submission goes on. Nothing here creates a folder.

- APPS: the rows are local (a folder, or the fetched snapshot of a hub id), the test
  problems have tests, and the counts are the published ones for `codeparrot/apps`
  (3,765 test problems with solutions: 728 / 2,727 / 310).
- the model: a folder (or fetched snapshot) with config, tokenizer and weights;
- the image exists; the controller answers (`scontrol ping`);
- the experiment root: writable, and not under /tmp for a SLURM profile (compute nodes
  do not see the login node's /tmp);
- training: the GPU count against the recipe's global batch (2 x 16 x 8 = 256 published).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from apps_hpc.core.apps import PUBLISHED_COUNTS
from apps_hpc.core.checks import Check
from apps_hpc.core.config import Experiment
from apps_hpc.core.errors import AppsHpcError
from apps_hpc.core.schema import Profile
from apps_hpc.hub import paths as hub
from apps_hpc.launch import slurm

PUBLISHED_APPS = "codeparrot/apps"
PUBLISHED_GLOBAL_BATCH = 256  # 2 per device x 16 accumulation x 8 GPUs


def _local(value: str, repo_type: str, revision: str, hub_dir: Path) -> Path:
    return hub.local(value, repo_type, revision, hub_dir)


def check_apps(value: str, revision: str, hub_dir: Path, train_too: bool = True) -> Check:
    """APPS rows local, train problems with tests (unless only evaluating), test problems
    with solutions and tests (the published counts for codeparrot/apps)."""
    from apps_hpc.core.apps import iter_problems

    try:
        folder = _local(value, hub.DATASET, revision, hub_dir)
        problems = list(iter_problems(folder))
    except AppsHpcError as exc:
        return Check("apps", "fail", str(exc))
    train = sum(1 for p in problems if p.split == "train" and p.solutions and p.has_tests)
    test = Counter(p.difficulty for p in problems if p.split == "test" and p.solutions)
    untested = sum(1 for p in problems if p.split == "test" and p.solutions and not p.has_tests)
    counts = "/".join(str(test[d]) for d in PUBLISHED_COUNTS)
    detail = f"{folder}: {train} train problems with tests, {sum(test.values())} test ({counts})"
    if (train_too and not train) or not test:
        return Check("apps", "fail", detail + ": nothing to train on or to evaluate")
    if untested:
        return Check("apps", "fail", f"{detail}: {untested} test problems have no tests")
    if value == PUBLISHED_APPS and dict(test) != PUBLISHED_COUNTS:
        want = "/".join(map(str, PUBLISHED_COUNTS.values()))
        return Check("apps", "fail", f"{detail}: the published run had {want}")
    return Check("apps", "ok", detail)


def check_model(value: str, revision: str, hub_dir: Path) -> Check:
    from apps_hpc.hub.fetch import model_missing

    try:
        folder = _local(value, hub.MODEL, revision, hub_dir)
    except AppsHpcError as exc:
        return Check("model", "fail", str(exc))
    missing = model_missing(folder) if folder.is_dir() else ["a folder"]
    if missing:
        return Check("model", "fail", f"{folder}: no {', '.join(missing)}")
    return Check("model", "ok", f"{folder}: config, tokenizer and weights")


def check_image(profile: Profile) -> Check:
    if not profile.image:
        return Check("image", "skip", "the profile runs jobs without a container")
    if not Path(profile.image).is_file():
        return Check("image", "fail", f"{profile.source}: image {profile.image} does not exist")
    return Check("image", "ok", profile.image)


def check_controller(profile: Profile) -> Check:
    if profile.executor != "slurm":
        return Check("controller", "skip", f"the {profile.executor} executor needs none")
    if not slurm.has_sbatch():
        return Check("controller", "fail", f"profile {profile.name!r}: sbatch not found here")
    up, said = slurm.ping()
    return Check("controller", "ok" if up else "fail", said if up else f"unreachable: {said}")


def check_root(root: Path, profile: Profile) -> Check:
    """Writable (its nearest existing folder, as nothing is created), and shared."""
    existing = root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        return Check("experiment root", "fail", f"{root}: {existing} is not a writable folder")
    real = str(root.resolve())
    if profile.executor == "slurm" and (real == "/tmp" or real.startswith("/tmp/")):
        return Check(
            "experiment root",
            "warn",
            f"{root} is under /tmp: compute nodes usually do not see it (use shared storage)",
        )
    return Check("experiment root", "ok", f"{root} (writable)")


def train_gpus(exp: Experiment, profile: Profile) -> int:
    """Training processes: the nodes' GPUs (or nproc_per_node), 1 on a CPU."""
    per_node = exp.train.nproc_per_node or profile.gpus_per_node or 1
    return profile.nodes * per_node


def recipe_batch(exp: Experiment) -> tuple[int, int]:
    """(per-device batch, accumulation) of the rendered LlamaFactory config."""
    base: dict[str, Any] = yaml.safe_load(exp.resolve(exp.train.llamafactory).read_text())
    merged = {**base, **exp.train.overrides}
    per = int(merged.get("per_device_train_batch_size", 1))
    return per, int(merged.get("gradient_accumulation_steps", 1))


def check_batch(exp: Experiment, profile: Profile) -> Check:
    """The GPU count against the recipe: `train.global_batch` picks the accumulation."""
    per, accum = recipe_batch(exp)
    gpus = train_gpus(exp, profile)
    wanted = exp.train.global_batch
    if wanted is not None:
        if wanted % (per * gpus):
            return Check(
                "global batch",
                "fail",
                f"train.global_batch {wanted} is not a multiple of {per} per device x {gpus} GPUs",
            )
        detail = f"{wanted} = {per} per device x {wanted // (per * gpus)} accumulation x {gpus}"
        return Check("global batch", "ok", detail + " GPUs (train.global_batch)")
    total = per * accum * gpus
    detail = f"{total} = {per} per device x {accum} accumulation x {gpus} GPUs"
    if profile.gpus_per_node > 0 and total != PUBLISHED_GLOBAL_BATCH:
        return Check(
            "global batch",
            "warn",
            f"{detail}; the published recipe's is {PUBLISHED_GLOBAL_BATCH} "
            f"(set train.global_batch: {PUBLISHED_GLOBAL_BATCH} to keep it)",
        )
    return Check("global batch", "ok", detail)


def pipeline_checks(exp: Experiment, profile: Profile) -> list[Check]:
    """Everything `submit pipeline` needs, one check each."""
    return [
        check_apps(exp.apps, exp.fetch.apps_revision, exp.hub_dir),
        check_model(exp.model, exp.fetch.model_revision, exp.hub_dir),
        check_batch(exp, profile),
        *cluster_checks(Path(exp.root), profile),
    ]


def cluster_checks(root: Path, profile: Profile) -> list[Check]:
    return [check_image(profile), check_root(root, profile), check_controller(profile)]


def _exists(name: str, path: Path, hint: str) -> Check:
    if Path(path).exists():
        return Check(name, "ok", str(path))
    return Check(name, "fail", f"{path}: no such file or directory ({hint})")


def stage_checks(stage: str, cfg: Any, profile: Profile, root: Path, hub_dir: Path) -> list[Check]:
    """What one stage submitted on its own needs: its inputs exist now."""
    checks = cluster_checks(root, profile)
    if stage == "prepare":
        checks.append(check_apps(str(cfg.apps), "main", hub_dir, train_too=False))
    elif stage == "train":
        checks.append(check_model(cfg.model, cfg.fetch.model_revision, cfg.hub_dir))
        checks.append(_exists("data", cfg.data_dir / "dataset_info.json", "run prepare first"))
        checks.append(check_batch(cfg, profile))
    elif stage == "sample":
        checks.append(check_model(cfg.model, "main", hub_dir))
        checks.append(_exists("prompts", cfg.prompts, "run prepare first"))
    elif stage == "eval":
        checks.append(check_apps(str(cfg.apps), "main", hub_dir, train_too=False))
        checks.append(_exists("samples", cfg.samples, "run sample first"))
    elif stage == "report":
        checks += [_exists("results", r, "run eval first") for r in cfg.results]
    return checks


def refuse_on_failure(checks: list[Check], say: Any) -> None:
    """Print the warnings and failures, one line each (the last failure is the raised
    error, which the CLI prints as its one line), so that nothing is queued."""
    failed = [c for c in checks if c.status == "fail"]
    for check in checks:
        if check.status == "warn":
            say(f"warning: {check.name}: {check.detail}")
        elif check.status == "fail" and check is not failed[-1]:
            say(f"error: {check.name}: {check.detail}")
    if failed:
        raise AppsHpcError(f"{failed[-1].name}: {failed[-1].detail}")


__all__ = ["cluster_checks", "pipeline_checks", "refuse_on_failure", "stage_checks"]
