"""What the HTML page shows beside the results, read from the experiment folder.

The report is given results files; a file at `<exp>/results/<model>.jsonl` names its
experiment folder, where the page finds `samples/<model>.jsonl` (the programs),
`data/prompts.jsonl` (the problem statements), `train/trainer_log.jsonl` (the loss
curve), `manifest.json` (jobs, throughput) and `experiment.yaml`. Each is optional: a
missing or unreadable one is logged and its part of the page says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apps_hpc.core.errors import AppsHpcError
from apps_hpc.core.jsonl import iter_jsonl
from apps_hpc.core.records import ProblemKey, parse_prompt, problem_key, read_samples
from apps_hpc.provenance.manifest import manifest_exists, read_manifest

log = logging.getLogger(__name__)

# submitit's log format: "submitit INFO (2024-05-01 12:00:00,123) - message"


@dataclass
class ExperimentFiles:
    """The optional inputs of the page; `missing` names what was looked for and not found."""

    folder: Path | None
    codes: dict[str, dict[ProblemKey, list[str]]] = field(default_factory=dict)  # by model
    prompts: dict[ProblemKey, str] = field(default_factory=dict)
    trainer_log: list[dict[str, Any]] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)
    experiment_yaml: str | None = None
    missing: list[str] = field(default_factory=list)


def experiment_folder(results: Path) -> Path | None:
    """`<exp>` for `<exp>/results/<model>.jsonl`, else None."""
    parent = results.resolve().parent
    return parent.parent if parent.name == "results" else None


def _optional(files: ExperimentFiles, path: Path, what: str) -> bool:
    if path.is_file():
        return True
    files.missing.append(f"{what} ({path})")
    return False


def read_codes(samples: Path) -> dict[ProblemKey, list[str]]:
    return {(s.split, s.problem_id): s.codes for s in read_samples(samples)}


def read_prompts(path: Path) -> dict[ProblemKey, str]:
    return {
        problem_key(rec): rec["prompt"]
        for n, line in iter_jsonl(path)
        for rec in [parse_prompt(line, (str(path), n))]
    }


def read_trainer_log(path: Path) -> list[dict[str, Any]]:
    return [rec for _, rec in iter_jsonl(path) if isinstance(rec, dict)]


def _load(files: ExperimentFiles, path: Path, what: str, reader: Any) -> Any:
    if not _optional(files, path, what):
        return None
    try:
        return reader(path)
    except (AppsHpcError, OSError, ValueError, KeyError) as exc:
        log.warning("report page: %s unreadable, left out: %s", path, exc)
        files.missing.append(f"{what} ({path}: unreadable)")
        return None


def _load_manifest(files: ExperimentFiles, path: Path) -> dict[str, Any]:
    """manifest.json with its one-file updates (manifest.d/) merged in; {} when absent."""
    if not manifest_exists(path):
        files.missing.append(f"manifest ({path})")
        return {}
    try:
        return read_manifest(path)
    except (OSError, ValueError) as exc:
        log.warning("report page: %s unreadable, left out: %s", path, exc)
        files.missing.append(f"manifest ({path}: unreadable)")
        return {}


def experiment_manifest(results: Path) -> dict[str, Any]:
    """The manifest of the experiment `results` lies in ({} outside one, or unreadable)."""
    folder = experiment_folder(results)
    if folder is None:
        return {}
    return _load_manifest(ExperimentFiles(folder), folder / "manifest.json")


def read_experiment(results: dict[str, Path]) -> ExperimentFiles:
    """Everything the page can find for these models (name -> results file)."""
    folder = experiment_folder(next(iter(results.values()))) if results else None
    files = ExperimentFiles(folder)
    for name, path in results.items():
        exp = experiment_folder(path)
        if exp is None:  # the programs are found beside results in an experiment only
            files.codes[name] = {}
            continue
        codes = _load(files, exp / "samples" / path.name, f"programs of {name}", read_codes)
        files.codes[name] = codes or {}
    if folder is None:
        files.missing.append("the experiment folder (results are not in <exp>/results/)")
        return files
    files.prompts = _load(files, folder / "data" / "prompts.jsonl", "statements", read_prompts)
    files.prompts = files.prompts or {}
    train_log = folder / "train" / "trainer_log.jsonl"
    if not train_log.is_file() and (folder / "report" / "trainer_log.jsonl").is_file():
        train_log = folder / "report" / "trainer_log.jsonl"
    files.trainer_log = _load(files, train_log, "training log", read_trainer_log) or []
    files.manifest = _load_manifest(files, folder / "manifest.json")
    text = lambda p: p.read_text(encoding="utf-8")  # noqa: E731
    files.experiment_yaml = _load(files, folder / "experiment.yaml", "experiment.yaml", text)
    return files
