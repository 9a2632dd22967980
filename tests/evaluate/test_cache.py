"""The verdict cache (apps_hpc/evaluate/cache.py): a distinct program is executed once per
experiment, across runs and models; many writers at once; re-checks."""

from __future__ import annotations

import json
import logging
import multiprocessing
from pathlib import Path

import pytest

from apps_hpc.core.limits import Limits
from apps_hpc.core.schema import Verdict
from apps_hpc.evaluate.cache import VerdictCache, encode, program_key
from apps_hpc.evaluate.pool import ProgramResult
from tests.helpers import read_jsonl, run_cli

WRONG = "print('no')"


def _result(verdict: Verdict = Verdict.PASS, wall: bool = False) -> ProgramResult:
    return ProgramResult(verdict, [True], 1, 0.01, 0.02, wall_decided=wall)


def _samples(shared: Path, out: Path, extra: str | None = None, rows: int = 4) -> Path:
    """The first solution of the first real test rows, a wrong program twice (a duplicate
    within the problem), and optionally one more program."""
    lines = []
    for line in (shared / "test-sample.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["solutions"] and len(lines) < rows:
            codes = [json.loads(row["solutions"])[0], WRONG, WRONG, *([extra] if extra else [])]
            rec = {
                "problem_id": row["problem_id"],
                "split": "test",
                "model": "m",
                "codes": codes,
                "difficulty": row["difficulty"],
            }
            lines.append(json.dumps(rec))
    out.write_text("\n".join(lines) + "\n")
    return out


def _eval(shared: Path, samples: Path, out: Path, *more: str) -> None:
    apps = str(shared / "test-sample.jsonl")
    run_cli("eval", "-q", "--samples", str(samples), "--apps", apps, "--out", str(out), *more,
            check=True)  # fmt: skip


def _cache_lines(folder: Path) -> int:
    return sum(len(p.read_text().splitlines()) for p in folder.glob("*.jsonl"))


def _without_reused(path: Path) -> list[dict]:
    return [{k: v for k, v in rec.items() if k != "reused"} for rec in read_jsonl(path)]


def _same_but_timeouts(rechecked: list[dict], first: list[dict]) -> None:
    """The re-executed records equal the first ones, but for a program that timed out in
    one of the runs (on a loaded machine the wall clock can decide a timeout: measuring
    such flips is what --recheck is for)."""
    assert [r["problem_id"] for r in rechecked] == [r["problem_id"] for r in first]
    for new, old in zip(rechecked, first, strict=True):
        pairs = zip(new["verdicts"], old["verdicts"], strict=True)
        stable = [i for i, (a, b) in enumerate(pairs) if "timeout" not in (a, b)]
        assert [new["verdicts"][i] for i in stable] == [old["verdicts"][i] for i in stable]
        assert [new["tests"][i] for i in stable] == [old["tests"][i] for i in stable]


def test_re_evaluation_executes_nothing_and_gives_identical_records(
    shared_apps: Path, tmp_path: Path
) -> None:
    samples = _samples(shared_apps, tmp_path / "m.jsonl")
    cache = tmp_path / "cache"
    _eval(shared_apps, samples, tmp_path / "first.jsonl", "--cache", str(cache))
    first = read_jsonl(tmp_path / "first.jsonl")
    assert [r["reused"] for r in first] == [0] * 4
    assert _cache_lines(cache) == 8  # 2 distinct programs of 4 problems: the duplicate ran once
    files = set(cache.glob("*.jsonl"))
    _eval(shared_apps, samples, tmp_path / "again.jsonl", "--cache", str(cache))
    again = read_jsonl(tmp_path / "again.jsonl")
    assert [r["reused"] for r in again] == [3] * 4  # every program's verdict from the cache
    assert set(cache.glob("*.jsonl")) == files and _cache_lines(cache) == 8  # nothing executed
    assert _without_reused(tmp_path / "again.jsonl") == _without_reused(tmp_path / "first.jsonl")


def test_a_new_models_file_executes_only_programs_not_seen(
    shared_apps: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    _eval(shared_apps, _samples(shared_apps, tmp_path / "base.jsonl"), tmp_path / "b.jsonl",
          "--cache", str(cache))  # fmt: skip
    new = "print(input())"
    _eval(shared_apps, _samples(shared_apps, tmp_path / "sft.jsonl", new), tmp_path / "s.jsonl",
          "--cache", str(cache))  # fmt: skip
    records = read_jsonl(tmp_path / "s.jsonl")
    assert [r["reused"] for r in records] == [3] * 4 and all(r["n"] == 4 for r in records)
    assert _cache_lines(cache) == 8 + 4  # only the new program, once per problem


def test_recheck_executes_again_and_no_cache_writes_none(shared_apps: Path, tmp_path: Path) -> None:
    samples = _samples(shared_apps, tmp_path / "m.jsonl", rows=2)
    cache = tmp_path / "cache"
    _eval(shared_apps, samples, tmp_path / "a.jsonl", "--cache", str(cache))
    _eval(shared_apps, samples, tmp_path / "b.jsonl", "--cache", str(cache), "--recheck")
    assert [r["reused"] for r in read_jsonl(tmp_path / "b.jsonl")] == [0, 0]
    assert _cache_lines(cache) == 8  # the re-checked results appended
    _same_but_timeouts(_without_reused(tmp_path / "b.jsonl"), _without_reused(tmp_path / "a.jsonl"))
    _eval(shared_apps, samples, tmp_path / "plain" / "c.jsonl", "--no-cache")
    assert not (tmp_path / "plain" / "verdict-cache").exists()
    _eval(shared_apps, samples, tmp_path / "beside" / "d.jsonl")
    assert _cache_lines(tmp_path / "beside" / "verdict-cache") == 4  # the default: beside --out


def test_key_covers_what_decides_a_verdict() -> None:
    base = program_key("print(1)", [None, ["1"], ["1"]], Limits(), {"all_tests": False})
    assert base == program_key("print(1)", [None, ["1"], ["1"]], Limits(), {"all_tests": False})
    others = [
        program_key("print(2)", [None, ["1"], ["1"]], Limits(), {"all_tests": False}),
        program_key("print(1)", [None, ["1"], ["2"]], Limits(), {"all_tests": False}),
        program_key(
            "print(1)", [None, ["1"], ["1"]], Limits(test_timeout_s=9), {"all_tests": False}
        ),
        program_key("print(1)", [None, ["1"], ["1"]], Limits(), {"all_tests": True}),
    ]
    assert base not in others and len(set(others)) == 4


def _writer(folder: str, index: int) -> None:
    cache = VerdictCache(Path(folder))
    for i in range(300):
        cache.put(f"{index}-{i}", _result())
    cache.close()


def test_many_writers_at_once_lose_nothing_and_a_torn_line_is_skipped(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), i)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    (tmp_path / "killed.jsonl").write_text(encode("x", _result())[:-20])  # torn mid-line
    cache = VerdictCache(tmp_path)
    assert len(cache.entries) == 4 * 300 and "x" not in cache.entries


def test_unreadable_cache_lines_are_counted_and_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = encode("k", _result())
    (tmp_path / "a.jsonl").write_text('{"key": 1}\n' + good + "not json\n" + good[:-9])
    with caplog.at_level(logging.WARNING):
        cache = VerdictCache(tmp_path)
    assert list(cache.entries) == ["k"]
    assert "a.jsonl: 3 unreadable lines left out, first" in caplog.text
    assert "a.jsonl:1: field 'result'" in caplog.text


def test_a_recheck_wins_and_wall_clock_timeouts_are_not_cached(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text(
        encode("k", _result(Verdict.PASS), rechecked=True) + encode("k", _result(Verdict.TIMEOUT))
    )
    cache = VerdictCache(tmp_path)
    assert cache.get("k").verdict == Verdict.PASS and cache.hits == 1  # type: ignore[union-attr]
    cache.put("w", _result(Verdict.TIMEOUT, wall=True))
    cache.close()
    assert "w" not in cache.entries and "w" not in VerdictCache(tmp_path).entries
    assert cache.not_stored == 1  # said in the log: a copy of it is executed again
