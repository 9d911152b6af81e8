"""Every corpus upload parsed once, and its result converted once to every format."""

from __future__ import annotations

import pytest

from tests.formats.corpus import UPLOADS, Converted, parse


@pytest.fixture(scope="session")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Converted]:
    directory = tmp_path_factory.mktemp("formats")
    return {u.name: Converted(parse(u, directory), directory) for u in UPLOADS}


@pytest.fixture(params=[u.name for u in UPLOADS])
def case(request: pytest.FixtureRequest, converted: dict[str, Converted]) -> Converted:
    return converted[request.param]
