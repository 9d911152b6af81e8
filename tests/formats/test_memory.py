"""A result larger than the memory bound converts within it: nothing holds the whole file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.formats.memory_probe import COLUMNS

RESULT_BYTES = 150_000_000
MAX_GROWTH = 128 * 2**20


def test_converting_a_result_larger_than_the_bound_stays_within_it(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.formats.memory_probe", str(tmp_path), str(RESULT_BYTES)],
        capture_output=True,
        timeout=110,
        check=True,
    )
    measured = json.loads(done.stdout)
    assert measured["bytes"] >= RESULT_BYTES > MAX_GROWTH
    assert max(measured["growth"].values()) < MAX_GROWTH, measured
    assert {c["type"] for c in COLUMNS} >= {"integer", "number", "datetime", "array"}
