"""The import rules of the README's Code map hold: imports point one way."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The job record is read on every status poll: it must not pull in the web framework, the
# multipart parser or the parsing engine; a download converts in a process of its own.
LIGHT_MODULES = [
    "service.jobs.queries",
    "service.jobs.views",
    "service.jobs.reading",
    "service.jobs.results",
    "service.jobs.conversions",
]
HEAVY = ["starlette", "fastapi", "python_multipart", "pyarrow", "celery"]


def test_the_api_process_loads_no_parser_and_no_arrow() -> None:
    # What `make serve` imports before its first request: the app, and the executor it runs
    # jobs with (whose worker processes load the parser themselves).
    probe = (
        "import sys\n"
        "import service.main\n"
        "import service.runner.executors.inprocess\n"
        "print(','.join(name for name in ('pyarrow', 'service.parsing') if name in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_the_import_contracts_hold() -> None:
    done = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_reading_jobs_loads_no_web_framework_and_no_parser() -> None:
    probe = (
        "import sys\n"
        + "".join(f"import {module}\n" for module in LIGHT_MODULES)
        + f"print(','.join(name for name in {HEAVY!r} if name in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
