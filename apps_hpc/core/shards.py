"""Shard planning, seeds and shard files (pure, except `shard_status`)."""

from __future__ import annotations

import hashlib
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apps_hpc.core.errors import AppsHpcError
from apps_hpc.core.files import write_atomic
from apps_hpc.core.jsonl import AppendLog, complete_records, dump_line
from apps_hpc.core.records import problem_key

_SHARD_FILE = re.compile(r"shard-(\d{5})-of-(\d{5})\.jsonl")


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def file_name(self) -> str:
        return f"shard-{self.index:05d}-of-{self.count:05d}.jsonl"


def parse_shard(text: str) -> Shard:
    """`I/S` with 0 <= I < S."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 0 <= int(match.group(1)) < int(match.group(2)):
        raise AppsHpcError(f"--shard {text!r}: expected I/S with 0 <= I < S, e.g. 0/8")
    return Shard(int(match.group(1)), int(match.group(2)))


def assign(prompts: list[dict[str, Any]], shard: Shard) -> list[dict[str, Any]]:
    """Round-robin: prompt k goes to shard k mod S, so long and short prompts spread
    evenly (the prompts come sorted by problem id, not by length)."""
    return prompts[shard.index :: shard.count]


def problem_seed(seed: int, split: str, problem_id: int) -> int:
    """A problem's sampling seed depends on (seed, problem) only: never on which shard
    or batch the problem landed in."""
    digest = hashlib.sha256(f"{seed}:{split}:{problem_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def shard_files(folder: Path) -> dict[int, tuple[int, Path]]:
    """index -> (count, path) for the shard files in `folder`."""
    found: dict[int, tuple[int, Path]] = {}
    for path in sorted(folder.glob("shard-*-of-*.jsonl")):
        match = _SHARD_FILE.fullmatch(path.name)
        if match:
            found[int(match.group(1))] = (int(match.group(2)), path)
    return found


def _keys_in(path: Path) -> set[tuple[str, int]]:
    """The problems done in a shard file a writer may still hold (a torn last line is
    not done; a bad line before others is a DataError)."""
    return {problem_key(rec) for rec in complete_records(path)}


def shard_status(folder: Path, prompts: list[dict[str, Any]] | None) -> list[str]:
    """Problems with the shards in `folder`, one line each (empty = all complete)."""
    files = shard_files(folder)
    if not files:
        return [f"{folder}: no shard files"]
    counts = {count for count, _ in files.values()}
    if len(counts) != 1:
        return [f"{folder}: shard files of different counts {sorted(counts)}"]
    count = counts.pop()
    problems = []
    for index in range(count):
        shard = Shard(index, count)
        if index not in files:
            problems.append(f"missing shard {folder / shard.file_name()}")
        elif prompts is not None:
            want = {problem_key(p) for p in assign(prompts, shard)}
            have = _keys_in(files[index][1]) & want
            if have != want:
                problems.append(
                    f"incomplete shard {files[index][1]}: {len(have)} of {len(want)} problems"
                )
    return problems


def _checked_records(
    folder: Path, expected: list[dict[str, Any]] | None, source: str
) -> list[dict[str, Any]]:
    """Every record of the shard files; a problem twice (in one file or two) or one that
    is not among `expected` is an error naming the file and the problem."""
    want = {problem_key(p) for p in expected} if expected is not None else None
    seen: dict[tuple[Any, str, int], Path] = {}
    records = []
    for _, path in sorted(shard_files(folder).values(), key=lambda cp: cp[1].name):
        for _, rec in AppendLog(path).records:
            split, problem_id = problem_key(rec)
            key = (rec.get("model"), split, problem_id)
            if key in seen:
                where = "in it" if seen[key] == path else f"also in {seen[key]}"
                raise AppsHpcError(f"{path}: problem {split}/{problem_id} appears twice ({where})")
            if want is not None and (split, problem_id) not in want:
                raise AppsHpcError(f"{path}: problem {split}/{problem_id} is not in {source}")
            seen[key] = path
            records.append(rec)
    return records


def merge_shards(
    folder: Path,
    out: Path | None,
    expected: list[dict[str, Any]] | None,
    source: object = "the expected problems",
) -> Path:
    """Join the complete shard files of `folder` into `out` (default `<folder>.jsonl`),
    sorted by problem. A missing or incomplete shard, a problem twice, or a problem not
    among `expected` (read from `source`, named in the error) is an error."""
    problems = shard_status(folder, expected)
    if problems:
        raise AppsHpcError("; ".join(problems))
    records = _checked_records(folder, expected, str(source))
    records.sort(key=problem_key)
    target = out or folder.with_suffix(".jsonl")
    return write_atomic(target, "".join(dump_line(r) for r in records))


def output_paths(out: Path, what: str) -> tuple[Path, Path]:
    """(merged file, shard folder) from `--out` as users write it: `x.jsonl` is the merged
    file, its shards in the folder `x/` beside it; any other path is the shard folder,
    merged into `<folder>.jsonl`. A path that fits neither is refused before any work."""
    if out.suffix == ".jsonl":
        merged, folder = out, out.with_suffix("")
    elif out.suffix and not out.is_dir():
        raise AppsHpcError(
            f"--out {out}: expected a .jsonl file (the merged {what}) or a folder (its shards)"
        )
    else:
        merged, folder = out.parent / f"{out.name}.jsonl", out
    if merged.is_dir():
        raise AppsHpcError(f"--out {out}: {merged} is a folder, not a {what} file")
    try:
        if not stat.S_ISREG(merged.stat().st_mode):  # a FIFO would block, a device never end
            raise AppsHpcError(f"--out {out}: {merged} is not a regular file (a FIFO or device)")
    except FileNotFoundError:
        pass
    except OSError as exc:  # a symlink loop
        raise AppsHpcError(f"--out {out}: {merged}: {exc.strerror}") from None
    if folder.exists() and not folder.is_dir():
        raise AppsHpcError(f"--out {out}: {folder} (the shard folder) is a file")
    return merged, folder
