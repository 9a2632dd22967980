"""Many writers, nothing lost: real processes writing the same experiment's shared files
at once (as array tasks do: `sampling.json` at start, merged shards, the manifest) through
`write_atomic` and `update_manifest` — no error, no torn file, no lost update, no lock."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import pytest

from apps_hpc.core.files import write_atomic
from apps_hpc.provenance.manifest import (
    apply_update,
    manifest_exists,
    read_manifest,
    update_manifest,
    updates_dir,
)

WRITERS = 8
ROUNDS = 300


def _writer(exp: str, task: int, rounds: int, start: float) -> tuple[int, list[str]]:
    """One task: rewrite the shared file and record one manifest update per round."""
    while time.time() < start:  # all processes begin together
        time.sleep(0.001)
    root, errors = Path(exp), []
    for i in range(rounds):
        try:
            write_atomic(root / "sampling.json", json.dumps({"task": task, "round": i}))
            update_manifest(root / "manifest.json", ["timing", "sample", f"{task}/{i}"], i)
            update_manifest(root / "manifest.json", ["last", str(task)], i)
        except Exception as exc:  # every error is counted, none ends the run
            errors.append(f"{type(exc).__name__}: {exc}")
    return task, errors


def _run_writers(exp: Path, writers: int, rounds: int) -> tuple[list[str], float]:
    ctx = multiprocessing.get_context("spawn")  # fresh processes, as on separate nodes
    start = time.time() + 3.0
    with ctx.Pool(writers) as pool:
        jobs = [pool.apply_async(_writer, (str(exp), t, rounds, start)) for t in range(writers)]
        results = [job.get(timeout=600) for job in jobs]
    elapsed = time.time() - start
    return [e for _, errors in results for e in errors], elapsed


@pytest.mark.slow
def test_eight_processes_write_and_update_the_same_files_without_loss(
    tmp_path: Path,
) -> None:
    errors, elapsed = _run_writers(tmp_path, WRITERS, ROUNDS)
    manifest = read_manifest(tmp_path / "manifest.json")
    timing = manifest["timing"]["sample"]
    print(
        f"\n{WRITERS} processes x {ROUNDS} rounds: {elapsed:.1f} s, "
        f"{2 * WRITERS * ROUNDS / elapsed:.0f} manifest updates/s, errors {len(errors)}"
    )
    assert errors == []
    assert len(timing) == WRITERS * ROUNDS  # every update of every task is there
    assert manifest["last"] == {str(t): ROUNDS - 1 for t in range(WRITERS)}
    last = json.loads((tmp_path / "sampling.json").read_text())  # whole, one writer's
    assert set(last) == {"task", "round"} and last["round"] == ROUNDS - 1
    assert not [p for p in tmp_path.rglob("*.tmp")]  # no temporary file left behind


def test_write_atomic_leaves_no_temporary_file_when_the_write_fails(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    write_atomic(target, "old")
    with pytest.raises(TypeError):
        write_atomic(target, None)  # type: ignore[arg-type]
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]


def test_manifest_updates_merge_over_an_old_manifest_json_in_order(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    assert not manifest_exists(path) and read_manifest(path) == {}
    path.write_text(json.dumps({"jobs": {"train": {"ids": ["1"]}}, "fetch": {"model": 1}}))
    update_manifest(path, ["jobs", "train"], {"ids": ["2"]})
    update_manifest(path, ["jobs", "sample", "ids"], ["3"])
    update_manifest(path, ["fetch"], {"apps": 2})
    update_manifest(path, ["jobs", "train", "state"], "done")
    assert read_manifest(path) == {
        "jobs": {"train": {"ids": ["2"], "state": "done"}, "sample": {"ids": ["3"]}},
        "fetch": {"apps": 2},
    }
    assert len(list(updates_dir(path).glob("*.json"))) == 4


def test_apply_update_replaces_a_value_that_stands_where_a_folder_must() -> None:
    assert apply_update({"a": 1}, ["a", "b"], 2) == {"a": {"b": 2}}
    assert apply_update({}, ["x"], None) == {"x": None}
