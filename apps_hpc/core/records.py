"""The record formats of DESIGN.md (prompts, samples, results), checked by the schema;
the lines they are read from are core/jsonl.py's."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from apps_hpc.core.errors import DataError
from apps_hpc.core.jsonl import check_regular, iter_jsonl
from apps_hpc.core.schema import PromptRecord, ResultRecord, SampleRecord, first_problem

_PROMPT = TypeAdapter(PromptRecord)
_SAMPLE = TypeAdapter(SampleRecord)
_RESULT = TypeAdapter(ResultRecord)
_RESULT_KEYS = {f.name for f in dataclasses.fields(ResultRecord)} - {"extra"}


def _validated(adapter: TypeAdapter[Any], cls: type, data: Any, where: tuple[str, int]) -> Any:
    if not isinstance(data, dict):
        raise DataError(*where, "<row>", "expected a JSON object")
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        raise DataError(*where, *first_problem(exc, cls)) from None


ProblemKey = tuple[str, int]  # (split, problem_id)


def problem_key(rec: Mapping[str, Any] | SampleRecord | ResultRecord) -> ProblemKey:
    """A problem's key in every file and record: (split, problem_id); a line without a
    split (or with an empty one) is from the test split, as the published run's are."""
    if isinstance(rec, Mapping):
        return (rec.get("split") or "test", rec.get("problem_id"))  # type: ignore[return-value]
    return (rec.split, rec.problem_id)


def parse_prompt(rec: Any, where: tuple[str, int]) -> dict[str, Any]:
    """A prompts line, checked by the schema; the record itself is returned."""
    _validated(_PROMPT, PromptRecord, rec, where)
    return rec


_SAMPLE_KEYS = {f.name for f in dataclasses.fields(SampleRecord)}


def _metadata_keys(rec: dict[str, Any], where: tuple[str, int]) -> set[str]:
    """The keys of a samples line that the schema does not name: other tools' metadata
    (a task id, the prompt, per-program notes), left out. One that reads like a misspelt
    field (`completion`, `code`) is refused, naming the field it resembles."""
    extra = set(rec) - _SAMPLE_KEYS
    for key in sorted(extra):
        near = difflib.get_close_matches(str(key), sorted(_SAMPLE_KEYS), n=1, cutoff=0.8)
        if near:
            raise DataError(*where, str(key), f"unknown key (did you mean '{near[0]}'?)")
    return extra


def parse_sample(rec: Any, where: tuple[str, int], default_model: str) -> SampleRecord:
    """A samples line (`split` defaults to test, `model` to the file's stem); keys the
    schema does not name are metadata and left out (`_metadata_keys`)."""
    if isinstance(rec, dict):
        extra = _metadata_keys(rec, where)
        rec = {
            **{k: v for k, v in rec.items() if k not in extra},
            "split": problem_key(rec)[0],
            "model": rec.get("model") or default_model,
        }
    return _validated(_SAMPLE, SampleRecord, rec, where)


def parse_result(rec: Any, where: tuple[str, int]) -> ResultRecord:
    """A results line; keys the schema does not name are kept in `extra`."""
    if isinstance(rec, dict):
        extra = {k: v for k, v in rec.items() if k not in _RESULT_KEYS}
        rec = {k: v for k, v in rec.items() if k in _RESULT_KEYS}
        rec.update(split=problem_key(rec)[0], extra=extra)
        rec["tests"] = rec.get("tests") or []
    return _validated(_RESULT, ResultRecord, rec, where)


def read_samples(path: str | Path) -> list[SampleRecord]:
    path = Path(path)
    check_regular(path, "samples file")
    model = path.stem
    return [parse_sample(rec, (str(path), n), model) for n, rec in iter_jsonl(path)]


def read_results(path: str | Path, growing: bool = False) -> list[ResultRecord]:
    """The records of a results file. `growing`: a writer still appends to it (it holds
    the lock), so a torn last line is its record in progress, left out."""
    path = Path(path)
    check_regular(path, "results file")
    on_torn = (lambda torn: None) if growing else None
    return [parse_result(rec, (str(path), n)) for n, rec in iter_jsonl(path, on_torn=on_torn)]
