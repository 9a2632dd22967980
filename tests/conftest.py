"""Shared fixtures: the real APPS rows in ../shared, warm sandbox pools, the tiny model,
and the throwaway SLURM cluster (started only by the tests that ask for it). Shared
helpers live in `tests/helpers.py`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from apps_hpc.core.limits import Limits
from apps_hpc.evaluate.pool import EvalPool, PoolOptions
from tests.helpers import FAST_LIMITS, SHARED_APPS, require
from tests.slurm_cluster import slurm_cluster, two_node_cluster  # noqa: F401  (fixtures)


@pytest.fixture(scope="session")
def shared_apps() -> Path:
    require(
        (SHARED_APPS / "reference-verdicts.jsonl").is_file(),
        f"{SHARED_APPS} not present (the real APPS rows live beside the repo)",
    )
    return SHARED_APPS


@pytest.fixture(scope="module")
def pool() -> Iterator[EvalPool]:
    with EvalPool(PoolOptions(workers=2, limits=FAST_LIMITS)) as p:
        yield p


@pytest.fixture(scope="module")
def pool_all_tests() -> Iterator[EvalPool]:
    with EvalPool(PoolOptions(workers=1, limits=FAST_LIMITS, all_tests=True)) as p:
        yield p


@pytest.fixture(scope="module")
def reference_pool() -> Iterator[EvalPool]:
    """The pool the reference-agreement corpora run in: the reference's own limits, and
    every test of a program (tests/evaluate/reference_corpus.py)."""
    with EvalPool(PoolOptions(workers=2, limits=Limits(), all_tests=True)) as p:
        yield p


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model and tokenizer, built locally once per session (needs [train])."""
    pytest.importorskip("transformers", reason="the tiny model needs the train extra")
    from apps_hpc.tools.tiny_model import tiny_model

    return tiny_model(tmp_path_factory.mktemp("tiny-model"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test on the real SLURM cluster is slow (`make test-fast` leaves them out)."""
    for item in items:
        if {"slurm_cluster", "two_node_cluster"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
