"""Reference semantics that need a real run: each program runs in the sandbox pool."""

from __future__ import annotations

import pytest

from apps_hpc.core.schema import Verdict
from tests.helpers import run_one

ECHO_TESTS = (["3\n"], ["3\n"])


def test_stdin_program_passes(pool) -> None:
    r = run_one(pool, "n = int(input())\nprint(n)", ["3\n", "5\n"], ["3\n", "5\n"])
    assert (r.verdict, r.tests) == (Verdict.PASS, [True, True])


def test_main_guard_never_runs_so_output_is_empty(pool) -> None:
    code = "def main():\n    print(input())\nif __name__ == '__main__':\n    main()"
    assert run_one(pool, code, *ECHO_TESTS).tests == [False]


def test_global_statement_in_nested_function_is_a_runtime_error(pool) -> None:
    code = "x = 0\ndef f():\n    global x\n    x += 1\nf()\nprint(input())"
    assert run_one(pool, code, *ECHO_TESTS).verdict is Verdict.RUNTIME_ERROR


def test_syntax_error_is_a_compile_error_with_one_entry(pool) -> None:
    r = run_one(pool, "print(", ["1"], ["1"])
    assert (r.verdict, r.tests) == (Verdict.COMPILE_ERROR, [-2])


def test_only_imports_is_a_compile_error(pool) -> None:
    assert run_one(pool, "import sys", *ECHO_TESTS).tests == [-2]


def test_stdin_reading_styles_work(pool) -> None:
    for code in (
        "import sys\nprint(sys.stdin.readline().strip())",
        "import sys\nprint(sys.stdin.read().strip())",
        "import sys\nfor line in sys.stdin:\n    print(line.strip())",
        "print(open(0).read().strip())",
        "from sys import stdin\nprint(stdin.readline().strip())",
    ):
        assert run_one(pool, code, ["3"], ["3"]).verdict is Verdict.PASS, code


def test_stdin_buffer_is_a_runtime_error(pool) -> None:
    code = "import sys\nprint(sys.stdin.buffer.read().decode())"
    assert run_one(pool, code, ["3"], ["3"]).verdict is Verdict.RUNTIME_ERROR


def test_output_through_the_real_stdout_is_lost(pool) -> None:
    code = "from sys import stdout\nstdout.write(input() + '\\n')"
    assert run_one(pool, code, ["3"], ["3"]).verdict is Verdict.WRONG_ANSWER


def test_sys_exit_ends_the_test_normally(pool) -> None:
    code = "import sys\nprint(input())\nsys.exit(0)\nprint('never')"
    assert run_one(pool, code, ["3"], ["3"]).verdict is Verdict.PASS


def test_exit_builtin_is_disabled_as_in_the_reference(pool) -> None:
    assert run_one(pool, "print(input())\nexit()", ["3"], ["3"]).verdict is Verdict.RUNTIME_ERROR


def test_importing_resource_is_blocked_as_in_the_reference(pool) -> None:
    assert run_one(pool, "import resource\nprint(input())", ["3"], ["3"]).tests == [-2]


def test_reading_past_the_input_is_a_runtime_error(pool) -> None:
    assert run_one(pool, "input()\ninput()", ["3"], ["3"]).verdict is Verdict.RUNTIME_ERROR


def test_call_based_solution_instance_is_shared_between_tests(pool) -> None:
    code = (
        "class Solution:\n    def __init__(self):\n        self.calls = 0\n"
        "    def f(self, x):\n        self.calls += 1\n        return self.calls"
    )
    r = run_one(pool, code, [[0], [0], [0]], [[1], [2], [3]], fn_name="f")
    assert r.tests == [True, True, True]


def test_call_based_function_without_class_is_called_on_the_module(pool) -> None:
    r = run_one(pool, "def add(a, b):\n    return a + b", [[1, 2]], [[3]], fn_name="add")
    assert r.verdict is Verdict.PASS


def test_call_based_tuple_output_and_int_dict_keys(pool) -> None:
    code = "def f(d):\n    return tuple(sorted(d))"
    r = run_one(pool, code, [[{"2": "a", "1": "b"}]], [[[1, 2]]], fn_name="f")
    assert r.verdict is Verdict.PASS


def test_call_based_missing_method_is_a_compile_error(pool) -> None:
    r = run_one(pool, "def g(x):\n    return x", [[1]], [[1]], fn_name="f")
    assert r.tests == [-2]


def test_call_based_top_level_input_is_a_compile_error(pool) -> None:
    r = run_one(pool, "x = input()\ndef f(a):\n    return a", [[1]], [[1]], fn_name="f")
    assert r.tests == [-2]


def test_call_based_system_exit_loses_every_test(pool) -> None:
    r = run_one(pool, "def f(a):\n    raise SystemExit", [[1], [2]], [[1], [2]], fn_name="f")
    assert (r.verdict, r.tests) == (Verdict.RUNTIME_ERROR, [-1, -1])


def test_per_test_timeout_then_next_tests_still_run(pool_all_tests) -> None:
    code = "n = int(input())\nwhile n == 1:\n    pass\nprint(n)"
    r = run_one(pool_all_tests, code, ["1", "2"], ["1", "2"])
    assert (r.verdict, r.tests) == (Verdict.TIMEOUT, [-1, True])
    assert r.runs == 1  # CPU time decided it: no re-check needed


def test_wall_clock_timeout_is_rechecked(pool) -> None:
    r = run_one(pool, "import time\ntime.sleep(10)\nprint(input())", ["1"], ["1"])
    assert (r.verdict, r.runs) == (Verdict.TIMEOUT, 2)


def test_swallowed_timeout_prints_the_alarm_line_into_the_output(pool) -> None:
    code = "try:\n    while True:\n        pass\nexcept:\n    pass\nprint(input())"
    assert run_one(pool, code, ["3"], ["3"]).verdict is Verdict.WRONG_ANSWER


@pytest.mark.slow
def test_program_budget_exceeded_marks_every_test_minus_one(pool_all_tests) -> None:
    code = (
        "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.8:\n"
        "    pass\nprint(input())"
    )
    r = run_one(pool_all_tests, code, ["1"] * 5, ["1"] * 5)  # 5 x 0.8 s > the 3 s budget
    assert (r.verdict, r.tests) == (Verdict.TIMEOUT, [-1] * 5)


def test_stops_at_first_failure_by_default(pool, pool_all_tests) -> None:
    code = "print(input())"
    tests = (["1", "2", "3"], ["1", "x", "3"])
    assert run_one(pool, code, *tests).tests == [True, False]
    assert run_one(pool_all_tests, code, *tests).tests == [True, False, True]


def test_random_draws_are_the_same_in_every_run(pool) -> None:
    import random

    expected = str(random.Random(0).randint(0, 10**9))  # the child seeds random with 0
    code = "import random\nprint(random.randint(0, 10**9))"
    for _ in range(3):
        assert run_one(pool, code, ["x"], [expected]).verdict is Verdict.PASS


# --- why a program failed: the results records' "failures" entries -------------------


def test_a_passing_program_has_no_failure(pool) -> None:
    assert run_one(pool, "print(input())", ["1"], ["1"]).failure is None


def test_wrong_answer_keeps_the_test_its_input_expected_and_got(pool) -> None:
    r = run_one(pool, "print(int(input()) * 2)", ["1\n", "2\n"], ["2\n", "5\n"])
    assert r.failure == {"test": 1, "input": "2\n", "expected": "5\n", "got": "4\n", "error": None}


def test_runtime_error_keeps_the_exception_last_line_and_the_output_so_far(pool) -> None:
    r = run_one(pool, "print('a')\nprint(1 // int(input()))", ["0"], ["1"])
    assert r.failure == {
        "test": 0,
        "input": "0",
        "expected": "1",
        "got": "a\n",
        "error": "ZeroDivisionError: integer division or modulo by zero",
    }


def test_timeout_says_timeout(pool) -> None:
    r = run_one(pool, "while True:\n    pass", ["1"], ["1"])
    assert (r.verdict, r.failure["test"], r.failure["error"]) == (Verdict.TIMEOUT, 0, "timeout")


def test_compile_error_keeps_the_error_last_line_at_test_0(pool) -> None:
    r = run_one(pool, "def f(:\n    pass", ["1"], ["1"])
    assert r.failure["test"] == 0
    assert r.failure["error"].startswith("SyntaxError: ")
    assert r.failure["got"] is None


def test_call_based_failure_renders_values_as_json_else_repr(pool) -> None:
    code = "def f(a, b):\n    return {a, b} if a else [b, a]"
    r = run_one(pool, code, [[0, 2], [1, 2]], [[[2, 0]], [3]], fn_name="f")
    assert r.failure == {
        "test": 1,
        "input": "[1, 2]",
        "expected": "[3]",
        "got": "{1, 2}",
        "error": None,
    }


def test_call_based_ambiguous_numpy_comparison_is_a_runtime_error(pool) -> None:
    code = "import numpy as np\ndef f(a):\n    return np.array([a, a])"
    r = run_one(pool, code, [[1]], [[3]], fn_name="f")
    assert r.verdict is Verdict.RUNTIME_ERROR
    assert r.failure["error"].startswith("ValueError: The truth value of an array")


def test_long_texts_are_cut_to_300_characters(pool) -> None:
    r = run_one(pool, "print('y' * 1000)", ["x" * 1000], ["z"])
    assert r.failure["input"] == "x" * 300 + "…" and r.failure["got"] == "y" * 300 + "…"


def test_program_over_its_budget_fails_from_test_0_with_timeout(pool_all_tests) -> None:
    code = (
        "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.8:\n"
        "    pass\nprint(input())"
    )
    r = run_one(pool_all_tests, code, ["7"] * 5, ["7"] * 5)
    assert r.failure == {"test": 0, "input": "7", "expected": "7", "got": None, "error": "timeout"}
