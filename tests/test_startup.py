"""Start-up that explains itself: bad settings, an unmigrated database, a data dir in use."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from service.config import ConfigError, Settings, load_settings
from service.startup import MissingDependency, check_dependencies
from tests.apps import ROOT
from tests.samples import write_csv
from tests.server import StartService, free_port


def run_until_exit(data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m service` expected to stop on its own."""
    return subprocess.run(
        [sys.executable, "-m", "service", "--port", str(free_port())],
        cwd=ROOT,
        env={**os.environ, "INGEST_DATA_DIR": str(data_dir), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_one_line_error(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.slow
def test_an_unmigrated_database_is_explained(tmp_path: Path) -> None:
    done = run_until_exit(tmp_path / "data")
    assert_one_line_error(done, "not migrated", "make migrate")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("variable", "value", "allowed"),
    [
        ("INGEST_MAX_UPLOAD_BYTES", "10XB", "10MiB"),
        ("INGEST_EXECUTOR", "celerey", "'inprocess' or 'celery'"),
        ("INGEST_LOG_LEVEL", "verbose", "DEBUG, INFO, WARNING, ERROR"),
    ],
)
def test_a_bad_setting_is_named_with_its_value_and_what_is_allowed(
    tmp_path: Path, variable: str, value: str, allowed: str
) -> None:
    done = run_until_exit(tmp_path / "data", **{variable: value})
    assert_one_line_error(done, variable, repr(value), allowed)
    migrate = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=ROOT,
        env={**os.environ, "INGEST_DATA_DIR": str(tmp_path / "data"), variable: value},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert_one_line_error(migrate, variable, repr(value))
    worker = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "service.runner.executors.celery_app", "worker"],
        cwd=ROOT,
        env={**os.environ, "INGEST_DATA_DIR": str(tmp_path / "data"), variable: value},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert worker.returncode == 2  # `make worker` does not start it again
    assert_one_line_error(worker, variable, repr(value))


def test_sizes_may_carry_units(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_MAX_UPLOAD_BYTES", "10MB")
    monkeypatch.setenv("INGEST_MIN_FREE_BYTES", "1 GiB")
    settings = load_settings()
    assert settings.max_upload_bytes == 10_000_000
    assert settings.min_free_bytes == 2**30
    monkeypatch.setenv("INGEST_MAX_UPLOAD_BYTES", "-5")
    with pytest.raises(ConfigError, match="INGEST_MAX_UPLOAD_BYTES='-5'"):
        load_settings()


@pytest.mark.slow
def test_a_second_instance_on_the_same_data_dir_leaves_the_first_alone(
    data_dir: Path, tmp_path: Path, start_service: StartService
) -> None:
    rows = write_csv(tmp_path / "big.csv", 150 * 1024 * 1024)
    first = start_service(data_dir, INGEST_MAX_CONCURRENT_JOBS="1")
    with (
        httpx.Client(base_url=first.url, timeout=60) as client,
        open(tmp_path / "big.csv", "rb") as body,
    ):
        job_id = client.post(
            "/jobs?filename=big.csv", content=body, headers={"Content-Type": "text/csv"}
        ).json()["id"]
        deadline = time.monotonic() + 30
        while (job := client.get(f"/jobs/{job_id}").json())["status"] != "running":
            assert time.monotonic() < deadline, job
            time.sleep(0.02)
        started = time.monotonic()
        second = run_until_exit(data_dir)
        assert time.monotonic() - started < 15
        assert_one_line_error(second, "in use by another ingest instance", f"pid {first.pid}")
        deadline = time.monotonic() + 60
        while not (done := client.get(f"/jobs/{job_id}").json())["done"]:
            assert time.monotonic() < deadline, done
            time.sleep(0.05)
        assert done["status"] == "succeeded"
        assert done["result"]["rows"] == rows
        # Still the first run: the second instance did not re-queue it.
        assert done["started_at"] == job["started_at"]


def test_the_single_machine_deployment_without_its_parser_library_is_explained(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    installed = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *rest: None if name == "pyarrow" else installed(name, *rest),
    )
    with pytest.raises(MissingDependency, match=r"pyarrow not installed: the worker processes"):
        check_dependencies(Settings(executor="inprocess"))
    check_dependencies(Settings(executor="celery"))  # the API alone does not parse


def test_the_scale_out_deployment_without_its_libraries_is_explained(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings(executor="celery", database_url="postgresql+psycopg://db/ingest")
    installed = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *rest: None if name in ("celery", "psycopg") else installed(name, *rest),
    )
    with pytest.raises(MissingDependency, match=r"celery and psycopg not installed.*scaleout"):
        check_dependencies(settings)
