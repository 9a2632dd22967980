"""tests/helpers.require and needs: a missing requirement skips here and fails in CI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

BODY = """
from tests.helpers import needs, require

def test_call():
    require(False, "no frobnicator here")

@needs(False, "no widget here")
def test_marked():
    pass

@needs(True, "present")
def test_present():
    pass
"""


@pytest.mark.parametrize(
    ("ci", "outcome"), [("", "1 passed, 2 skipped"), ("1", "2 failed, 1 passed")]
)
def test_a_missing_requirement_skips_or_fails_in_ci(tmp_path: Path, ci: str, outcome: str) -> None:
    test = tmp_path / "test_probe.py"
    test.write_text(BODY)
    env = {**os.environ, "CI": ci, "PYTHONPATH": str(REPO)}
    args = ["-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "--rootdir", str(REPO)]
    r = subprocess.run(
        [sys.executable, *args, "-c", str(REPO / "pyproject.toml"), str(test)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert outcome in r.stdout, r.stdout[-3000:]
    if ci:
        assert "requirement missing in CI: no frobnicator here" in r.stdout
    else:
        assert "no widget here" in r.stdout
