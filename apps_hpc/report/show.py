"""`apps-hpc show`: one problem's programs from a results file, each with its verdict and
why it failed (the results records' `failures`), optionally with the program's code.

    apps-hpc show results/sft.jsonl --problem 17 [--split test] [--samples samples/sft.jsonl]

`show_problem` reads; everything else here is pure formatting.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from apps_hpc.core.errors import AppsHpcError
from apps_hpc.core.records import read_results, read_samples
from apps_hpc.core.schema import ResultRecord, SampleRecord

INDENT = "     "
_FIELDS = ("input", "expected", "got")
# What a program's output must not do to a terminal or a page: control characters (C0
# but tab and newline, DEL, C1: ANSI and OSC escape sequences start with them), bidi
# and zero-width format characters (text that reads other than it is), the Unicode line
# and paragraph separators, lone surrogates (unprintable) and tag characters.
_HIDDEN = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e"
    "\u2060-\u206f\ufeff\ufff9-\ufffb\ud800-\udfff\U000e0000-\U000e007f]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def visible(text: str) -> str:
    """`text` with every character in _HIDDEN written as its escape (\\x1b, \\u2028)."""
    return _HIDDEN.sub(_escape, text)


def _block(label: str, text: str | None) -> list[str]:
    """`label | line` for each line of `text` (a final newline ends the last line);
    `(none)` for None, `(empty)` for ""."""
    if text is None:
        return [f"{INDENT}{label:<9}| (none)"]
    text = visible(text[:-1] if text.endswith("\n") else text)
    lines = text.split("\n") if text else ["(empty)"]
    head = f"{INDENT}{label:<9}| "
    return [head + lines[0]] + [f"{INDENT}{'':<9}| {line}" for line in lines[1:]]


def _tests_line(tests: list[Any]) -> str:
    passed = sum(1 for t in tests if t is True)
    return f"{passed} of {len(tests)} tests run passed"


def format_failure(failure: dict[str, Any] | None) -> list[str]:
    """The detail lines of one failing program."""
    if failure is None:
        return [f"{INDENT}(no failure detail recorded)"]
    error = failure.get("error")
    lines = [visible(f"{INDENT}first failing test: {failure.get('test')}")]
    if error is not None:
        lines += _block("error", error)
    for name in _FIELDS:
        if name == "got" and failure.get(name) is None and error is not None:
            continue  # nothing came back: the error says why
        lines += _block(name, failure.get(name))
    return lines


def format_program(rec: ResultRecord, index: int, code: str | None) -> list[str]:
    verdict = rec.verdicts[index]
    tests = rec.tests[index] if index < len(rec.tests) else []
    lines = [visible(f"  #{index}  {verdict}  ({_tests_line(tests)})")]
    if verdict != "pass" and rec.failures is not None:
        lines += format_failure(rec.failures[index])
    if code is not None:
        lines += _block("code", code.rstrip("\n"))
    return lines


def format_record(rec: ResultRecord, codes: list[str] | None = None) -> str:
    """A problem's programs, one block each, under a header line."""
    lines = [
        visible(
            f"{rec.split}/{rec.problem_id} ({rec.difficulty}), model {rec.model}: "
            f"{rec.c} of {rec.n} programs pass"
        )
    ]
    if rec.failures is None:
        lines.append("  (no failure detail: this record was written before it was kept)")
    for index in range(len(rec.verdicts)):
        lines += format_program(rec, index, codes[index] if codes is not None else None)
    return "\n".join(lines) + "\n"


def _codes_for(rec: ResultRecord, samples: list[SampleRecord], path: Path) -> list[str]:
    same = [s for s in samples if (s.split, s.problem_id) == (rec.split, rec.problem_id)]
    if len(same) > 1:
        same = [s for s in same if s.model == rec.model]
    if len(same) != 1:
        raise AppsHpcError(
            f"{path}: problem {rec.split}/{rec.problem_id} of model {rec.model!r} "
            f"{'is not in it' if not same else 'appears more than once'}"
        )
    if len(same[0].codes) != rec.n:
        raise AppsHpcError(
            f"{path}: problem {rec.split}/{rec.problem_id} has {len(same[0].codes)} "
            f"programs, the results {rec.n}"
        )
    return same[0].codes


def show_problem(
    results: Path, problem_id: int, split: str = "test", samples: Path | None = None
) -> str:
    """The text `apps-hpc show` prints: every record of the problem in `results` (one
    per model), with the codes from `samples` when given."""
    records = [r for r in read_results(results) if (r.split, r.problem_id) == (split, problem_id)]
    if not records:
        raise AppsHpcError(f"{results}: problem {split}/{problem_id} is not in it")
    models = [r.model for r in records]
    twice = sorted({m for m in models if models.count(m) > 1})
    if twice:  # which of the lines is the verdict? as report, show refuses to guess
        raise AppsHpcError(
            f"{results}: problem {split}/{problem_id} of model {twice[0]!r} appears "
            f"{models.count(twice[0])} times (two runs wrote this file?)"
        )
    sample_recs = read_samples(samples) if samples is not None else None
    parts = []
    for rec in records:
        codes = _codes_for(rec, sample_recs, samples) if sample_recs is not None else None
        parts.append(format_record(rec, codes))
    return "\n".join(parts)
