"""Records survive any text (issue 23): "\\n" is the only line break of every JSONL file,
and what a program printed reaches the terminal and the page with its control
characters escaped. Programs print each character str.splitlines() breaks at, and ANSI
and OSC escape sequences, through a sharded `apps-hpc eval`, the merge, `report` and
`show`."""

from __future__ import annotations

import json
from pathlib import Path

from apps_hpc.core.jsonl import dump_line, jsonl_lines
from apps_hpc.core.records import read_results
from apps_hpc.report.browse import failures_of
from apps_hpc.report.show import visible
from tests.helpers import apps_row, run_cli

# every line boundary of str.splitlines() but "\n" and "\r\n"
BREAKS = ["\u2028", "\u2029", "\x85", "\x1c", "\x1d", "\x1e", "\x0b", "\x0c", "\r"]
ANSI = "\x1b]0;owned\x07\x1b[2J\x1b[31mred\u202e"


def test_dump_line_has_one_line_break_for_every_reader() -> None:
    record = {"got": "".join(BREAKS) + ANSI}
    line = dump_line(record)
    assert line.endswith("\n") and len(line.splitlines()) == 1
    assert json.loads(line) == record
    assert jsonl_lines(line + line[:5]) == [line, line[:5]]
    assert jsonl_lines("a\u2028b\nc") == ["a\u2028b\n", "c"]


def test_visible_escapes_control_characters() -> None:
    assert visible("a\tb\x1b[31m\u2028\x85\ud800") == "a\tb\\x1b[31m\\u2028\\x85\\ud800"
    assert visible("plain text, ünïcode ✓") == "plain text, ünïcode ✓"


def _inputs(work: Path) -> list[str]:
    rows, samples = [], []
    for pid, char in enumerate(BREAKS):
        text = f"a{char}b"
        rows.append(apps_row(["x\n"], [text + "\n"], pid))
        codes = [f"print({text!r})", f"print({ANSI + char!r})"]
        samples.append(
            {"problem_id": pid, "split": "test", "difficulty": "interview", "codes": codes}
        )
    (work / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (work / "m.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    return ["--samples", str(work / "m.jsonl"), "--apps", str(work / "test.jsonl")]


def test_line_breaks_through_sharded_eval_merge_report_and_show(tmp_path: Path) -> None:
    args = _inputs(tmp_path)
    out = tmp_path / "r.jsonl"
    for i in (0, 1):
        run_cli(
            "eval",
            "-q",
            "--workers",
            "1",
            *args,
            "--out",
            str(out),
            "--shard",
            f"{i}/2",
            check=True,
        )
    assert out.is_file(), "the shards were not merged"
    text = out.read_text(encoding="utf-8")
    assert len(text.splitlines()) == len(BREAKS)  # even str.splitlines() sees one per record
    records = {r.problem_id: r for r in read_results(out)}
    assert sorted(records) == list(range(len(BREAKS)))
    for pid in range(len(BREAKS)):
        # the first program's verdict is the reference's comparison (its str.splitlines())
        assert records[pid].verdicts[1] == "wrong_answer", (pid, records[pid])
        assert ANSI in records[pid].failures[1]["got"]
    report = run_cli(
        "report", str(out), "--k", "1", "--out", str(tmp_path / "rep"), "--no-plot", check=True
    )
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert summary["models"]["m"]["total"]["problems"] == len(BREAKS), report.stdout
    for pid in range(len(BREAKS)):
        shown = run_cli("show", str(out), "--problem", str(pid), check=True).stdout
        assert "\\x1b]0;owned\\x07" in shown and "\\u202e" in shown
        assert not set(shown) & {"\x1b", "\x07", "\u202e", *BREAKS}, repr(shown)
    page_failures = failures_of(records[0])
    assert page_failures is not None and "\x1b" not in page_failures[1]["got"]
