"""Done-when check of issue 11: the 324 model-style programs of
../shared/apps/model-style get the reference harness's recorded per-test results,
program by program, through the real CLI (`python -m apps_hpc eval --all-tests`).

The only programs allowed to differ are those of tests/data/model_style_differences.json
(the same table as docs/evaluator.md's "Checked against the reference", beside "Where we
differ on purpose"), each with its rule."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.evaluate import model_style
from tests.helpers import DATA, REPO, read_jsonl, run_cli

DIFFERENCES = DATA / "model_style_differences.json"


def _table() -> dict[model_style.Key, dict]:
    data = json.loads(DIFFERENCES.read_text())
    rows = {(d["split"], d["problem_id"], d["index"]): d for d in data["differences"]}
    assert all(d["rule"] in data["rules"] for d in rows.values())
    return rows


def _evaluate(shared_apps: Path, tmp: Path) -> dict[model_style.Key, list]:
    got = {}
    rows = read_jsonl(model_style.corpus_dir(shared_apps) / "samples.jsonl")
    for split in ("test", "train"):
        samples, out = tmp / f"{split}-samples.jsonl", tmp / f"{split}-results.jsonl"
        samples.write_text("".join(json.dumps(r) + "\n" for r in rows if r["split"] == split))
        run_cli(
            "eval", "-q", "--all-tests", "--workers", "2", "--samples", str(samples),
            "--apps", str(shared_apps / f"{split}-sample.jsonl"), "--out", str(out),
            check=True,
        )  # fmt: skip
        for rec in read_jsonl(out):
            for index, tests in enumerate(rec["tests"]):
                got[(split, rec["problem_id"], index)] = tests
    return got


def _here(row: dict, recorded: list) -> list | None:
    return [True] * len(recorded) if row["here"] == "all-true" else row["here"]


def test_the_table_names_real_programs_and_the_docs_list_it(shared_apps: Path) -> None:
    reference = model_style.reference(shared_apps)
    page = (REPO / "docs/evaluator.md").read_text()
    for key, row in _table().items():
        assert key in reference, key
        if row["rule"] == "global-timeout":  # the rule covers only what it says
            assert reference[key]["global_timeout"], key
        split, pid, index = key
        assert re.search(rf"\|\s*{split}\s*\|\s*{pid}\s*\|\s*{index}\s*\|", page), key


@pytest.mark.slow
def test_model_style_programs_get_the_reference_results(shared_apps: Path, tmp_path: Path) -> None:
    reference, table = model_style.reference(shared_apps), _table()
    got = _evaluate(shared_apps, tmp_path)
    assert len(reference) == 324 and set(got) == set(reference)
    differ = {k for k, rec in reference.items() if got[k] != rec["results"]}
    unexplained = sorted(differ - set(table))
    assert not unexplained, [(k, reference[k]["kind"], got[k][:10]) for k in unexplained]
    for key, row in table.items():
        pinned = _here(row, reference[key]["results"])
        if pinned is not None:
            assert got[key] == pinned, (key, row["why"])
