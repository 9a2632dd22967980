"""What the manifest says about the run: the report's "What ran" facts from the run
records every task wrote (one line per fact, the steps named where they differ), and
the "not recorded" line only for an experiment without them."""

from __future__ import annotations

from pathlib import Path

from apps_hpc.provenance.manifest import read_manifest
from apps_hpc.report.experiment import ExperimentFiles
from apps_hpc.report.timing import NOT_RECORDED, identity_facts, run_facts
from tests.report.experiment_fixture import make_experiment, run_record

ORDER = [
    "image",
    "lock hash",
    "git commit",
    "apps-hpc",
    "python",
    "torch",
    "transformers",
    "vllm",
    "llamafactory",
    "model revision",
    "data revision",
    "experiment.yaml sha256",
    "host",
    "ran as",
]


def _files(manifest: dict, folder: Path | None = None) -> ExperimentFiles:
    return ExperimentFiles(folder, manifest=manifest, experiment_yaml="name: demo\nmodel: m\n")


def test_run_facts_list_what_ran_in_a_readable_order(tmp_path: Path) -> None:
    exp = make_experiment(tmp_path)
    manifest = read_manifest(exp / "manifest.json")
    facts = run_facts(_files(manifest, exp))
    labels = [label for label, _ in facts]
    assert labels == ["experiment folder", "name", "model", *ORDER]
    values = dict(facts)
    assert values["image"] == "apps-hpc:0.1.0-abc1234, SIF /lustre/containers/apps-hpc.sif"
    assert values["lock hash"] == "2b5720b976c4eb65"
    assert values["git commit"] == "abc1234, clean (from APPS_HPC_GIT_SHA)"
    assert values["torch"] == "2.1.2" and values["vllm"] == "0.4.0.post1"
    # the base model from the hub, the fine-tuned one from the training folder
    assert values["model revision"] == (
        "deepseek-ai/deepseek-coder-6.7b-instruct @ main = commit e5d6 (train, sample/base); "
        "/exp/train (local, files digest 5f7a0c2e9b1d4e3f) (sample/sft)"
    )
    assert values["data revision"] == "codeparrot/apps @ main = commit 21e7"  # every step's
    assert values["host"] == "gpu00, gpu01"
    assert values["ran as"] == "apps-hpc submit job"
    assert NOT_RECORDED[0] not in values


def test_a_fact_that_differs_between_steps_names_them() -> None:
    first, second = run_record("prepare", 0), run_record("train", 0)
    second["software"]["git"] = {"commit": "def5678", "dirty": True, "from": "git"}
    array = {"7_0": run_record("eval/sft", 0), "7_1": run_record("eval/sft", 1)}
    manifest = {"run": {"prepare": {"1": first}, "train": {"2": second}, "eval/sft": array}}
    values = dict(identity_facts(manifest))
    assert values["git commit"] == (
        "abc1234, clean (from APPS_HPC_GIT_SHA) (prepare, eval/sft); "
        "def5678, uncommitted changes (train)"
    )
    assert values["lock hash"] == "2b5720b976c4eb65"  # the same everywhere: once


def test_a_step_run_as_a_stage_command_is_told_from_the_jobs() -> None:
    """`apps-hpc prepare --config X` run directly records under direct-<host>-<pid>."""
    manifest = {
        "run": {
            "prepare": {"direct-laptop-4242": run_record("prepare", 0)},
            "train": {"7": run_record("train", 1)},
        }
    }
    values = dict(identity_facts(manifest))
    assert values["ran as"] == ("stage command run directly (prepare); apps-hpc submit job (train)")


def test_an_experiment_without_run_records_says_so() -> None:
    fetch = {"model": {"repo": "o/m", "revision": "main", "commit": "abc", "files": []}}
    facts = run_facts(_files({"fetch": fetch, "jobs": {}}))
    assert NOT_RECORDED in facts
    assert ("fetch.model.commit", "abc") in facts  # what fetch recorded is still shown
    old_shape = {"run": {"git_commit": "abc1234"}}  # not run records: ignored
    assert NOT_RECORDED in run_facts(_files(old_shape))
    assert NOT_RECORDED not in run_facts(
        _files({"run": {"report": {"1": run_record("report", 0)}}})
    )
