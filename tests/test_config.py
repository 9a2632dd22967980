"""Config files found like other tools find them: a path, $APPS_HPC_CONFIG_DIR,
./configs, then the configs shipped inside the package."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps_hpc.core.config import PACKAGE_CONFIGS, find_config, load_experiment
from apps_hpc.core.errors import AppsHpcError
from apps_hpc.launch.profiles import load_profile
from tests.helpers import run_cli


def test_a_name_falls_back_to_the_shipped_configs(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./configs here
    monkeypatch.delenv("APPS_HPC_CONFIG_DIR", raising=False)
    assert (
        find_config("clusters", "slurm-default") == PACKAGE_CONFIGS / "clusters/slurm-default.yaml"
    )
    assert load_profile("local").executor == "local"
    assert load_experiment(Path("dscoder_apps")).model.startswith("deepseek-ai/")


def test_env_dir_then_cwd_configs_win_over_the_package(tmp_path: Path, monkeypatch) -> None:
    site, local = tmp_path / "site", tmp_path / "work" / "configs"
    for folder, cpus in ((site, 7), (local, 5)):
        (folder / "clusters").mkdir(parents=True)
        (folder / "clusters" / "local.yaml").write_text(
            f"executor: local\ncpus_per_node: {cpus}\ngpus_per_node: 0\n"
            "mem_per_node: null\ntime: 5\n"
        )
    monkeypatch.chdir(tmp_path / "work")
    monkeypatch.delenv("APPS_HPC_CONFIG_DIR", raising=False)
    assert load_profile("local").cpus_per_node == 5  # ./configs before the package
    monkeypatch.setenv("APPS_HPC_CONFIG_DIR", str(site))
    assert load_profile("local").cpus_per_node == 7  # the environment first
    assert load_profile("slurm-default").executor == "slurm"  # still found in the package


def test_a_path_is_taken_as_it_is_and_a_miss_names_what_is_known(tmp_path: Path) -> None:
    mine = tmp_path / "mine.yaml"
    mine.write_text("name: mine\n")
    assert load_experiment(mine).name == "mine"
    with pytest.raises(AppsHpcError, match=r"experiment config 'nope' not found \(known: .*demo"):
        find_config("experiments", "nope")
    with pytest.raises(AppsHpcError, match=r"cluster profile 'x\.yaml' not found"):
        load_profile("x.yaml")


def test_the_cli_finds_shipped_configs_outside_the_source_tree(tmp_path: Path) -> None:
    r = run_cli(
        "submit",
        "pipeline",
        "--config",
        "dscoder_apps",
        "--cluster",
        "example-a100",
        "--dry-run",
        cwd=tmp_path,
    )
    assert "#SBATCH --gres=gpu:8" in r.stdout, r.stderr
    # the preflight refuses it here (nothing fetched, no image), after the scripts
    assert r.returncode == 2 and "error: image: " in r.stderr
