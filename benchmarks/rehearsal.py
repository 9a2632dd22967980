"""A rehearsal of the evaluation at the real size, from the eval stage on.

    python benchmarks/rehearsal.py --scale 0.1

(with the project's venv, from the repository root). Builds an experiment folder in
`benchmarks/out/rehearsal-<scale>/` with the published test split's shape (728
introductory, 2,727 interview and 310 competition problems at --scale 1) from the real
rows of `../shared/apps/test-sample.jsonl`: the rows that have solutions and tests are
cycled to fill the slots, each slot with a problem id of its own, its slot's difficulty
and the row's real tests. Per problem and model (base, sft) it writes 10 programs, as
sample shard files (`samples/<model>/shard-i-of-S.jsonl`, task i holding problems i,
i+S, ...) and the merged `samples/<model>.jsonl`, as the sample stage does. The mix
(`MIX`, the rate of each class among the programs that are not duplicates):

* pass: one of the row's own solutions;
* wrong: a solution with an extra output line (call-based: a method returning None);
* runtime: reads its input, then indexes an empty list;
* compile: a solution behind a syntax error;
* timeout: an endless loop (stopped by the per-test CPU limit `--timeout`, 0.5 s here
  instead of the reference's 4 s, so that the rehearsal stays short; re-checked once);
* duplicate: with probability `DUP_WITHIN`, a program is an exact copy of one written
  earlier for the same problem by the same model; and with probability `DUP_ACROSS`,
  a fine-tuned model's program is an exact copy of the base model's program at the same
  position (the two models share many programs).

Every other program carries a comment naming its slot, model and position, so it is
distinct text: only the intended duplicates are duplicates. Expected pass@1: 0.12 base,
0.13 fine-tuned (the published figures).

Then it runs the real pipeline from the eval stage on: per model `apps-hpc submit eval`
(an array of --shards tasks over the merged samples, then the merge job; no sampling
runs here, so there is nothing to stream behind) on the
local SLURM cluster of `slurm/local-cluster.sh` when it is running (else the local
executor; the output says which), base first and then sft against the experiment's
shared verdict cache; then the report and its page, opened in headless Chromium.
Before that it measures each class's programs/s on one core (`apps-hpc eval --workers 1
--no-cache` on up to `--calibrate` programs of that class).

Prints programs/s per core by class, the eval wall time, peak RSS per task, bytes
written, merge and report time, the page's size and load time, the executions the
cache saved, and the extrapolation (its formula printed) to the example profile's CPU
node (`cpu_node_cpus` of configs/clusters/example-a100.yaml) and to 1-8 such nodes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import yaml

from apps_hpc.provenance.manifest import read_manifest
from apps_hpc.report import ReportConfig, report
from apps_hpc.report.chromium import HeadlessPage, find_chromium

REPO = Path(__file__).resolve().parents[1]
ROWS = REPO.parent / "shared" / "apps" / "test-sample.jsonl"
PROFILE = REPO / "apps_hpc" / "configs" / "clusters" / "example-a100.yaml"
COUNTS = {"introductory": 728, "interview": 2727, "competition": 310}
N = 10
MIX = {"pass": 0.12, "wrong": 0.465, "runtime": 0.30, "compile": 0.10, "timeout": 0.015}
# sft: 0.30 x 0.12 (copies of base) + 0.70 x (0.12 + gain) = 0.13
SFT_PASS_GAIN = 0.0143
DUP_WITHIN = 0.25
DUP_ACROSS = 0.30
CLASSES = (*MIX, "duplicate")
PUBLISHED_EVAL_MIN = 20


@dataclass(frozen=True)
class Row:
    """A real APPS row: its tests (the raw `input_output`) and its solutions."""

    row: dict
    solutions: list[str]
    fn_name: str | None


@dataclass
class Written:
    """What was written for one model: the class of each program, by text."""

    classes: Counter = field(default_factory=Counter)
    programs: int = 0


def load_rows() -> list[Row]:
    rows = []
    for line in ROWS.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        solutions = json.loads(row["solutions"] or "[]")
        if solutions and row["input_output"]:
            fn_name = json.loads(row["input_output"]).get("fn_name")
            rows.append(Row(row, solutions, fn_name))
    return rows


def slots(scale: float) -> list[str]:
    """The difficulty of each problem slot, the published split's shape times `scale`."""
    return [d for d, c in COUNTS.items() for _ in range(max(1, round(c * scale)))]


def program(kind: str, row: Row, rng: random.Random) -> str:
    """A fresh program of one class for this row."""
    code = rng.choice(row.solutions)
    fn = row.fn_name
    if kind == "pass":
        return code
    if kind == "wrong":
        if fn:
            return f"class Solution:\n    def {fn}(self, *args):\n        return None\n"
        return code + "\nprint('__wrong__')\n"
    if kind == "runtime":
        if fn:
            return f"class Solution:\n    def {fn}(self, *args):\n        return [][1]\n"
        return "import sys\ndata = sys.stdin.read()\nprint([][1])\n"
    if kind == "compile":
        return "def broken(:\n    pass\n" + code
    if fn:
        return (
            f"class Solution:\n    def {fn}(self, *args):\n        while True:\n            pass\n"
        )
    return "while True:\n    pass\n"


def draw(mix: dict[str, float], rng: random.Random) -> str:
    return rng.choices(list(mix), weights=list(mix.values()))[0]


def programs_for(
    slot: int, model: str, row: Row, base: list[str], rng: random.Random, written: Written
) -> list[str]:
    """The N programs of one problem and model (base: [] for the base model)."""
    mix = dict(MIX)
    if model != "base":
        mix["pass"] += SFT_PASS_GAIN
    codes: list[str] = []
    for j in range(N):
        if base and rng.random() < DUP_ACROSS:
            codes.append(base[j])
            written.classes["duplicate"] += 1
        elif codes and rng.random() < DUP_WITHIN:
            codes.append(rng.choice(codes))
            written.classes["duplicate"] += 1
        else:
            kind = draw(mix, rng)
            codes.append(f"# rehearsal {slot} {model} {j}\n" + program(kind, row, rng))
            written.classes[kind] += 1
    written.programs += N
    return codes


def write_lines(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec) + "\n")


def build(exp: Path, scale: float, shards: int, seed: int) -> dict[str, Written]:
    """The experiment folder: APPS rows, prompts, sample shards and merged samples."""
    rng = random.Random(seed)
    rows = load_rows()
    diffs = slots(scale)
    apps, prompts = [], []
    for slot, diff in enumerate(diffs):
        row = rows[slot % len(rows)]
        apps.append({**row.row, "problem_id": slot, "difficulty": diff})
        meta = {"problem_id": slot, "split": "test", "difficulty": diff}
        prompts.append({**meta, "prompt": row.row["question"]})
    write_lines(exp / "data" / "test.jsonl", apps)
    write_lines(exp / "data" / "prompts.jsonl", prompts)
    written = {"base": Written(), "sft": Written()}
    base_codes: dict[int, list[str]] = {}
    for model in ("base", "sft"):
        records = []
        for slot, diff in enumerate(diffs):
            row = rows[slot % len(rows)]
            codes = programs_for(slot, model, row, base_codes.get(slot, []), rng, written[model])
            if model == "base":
                base_codes[slot] = codes
            meta = {"problem_id": slot, "split": "test", "difficulty": diff, "model": model}
            records.append({**meta, "codes": codes})
        write_lines(exp / "samples" / f"{model}.jsonl", records)
        for i in range(shards):
            name = f"shard-{i:05d}-of-{shards:05d}.jsonl"
            write_lines(exp / "samples" / model / name, records[i::shards])
    return written


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, "-m", "apps_hpc", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"apps-hpc {' '.join(args[:2])} failed:\n{done.stderr[-3000:]}")
    return done


def calibrate(exp: Path, rows: list[Row], per_class: int, timeout: float) -> dict[str, float]:
    """Programs/s on one core (one warm worker, no cache) for each class."""
    rng = random.Random(1)
    rates = {}
    apps = exp / "data" / "test.jsonl"
    for kind in MIX:
        count = max(2, per_class // 8) if kind == "timeout" else per_class
        records = []
        for k in range(count):
            row = rows[k % len(rows)]
            code = f"# calibrate {kind} {k}\n" + program(kind, row, rng)
            meta = {"problem_id": k, "split": "test", "difficulty": "interview"}  # slot k
            records.append({**meta, "model": "calib", "codes": [code]})
        samples = exp / "calibrate" / f"{kind}.jsonl"
        write_lines(samples, records)
        out = exp / "calibrate" / f"{kind}-results.jsonl"
        out.unlink(missing_ok=True)
        args = ["--samples", str(samples), "--apps", str(apps), "--out", str(out)]
        done = cli("eval", "-q", "--workers", "1", "--no-cache", "--timeout", str(timeout), *args)
        rates[kind] = sum(logged(done.stderr, EVALUATED)[0]) / sum(
            logged(done.stderr, EVALUATED)[1]
        )
    return rates


EVALUATED = re.compile(r"evaluated (\d+) programs in ([\d.]+)s")
EXECUTED = re.compile(r"verdict cache: (\d+) programs executed, (\d+) verdicts reused")
NOT_STORED = re.compile(r"verdicts reused, (\d+) not stored")


def logged(text: str, pattern: re.Pattern[str]) -> tuple[list[float], list[float]]:
    """The two numbers of every line of the evaluator's log that matches `pattern`
    (programs and seconds excluding the interpreter's start; or executed and reused)."""
    found = pattern.findall(text)
    return [float(a) for a, _ in found], [float(b) for _, b in found]


def executions(exp: Path) -> tuple[int, int]:
    """Programs executed by the eval tasks (their logs): cache hits and a problem's
    repeated programs are not executed; and results the cache did not store (timeouts
    the wall clock decided: a copy of one is executed again)."""
    logs = "".join(p.read_text() for p in (exp / "results" / "jobs").glob("*_log.err"))
    not_stored = sum(int(n) for n in NOT_STORED.findall(logs))
    return int(sum(logged(logs, EXECUTED)[0])), not_stored


def cluster_up() -> bool:
    """The local SLURM test cluster is running (slurm/local-cluster.sh status)."""
    done = subprocess.run(
        ["bash", str(REPO / "slurm" / "local-cluster.sh"), "status"], capture_output=True
    )
    return done.returncode == 0


def slurm_env() -> None:
    out = subprocess.run(
        ["bash", str(REPO / "slurm" / "local-cluster.sh"), "env"], capture_output=True, text=True
    ).stdout.split()
    os.environ["SLURM_CONF"] = out[1].split("=", 1)[1]
    os.environ["SBATCH_ACCTG_FREQ"] = "task=1"  # MaxRSS sampled each second: short tasks


def evaluate(exp: Path, model: str, shards: int, cluster: str, timeout: float) -> float:
    """`apps-hpc submit eval` for one model (an array over the merged samples: `submit
    eval` takes no --stream, and nothing is being sampled here); its wall time."""
    start = time.monotonic()
    cli(
        "submit", "eval", "--cluster", cluster, "--wait", "--shards", str(shards), "-q",
        "--samples", str(exp / "samples" / f"{model}.jsonl"),
        "--apps", str(exp / "data" / "test.jsonl"),
        "--out", str(exp / "results" / f"{model}.jsonl"),
        "--cache", str(exp / "cache" / "verdicts"),
        "--timeout", str(timeout),
    )  # fmt: skip
    return time.monotonic() - start


def job_ids(exp: Path, model: str) -> dict[str, list[str]]:
    """The job ids of the last `submit eval` (both models share exp/results's manifest)."""
    jobs = read_manifest(exp / "results" / "manifest.json").get("jobs", {})
    return {f"{key}/{model}": rec["ids"] for key, rec in jobs.items()}


def seconds(clock: str) -> float:
    parts = [float(p) for p in clock.split("-")[-1].split(":")]
    return sum(p * 60**i for i, p in enumerate(reversed(parts)))


def rss_mb(text: str) -> float:
    units = {"K": 1 / 1024, "M": 1.0, "G": 1024.0}
    return float(text[:-1]) * units[text[-1]] if text and text[-1] in units else 0.0


def sacct(ids: list[str]) -> dict[str, tuple[float, float]]:
    """(elapsed s, peak RSS MB over its steps) of each job or array task."""
    masters = sorted({i.split("_")[0] for i in ids})
    out = subprocess.run(
        ["sacct", "-n", "-P", "-o", "JobID,Elapsed,MaxRSS", "-j", ",".join(masters)],
        capture_output=True,
        text=True,
    ).stdout
    found: dict[str, tuple[float, float]] = {}
    for line in out.splitlines():
        job, elapsed, rss = line.split("|")
        task = job.split(".")[0]
        old = found.get(task, (0.0, 0.0))
        found[task] = (max(old[0], seconds(elapsed)), max(old[1], rss_mb(rss)))
    return found


def folder_bytes(*folders: Path) -> int:
    return sum(p.stat().st_size for f in folders if f.exists() for p in f.rglob("*") if p.is_file())


def verdict_counts(exp: Path, model: str) -> tuple[Counter, int, float]:
    """(verdicts, programs reused from the cache, pass@1) of one model's results."""
    verdicts: Counter = Counter()
    reused = 0
    for line in (exp / "results" / f"{model}.jsonl").read_text().splitlines():
        rec = json.loads(line)
        verdicts.update(rec["verdicts"])
        reused += rec.get("reused", 0)
    total = sum(verdicts.values())
    return verdicts, reused, verdicts["pass"] / total


def page_load(page: Path) -> float | None:
    if find_chromium() is None:
        return None
    with HeadlessPage() as p:
        return p.goto(page.as_uri(), "document.body && document.body.dataset.ready === '1'")


def machine() -> str:
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{platform.node()}: {os.cpu_count()} cores, {platform.processor() or platform.machine()}"
        f", Python {platform.python_version()}, load average {load}, {date.today()}"
    )


def extrapolate(
    rates: dict[str, float], executed: dict[str, float], scale: float, timeout: float
) -> None:
    """Core-seconds at the full size from the per-class rates and executions, spread
    over the example profile's CPU nodes; also with the reference's 4 s per test."""
    cores = int(yaml.safe_load(PROFILE.read_text())["cpu_node_cpus"])
    slow = {**rates, "timeout": rates["timeout"] * timeout / 4.0}
    core_s = sum(executed[k] / scale / rates[k] for k in executed)
    core_4s = sum(executed[k] / scale / slow[k] for k in executed)
    print(f"\nExtrapolation: T(nodes) = sum_c (E_c / {scale:g}) / r_c / ({cores} x nodes)")
    print("  E_c: executions of class c here (cache hits and repeats excluded),")
    print("  r_c: programs/s per core; at 4 s per test: r_timeout x " + f"{timeout:g}/4")
    print(f"  full size: {core_s:,.0f} core-s ({core_4s:,.0f} at 4 s), 75,300 programs")
    print(f"| CPU nodes | cores | eval (min), {timeout:g} s/test | at 4 s/test | published |")
    print("|---|---|---|---|---|")
    for nodes in (1, 2, 4, 8):
        n = cores * nodes
        row = f"| {nodes} | {n} | {core_s / n / 60:.2f} | {core_4s / n / 60:.2f} |"
        print(f"{row} {PUBLISHED_EVAL_MIN} min |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=0.5, help="CPU s per test")
    parser.add_argument("--calibrate", type=int, default=40, help="programs per class")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    exp = args.out or REPO / "benchmarks" / "out" / f"rehearsal-{args.scale:g}"
    shutil.rmtree(exp, ignore_errors=True)
    written = build(exp, args.scale, args.shards, args.seed)
    problems = len(slots(args.scale))
    print(f"machine: {machine()}")
    print(f"{problems} problems x {N} programs x 2 models = {2 * problems * N} programs")
    for model, w in written.items():
        share = ", ".join(f"{k} {w.classes[k] / w.programs:.3f}" for k in CLASSES)
        print(f"  {model} written: {share}")
    rates = calibrate(exp, load_rows(), args.calibrate, args.timeout)
    on_slurm = shutil.which("sbatch") is not None and cluster_up()
    if on_slurm:
        slurm_env()
    cluster = "slurm-default" if on_slurm else "local"
    print(f"eval runs on: {'the local SLURM cluster' if on_slurm else 'the local executor'}")
    walls, jobs = {}, {}
    for model in ("base", "sft"):
        walls[model] = evaluate(exp, model, args.shards, cluster, args.timeout)
        jobs.update(job_ids(exp, model) if on_slurm else {})
    start = time.monotonic()
    folder = report(ReportConfig([exp / "results" / f"{m}.jsonl" for m in ("base", "sft")]))
    report_s = time.monotonic() - start
    page = folder / "index.html"
    load_s = page_load(page)
    acct = sacct([i for ids in jobs.values() for i in ids]) if jobs else {}
    print_results(
        exp, written, rates, walls, acct, jobs, report_s, page, load_s, args.scale, args.timeout
    )
    print_full_size(full_size_report(exp, args.shards))


def print_results(
    exp: Path,
    written: dict[str, Written],
    rates: dict[str, float],
    walls: dict[str, float],
    acct: dict[str, tuple[float, float]],
    jobs: dict[str, list[str]],
    report_s: float,
    page: Path,
    load_s: float | None,
    scale: float,
    timeout: float,
) -> None:
    print("\n| class | programs/s per core |\n|---|---|")
    for kind, rate in rates.items():
        print(f"| {kind} | {rate:.1f} |")
    for model in ("base", "sft"):
        verdicts, reused, pass1 = verdict_counts(exp, model)
        print(
            f"\n{model}: eval wall {walls[model]:.1f}s (array + merge, --wait), pass@1 {pass1:.3f}"
        )
        print(f"  verdicts: {dict(verdicts)}; records' reused (cache hits): {reused}")
    dups = sum(w.classes["duplicate"] for w in written.values())
    total = sum(w.programs for w in written.values())
    executed, not_stored = executions(exp)
    saved = total - executed
    print(f"executed {executed} of {total} programs: the cache and the per-problem")
    print(f"dedup saved {saved} executions; exact duplicates written: {dups}")
    print(
        f"  duplicates executed anyway: {dups - saved}; results not stored in the cache:"
        f" {not_stored} (timeouts the wall clock decided under load, re-executed by design)"
    )
    for key, ids in sorted(jobs.items()):
        tasks = [acct.get(i, (0.0, 0.0)) for i in ids]
        peak = max(r for _, r in tasks)
        elapsed = max(e for e, _ in tasks)
        print(f"  {key}: {len(ids)} task(s), longest {elapsed:.0f}s, peak RSS {peak:.0f} MB")
    written_bytes = folder_bytes(exp / "results", exp / "cache", exp / "report")
    print(f"bytes written (results, cache, report): {written_bytes / 1e6:.1f} MB")
    merges = [acct.get(i, (0.0, 0.0))[0] for k, ids in jobs.items() if "merge" in k for i in ids]
    print(f"merge jobs: {' + '.join(f'{m:.0f}s' for m in merges) or '-'} (sacct, 1 s resolution)")
    size = page.stat().st_size / 1e6
    load = f"{load_s:.2f}s" if load_s is not None else "no chromium"
    print(f"report(): {report_s:.1f}s; index.html {size:.1f} MB; load + render {load}")
    executed = executions_by_class(written, saved)
    merge_s = sum(merges)
    full = (merge_s + report_s) / scale
    print(
        f"merge + report at full size, linear: ({merge_s:.0f} + {report_s:.1f}) / {scale:g}", end=""
    )
    print(f" = {full:.0f} s (+ page load)")
    extrapolate(rates, executed, scale, timeout)


def full_size_report(exp: Path, shards: int) -> dict[str, float]:
    """Merge, report and page at the published size, measured (not extrapolated): each
    model's results and samples are cycled from this run's real records to the 3,765
    problems of --scale 1 (a record keeps its verdicts, tests and programs and takes the
    slot's problem id), written as the eval array's shard files; then the merge job's
    work (`merge_results`: shards checked against the samples, joined, sorted, written),
    `report()` over both models, and the page's load in headless Chromium."""
    from apps_hpc.evaluate import EvalConfig
    from apps_hpc.evaluate.stage import merge_results

    full = exp / "full-size"
    shutil.rmtree(full, ignore_errors=True)
    took: dict[str, float] = {"merge": 0.0}
    for model in ("base", "sft"):
        results = cycled(exp / "results" / f"{model}.jsonl")
        samples = cycled(exp / "samples" / f"{model}.jsonl")
        write_lines(full / "samples" / f"{model}.jsonl", samples)
        for i in range(shards):
            name = f"shard-{i:05d}-of-{shards:05d}.jsonl"
            write_lines(full / "results" / model / name, results[i::shards])
        cfg = EvalConfig(
            samples=full / "samples" / f"{model}.jsonl",
            apps=exp / "data" / "test.jsonl",
            out=full / "results" / f"{model}.jsonl",
        )
        start = time.monotonic()
        merge_results(cfg)
        took["merge"] += time.monotonic() - start
    start = time.monotonic()
    folder = report(ReportConfig([full / "results" / f"{m}.jsonl" for m in ("base", "sft")]))
    took["report"] = time.monotonic() - start
    took["page"] = page_load(folder / "index.html") or 0.0
    took["page_mb"] = (folder / "index.html").stat().st_size / 1e6
    took["problems"] = len(slots(1.0))
    return took


def cycled(path: Path) -> list[dict]:
    """`path`'s records cycled to the full size's slots: slot k takes a record of its
    difficulty (in turn) with problem id k."""
    by_difficulty: dict[str, list[dict]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        by_difficulty.setdefault(rec["difficulty"], []).append(rec)
    taken: Counter = Counter()
    out = []
    for slot, diff in enumerate(slots(1.0)):
        pool = by_difficulty[diff]
        out.append({**pool[taken[diff] % len(pool)], "problem_id": slot})
        taken[diff] += 1
    return out


def print_full_size(took: dict[str, float]) -> None:
    total = took["merge"] + took["report"] + took["page"]
    print(
        f"\nFull size, measured ({took['problems']:,.0f} problems x {N} programs x 2 models,"
        " records cycled from this run's real results):"
    )
    print(
        f"  merge {took['merge']:.1f}s (both models) + report {took['report']:.1f}s"
        f" + page load {took['page']:.2f}s ({took['page_mb']:.1f} MB) = {total:.1f}s"
        f" (target <= 60 s: {'met' if total <= 60 else 'MISSED'})"
    )


def executions_by_class(written: dict[str, Written], saved: int) -> dict[str, float]:
    """Executions by class: every written program but the duplicates the cache saved."""
    fresh = Counter()
    for w in written.values():
        fresh.update({k: v for k, v in w.classes.items() if k != "duplicate"})
    dups = sum(w.classes["duplicate"] for w in written.values())
    leftover = max(0, dups - saved)  # duplicates executed anyway: counted as their mix
    total = sum(fresh.values())
    return {k: v + leftover * v / total for k, v in fresh.items()}


if __name__ == "__main__":
    main()
