"""Every corpus upload parsed once, and its result converted once to every format."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.formats import FORMATS, convert
from tests.formats.corpus import UPLOADS, Result, parse


class Converted:
    def __init__(self, result: Result, directory: Path) -> None:
        self.result = result
        self.files: dict[str, Path] = {}
        for name, known in FORMATS.items():
            if known.converted:
                path = directory / f"{result.name}.{known.extension}"
                convert(result.path, result.columns, name, path)
                self.files[name] = path


@pytest.fixture(scope="session")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Converted]:
    directory = tmp_path_factory.mktemp("formats")
    return {u.name: Converted(parse(u, directory), directory) for u in UPLOADS}


@pytest.fixture(params=[u.name for u in UPLOADS])
def case(request: pytest.FixtureRequest, converted: dict[str, Converted]) -> Converted:
    return converted[request.param]
