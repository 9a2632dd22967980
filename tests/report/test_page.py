"""report/index.html: self-contained, readable without JavaScript, and in a real headless
Chromium (opened from file://): the numbers equal summary.json's, the problem browser
filters, a problem's detail shows its first failing test, and no JavaScript error."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from apps_hpc.report import ReportConfig, report
from apps_hpc.report.browse import unpack
from apps_hpc.report.chromium import HeadlessPage, find_chromium
from tests.helpers import needs
from tests.report.experiment_fixture import make_experiment, solved_counts

ARTIFACTS = Path(os.environ.get("APPS_HPC_ARTIFACTS", Path(__file__).parents[1] / "artifacts"))
READY = "document.body && document.body.dataset.ready === '1'"


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    exp = make_experiment(tmp_path_factory.mktemp("exp"))
    out = report(ReportConfig([exp / "results" / "base.jsonl", exp / "results" / "sft.jsonl"]))
    assert out == exp / "report"
    return out / "index.html"


def test_page_is_self_contained_and_its_tables_need_no_script(page: Path) -> None:
    html = page.read_text(encoding="utf-8")
    # nothing is loaded from anywhere: no src/href to another file or host
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", html)
    assert "default-src 'none'" in html  # and the page forbids it (Content-Security-Policy)
    summary = json.loads((page.parent / "summary.json").read_text())
    for name, model in summary["models"].items():
        for group in ("total", "introductory", "interview", "competition"):
            value = model[group]["pass@1"]
            cell = f'data-model="{name}" data-group="{group}" data-k="1">{value:.4f}</span>'
            assert cell in html
            low, high = model[group]["pass@1_ci"]
            assert f'{value:.4f}</span> <span class="ci">[{low:.4f}, {high:.4f}]' in html
    assert "Δ sft − base over 30 common problems" in html
    assert "loss 0.15" in html and "epoch 2.00," in html  # an epoch float, rounded
    # what ran: the run records StageTask wrote (tests/report/test_timing.py: each fact)
    assert "<td>lock hash</td><td><code>2b5720b976c4eb65</code></td>" in html
    assert "<td>git commit</td><td><code>abc1234, clean (from APPS_HPC_GIT_SHA)" in html
    assert "not recorded in manifest.json" not in html
    assert "0m42s" in html  # the stage wall time the tasks recorded in the manifest
    assert "300 programs, 7.1/s" in html  # eval/<model>: 300 programs in 42 s
    chunk = re.search(r'id="data-chunk-0">([^<]+)<', html).group(1)
    detail = unpack(chunk)["test/1"]["models"]["base"]
    assert detail["verdicts"][:3] == ["pass"] * 3 and detail["failures"][:3] == [None] * 3
    errors = {
        v: f["error"] for v, f in zip(detail["verdicts"][3:], detail["failures"][3:], strict=True)
    }
    assert errors["runtime_error"] == "ZeroDivisionError: division by zero"
    assert detail["codes"][0].startswith("# base program 0 for problem 1")


def test_page_degrades_without_the_experiment_folder(tmp_path: Path) -> None:
    exp = make_experiment(tmp_path, problems=6)
    loose = tmp_path / "loose.jsonl"
    shutil.copyfile(exp / "results" / "sft.jsonl", loose)
    out = report(ReportConfig([loose], out=tmp_path / "rep", plot=False))
    html = (out / "index.html").read_text(encoding="utf-8")
    assert "the experiment folder (results are not in &lt;exp&gt;/results/)" in html
    assert "No training log." in html and "No jobs in the manifest." in html
    assert 'data-model="sft" data-group="total" data-k="1">' in html


needs_chromium = needs(find_chromium(), "chromium not installed (apt-get install chromium)")


def _texts(p: HeadlessPage, selector: str) -> list[str]:
    return p.evaluate(f"[...document.querySelectorAll({selector!r})].map(e => e.textContent)")


@needs_chromium
@pytest.mark.slow
def test_page_in_headless_chromium(page: Path) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    summary = json.loads((page.parent / "summary.json").read_text())
    with HeadlessPage() as p:
        p.goto(page.as_uri(), READY)
        p.screenshot(ARTIFACTS / "report_page.png", full_page=False)
        cells = p.evaluate(
            "[...document.querySelectorAll('span.v')].map(e => [e.dataset.model, "
            "e.dataset.group, e.dataset.k, e.textContent])"
        )
        assert len(cells) == 2 * 4 * 3
        for model, group, k, text in cells:
            assert float(text) == pytest.approx(
                summary["models"][model][group][f"pass@{k}"], abs=5e-5
            )

        assert p.evaluate("document.getElementById('pcount').textContent") == "30 of 30 problems"
        p.evaluate("""(() => { const s = document.querySelector('select[name=difficulty]');
            s.value = 'competition'; s.dispatchEvent(new Event('change')); })()""")
        assert set(_texts(p, "#plist tbody td:nth-child(2)")) == {"competition"}
        p.evaluate("""(() => { const s = document.querySelector('select[name=verdict]');
            s.value = 'unsolved'; s.dispatchEvent(new Event('change'));
            const m = document.querySelector('select[name=model]');
            m.value = 'sft'; m.dispatchEvent(new Event('change')); })()""")
        unsolved = [
            f"test/{i}" for i, c in enumerate(solved_counts("sft", 30)) if c == 0 and i % 3 == 2
        ]
        assert _texts(p, "#plist tbody td:nth-child(1)") == unsolved

        p.evaluate(f"document.querySelector('#plist tbody tr[data-key=\"{unsolved[0]}\"]').click()")
        p.wait_for(f"document.getElementById('detail').dataset.key === '{unsolved[0]}'")
        text = p.evaluate("document.getElementById('detail').innerText")
        assert "read a number and print it plus one" in text  # the statement
        assert "first failing test" in text and "ZeroDivisionError: division by zero" in text
        assert "print(int(input()) + 0)" in p.evaluate(
            "document.querySelector('#detail pre.code').textContent"
        )
        p.screenshot(ARTIFACTS / "report_problem.png", full_page=False)
        assert p.errors == []
