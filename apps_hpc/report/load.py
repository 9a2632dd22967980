"""Results files -> one `ModelResults` per (file, model), and the refusals that keep a
comparison honest: a problem twice in a file, a problem with n = 0, and models side by
side over different problem sets are errors naming the files and the counts, unless
`allow_partial` (then they are reported, and the report says what was left out)."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from apps_hpc.core.errors import AppsHpcError
from apps_hpc.core.lock import live_holder
from apps_hpc.core.records import ProblemKey, problem_key, read_results
from apps_hpc.core.schema import ResultRecord

log = logging.getLogger(__name__)

PARTIAL_HINT = "pass --allow-partial to report anyway"


@dataclass
class ModelResults:
    name: str
    source: Path
    records: list[ResultRecord]
    notes: list[str] = field(default_factory=list)  # what --allow-partial left out

    @property
    def keys(self) -> list[ProblemKey]:
        return [problem_key(r) for r in self.records]


def key_text(key: ProblemKey) -> str:
    return f"{key[0]}/{key[1]}"


def duplicates(records: list[ResultRecord]) -> dict[ProblemKey, int]:
    """Problems that appear more than once, with their number of lines."""
    counts = Counter(problem_key(r) for r in records)
    return {key: count for key, count in counts.items() if count > 1}


def without_programs(records: list[ResultRecord]) -> list[ProblemKey]:
    return [problem_key(r) for r in records if r.n == 0]


def _refuse_duplicates(model: ModelResults, allow_partial: bool) -> None:
    dups = duplicates(model.records)
    if not dups:
        return
    first, count = next(iter(dups.items()))
    what = (
        f"{len(dups)} of the {len(set(model.keys))} problems of model {model.name!r} appear "
        f"more than once (e.g. {key_text(first)}: {count} lines)"
    )
    if not allow_partial:
        raise AppsHpcError(f"{model.source}: {what}; {PARTIAL_HINT} (first line of each kept)")
    seen: set[ProblemKey] = set()
    kept = []
    for rec in model.records:
        if problem_key(rec) not in seen:
            seen.add(problem_key(rec))
            kept.append(rec)
    model.records = kept
    model.notes.append(f"{model.source}: {what}; the first line of each was kept")


def _refuse_empty(model: ModelResults, allow_partial: bool) -> None:
    empty = without_programs(model.records)
    if not empty:
        return
    what = (
        f"{len(empty)} of the {len(model.records)} problems of model {model.name!r} have "
        f"n = 0 (no programs), e.g. {key_text(empty[0])}"
    )
    if not allow_partial:
        raise AppsHpcError(f"{model.source}: {what}; {PARTIAL_HINT} (they are left out)")
    model.records = [r for r in model.records if r.n > 0]
    model.notes.append(f"{model.source}: {what}; left out")


def problem_set_difference(a: ModelResults, b: ModelResults) -> str | None:
    """None when both hold the same problems, else one line with the counts."""
    keys_a, keys_b = set(a.keys), set(b.keys)
    if keys_a == keys_b:
        return None
    only_a, only_b = sorted(keys_a - keys_b), sorted(keys_b - keys_a)
    example = key_text((only_a or only_b)[0])
    return (
        f"{a.source} ({a.name!r}) has {len(keys_a)} problems, {b.source} ({b.name!r}) has "
        f"{len(keys_b)}: {len(only_a)} only in the first, {len(only_b)} only in the second "
        f"(e.g. {example}), {len(keys_a & keys_b)} in both"
    )


def check_problem_sets(models: list[ModelResults], allow_partial: bool) -> list[str]:
    """Refuse models over different problem sets; with allow_partial, return the notes."""
    notes = []
    for other in models[1:]:
        diff = problem_set_difference(models[0], other)
        if diff and not allow_partial:
            raise AppsHpcError(f"different problem sets: {diff}; {PARTIAL_HINT}")
        if diff:
            notes.append(
                f"different problem sets: {diff}; each model's pass@k is over its "
                "own problems, the Δ over the common ones"
            )
    return notes


def check_ks(model: ModelResults, ks: tuple[int, ...]) -> None:
    for rec in model.records:
        for k in ks:
            if k > rec.n:
                raise AppsHpcError(
                    f"{model.source}: k={k} is larger than the {rec.n} samples of problem "
                    f"{rec.split}/{rec.problem_id}; pass --k with values <= {rec.n}"
                )


def _being_written(path: Path, allow_partial: bool) -> str | None:
    """A results file an eval still writes (it holds the file's lock) is refused: its
    pass@k would be over the problems done so far. With allow_partial, the note."""
    holder = live_holder(path)
    if holder is None:
        return None
    what = f"{path}: still being written by an eval ({holder})"
    if not allow_partial:
        raise AppsHpcError(f"{what}; report when it ends, or {PARTIAL_HINT} (what is done so far)")
    return f"{what}; the problems done so far"


def read_models(paths: list[Path], allow_partial: bool = False) -> list[ModelResults]:
    """One entry per (file, model); a model name seen twice gets its file stem added."""
    models: list[ModelResults] = []
    for path in paths:
        partial = _being_written(path, allow_partial)
        by_model: dict[str, list[ResultRecord]] = {}
        for rec in read_results(path, growing=partial is not None):
            by_model.setdefault(rec.model, []).append(rec)
        if not by_model:
            raise AppsHpcError(f"{path}: no results in this file")
        names = {m.name for m in models}
        for model, recs in by_model.items():
            name = model if model not in names else f"{model} ({path.stem})"
            models.append(ModelResults(name, path, recs, [partial] if partial else []))
    return models


def load_models(
    paths: list[Path], ks: tuple[int, ...], allow_partial: bool = False
) -> tuple[list[ModelResults], list[str]]:
    """The models of `paths`, checked; and the notes of what `allow_partial` let through."""
    models = read_models(paths, allow_partial)
    for model in models:
        _refuse_duplicates(model, allow_partial)
        _refuse_empty(model, allow_partial)
        check_ks(model, ks)
    notes = [note for m in models for note in m.notes] + check_problem_sets(models, allow_partial)
    for note in notes:
        log.warning("partial report: %s", note)
    return models, notes
