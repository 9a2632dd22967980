"""The report page at the real size: file size and headless load + render time.

    python benchmarks/report_page.py [--problems 3765] [--samples 10] [--runs 3]

(with the project's venv, from the repository root). Builds a synthetic experiment of
the published size in `benchmarks/out/report-page/` - 3,765 test problems
(728/2,727/310), 10 programs per problem, two models (base, sft) - runs `report()` on
it, and opens `report/index.html` from file:// in headless Chromium
(`apps_hpc.report.chromium`) `--runs` times.

Each synthetic problem mimics one real APPS problem of `../shared/apps/train-sample.jsonl`
(153 problems): its statement is that problem's question and its 10 programs per model
are that problem's real solutions (the real length distribution, median about 600
characters), each made distinct by renamed identifiers and changed constants, as a
model's samples for one problem are alike but not equal. Without ../shared/apps,
programs are generated (noted in the output). Verdicts follow a per-problem solve rate
drawn from Beta(0.3, 1.5) (pass@1 about 0.15); a failure names one of its problem's 5
tests (inputs and expected outputs truncated to 300 characters, as the evaluator does).

Prints: the page's size, the time `report()` took, and per run the seconds from
navigation until the page says it is rendered (`document.body.dataset.ready`, set after
the index is decompressed and the problem list drawn), and until a problem's detail
(statement, 20 programs, failures) is shown.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import time
from pathlib import Path

from apps_hpc.core.apps import PUBLISHED_COUNTS as COUNTS
from apps_hpc.report import ReportConfig, report
from apps_hpc.report.chromium import HeadlessPage, find_chromium

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "apps" / "train-sample.jsonl"
VERDICTS = ("wrong_answer", "runtime_error", "timeout", "compile_error")


def load_pool() -> tuple[list[list[str]], list[str]]:
    """(solutions grouped by problem, questions) from the real APPS rows, or generated."""
    if not SHARED.is_file():
        print(f"note: {SHARED} missing: generated programs", file=sys.stderr)
        body = "\n".join(f"    x{i} = int(input()) * {i}\n    print(x{i})" for i in range(12))
        return [[f"def main():\n{body}\nmain()\n"]], ["Read n numbers and print them. " * 40]
    groups, questions = [], []
    for line in SHARED.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        try:
            sols = [s for s in json.loads(row["solutions"] or "[]") if 100 < len(s) < 4000]
        except ValueError:
            continue
        if sols:
            groups.append(sols)
            questions.append(row["question"])
    return groups, questions


def vary(code: str, rng: random.Random) -> str:
    """A distinct program of the same shape: identifiers renamed, constants changed."""
    names = sorted(set(re.findall(r"\b([a-z_][a-z0-9_]{0,2})\b", code)) - {"if", "in", "or", "for"})
    mapping = {n: f"{n}{rng.randrange(100)}" for n in rng.sample(names, min(4, len(names)))}
    code = re.sub(r"\b[a-z_][a-z0-9_]{0,2}\b", lambda m: mapping.get(m.group(0), m.group(0)), code)
    return re.sub(r"\b\d+\b", lambda m: str(int(m.group(0)) + rng.randrange(3)), code)


def tests_of(rng: random.Random) -> list[tuple[str, str]]:
    """A problem's tests as the evaluator truncates them: (input, expected), 300 chars."""
    cut = lambda t: t if len(t) <= 300 else t[:300] + "…"  # noqa: E731
    return [
        (
            cut(" ".join(str(rng.randrange(10**6)) for _ in range(rng.choice((2, 8, 60))))),
            cut(str(rng.randrange(10**9))),
        )
        for _ in range(5)
    ]


def failure(verdict: str, tests: list[tuple[str, str]], rng: random.Random) -> dict:
    """The first failing test of a program: one of its problem's tests."""
    index = rng.randrange(len(tests))
    error = {
        "runtime_error": "IndexError: list index out of range",
        "timeout": "timeout",
        "compile_error": "SyntaxError: invalid syntax",
    }.get(verdict)
    got = None if error else str(rng.randrange(10**9))
    return {
        "test": index,
        "input": tests[index][0],
        "expected": tests[index][1],
        "got": got,
        "error": error,
    }


def write_experiment(exp: Path, problems: int, n: int, seed: int = 0) -> list[Path]:
    rng = random.Random(seed)
    groups, questions = load_pool()
    scale = problems / sum(COUNTS.values())
    diffs = [d for d, c in COUNTS.items() for _ in range(max(1, round(c * scale)))][:problems]
    rates = [rng.betavariate(0.3, 1.5) for _ in diffs]
    sources = [rng.randrange(len(groups)) for _ in diffs]  # the real problem each one mimics
    tests = [tests_of(rng) for _ in diffs]
    (exp / "data").mkdir(parents=True, exist_ok=True)
    with (exp / "data" / "prompts.jsonl").open("w") as fh:
        for pid, d in enumerate(diffs):
            prompt = questions[sources[pid]] + "\nUse Standard Input format"
            fh.write(
                json.dumps({"problem_id": pid, "split": "test", "difficulty": d, "prompt": prompt})
                + "\n"
            )
    paths = []
    for model, gain in (("base", 0.0), ("sft", 0.03)):
        for folder in ("samples", "results"):
            (exp / folder).mkdir(parents=True, exist_ok=True)
        with (
            (exp / "samples" / f"{model}.jsonl").open("w") as fs,
            (exp / "results" / f"{model}.jsonl").open("w") as fr,
        ):
            for pid, (d, rate) in enumerate(zip(diffs, rates, strict=True)):
                verdicts = [
                    "pass" if rng.random() < min(rate + gain, 1) else rng.choice(VERDICTS)
                    for _ in range(n)
                ]
                base = {"problem_id": pid, "split": "test", "difficulty": d, "model": model}
                codes = [vary(rng.choice(groups[sources[pid]]), rng) for _ in range(n)]
                fs.write(json.dumps({**base, "codes": codes}) + "\n")
                fr.write(
                    json.dumps(
                        {
                            **base,
                            "n": n,
                            "c": verdicts.count("pass"),
                            "verdicts": verdicts,
                            "tests": [[v == "pass"] for v in verdicts],
                            "failures": [
                                None if v == "pass" else failure(v, tests[pid], rng)
                                for v in verdicts
                            ],
                        }
                    )
                    + "\n"
                )
        paths.append(exp / "results" / f"{model}.jsonl")
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", type=int, default=3765)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "report-page")
    args = parser.parse_args()
    results = write_experiment(args.out, args.problems, args.samples)
    start = time.monotonic()
    folder = report(ReportConfig(results))
    took = time.monotonic() - start
    page = folder / "index.html"
    print(f"{args.problems} problems x {args.samples} programs x 2 models")
    print(f"report(): {took:.1f}s; index.html: {page.stat().st_size / 1e6:.1f} MB ({page})")
    if find_chromium() is None:
        print("chromium not found: no load time measured")
        return
    loads, details = [], []
    for _ in range(args.runs):
        with HeadlessPage() as p:
            loads.append(
                p.goto(page.as_uri(), "document.body && document.body.dataset.ready === '1'")
            )
            start = time.monotonic()
            p.evaluate("location.hash = 'problem=test/2000'")
            p.wait_for("document.getElementById('detail').dataset.key === 'test/2000'")
            details.append(time.monotonic() - start)
            if p.errors:
                print(f"JavaScript errors: {p.errors}")
    print(
        f"load + render (navigation -> list drawn), s: {' '.join(f'{x:.2f}' for x in loads)} "
        f"(median {statistics.median(loads):.2f})"
    )
    print(
        f"open a problem (detail drawn), s: {' '.join(f'{x:.2f}' for x in details)} "
        f"(median {statistics.median(details):.2f})"
    )


if __name__ == "__main__":
    main()
