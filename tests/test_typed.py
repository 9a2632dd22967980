"""Typed configuration: experiment YAML, --set and cluster profile values are checked
against their declared types when loaded; SLURM time limits in all of SLURM's forms."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps_hpc.core.config import load_experiment, parse_sets
from apps_hpc.core.errors import AppsHpcError
from apps_hpc.core.schema import slurm_minutes
from apps_hpc.launch.profiles import load_profile
from tests.helpers import REPO, run_cli

SLURM_DEFAULT = REPO / "configs" / "clusters" / "slurm-default.yaml"


def test_set_with_a_wrong_type_names_the_set_and_the_key() -> None:
    with pytest.raises(AppsHpcError, match=r"^--set: sample.n: expected an integer, got 'ten'$"):
        load_experiment(None, parse_sets(["sample.n=ten"]))


def test_yaml_with_a_wrong_type_names_the_file_and_the_key(tmp_path: Path) -> None:
    path = tmp_path / "e.yaml"
    path.write_text("sample:\n  temperature: hot\n")
    with pytest.raises(AppsHpcError, match=r"e.yaml: sample.temperature: expected a number"):
        load_experiment(path)
    path.write_text("train:\n  overrides: [1, 2]\n")
    with pytest.raises(AppsHpcError, match=r"train.overrides: expected a mapping"):
        load_experiment(path)


def test_good_values_still_load() -> None:
    exp = load_experiment(None, parse_sets(["sample.temperature=1", "prepare.max_per_problem=3"]))
    assert exp.sample.temperature == 1 and exp.prepare.max_per_problem == 3


def test_cli_set_ten_is_one_line_and_exit_2() -> None:
    r = run_cli("train", "--config", "demo", "--set", "sample.n=ten")
    assert r.returncode == 2
    assert r.stderr == "error: --set: sample.n: expected an integer, got 'ten'\n"


@pytest.mark.parametrize(
    ("value", "minutes"),
    [
        (60, 60),
        ("90", 90),
        ("30:30", 31),
        ("04:00:00", 240),
        ("1-00", 1440),
        ("1-02:03", 1563),
        ("2-00:00:30", 2881),
    ],
)
def test_slurm_time_forms(value: object, minutes: int) -> None:
    assert slurm_minutes(value) == minutes


@pytest.mark.parametrize("value", ["4h", "1:2:3:4", "", True, 0, "00:00"])
def test_bad_times_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match="expected"):
        slurm_minutes(value)


def _profile(tmp_path: Path, old: str, new: str) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(SLURM_DEFAULT.read_text().replace(old, new))
    return path


def test_profile_time_as_hh_mm_ss(tmp_path: Path) -> None:
    profile = load_profile(str(_profile(tmp_path, "time: 60 ", 'time: "04:00:00" ')))
    assert profile.time == 240


def test_profile_values_are_type_checked(tmp_path: Path) -> None:
    path = _profile(tmp_path, "cpus_per_node: 2", "cpus_per_node: two")
    with pytest.raises(AppsHpcError, match=r"site.yaml: cpus_per_node: expected an integer"):
        load_profile(str(path))
    path = _profile(tmp_path, "time: 60 ", "time: soon ")
    with pytest.raises(AppsHpcError, match=r"site.yaml: time: expected minutes or SLURM's"):
        load_profile(str(path))


def test_profile_hh_mm_ss_submits_dry_run(tmp_path: Path) -> None:
    """The issue's case: `time: "04:00:00"` ended in a TypeError in sbatch rendering."""
    path = _profile(tmp_path, "time: 60 ", 'time: "04:00:00" ')
    r = run_cli(
        "submit", "eval", "--cluster", str(path), "--dry-run", "--samples", "s.jsonl",
        "--apps", "a", "--out", str(tmp_path / "r.jsonl"),
    )  # fmt: skip
    # the scripts come first; preflight then names the missing files (exit 2), no traceback
    assert "#SBATCH --time=240" in r.stdout, r.stderr
    assert "Traceback" not in r.stderr
