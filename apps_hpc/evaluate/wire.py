"""The result channel between a sandboxed child and the evaluator, as pure functions.

The child sends one record per test it ran, never a verdict: what the program printed
(standard input) or what it returned (call-based), or the error it raised. The
evaluator, outside the program's process, compares the record with the expected output
(`semantics.judge`). Each record is a frame: test index and length (`FRAME`), then a
JSON object. Return values are encoded as plain data with tags, so that the evaluator
rebuilds values that compare exactly as the program's own did in the reference:
tuples, sets, dicts with non-string keys, numpy scalars and arrays, fractions, complex
numbers and the `collections` containers keep their types. Subclasses of the builtin
types are sent as their base type (their data, not their `__eq__`). Any other object is
sent as `Opaque`: its type name, equal to nothing (see docs/evaluator.md, "Nothing to forge").
"""

from __future__ import annotations

import json
import math
import struct
from collections import Counter, OrderedDict, defaultdict, deque
from fractions import Fraction
from typing import Any

import numpy as np

FRAME = struct.Struct("<IQ")  # test index, payload length


class WireError(ValueError):
    """A record that is not one the harness writes."""


class Opaque:
    """A returned object the channel cannot carry as data: equal to nothing, as an
    object without its own `__eq__` is to the expected output in the reference."""

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name

    def __repr__(self) -> str:
        return f"<{self.type_name} object>"


def frame(index: int, record: dict[str, Any]) -> bytes:
    data = json.dumps(record, ensure_ascii=False).encode("utf-8", "surrogatepass")
    return FRAME.pack(index, len(data)) + data


def read_record(payload: bytes) -> dict[str, Any]:
    """A frame's payload -> the record; WireError if it is not a record."""
    try:
        record = json.loads(payload.decode("utf-8", "surrogatepass"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise WireError(f"unreadable record: {exc}") from None
    if not isinstance(record, dict) or record.get("kind") not in RECORD_KINDS:
        raise WireError("not a result record")
    return record


# out: stdout text; ret: a returned value; error: runtime error or timeout; compile.
RECORD_KINDS = ("out", "ret", "error", "compile")

_SCALARS = (str, int, float)


def encode(value: Any, depth: int = 0) -> Any:
    """A returned value as JSON-able data (tags for what JSON lacks)."""
    if depth > 200:
        raise WireError("value nested too deeply")
    if value is None or type(value) in (bool, str, int):
        return value
    if type(value) is float:
        return value if math.isfinite(value) else {"t": "float", "v": repr(value)}
    if isinstance(value, np.generic):
        return _encode_numpy_scalar(value, depth)
    if isinstance(value, np.ndarray):
        return _encode_array(value, depth)
    return _encode_container(value, depth)


def _items(value: Any, depth: int) -> list[Any]:
    return [encode(x, depth + 1) for x in value]


def _encode_container(value: Any, depth: int) -> Any:
    kind = type(value)
    if kind is list:
        return _items(value, depth)
    if kind in _TAGGED_SEQUENCES:
        return {"t": _TAGGED_SEQUENCES[kind], "v": _items(value, depth)}
    if kind in _TAGGED_MAPPINGS:
        pairs = [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]
        return {"t": _TAGGED_MAPPINGS[kind], "v": pairs}
    if kind is Fraction:
        return {"t": "fraction", "v": [value.numerator, value.denominator]}
    if kind is complex:
        return {"t": "complex", "v": [encode(value.real), encode(value.imag)]}
    if kind is range:
        return {"t": "range", "v": [value.start, value.stop, value.step]}
    return _encode_subclass(value, depth)


def _encode_subclass(value: Any, depth: int) -> Any:
    """A subclass of a builtin type travels as its base value; anything else is opaque."""
    for base in (bool, int, float, str, list, tuple, dict, set, frozenset):
        if isinstance(value, base):
            return encode(base(value), depth)
    return {"t": "opaque", "v": type(value).__name__}


def _encode_numpy_scalar(value: np.generic, depth: int) -> Any:
    if value.dtype.kind not in "biufcU":
        return {"t": "opaque", "v": type(value).__name__}
    return {"t": "np", "d": value.dtype.str, "v": encode(value.item(), depth + 1)}


def _encode_array(value: np.ndarray, depth: int) -> Any:
    if value.dtype.kind not in "biufcU":
        return {"t": "opaque", "v": "ndarray"}
    return {
        "t": "ndarray",
        "d": value.dtype.str,
        "s": list(value.shape),
        "v": _items(value.ravel().tolist(), depth),
    }


_TAGGED_SEQUENCES: dict[type, str] = {
    tuple: "tuple",
    set: "set",
    frozenset: "frozenset",
    deque: "deque",
}
_TAGGED_MAPPINGS: dict[type, str] = {
    dict: "dict",
    OrderedDict: "ordereddict",
    defaultdict: "dict",
    Counter: "counter",
}


def decode(data: Any) -> Any:
    """`encode`'s inverse, on data from an untrusted child: WireError if malformed."""
    if data is None or isinstance(data, (bool, str, int, float)):
        return data
    if isinstance(data, list):
        return [decode(x) for x in data]
    if not isinstance(data, dict) or set(data) - {"t", "v", "d", "s"}:
        raise WireError("malformed value")
    builder = _BUILDERS.get(data.get("t"))  # type: ignore[arg-type]
    if builder is None:
        raise WireError(f"unknown value tag {data.get('t')!r}")
    try:
        return builder(data)
    except WireError:
        raise
    except Exception as exc:  # a tag with the wrong shape of data
        raise WireError(f"malformed {data.get('t')} value: {exc}") from None


def _pairs(data: dict[str, Any]) -> list[tuple[Any, Any]]:
    return [(decode(k), decode(v)) for k, v in data["v"]]


def _scalar(data: dict[str, Any]) -> Any:
    return np.dtype(data["d"]).type(decode(data["v"]))


def _array(data: dict[str, Any]) -> Any:
    flat = [decode(x) for x in data["v"]]
    return np.array(flat, dtype=np.dtype(data["d"])).reshape([int(n) for n in data["s"]])


def _float(data: dict[str, Any]) -> float:
    if data["v"] not in ("nan", "inf", "-inf"):
        raise WireError("malformed float")
    return float(data["v"])


def _opaque(data: dict[str, Any]) -> Opaque:
    return Opaque(str(data["v"])[:100])


def _fraction(data: dict[str, Any]) -> Fraction:
    return Fraction(int(data["v"][0]), int(data["v"][1]))


def _complex(data: dict[str, Any]) -> complex:
    return complex(decode(data["v"][0]), decode(data["v"][1]))


_BUILDERS: dict[str, Any] = {
    "tuple": lambda d: tuple(decode(x) for x in d["v"]),
    "set": lambda d: {decode(x) for x in d["v"]},
    "frozenset": lambda d: frozenset(decode(x) for x in d["v"]),
    "deque": lambda d: deque(decode(x) for x in d["v"]),
    "dict": lambda d: dict(_pairs(d)),
    "ordereddict": lambda d: OrderedDict(_pairs(d)),
    "counter": lambda d: Counter(dict(_pairs(d))),
    "fraction": _fraction,
    "complex": _complex,
    "range": lambda d: range(*[int(x) for x in d["v"]]),
    "np": _scalar,
    "ndarray": _array,
    "float": _float,
    "opaque": _opaque,
}
