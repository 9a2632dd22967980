"""The one schema (core/schema.py): values, not only types, are checked wherever a config
or a record enters, and each bad input is one line naming the file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apps_hpc.core.config import load_experiment, parse_sets
from apps_hpc.core.errors import AppsHpcError
from apps_hpc.core.records import read_results
from tests.helpers import run_cli

GOOD = {
    "problem_id": 3,
    "difficulty": "interview",
    "model": "m",
    "n": 2,
    "c": 1,
    "verdicts": ["pass", "timeout"],
    "tests": [[True, True], [-1]],
}


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        ({"verdicts": ["bogus", "pass"]}, "verdicts[0]", "expected 'pass', 'wrong_answer'"),
        ({"c": 2}, "c", "c=2 but 1 of the verdicts are pass"),
        ({"n": 3}, "verdicts", "2 verdicts for n=3"),
        ({"tests": "x"}, "tests", "expected a list"),
        ({"tests": [[True], [5]]}, "tests[1][0]", "expected true, false, -1 or -2, got 5"),
        ({"difficulty": "hard"}, "difficulty", "expected 'introductory'"),
        ({"n": True}, "n", "expected an integer"),
    ],
)
def test_an_inconsistent_result_names_file_line_and_field(
    tmp_path: Path, change: dict, field: str, problem: str
) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps({**GOOD, **change}) + "\n")
    with pytest.raises(AppsHpcError) as err:
        read_results(path)
    assert f"r.jsonl:2: field '{field}': " in str(err.value) and problem in str(err.value)


@pytest.mark.parametrize("command", ["report", "show"])
def test_report_and_show_refuse_bogus_verdicts_with_one_line(tmp_path: Path, command: str) -> None:
    path = tmp_path / "bad.jsonl"
    bogus = {**GOOD, "n": 2, "c": 2, "verdicts": ["bogus"], "tests": "x"}
    path.write_text(json.dumps(bogus) + "\n")
    r = run_cli(command, str(path), *(["--no-plot"] if command == "report" else ["--problem", "3"]))
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert f"{path}:1: field 'verdicts" in r.stderr and "1.0000" not in r.stdout


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("sample.engine=foo", "sample.engine: expected 'vllm' or 'transformers', got 'foo'"),
        ("sample.n=0", "sample.n: expected at least 1, got 0"),
        ("sample.temperature=-3", "sample.temperature: expected more than 0, got -3"),
        ("sample.top_p=1.5", "sample.top_p: expected at most 1, got 1.5"),
        ("sample.engin=vllm", "unknown key 'sample.engin' (did you mean 'sample.engine'?)"),
        ("prepare.max_per_problem=0", "prepare.max_per_problem: expected at least 1"),
        ("eval.limits.memory_mb=3", "eval.limits.memory_mb: expected at least 64, got 3"),
        ("eval.limits.test_timeout_s=0", "eval.limits.test_timeout_s: expected more than 0"),
        ("eval.limits.max_procs=x", "eval.limits.max_procs: expected an integer"),
        ("eval.all_test=true", "unknown key 'eval.all_test' (did you mean 'eval.all_tests'?)"),
    ],
)
def test_set_values_are_range_checked(item: str, message: str) -> None:
    with pytest.raises(AppsHpcError) as err:
        load_experiment(None, parse_sets([item]))
    assert str(err.value).startswith(f"--set: {message}")


def test_a_yaml_syntax_error_keeps_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "e.yaml"
    path.write_text("name: x\nsample:\n  n: [1\n")
    with pytest.raises(AppsHpcError, match=r"e\.yaml:4:1: not valid YAML: "):
        load_experiment(path)


def test_a_profile_value_is_range_checked(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(
        "executor: pbs\ngpus_per_node: 0\ncpus_per_node: 2\nmem_per_node: 2G\ntime: 5\n"
    )
    out = ["--samples", "s", "--apps", "a", "--out", str(tmp_path / "r.jsonl")]
    r = run_cli("submit", "eval", "--cluster", str(site), "--dry-run", *out)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "site.yaml: executor: expected 'slurm' or 'local', got 'pbs'" in r.stderr


def test_report_of_results_outside_an_experiment_reads_no_samples(tmp_path: Path) -> None:
    path = tmp_path / "ok.jsonl"
    path.write_text(json.dumps(GOOD) + "\n")
    out = ["--no-plot", "--k", "1", "--out", str(tmp_path / "r")]
    r = run_cli("report", str(path), *out, check=True)
    assert "unreadable" not in r.stderr and "codes" not in r.stderr, r.stderr


def test_the_demo_config_finds_the_bundled_data_from_any_folder(tmp_path: Path) -> None:
    out = tmp_path / "data"
    run_cli("prepare", "--config", "demo", "--out", str(out), cwd=tmp_path, check=True)
    assert (out / "prompts.jsonl").read_text().count("\n") == 20  # mini-APPS' test split
    from apps_hpc.hub.paths import PACKAGE, absolute

    assert Path(absolute("apps_hpc/data/mini_apps")) == PACKAGE / "data" / "mini_apps"
    assert (PACKAGE / "data" / "mini_apps" / "test.jsonl").is_file()


def test_the_eval_section_reaches_the_eval_stage() -> None:
    """`--set eval.*` (or an experiment's `eval:` section) sets what the pipeline's eval
    tasks run with; the defaults are those of `core/limits.Limits`, declared once."""
    from apps_hpc.core.limits import Limits
    from apps_hpc.experiment.stage_configs import eval_config

    sets = ["eval.limits.memory_mb=2048", "eval.limits.test_timeout_s=2", "eval.all_tests=true"]
    cfg = eval_config(load_experiment(None, parse_sets(sets)), "sft")
    assert cfg.limits == Limits(memory_mb=2048, test_timeout_s=2.0) and cfg.all_tests
    assert eval_config(load_experiment(None), "sft").limits == Limits()


def test_cli_options_take_type_bounds_default_and_help_from_the_schema() -> None:
    from apps_hpc.cli import cli

    def option(command: str, name: str) -> object:
        return next(p for p in cli.commands[command].params if p.name == name)

    memory = option("eval", "memory_mb")
    assert memory.type.min == 64 and "default 4096" in memory.help  # type: ignore[attr-defined]
    top_p = option("sample", "top_p")
    assert (top_p.type.min, top_p.type.max, top_p.type.min_open) == (0, 1, True)  # type: ignore[attr-defined]
    assert "default 0.95" in top_p.help  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "sample:\n  n: 3\nsample:\n  seed: 1\n",
            "e.yaml:3:1: not valid YAML: key 'sample' appears twice",
        ),
        ("sample:\n  n: 3\n  n: 4\n", "e.yaml:3:3: not valid YAML: key 'n' appears twice"),
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", "e.yaml: not valid YAML: nested too deeply"),
        (
            "x: &x [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n"
            + "".join(
                f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n"
                for p, n in zip("xyzuvw", "yzuvwt", strict=True)
            ),
            "e.yaml: its aliases (*name) expand to more than 100,000 values",
        ),
        (
            "name: !!python/object/apply:os.system ['true']\n",
            "not valid YAML: could not determine a constructor",
        ),
    ],
)
def test_a_yaml_that_loads_but_is_not_one_config_is_refused(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "e.yaml"
    path.write_text(text)
    with pytest.raises(AppsHpcError) as err:
        load_experiment(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_yaml_merge_keys_may_be_overridden_and_a_bom_or_crlf_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "e.yaml"
    path.write_bytes(b"\xef\xbb\xbfsample: &s\r\n  n: 2\r\n  seed: 7\r\n")
    assert load_experiment(path).sample.n == 2
    path.write_text("name: x\nsample:\n  <<: {n: 2, seed: 7}\n  n: 3\n")
    assert (load_experiment(path).sample.n, load_experiment(path).sample.seed) == (3, 7)
    path.write_bytes("name: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(AppsHpcError, match=r"e\.yaml: not UTF-8 text \(byte 9\)"):
        load_experiment(path)
