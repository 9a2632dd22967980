"""Config values checked against their declared types (pure).

An experiment YAML, a `--set` and a cluster profile are read into dataclasses; every value
is checked against the field's annotation when it is loaded, so `sample.n: ten` is one
error naming the key (`expected an integer, got 'ten'`), not a traceback later.
SLURM time limits are read here too (`slurm_minutes`).
"""

from __future__ import annotations

import math
import re
import types
import typing
from typing import Any

_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
_SLURM_TIME = re.compile(
    r"(?:(?P<days>\d+)-(?P<dh>\d+)(?::(?P<dm>\d+)(?::(?P<ds>\d+))?)?)"  # D-HH[:MM[:SS]]
    r"|(?:(?P<a>\d+)(?::(?P<b>\d+)(?::(?P<c>\d+))?)?)"  # MM, MM:SS, HH:MM:SS
)


def _is_instance(value: Any, tp: Any) -> bool:
    if tp is Any:
        return True
    if tp is type(None):
        return value is None
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_is_instance(value, arg) for arg in typing.get_args(tp))
    if origin is not None:
        return isinstance(value, origin)
    return isinstance(value, tp)


def describe(tp: Any) -> str:
    """`int | None` -> 'an integer or null'."""
    if tp is type(None):
        return "null"
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(arg) for arg in typing.get_args(tp))
    if (origin or tp) is dict:
        return "a mapping"
    if (origin or tp) is list:
        return "a list"
    return _NAMES.get(tp, getattr(tp, "__name__", str(tp)))


def type_error(value: Any, tp: Any) -> str | None:
    """None when `value` fits the annotation `tp`, else 'expected X, got V'."""
    if _is_instance(value, tp):
        return None
    return f"expected {describe(tp)}, got {value!r}"


def field_types(cls: type) -> dict[str, Any]:
    """A dataclass's fields and their (evaluated) annotations."""
    return typing.get_type_hints(cls)


def slurm_minutes(value: Any) -> int:
    """A time limit in minutes: an integer, or SLURM's `MM`, `MM:SS`, `HH:MM:SS`,
    `D-HH`, `D-HH:MM`, `D-HH:MM:SS` (seconds round up). ValueError when it is neither."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    text = str(value).strip() if isinstance(value, str) else ""
    match = _SLURM_TIME.fullmatch(text)
    if not match:
        raise ValueError(
            f"expected minutes or SLURM's MM:SS, HH:MM:SS, D-HH, D-HH:MM:SS, got {value!r}"
        )
    g = {k: int(v) for k, v in match.groupdict().items() if v is not None}
    if "days" in g:
        seconds = g["days"] * 86400 + g["dh"] * 3600 + g.get("dm", 0) * 60 + g.get("ds", 0)
    elif "c" in g:
        seconds = g["a"] * 3600 + g["b"] * 60 + g["c"]
    else:
        seconds = g["a"] * 60 + g.get("b", 0)
    if seconds <= 0:
        raise ValueError(f"expected a positive time limit, got {value!r}")
    return math.ceil(seconds / 60)
