"""The reference harness's rules as pure functions: one test per rule."""

from __future__ import annotations

import pytest

from apps_hpc.evaluate.semantics import (
    HEADER,
    Outcome,
    call_comparison,
    call_output_matches,
    clean_failure,
    collapse,
    failure_detail,
    fix_expected,
    fix_inputs,
    module_source,
    reference_value,
    render_value,
    stdin_output_matches,
    truncate,
    uses_solution_class,
    wrap_stdin_program,
)


def test_header_is_the_reference_header_in_order() -> None:
    lines = HEADER.splitlines()
    assert lines[0] == "import sys" and lines[-1] == "from heapq import *"
    assert "import numpy as np" in lines
    assert len(lines) == 15


def test_stdin_wrapping_keeps_leading_imports_at_module_level() -> None:
    src = wrap_stdin_program("import sys\nfrom math import gcd\nn = int(input())\nprint(n)")
    assert src == (
        "import sys\nfrom math import gcd\n"
        "stdin = sys.stdin\nstdout = sys.stdout\ndef code():\n"
        "\tn = int(input())\n\tprint(n)\n"
    )


def test_stdin_wrapping_indents_imports_after_the_first_statement() -> None:
    src = wrap_stdin_program("x = 1\nimport os\n  import re")
    assert "\timport os\n" in src
    assert "\t  import re\n" in src  # not at column 0: an ordinary line


def test_stdin_program_without_statements_has_no_code_function() -> None:
    assert "def code" not in wrap_stdin_program("import sys")


def test_module_source_prepends_header() -> None:
    assert module_source("def f(): pass", call_based=True) == HEADER + "def f(): pass"
    assert module_source("print(1)", call_based=False).startswith(HEADER + "stdin = sys.stdin")


def test_solution_class_is_detected_by_text() -> None:
    assert uses_solution_class("class Solution:\n    pass")
    assert not uses_solution_class("class Sol:\n    pass")


def test_dict_first_argument_gets_int_keys_and_drops_other_args() -> None:
    assert fix_inputs([{"1": "a", "2": "b"}, 5]) == [{1: "a", 2: "b"}]
    assert fix_inputs([{"x": 1}]) == [{"x": 1}]  # int() fails: left alone
    assert fix_inputs([1, 2]) == [1, 2]
    assert fix_inputs([]) == []


def test_expected_dict_gets_int_keys() -> None:
    assert fix_expected({"3": 4}) == [{3: 4}]
    assert fix_expected([{"3": 4}]) == [{3: 4}]
    assert fix_expected([1, 2]) == [1, 2]


def test_call_based_compares_with_expected_or_its_first_element() -> None:
    assert call_output_matches(3, [3])
    assert call_output_matches([1, 2], [[1, 2]])
    assert call_output_matches([1, 2], [1, 2])
    assert not call_output_matches(4, [3])


def test_call_based_tuples_count_as_lists() -> None:
    assert call_output_matches((1, 2), [[1, 2]])
    assert call_output_matches([(1, 2), (3, 4)], [[[1, 2], [3, 4]]])


def test_call_based_equality_is_exact() -> None:
    assert not call_output_matches(0.1 + 0.2, [0.3])
    assert call_output_matches(1.0, [1])
    assert call_output_matches(True, [1])


def test_call_based_numpy_array_output_raises() -> None:
    np = pytest.importorskip("numpy")
    with pytest.raises(ValueError):
        call_output_matches(np.array([1, 2]), [[1, 2]])


def test_call_based_numpy_results_collapse_as_in_the_reference() -> None:
    np = pytest.importorskip("numpy")
    # Against a scalar, an array compares element-wise; the reference records the array
    # and keeps its first element (.item(0)).
    assert isinstance(call_comparison(np.array([5, 0]), 5), np.ndarray)
    assert call_output_matches(np.array([5, 0]), 5)
    assert not call_output_matches(np.array([0, 5]), 5)
    # A numpy scalar against [x] gives a one-element array: its truth value is defined.
    assert call_output_matches(np.int64(5), [5])
    assert call_output_matches(np.bool_(True), [True])
    assert reference_value(np.bool_(False)) is False
    assert reference_value(np.array([True, False])) is True


@pytest.mark.parametrize(
    ("out", "expected", "ok"),
    [
        (["1", "2"], "1\n2\n", True),  # step 1: joined and stripped
        (["  1 ", "2  "], "1\n2", True),  # step 1: each line stripped
        (["1", "", "2"], "1\n2", True),  # step 4: empty lines dropped
        (["0.3000001"], "0.3", True),  # step 4: np.allclose
        (["2 1"], "1 2", True),  # step 5: token sets
        (["b", "a"], "a\nb", True),  # step 5: line order ignored
        (["1 2"], "1 1 2", True),  # step 5: duplicate tokens ignored
        (["0.3004"], "0.3", True),  # step 6: rounded to 3 decimals
        (["1.2346 2"], "1.2345 2", False),
        (["yes"], "YES", False),
        (["1", "2", "3"], "1\n2", False),  # an extra line
        ([], "1", False),
    ],
)
def test_stdin_comparison_cascade(out: list[str], expected: str, ok: bool) -> None:
    assert stdin_output_matches(out, expected) is ok


def test_collapse_is_pass_only_when_all_pass_else_first_failure() -> None:
    p, w, t = Outcome.PASS, Outcome.WRONG_ANSWER, Outcome.TIMEOUT
    assert collapse([p, p]) is p
    assert collapse([p, t, w]) is t
    assert collapse([Outcome.COMPILE_ERROR]) is Outcome.COMPILE_ERROR


def test_reference_encoding() -> None:
    assert [o.reference_code() for o in Outcome] == [True, False, -1, -1, -2]


def test_detail_texts_are_cut_at_300_characters_with_an_ellipsis() -> None:
    assert truncate("x" * 300) == "x" * 300
    assert truncate("x" * 301) == "x" * 300 + "…"
    assert truncate(truncate("y" * 1000)) == "y" * 300 + "…"
    assert truncate(None) is None


def test_call_based_values_render_as_json_else_repr() -> None:
    np = pytest.importorskip("numpy")
    assert render_value([1, "a", None]) == '[1, "a", null]'
    assert render_value(np.array([5, 0])) == "array([5, 0])"
    assert render_value({1, 2}) == "{1, 2}"


def test_failure_detail_of_a_standard_input_test() -> None:
    detail = failure_detail(2, ["1 2", "3"], "4\n", False, "5\n", None)
    assert detail == {"test": 2, "input": "1 2\n3", "expected": "4\n", "got": "5\n", "error": None}


def test_failure_detail_of_a_call_based_test() -> None:
    detail = failure_detail(0, [[1, 2], "a"], [3], True, (1,), "ValueError: bad")
    assert detail == {
        "test": 0,
        "input": '[[1, 2], "a"]',
        "expected": "[3]",
        "got": "[1]",
        "error": "ValueError: bad",
    }


def test_an_untrusted_failure_is_reshaped_or_refused() -> None:
    good = {"test": 1, "input": "i" * 500, "expected": None, "got": "\ud800", "error": None}
    clean = clean_failure({**good, "extra": 1})
    assert clean == {**good, "input": "i" * 300 + "…", "got": "?"}
    assert clean_failure({**good, "test": -1}) is None
    assert clean_failure({**good, "test": True}) is None
    assert clean_failure({**good, "got": 5}) is None
    assert clean_failure([1]) is None
