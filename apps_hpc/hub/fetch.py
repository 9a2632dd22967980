"""`apps-hpc fetch --config EXP`: on a machine with internet (a login node), download the
model snapshot and the APPS rows into the experiment's hub folder, so that every job
afterwards runs offline.

    apps-hpc fetch --config configs/experiments/dscoder_apps.yaml

Through huggingface_hub (`pip install 'apps-hpc[fetch]'`): its cache layout under
`<hub>/hub/` (the hub folder is every job's HF_HOME), a progress bar per file, resumable
(an interrupted file continues from its `.incomplete` part on the next run), revisions
pinned by `fetch.model_revision` / `fetch.apps_revision`. The model comes with its
config, tokenizer and weights (safetensors when the repository has them, else the other
weight files); APPS as the raw codeparrot rows `train.jsonl` and `test.jsonl` (the
repository's loading script is not used: `datasets` 4 no longer runs them). Each
repository's resolved commit, its files, and the sha256 of the APPS files go into the
experiment's `manifest.json` (`fetch`). A repository that an earlier run fetched
completely (every file it recorded is still there) is not asked for again: a re-run
downloads nothing, and asks the hub nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from apps_hpc.core.config import Experiment
from apps_hpc.core.errors import AppsHpcError
from apps_hpc.hub import paths as hub
from apps_hpc.provenance.manifest import read_manifest, update_manifest
from apps_hpc.provenance.stamps import file_sha256

log = logging.getLogger(__name__)

APPS_FILES = ("train.jsonl", "test.jsonl")
WEIGHTS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.h5", "*.msgpack", "*.ckpt", "*.onnx")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")


def model_missing(folder: Path) -> list[str]:
    """What a model folder lacks to be loaded (config, tokenizer, weights); [] if none.
    Sharded weights are checked against their index."""
    missing = [] if (folder / "config.json").is_file() else ["config.json"]
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        missing.append("a tokenizer (" + " / ".join(TOKENIZER_FILES) + ")")
    index = next(iter(sorted(folder.glob("*.index.json"))), None)
    if index is not None:
        shards = set(json.loads(index.read_text()).get("weight_map", {}).values())
        missing += sorted(s for s in shards if not (folder / s).is_file())
    elif not any(f.is_file() for f in folder.glob("*.safetensors")) and not any(
        f.is_file() for f in folder.glob("*.bin")
    ):
        missing.append("weights (*.safetensors / *.bin)")
    return missing


def apps_missing(folder: Path) -> list[str]:
    return [name for name in APPS_FILES if not (folder / name).is_file()]


def _model_patterns(siblings: list[str]) -> tuple[list[str] | None, list[str] | None]:
    """(allow, ignore): one weight format only, safetensors when there are any."""
    if any(name.endswith(".safetensors") for name in siblings):
        return None, [w for w in WEIGHTS if w != "*.safetensors"]
    return None, None


def _download(repo_id: str, repo_type: str, revision: str, cache: Path) -> Path:
    """snapshot_download of the files apps-hpc needs; one clear error when it fails."""
    try:
        from huggingface_hub import HfApi, snapshot_download
    except ImportError:
        raise AppsHpcError(
            "apps-hpc fetch needs huggingface_hub: pip install 'apps-hpc[fetch]'"
        ) from None
    try:
        if repo_type == hub.DATASET:
            allow, ignore = list(APPS_FILES), None
        else:
            info = HfApi().repo_info(repo_id, repo_type=repo_type, revision=revision)
            allow, ignore = _model_patterns([s.rfilename for s in info.siblings or []])
        folder = snapshot_download(
            repo_id,
            repo_type=repo_type,
            revision=revision,
            cache_dir=cache,
            allow_patterns=allow,
            ignore_patterns=ignore,
        )
    except Exception as exc:  # network, 404, an interrupted transfer: one line
        what = f"{type(exc).__name__}: {exc}".splitlines()[0]
        raise AppsHpcError(
            f"fetch {repo_id}@{revision} failed ({what}); run `apps-hpc fetch` again to resume"
        ) from None
    return Path(folder)


def _complete(exp: Experiment, key: str, repo_id: str, revision: str) -> Path | None:
    """The snapshot of an earlier fetch of this repository and revision, when every file
    it recorded is still there (then nothing is asked of the hub), else None."""
    record = read_manifest(exp.dir / "manifest.json").get("fetch", {}).get(key)
    if not record or (record["repo"], record["revision"]) != (repo_id, revision):
        return None
    folder = Path(record["path"])
    if folder.name != record["commit"] or not all((folder / f).is_file() for f in record["files"]):
        return None
    return folder


def fetch_repo(
    exp: Experiment, key: str, repo_id: str, repo_type: str, revision: str
) -> tuple[Path, bool, dict[str, Any]]:
    """(snapshot, downloaded?, manifest record) of one repository."""
    folder = _complete(exp, key, repo_id, revision)
    downloaded = folder is None
    if folder is None:
        folder = _download(repo_id, repo_type, revision, exp.hub_dir / "hub")
    lacking = (model_missing if repo_type == hub.MODEL else apps_missing)(folder)
    if lacking:
        raise AppsHpcError(f"{repo_id}@{revision}: the repository has no {', '.join(lacking)}")
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    record: dict[str, Any] = {
        "repo": repo_id,
        "type": repo_type,
        "revision": revision,
        "commit": folder.name,
        "path": str(folder),
        "files": files,
    }
    if repo_type == hub.DATASET:
        record["sha256"] = {name: file_sha256(folder / name) for name in APPS_FILES}
    return folder, downloaded, record


def fetch(exp: Experiment, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Fetch the experiment's model and APPS (those that are hub ids); record them."""
    wanted = [
        ("model", exp.model, hub.MODEL, exp.fetch.model_revision),
        ("apps", exp.apps, hub.DATASET, exp.fetch.apps_revision),
    ]
    records: dict[str, Any] = {}
    for key, value, repo_type, revision in wanted:
        if not hub.is_hub_id(value):
            hub.local(value, repo_type)  # a local path must exist
            say(f"{key}: {value} is a local path: nothing to fetch")
            continue
        folder, downloaded, record = fetch_repo(exp, key, value, repo_type, revision)
        state = "downloaded" if downloaded else "already fetched, nothing downloaded"
        say(f"{key}: {value}@{revision} = commit {record['commit']} ({state}): {folder}")
        update_manifest(exp.dir / "manifest.json", ["fetch", key], record)
        records[key] = record
    return records


__all__ = ["apps_missing", "fetch", "model_missing"]
