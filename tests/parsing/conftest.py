"""Hypothesis keeps its caches outside the repository: the project's `norecursedirs` replaces
pytest's defaults, so a `.hypothesis` directory in the repo root would break collection."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis.configuration import set_hypothesis_home_dir

set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "ingest-tests-hypothesis")
