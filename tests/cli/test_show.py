"""`apps-hpc show`: a problem's programs, verdicts and failure detail, through the real
CLI on a results file the real evaluator wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import read_jsonl, run_cli

CODES = [
    "print(int(input()) * 2)",  # pass
    "print(int(input()) + 1)",  # wrong on the second test
    "def f(x: Dict[int, int]):\n    pass\nprint(input())",  # NameError: Dict
    "print(",  # compile error
]


def _row(problem_id: int, inputs: list[str], outputs: list[str]) -> str:
    return json.dumps(
        {
            "problem_id": problem_id,
            "question": "Double it.",
            "solutions": "",
            "input_output": json.dumps({"inputs": inputs, "outputs": outputs}),
            "difficulty": "introductory",
            "url": "",
            "starter_code": "",
        }
    )


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(results, samples) for problem test/7, evaluated by `apps-hpc eval`."""
    folder = tmp_path_factory.mktemp("show")
    apps, samples, results = folder / "test.jsonl", folder / "s.jsonl", folder / "r.jsonl"
    apps.write_text(_row(7, ["1\n", "2\n"], ["2\n", "4\n"]) + "\n")
    sample = {"problem_id": 7, "difficulty": "introductory", "model": "m", "codes": CODES}
    samples.write_text(json.dumps(sample) + "\n")
    run_cli(
        "eval", "-q", "--workers", "1", "--samples", str(samples), "--apps", str(apps),
        "--out", str(results), check=True,
    )  # fmt: skip
    return results, samples


def test_results_record_a_failure_per_program(evaluated: tuple[Path, Path]) -> None:
    [rec] = read_jsonl(evaluated[0])
    assert rec["verdicts"] == ["pass", "wrong_answer", "runtime_error", "compile_error"]
    assert rec["failures"][0] is None
    assert rec["failures"][1] == {
        "test": 1,
        "input": "2\n",
        "expected": "4\n",
        "got": "3\n",
        "error": None,
    }
    assert rec["failures"][2]["error"] == "NameError: name 'Dict' is not defined"
    assert rec["failures"][3]["error"].startswith("SyntaxError")


def test_show_prints_each_program_with_its_verdict_and_detail(
    evaluated: tuple[Path, Path],
) -> None:
    out = run_cli("show", str(evaluated[0]), "--problem", "7", check=True).stdout
    assert out.startswith("test/7 (introductory), model m: 1 of 4 programs pass\n")
    assert "  #0  pass  (2 of 2 tests run passed)\n" in out
    assert "  #1  wrong_answer  (1 of 2 tests run passed)\n" in out
    assert "first failing test: 1\n" in out
    assert "expected | 4\n" in out and "got      | 3\n" in out
    assert "error    | NameError: name 'Dict' is not defined\n" in out
    assert "  #3  compile_error" in out
    assert "print(" not in out  # no code without --samples


def test_show_with_samples_prints_the_code(evaluated: tuple[Path, Path]) -> None:
    results, samples = evaluated
    out = run_cli("show", str(results), "--problem", "7", "--samples", str(samples)).stdout
    assert "code     | print(int(input()) + 1)\n" in out
    assert "code     | def f(x: Dict[int, int]):\n" in out


def test_show_refuses_a_problem_that_is_not_there(evaluated: tuple[Path, Path]) -> None:
    r = run_cli("show", str(evaluated[0]), "--problem", "8")
    assert r.returncode == 2
    assert r.stderr == f"error: {evaluated[0]}: problem test/8 is not in it\n"
    r = run_cli("show", str(evaluated[0]), "--problem", "7", "--split", "train")
    assert r.returncode == 2


def test_show_says_when_an_old_record_has_no_failure_detail(
    evaluated: tuple[Path, Path], tmp_path: Path
) -> None:
    [rec] = read_jsonl(evaluated[0])
    del rec["failures"]
    old = tmp_path / "old.jsonl"
    old.write_text(json.dumps(rec) + "\n")
    out = run_cli("show", str(old), "--problem", "7", check=True).stdout
    assert "(no failure detail: this record was written before it was kept)" in out
    assert "  #1  wrong_answer  (1 of 2 tests run passed)\n" in out
