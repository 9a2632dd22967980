"""The "Where we differ on purpose" examples of docs/evaluator.md, our side of each: every
limit that can change a verdict, proven with the example program that page gives. (The
reference sets none of these limits; what it gives is stated on that page.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from apps_hpc.core.limits import Limits
from apps_hpc.core.schema import Verdict
from apps_hpc.evaluate.pool import EvalPool, PoolOptions
from tests.helpers import run_one

DEFAULTS = Limits()  # what `apps-hpc eval` uses


@pytest.fixture(scope="module")
def default_pool() -> Iterator[EvalPool]:
    with EvalPool(PoolOptions(workers=2, limits=DEFAULTS, all_tests=True)) as p:
        yield p


def test_sleeping_4_5_s_per_test_passes_on_cpu_time_timers(default_pool: EvalPool) -> None:
    code = "import time\ntime.sleep(4.5)\nprint(input())"
    r = run_one(default_pool, code, ["1", "2"], ["1", "2"])
    assert (r.verdict, r.tests) == (Verdict.PASS, [True, True])


@pytest.mark.parametrize(
    "code",
    [
        pytest.param("x = bytearray(5 * 2**30)\nprint(input())", id="address space: 5 GB"),
        pytest.param(
            "import threading\nb = threading.Barrier(101)\n"
            "ts = [threading.Thread(target=b.wait) for _ in range(100)]\n"
            "for t in ts:\n    t.start()\nb.wait()\nprint(input())",
            id="processes: 100 threads at once",
        ),
        pytest.param(
            "import tempfile\nfs = [tempfile.TemporaryFile() for _ in range(100)]\nprint(input())",
            id="open files: 100",
        ),
        pytest.param(
            "import tempfile\nwith tempfile.TemporaryFile() as f:\n"
            "    f.write(b'x' * 20 * 2**20)\nprint(input())",
            id="file size: 20 MB",
        ),
        pytest.param("print('x' * 70_000_000)", id="output cap: 70 M characters"),
    ],
)
def test_a_resource_limit_makes_a_runtime_error(default_pool: EvalPool, code: str) -> None:
    r = run_one(default_pool, code, ["1"], ["1"])
    assert (r.verdict, r.tests) == (Verdict.RUNTIME_ERROR, [-1])


def test_random_draws_and_set_order_are_the_same_in_every_run(default_pool: EvalPool) -> None:
    code = "import random\nprint(random.randint(1, 2), sorted({'a', 'b'}) == list({'a', 'b'}))"
    first = run_one(default_pool, code, ["x"], ["1 True"]).tests
    assert all(run_one(default_pool, code, ["x"], ["1 True"]).tests == first for _ in range(3))


def test_a_returned_object_whose_eq_lies_is_compared_as_data(default_pool: EvalPool) -> None:
    liar = "class Liar:\n    __eq__ = lambda s, o: True\ndef f(x):\n    return Liar()\n"
    r = run_one(default_pool, liar, [[1]], [[2]], fn_name="f")
    assert (r.verdict, r.tests) == (Verdict.WRONG_ANSWER, [False])
    sub = "class L(list):\n    __eq__ = lambda s, o: True\ndef f(x):\n    return L([x])\n"
    r = run_one(default_pool, sub, [[1], [2]], [[1], [3]], fn_name="f")
    assert (r.verdict, r.tests) == (Verdict.WRONG_ANSWER, [True, False])
