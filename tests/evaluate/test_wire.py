"""The result channel's value encoding: a returned value rebuilt outside the program's
process compares with the expected output exactly as the value itself does in the
reference (`call_output_matches`, raising where it raises)."""

from __future__ import annotations

import enum
import json
from collections import Counter, OrderedDict, deque
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

from apps_hpc.evaluate import wire
from apps_hpc.evaluate.semantics import call_output_matches

VALUES: list[Any] = [
    None,
    True,
    0,
    -(10**40),
    1.5,
    float("nan"),
    float("inf"),
    "text\udcff",
    [1, [2, 3]],
    (1, 2),
    [(1, 2), (3, 4)],
    {1: "a", "1": (2,)},
    {1, 2},
    frozenset({3}),
    deque([1, 2]),
    Counter("aab"),
    OrderedDict([(1, 2)]),
    Fraction(1, 3),
    complex(1, -2),
    range(3),
    np.int64(7),
    np.float32(0.1),
    np.bool_(True),
    np.array([1, 2, 3]),
    np.array([[1.5, 2.0]], dtype=np.float32),
    np.array([], dtype=np.int64),
    np.array(["a", "b"]),
]
EXPECTED: list[Any] = [
    None,
    True,
    1,
    0,
    [1],
    [1, 2],
    [[1, 2], [3, 4]],
    [[[1, 2], [3, 4]]],
    [1.5],
    "text",
    [{"1": "a"}],
    [7],
    [0.1],
    [True],
    [[1, 2, 3]],
    [[1.5, 2.0]],
    [1, 2, 3],
    [],
    [0, 1, 2],
    ["a", "b"],
]


def _outcome(output: Any, expected: Any) -> Any:
    try:
        return call_output_matches(output, expected)
    except Exception as exc:
        return type(exc)


def _through_the_wire(value: Any) -> Any:
    payload = json.dumps(wire.encode(value), ensure_ascii=False)
    return wire.decode(json.loads(payload))


@pytest.mark.parametrize("value", VALUES, ids=[repr(v)[:30] for v in VALUES])
def test_a_value_compares_as_it_did(value: Any) -> None:
    rebuilt = _through_the_wire(value)
    assert type(rebuilt) is type(value)
    for expected in EXPECTED:
        assert _outcome(rebuilt, expected) == _outcome(value, expected), expected


def test_subclasses_travel_as_their_data_and_objects_as_opaque() -> None:
    class Liar(list):
        def __eq__(self, other: object) -> bool:
            return True

    class Thing:
        pass

    assert _through_the_wire(Liar([1, 2])) == [1, 2]
    assert type(_through_the_wire(Liar([1, 2]))) is list
    opaque = _through_the_wire(Thing())
    assert isinstance(opaque, wire.Opaque) and repr(opaque) == "<Thing object>"
    assert not call_output_matches(opaque, [1])
    for value in (np.array([b"a"]), np.array([1, "a"], dtype=object), np.datetime64(1, "D")):
        assert isinstance(_through_the_wire(value), wire.Opaque)


@pytest.mark.parametrize(
    "data",
    [
        {"t": "nope"},
        {"t": "tuple"},
        {"t": "np", "d": "zz", "v": 1},
        {"x": 1},
        {"t": "float", "v": "1"},
    ],
)
def test_malformed_values_are_refused(data: Any) -> None:
    with pytest.raises(wire.WireError):
        wire.decode(data)


def test_too_deep_a_value_is_refused_by_the_encoder() -> None:
    value: list[Any] = []
    for _ in range(300):
        value = [value]
    with pytest.raises(wire.WireError):
        wire.encode(value)


class _Answer(str, enum.Enum):
    VALUE = "value"


class _Six(enum.IntEnum):
    SIX = 6


class _Amount(float):
    def __repr__(self) -> str:
        return "Amount"


class _Word(str):
    def __str__(self) -> str:
        return "WORD"


CARRIED: list[Any] = [
    Decimal(15),
    Decimal("6.50"),
    Decimal("NaN"),
    _Answer.VALUE,
    _Six.SIX,
    _Amount(1.5),
    _Word("value"),
    [_Six.SIX, (_Answer.VALUE,)],
    10**5000,
]


@pytest.mark.parametrize(
    "value", CARRIED, ids=[f"{type(v).__name__}-{i}" for i, v in enumerate(CARRIED)]
)
def test_numbers_and_subclasses_compare_as_the_originals(value: Any) -> None:
    rebuilt = _through_the_wire(value)
    for expected in [*EXPECTED, 15, [15], "value", ["value"], 6, [6], 1.5, [6.5], 10**5000]:
        assert _outcome(rebuilt, expected) == _outcome(value, expected), expected


def test_library_numbers_travel_as_the_number_they_are() -> None:
    sympy = pytest.importorskip("sympy")
    assert _through_the_wire(sympy.Integer(6)) == 6
    assert _through_the_wire(sympy.Rational(1, 3)) == Fraction(1, 3)
    assert type(_through_the_wire(sympy.Float(0.5))) is float
