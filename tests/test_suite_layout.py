"""The test suite's own layout: what tests share lives in helper modules, never in a test
module or a conftest, so no module under tests/ imports one of those."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.apps import ROOT

TESTS = ROOT / "tests"


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def imported_modules(source: str, module: str) -> set[str]:
    """Every module the code of `module` imports, as an absolute name; for
    `from package import name`, both `package` and `package.name` (it may be a module)."""
    package = module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0]
                origin = f"{base}.{node.module}" if node.module else base
            else:
                origin = node.module or ""
            found.add(origin)
            found.update(f"{origin}.{alias.name}" for alias in node.names)
    return found


def is_test_module_or_conftest(name: str) -> bool:
    last = name.rsplit(".", 1)[-1]
    return name.startswith("tests.") and (last.startswith("test_") or last == "conftest")


def test_no_module_under_tests_imports_a_test_module_or_a_conftest() -> None:
    offending = {}
    for path in sorted(TESTS.rglob("*.py")):
        imported = imported_modules(path.read_text(), module_name(path))
        if bad := sorted(filter(is_test_module_or_conftest, imported)):
            offending[str(path.relative_to(ROOT))] = bad
    assert offending == {}, "move what they share into a helper module"


def test_every_form_of_import_is_seen() -> None:
    """The check above would pass on anything if the reader missed a form of import."""
    source = (
        "import tests.test_a\n"
        "from tests.test_b import helper\n"
        "from tests import test_c, samples\n"
        "from . import conftest\n"
        "from .test_d import helper\n"
        "from .. import conftest as top\n"
        "def later():\n"
        "    from tests.parsing.test_e import helper\n"
    )
    found = imported_modules(source, "tests.parsing.test_sample")
    assert sorted(filter(is_test_module_or_conftest, found)) == [
        "tests.conftest",
        "tests.parsing.conftest",
        "tests.parsing.test_d",
        "tests.parsing.test_e",
        "tests.test_a",
        "tests.test_b",
        "tests.test_c",
    ]
    assert "tests.samples" in found
    assert not is_test_module_or_conftest("tests.samples")
