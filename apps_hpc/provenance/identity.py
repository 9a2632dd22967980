"""What ran a stage: the software (apps-hpc's version and git commit, the container image,
the lock's hash, Python, the heavy packages' versions, the host) and the model and data
it read (a hub repository's revision and commit, or a local folder's files digest).

Each job of `apps-hpc submit` (SLURM or the local executor: `launch/tasks.StageTask`),
and each stage command run directly within an experiment (`apps-hpc prepare --config X`:
`cli/common.dispatch`), records one in the experiment's `manifest.json` under
`run/<step>/<task>` (`record_run`: the step as the pipeline names it, the task a job's id
or, for a direct run, `direct-<host>-<pid>`); the report's "What ran" shows them
(`facts`). The versions come from the packages' installed metadata: nothing here imports
torch, vLLM or LlamaFactory. Nothing here fails a stage either: a git that is missing,
slow (`GIT_TIMEOUT_S`) or refuses the folder gives no commit.

Where each fact comes from:
- git commit: `git rev-parse HEAD` when apps-hpc runs from a git checkout that tracks
  it (`dirty`: tracked files differ from HEAD; untracked files do not count), else
  `APPS_HPC_GIT_SHA` (and `APPS_HPC_GIT_DIRTY`), which `make image` bakes into the image;
- image: `APPS_HPC_IMAGE` (the tag the image was built as, set by docker/Dockerfile),
  and the SIF file Apptainer runs (`APPTAINER_CONTAINER`, set by Apptainer itself);
- lock hash: `APPS_HPC_LOCK_SHA`, else the sha256 (16 hex digits) of the container's
  lock, which the package carries (`apps_hpc/data/requirements-cp310.lock`).
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from apps_hpc import __version__
from apps_hpc.hub import paths as hub
from apps_hpc.provenance.manifest import read_manifest, update_manifest
from apps_hpc.provenance.stamps import digest, file_digest, files_fingerprint, model_fingerprint

PACKAGE_DIR = Path(__file__).resolve().parents[1]
LOCK = Path("data") / "requirements-cp310.lock"  # package data, relative to the package
PACKAGES = ("torch", "transformers", "vllm", "llamafactory")
GIT_TIMEOUT_S = 5.0
ENV_IMAGE = "APPS_HPC_IMAGE"
ENV_GIT_SHA = "APPS_HPC_GIT_SHA"
ENV_GIT_DIRTY = "APPS_HPC_GIT_DIRTY"
ENV_LOCK_SHA = "APPS_HPC_LOCK_SHA"
SIF_VARS = ("APPTAINER_CONTAINER", "SINGULARITY_CONTAINER")
# A parent's git context (a hook, `git rebase --exec`) must not redirect our git calls.
_GIT_CONTEXT = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR")
SOURCE_LABELS = {"model": "model revision", "apps": "data revision"}
DIRECT = "direct"  # the task key's prefix of a stage command run directly, not as a job


def installed(dist: str) -> str | None:
    """The installed version of a distribution, from its metadata (it is not imported)."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git(folder: Path, env: Mapping[str, str], *args: str) -> str | None:
    """`git -C folder ARGS`'s output; None when git is missing, too slow or fails."""
    clean = {k: v for k, v in env.items() if k not in _GIT_CONTEXT}
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            env={**clean, "GIT_OPTIONAL_LOCKS": "0"},  # `status` takes no index.lock
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _flag(value: str | None) -> bool | None:
    return {"true": True, "false": False}.get((value or "").strip().lower())


def git_state(package_dir: Path, env: Mapping[str, str]) -> dict[str, Any] | None:
    """{"commit", "dirty", "from"} of the apps-hpc source that runs: its git checkout's
    HEAD when git tracks the package there, else the image's APPS_HPC_GIT_SHA, else
    None. `dirty` is None when it cannot be told."""
    if _git(package_dir, env, "ls-files", "--error-unmatch", "--", "__init__.py") is not None:
        head = _git(package_dir, env, "rev-parse", "HEAD")
        if head and head.strip():
            status = _git(package_dir, env, "status", "--porcelain", "--untracked-files=no")
            dirty = None if status is None else bool(status.strip())
            return {"commit": head.strip(), "dirty": dirty, "from": "git"}
    if env.get(ENV_GIT_SHA):
        dirty = _flag(env.get(ENV_GIT_DIRTY))
        return {"commit": env[ENV_GIT_SHA], "dirty": dirty, "from": ENV_GIT_SHA}
    return None


def lock_hash(package_dir: Path, env: Mapping[str, str]) -> str | None:
    """APPS_HPC_LOCK_SHA, else the digest of the lock the package carries, else None."""
    if env.get(ENV_LOCK_SHA):
        return env[ENV_LOCK_SHA]
    lock = package_dir / LOCK
    return file_digest(lock) if lock.is_file() else None


def software(package_dir: Path = PACKAGE_DIR, env: Mapping[str, str] | None = None) -> dict:
    """The software running this process (see the module's docstring), as plain data."""
    env = os.environ if env is None else env
    return {
        "apps_hpc": __version__,
        "git": git_state(package_dir, env),
        "image": env.get(ENV_IMAGE) or None,
        "sif": next((env[v] for v in SIF_VARS if env.get(v)), None),
        "lock": lock_hash(package_dir, env),
        "python": platform.python_version(),
        "packages": {name: installed(name) for name in PACKAGES},
        "host": socket.gethostname(),
    }


def _fetched_revision(fetched: Mapping[str, Any] | None, repo: str, commit: str | None) -> Any:
    """The revision `apps-hpc fetch` recorded for this repository (and commit), if any."""
    if not fetched or fetched.get("repo") != repo:
        return None
    return fetched.get("revision") if commit is None or fetched.get("commit") == commit else None


def source(
    value: str,
    kind: str,
    fetched: Mapping[str, Any] | None = None,
    revision: str | None = None,
    hub_folder: Path | None = None,
) -> dict[str, Any]:
    """What a `model` / `apps` value named when a stage ran: a hub repository as
    {"repo", "revision", "commit"} (a fetched snapshot's commit is its folder's name;
    `fetched` is the `fetch.<key>` record of manifest.json, which knows the revision
    asked for), or a local path as {"path", "digest"}: the digest of its weight and
    config files (a model) or of its files (data), by name, size and mtime; None when
    it does not exist."""
    snap = hub.parse_snapshot(value)
    if snap is not None:
        repo, _, commit = snap
        asked = _fetched_revision(fetched, repo, commit)
        return {"repo": repo, "revision": asked, "commit": commit}
    if hub.is_hub_id(value):
        rev = revision or _fetched_revision(fetched, value, None) or "main"
        found = hub.snapshot(hub_folder, value, kind, rev) if hub_folder else None
        return {"repo": value, "revision": rev, "commit": found.name if found else None}
    path = Path(value)
    if not path.exists():
        return {"path": value, "digest": None}
    try:
        files = model_fingerprint(value) if kind == hub.MODEL else files_fingerprint(path)
    except OSError:  # an unreadable folder: the stage itself says why
        return {"path": value, "digest": None}
    return {"path": value, "digest": digest(files)}


def sources(
    cfg: Any, fetched: Mapping[str, Any] | None = None, hub_folder: Path | None = None
) -> dict[str, Any]:
    """`source` of the `model` and `apps` a stage config names (the experiment's config,
    for training, also names the revisions it was fetched at)."""
    found = {}
    fetch = getattr(cfg, "fetch", None)
    for key, kind in (("model", hub.MODEL), ("apps", hub.DATASET)):
        value = getattr(cfg, key, None)
        if isinstance(value, str | Path) and str(value):
            revision = getattr(fetch, f"{key}_revision", None)
            found[key] = source(str(value), kind, (fetched or {}).get(key), revision, hub_folder)
    return found


def run_record(
    stage: str, cfg: Any, experiment: Path, fetched: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """What `record_run` records for one task: the stage, the software, the model and data
    of its config (read offline, from the hub folder this process was given) and the
    digest of the experiment's experiment.yaml (None without one)."""
    resolved = experiment / "experiment.yaml"
    return {
        "stage": stage,
        "software": software(),
        "sources": sources(cfg, fetched, hub.hub_dir()),
        "experiment_yaml": file_digest(resolved) if resolved.is_file() else None,
    }


def record_run(manifest: Path, step: str, task: str, stage: str, cfg: Any) -> None:
    """Record what runs `stage` in `manifest` (run/<step>/<task>) before it starts: the
    one path of a job (`StageTask`) and of a stage command run directly. Call it after
    `hub.apply_offline`: a hub id is looked up in the hub folder the stage was given, and
    the revision `apps-hpc fetch` asked for comes from the manifest's `fetch` entries."""
    fetched = read_manifest(manifest).get("fetch")
    update_manifest(manifest, ["run", step, task], run_record(stage, cfg, manifest.parent, fetched))


def direct_task() -> str:
    """The task key of a stage command run directly (not a job): direct-<host>-<pid>."""
    return f"{DIRECT}-{socket.gethostname()}-{os.getpid()}"


def ran_as(task: str) -> str:
    """How a task ran, from its key in run/<step>/<task>."""
    return "stage command run directly" if task.startswith(f"{DIRECT}-") else "apps-hpc submit job"


def _commit(git: Mapping[str, Any] | None) -> str:
    if not git or not git.get("commit"):
        return "unknown (no git checkout, no APPS_HPC_GIT_SHA)"
    state = {True: ", uncommitted changes", False: ", clean", None: ""}[git.get("dirty")]
    where = "" if git.get("from") == "git" else f" (from {git.get('from')})"
    return f"{git['commit']}{state}{where}"


def _image(sw: Mapping[str, Any]) -> str:
    if not sw.get("image") and not sw.get("sif"):
        return "none (not run in the container)"
    parts = [sw.get("image") or "", f"SIF {sw['sif']}" if sw.get("sif") else ""]
    return ", ".join(p for p in parts if p)


def describe_source(rec: Mapping[str, Any]) -> str:
    """One line for a `source` record."""
    if "repo" in rec:
        at = f" @ {rec['revision']}" if rec.get("revision") else ""
        commit = f" = commit {rec['commit']}" if rec.get("commit") else " (not fetched)"
        return f"{rec['repo']}{at}{commit}"
    if rec.get("digest"):
        return f"{rec.get('path')} (local, files digest {rec['digest']})"
    return f"{rec.get('path')} (missing or unreadable)"


def facts(record: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    """(label, value) of one run record, in the report's order; None: does not apply
    (e.g. the model of a stage that reads none)."""
    sw = record.get("software") or {}
    packages = sw.get("packages") or {}
    found: list[tuple[str, str | None]] = [
        ("image", _image(sw)),
        ("lock hash", sw.get("lock") or "no lock file found"),
        ("git commit", _commit(sw.get("git"))),
        ("apps-hpc", sw.get("apps_hpc")),
        ("python", sw.get("python")),
    ]
    found += [(name, packages.get(name) or "not installed") for name in PACKAGES]
    srcs = record.get("sources") or {}
    for key, label in SOURCE_LABELS.items():
        found.append((label, describe_source(srcs[key]) if key in srcs else None))
    found.append(("experiment.yaml sha256", record.get("experiment_yaml")))
    found.append(("host", sw.get("host")))
    return found
