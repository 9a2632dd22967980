"""Local paths and hub names: what a `model` or `apps` value means, and where a fetched
repository lives.

A value is a **local path** when it starts with `/`, `./`, `../` or `~`, when it exists,
or when it is not shaped like a hub id (`owner/name`); local paths are made absolute once,
against the directory the command was run in, and one that does not exist is an error at
once (never a hub lookup). Otherwise it is a **hub id**, and stages read it from the
experiment's hub folder (`apps-hpc fetch` filled it, on a machine with internet): the
folder is `HF_HOME`, the repositories are in huggingface_hub's cache layout under
`<hub>/hub/{models,datasets}--owner--name/snapshots/<commit>/`. Jobs never ask the hub:
`offline_env` is the one place that says how a stage's environment is made offline.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from apps_hpc.core.errors import AppsHpcError

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
MODEL = "model"
DATASET = "dataset"
_REPO_FOLDER = re.compile(r"(models|datasets)--(.+)")  # repo_folder's names


def is_hub_id(value: str) -> bool:
    """`owner/name`, not written as a path and not an existing file or folder."""
    if value.startswith(("/", "./", "../", "~")) or Path(value).exists():
        return False
    return HUB_ID.fullmatch(value) is not None


PACKAGE = Path(__file__).resolve().parents[1]  # the installed apps_hpc folder


def absolute(value: str) -> str:
    """A local path made absolute (against the current directory); a hub id unchanged.
    Bundled data (`apps_hpc/data/mini_apps`) is found in the installed package when the
    current directory has no such path, so a shipped config works from any directory."""
    if is_hub_id(value):
        return value
    path = Path(value).expanduser()
    if not path.exists() and path.parts[:1] == ("apps_hpc",):
        return str(PACKAGE.parent / path)
    return str(path.absolute())


def offline_env(hub: Path) -> dict[str, str]:
    """The variables every stage runs with: the hub folder as HF_HOME, and no network
    look-ups by huggingface_hub, transformers or datasets."""
    return {"HF_HOME": str(hub), **dict.fromkeys(OFFLINE_VARS, "1")}


def apply_offline(hub: Path) -> None:
    """Make this process (and its children: llamafactory-cli, vLLM workers) offline."""
    os.environ.update(offline_env(hub))


def hub_dir() -> Path | None:
    """The hub folder this process was given (HF_HOME), if any."""
    value = os.environ.get("HF_HOME")
    return Path(value) if value else None


def repo_folder(hub: Path, repo_id: str, repo_type: str) -> Path:
    """huggingface_hub's cache folder of a repository under HF_HOME=`hub`."""
    kind = "datasets" if repo_type == DATASET else "models"
    return hub / "hub" / f"{kind}--{repo_id.replace('/', '--')}"


def parse_snapshot(path: str | Path) -> tuple[str, str, str] | None:
    """(repo id, repo type, commit) of a snapshot folder in huggingface_hub's cache layout
    (`.../models--owner--name/snapshots/<commit>`), else None (pure: nothing is read)."""
    folder = Path(path)
    match = _REPO_FOLDER.fullmatch(folder.parent.parent.name)
    if folder.parent.name != "snapshots" or match is None:
        return None
    kind = DATASET if match.group(1) == "datasets" else MODEL
    return match.group(2).replace("--", "/", 1), kind, folder.name


def snapshot(hub: Path, repo_id: str, repo_type: str, revision: str = "main") -> Path | None:
    """The fetched snapshot of `repo_id` at `revision` (a branch, tag or commit), or None."""
    folder = repo_folder(hub, repo_id, repo_type)
    ref = folder / "refs" / revision
    commit = ref.read_text().strip() if ref.is_file() else revision
    found = folder / "snapshots" / commit
    return found if found.is_dir() else None


def not_fetched(repo_id: str, hub: Path | None) -> AppsHpcError:
    where = f"into {hub}" if hub else "(no hub folder: HF_HOME is not set)"
    return AppsHpcError(
        f"{repo_id} is not fetched {where}: run `apps-hpc fetch --config EXP` on a machine "
        f"with internet (or, if {repo_id} is a local path, it does not exist: write ./{repo_id})"
    )


def local(
    value: str | Path, repo_type: str, revision: str = "main", hub: Path | None = None
) -> Path:
    """What a stage reads for `value`: the local path (which must exist), or the fetched
    snapshot of a hub id in `hub` (default: $HF_HOME). Never a network look-up."""
    text = str(value)
    if not is_hub_id(text):
        path = Path(text).expanduser()
        if not path.exists():
            raise AppsHpcError(f"{path.absolute()}: no such file or directory")
        return path.absolute()
    hub = hub or hub_dir()
    found = snapshot(hub, text, repo_type, revision) if hub else None
    if found is None:
        raise not_fetched(text, hub)
    return found
