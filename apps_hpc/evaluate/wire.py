"""The result channel between a sandboxed child and the evaluator, as pure functions.

The child sends one record per test it ran, never a verdict: what the program printed
(standard input) or what it returned (call-based), or the error it raised. The
evaluator, outside the program's process, compares the record with the expected output
(`semantics.judge`). Each record is a frame: test index and length (`FRAME`), then a
JSON object. Return values are encoded as plain data with tags, so that the evaluator
rebuilds values that compare exactly as the program's own did in the reference:
tuples, sets, dicts with non-string keys, numpy scalars and arrays, fractions, complex
numbers, `Decimal` and the `collections` containers keep their types. Subclasses of the
builtin types (an `IntEnum` or `(str, Enum)` member among them) are sent as the base
type's data, read with the base type's own methods (never the program's `__str__` or
`__eq__`); a number of another library's type (sympy, gmpy2) as the integer or fraction it
says it is (`numbers.Integral` / `numbers.Rational`). Any other object is sent as
`Opaque`: its type name, equal to nothing (see docs/evaluator.md, "Nothing to forge"). The
program's process only ever sends data, never the outcome of a comparison, so no
`__eq__` of the program's can decide a verdict.

Decoding is bounded (`read_record`): a record larger than its cap, with more elements,
deeper nesting, longer decimal integers than `Bounds` allows, or an array of a dtype or
size off the allow-list is refused with `WireError`, which the evaluator records as that
program's runtime error. Integers too long for a decimal literal travel as hexadecimal.
"""

from __future__ import annotations

import json
import math
import numbers
import re
import struct
from collections import Counter, OrderedDict, defaultdict, deque
from dataclasses import dataclass
from decimal import Decimal
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


@dataclass(frozen=True)
class Bounds:
    """What the evaluator decodes of an untrusted record. A standard-input record in the
    form `frame` writes (`{"kind": "out", "text": ..., "walls": n}`) is read as one
    string, so its text is bounded only by the record cap (the output cap); any other
    record is parsed as JSON within these bounds."""

    max_record_bytes: int = 16 * 1024 * 1024  # a record other than a stdout text
    max_elements: int = 2_000_000  # commas and brackets: an upper bound of the elements
    max_depth: int = 200  # nesting of a returned value (the encoder's own limit)
    max_int_digits: int = 4300  # a decimal literal (longer ints travel as hexadecimal)
    max_big_int_bits: int = 64 * 1024 * 1024  # a hexadecimal int
    max_fraction_bits: int = 200_000  # numerator / denominator (normalizing costs a gcd)
    max_decimal_chars: int = 100_000
    max_array_bytes: int = 64 * 1024 * 1024  # elements x itemsize of one array
    max_array_dims: int = 32


BOUNDS = Bounds()

_OUT_HEAD = re.compile(r'\{"kind": "out", "text": ')
_OUT_TAIL = re.compile(r', "walls": ([0-9]{1,9})\}')
_SCANSTRING: Any = json.decoder.scanstring  # type: ignore[attr-defined]


def read_record(payload: bytes, bounds: Bounds = BOUNDS) -> dict[str, Any]:
    """A frame's payload -> the record; WireError if it is not a record, or one the
    evaluator will not decode within `bounds`."""
    try:
        text = payload.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError as exc:
        raise WireError(f"unreadable record: {exc}") from None
    record = _stdout_record(text)
    if record is None:
        record = _parse_bounded(payload, text, bounds)
    if not isinstance(record, dict) or record.get("kind") not in RECORD_KINDS:
        raise WireError("not a result record")
    return record


def _stdout_record(text: str) -> dict[str, Any] | None:
    """A standard-input record exactly as `frame` writes it, read as one JSON string
    (linear, no nesting); None if it is not in that form."""
    head = _OUT_HEAD.match(text)
    if head is None or text[head.end() : head.end() + 1] != '"':
        return None
    try:
        value, end = _SCANSTRING(text, head.end() + 1)
    except ValueError:
        return None
    tail = _OUT_TAIL.fullmatch(text, end)
    if tail is None:
        return None
    return {"kind": "out", "text": value, "walls": int(tail.group(1))}


def _parse_bounded(payload: bytes, text: str, bounds: Bounds) -> Any:
    if len(payload) > bounds.max_record_bytes:
        raise WireError(f"a record of more than {bounds.max_record_bytes} bytes")
    structure = payload.count(b",") + payload.count(b"[") + payload.count(b"{")
    if structure > bounds.max_elements:
        raise WireError(f"a record of more than {bounds.max_elements} elements")

    def bounded_int(literal: str) -> int:
        if len(literal) > bounds.max_int_digits + 1:
            raise WireError(f"an integer literal of more than {bounds.max_int_digits} digits")
        return int(literal)

    try:
        if len(payload) <= bounds.max_int_digits:  # too short to hold a longer literal
            return json.loads(text)
        return json.loads(text, parse_int=bounded_int)
    except RecursionError:
        raise WireError("a record nested too deeply") from None
    except ValueError as exc:  # WireError included
        raise WireError(f"unreadable record: {exc}") from None


# out: stdout text; ret: a returned value; error: runtime error or timeout; compile.
RECORD_KINDS = ("out", "ret", "error", "compile")

MAX_DEPTH = 200
_HEX_BITS = 13_000  # ints longer than this (about 3,900 digits) travel as hexadecimal


def encode(value: Any, depth: int = 0) -> Any:
    """A returned value as JSON-able data (tags for what JSON lacks)."""
    if depth > MAX_DEPTH:
        raise WireError("value nested too deeply")
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return value
    if kind is int:
        return value if value.bit_length() <= _HEX_BITS else {"t": "int", "v": hex(value)}
    if kind is float:
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
        return {"t": "fraction", "v": [encode(value.numerator), encode(value.denominator)]}
    if kind is complex:
        return {"t": "complex", "v": [encode(value.real), encode(value.imag)]}
    if kind is range:
        return {"t": "range", "v": [encode(value.start), encode(value.stop), encode(value.step)]}
    return _encode_other(value, depth)


# A subclass of these travels as the base type's data, read with the base type's own
# method: an IntEnum member as its int, a (str, Enum) member as its string.
_SCALAR_DATA: tuple[tuple[type, Any], ...] = (
    (int, int.__int__),
    (float, float.__float__),
    (str, str.__str__),
)


def _encode_other(value: Any, depth: int) -> Any:
    """Subclasses of the builtin types travel as their data; numbers of other types as
    the number they say they are; anything else is opaque."""
    for base, data in _SCALAR_DATA:
        if isinstance(value, base):
            return encode(data(value), depth)
    if isinstance(value, Decimal):
        return {"t": "decimal", "v": Decimal.__str__(value)}
    if isinstance(value, Fraction):
        return encode(Fraction(value.numerator, value.denominator), depth)
    for base in (list, tuple, dict, set, frozenset):
        if isinstance(value, base):
            return encode(base(value), depth)
    if isinstance(value, numbers.Number):
        return _encode_number(value, depth)
    return _opaque_data(value)


def _opaque_data(value: Any) -> dict[str, Any]:
    return {"t": "opaque", "v": type(value).__name__}


def _encode_number(value: numbers.Number, depth: int) -> Any:
    """A number of a library's own type (sympy, gmpy2, mpmath), as the builtin number
    its ABC says it is; opaque if it cannot say."""
    try:
        if isinstance(value, numbers.Integral):
            number: Any = int(value)
        elif isinstance(value, numbers.Rational):
            number = Fraction(int(value.numerator), int(value.denominator))
        elif isinstance(value, numbers.Real):
            number = float(value)
        elif isinstance(value, numbers.Complex):
            number = complex(value)
        else:
            return _opaque_data(value)
    except (TypeError, ValueError, ArithmeticError):
        return _opaque_data(value)
    if isinstance(number, (int, float, complex, Fraction)):
        return encode(number, depth)
    return _opaque_data(value)


def _encode_numpy_scalar(value: np.generic, depth: int) -> Any:
    if not _dtype_allowed(value.dtype.str):
        return _opaque_data(value)
    return {"t": "np", "d": value.dtype.str, "v": encode(value.item(), depth + 1)}


def _encode_array(value: np.ndarray, depth: int) -> Any:
    if not _dtype_allowed(value.dtype.str):
        return {"t": "opaque", "v": "ndarray"}
    return {
        "t": "ndarray",
        "d": value.dtype.str,
        "s": list(value.shape),
        "v": _items(value.ravel().tolist(), depth),
    }


# The dtypes a value may carry: booleans, integers, floats, complex numbers and short
# unicode strings, in either byte order; nothing with a shape or fields of its own.
_DTYPE = re.compile(r"[<>|](?:b1|[iu][1248]|f[248]|c(?:8|16)|U[0-9]{1,4})")


def _dtype_allowed(dtype: Any) -> bool:
    return isinstance(dtype, str) and _DTYPE.fullmatch(dtype) is not None


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


_PLAIN = frozenset({int, str, float, bool, type(None)})  # JSON's scalars: decoded as they are


def decode(data: Any, bounds: Bounds = BOUNDS, depth: int = 0) -> Any:
    """`encode`'s inverse, on data from an untrusted child: WireError if malformed or
    beyond `bounds`."""
    if data is None or isinstance(data, (bool, str, int, float)):
        return data
    if depth > bounds.max_depth:
        raise WireError(f"a value nested more than {bounds.max_depth} deep")
    if isinstance(data, list):
        deeper = depth + 1
        return [x if type(x) in _PLAIN else decode(x, bounds, deeper) for x in data]
    if not isinstance(data, dict) or set(data) - {"t", "v", "d", "s"}:
        raise WireError("malformed value")
    builder = _BUILDERS.get(data.get("t"))  # type: ignore[arg-type]
    if builder is None:
        raise WireError(f"unknown value tag {data.get('t')!r}")
    try:
        return builder(_Node(data, bounds, depth))
    except WireError:
        raise
    except Exception as exc:  # a tag with the wrong shape of data
        raise WireError(f"malformed {data.get('t')} value: {exc}") from None


@dataclass(frozen=True)
class _Node:
    """A tagged value being decoded, with the bounds and its depth."""

    data: dict[str, Any]
    bounds: Bounds
    depth: int

    def item(self, value: Any) -> Any:
        return decode(value, self.bounds, self.depth + 1)

    def items(self) -> list[Any]:
        values = self.data["v"]
        if not isinstance(values, list):
            raise WireError("not a list")
        return decode(values, self.bounds, self.depth)

    def pairs(self) -> list[tuple[Any, Any]]:
        return [(self.item(k), self.item(v)) for k, v in self.data["v"]]


def _int(node: _Node, value: Any, max_bits: int) -> int:
    number = node.item(value)
    if type(number) is not int:
        raise WireError("not an int")
    if number.bit_length() > max_bits:
        raise WireError(f"an int of more than {max_bits} bits")
    return number


def _hex_int(node: _Node) -> int:
    text = node.data["v"]
    if not isinstance(text, str) or not re.fullmatch(r"-?0x[0-9a-f]+", text):
        raise WireError("malformed int")
    if 4 * len(text) > node.bounds.max_big_int_bits + 16:
        raise WireError(f"an int of more than {node.bounds.max_big_int_bits} bits")
    return int(text, 16)


def _scalar(node: _Node) -> Any:
    dtype = node.data["d"]
    if not _dtype_allowed(dtype):
        raise WireError(f"dtype {str(dtype)[:40]!r} is not allowed")
    return np.dtype(dtype).type(node.item(node.data["v"]))


def _array(node: _Node) -> Any:
    dtype, shape = node.data["d"], node.data["s"]
    if not _dtype_allowed(dtype):
        raise WireError(f"dtype {str(dtype)[:40]!r} is not allowed")
    if not isinstance(shape, list) or len(shape) > node.bounds.max_array_dims:
        raise WireError("malformed shape")
    if not all(type(n) is int and n >= 0 for n in shape):
        raise WireError("malformed shape")
    flat = node.items()
    if math.prod(shape) != len(flat):
        raise WireError("shape and data disagree")
    if len(flat) * np.dtype(dtype).itemsize > node.bounds.max_array_bytes:
        raise WireError(f"an array of more than {node.bounds.max_array_bytes} bytes")
    return np.array(flat, dtype=np.dtype(dtype)).reshape(shape)


def _float(node: _Node) -> float:
    if node.data["v"] not in ("nan", "inf", "-inf"):
        raise WireError("malformed float")
    return float(node.data["v"])


def _opaque(node: _Node) -> Opaque:
    return Opaque(str(node.data["v"])[:100])


def _fraction(node: _Node) -> Fraction:
    bits = node.bounds.max_fraction_bits
    numerator, denominator = node.data["v"]
    return Fraction(_int(node, numerator, bits), _int(node, denominator, bits))


def _decimal(node: _Node) -> Decimal:
    text = node.data["v"]
    if not isinstance(text, str) or len(text) > node.bounds.max_decimal_chars:
        raise WireError("malformed decimal")
    return Decimal(text)


def _complex(node: _Node) -> complex:
    real, imag = node.data["v"]
    return complex(node.item(real), node.item(imag))


def _range(node: _Node) -> range:
    start, stop, step = (_int(node, x, 4096) for x in node.data["v"])
    return range(start, stop, step)


_BUILDERS: dict[str, Any] = {
    "tuple": lambda n: tuple(n.items()),
    "set": lambda n: set(n.items()),
    "frozenset": lambda n: frozenset(n.items()),
    "deque": lambda n: deque(n.items()),
    "dict": lambda n: dict(n.pairs()),
    "ordereddict": lambda n: OrderedDict(n.pairs()),
    "counter": lambda n: Counter(dict(n.pairs())),
    "fraction": _fraction,
    "decimal": _decimal,
    "int": _hex_int,
    "complex": _complex,
    "range": _range,
    "np": _scalar,
    "ndarray": _array,
    "float": _float,
    "opaque": _opaque,
}
