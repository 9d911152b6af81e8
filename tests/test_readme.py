"""The README is executable: every curl example it shows, run with the real curl binary
against `make serve`, gets the status and output the README shows.

The examples are read out of README.md (see tests/readme.py), so when the README changes,
this test changes with it. Sample files come from examples/.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.apps import ROOT
from tests.readme import Example, check_output, code_lines, examples
from tests.samples import write_csv
from tests.server import StartedProcesses, free_port

pytestmark = pytest.mark.slow

README = ROOT / "README.md"
EXAMPLES = ROOT / "examples"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
BIG_CSV_BYTES = 50 * 1024 * 1024
REPEAT_FOR_S = 15.0

ALL = examples(README.read_text())
BLOCKS = sorted({example.block for example in ALL if example.block})
INLINE = [example for example in ALL if not example.block]


class ReadmeServer:
    """`make serve` on a free port with its own data dir, as the README starts it."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir.parent / f"make-serve-{self.port}.log"
        self.environment = {
            **os.environ,
            "INGEST_DATA_DIR": str(data_dir),
            "INGEST_MIN_FREE_BYTES": "0",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ReadmeServer:
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                ["make", "serve", "HOST=127.0.0.1", f"PORT={self.port}"],
                cwd=ROOT,
                env=self.environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("make serve did not answer within 120 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The examples/ files, and a big.csv for the large-file examples."""
    path = tmp_path_factory.mktemp("readme-session")
    for sample in EXAMPLES.iterdir():
        shutil.copy(sample, path / sample.name)
    write_csv(path / "big.csv", BIG_CSV_BYTES)
    return path


@dataclass
class ReadmeServers:
    """One `make serve` per environment the README's blocks ask for, started on first use."""

    processes: StartedProcesses
    tmp: pytest.TempPathFactory
    by_env: dict[str, ReadmeServer] = field(default_factory=dict)

    def server_for(self, env: dict[str, str]) -> ReadmeServer:
        key = repr(sorted(env.items()))
        if key not in self.by_env:
            server = self.processes.track(ReadmeServer(self.tmp.mktemp("data"), env))
            self.by_env[key] = server.start()
        return self.by_env[key]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReadmeServers]:
    with StartedProcesses() as started:
        yield ReadmeServers(started, tmp_path_factory)


def fresh_job(server: ReadmeServer, workdir: Path, example: Example) -> str:
    """A job for `<id>`: one still running where the README shows a running job, else a
    finished one."""
    headers = {"Content-Type": "text/csv"}
    if key := server_key_header(example):
        headers["Authorization"] = key
    live = '"status":"running"' in example.expected or "event: progress" in example.expected
    sample = workdir / ("big.csv" if live else "orders.csv")
    with open(sample, "rb") as body:
        response = httpx.post(
            f"{server.url}/jobs?filename={sample.name}", content=body, headers=headers, timeout=60
        )
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    deadline = time.monotonic() + 30
    while not live and not httpx.get(f"{server.url}/jobs/{job_id}", headers=headers).json()["done"]:
        assert time.monotonic() < deadline, "the sample job did not finish"
        time.sleep(0.05)
    return job_id


def server_key_header(example: Example) -> str | None:
    match = re.search(r"-H '(Authorization: Bearer [^']+)'", example.command)
    return match.group(1).split(": ", 1)[1] if match else None


def run_curl(command: str, workdir: Path) -> tuple[int, str]:
    """Run a README command line in a shell, with curl reporting the status on stderr."""
    traced = re.sub(r"(^|\|\s*)curl ", r"\1curl -w '%{stderr}@@%{http_code}\\n' ", command)
    done = subprocess.run(
        ["bash", "-c", traced], cwd=workdir, capture_output=True, text=True, timeout=60
    )
    statuses = re.findall(r"@@(\d{3})", done.stderr)
    assert done.returncode == 0 or statuses, f"{command}: exit {done.returncode}: {done.stderr}"
    return int(statuses[-1]) if statuses else 0, done.stdout


def run_example(example: Example, server: ReadmeServer, workdir: Path, ids: dict[str, str]) -> None:
    """Run one example and check its status and output; learn the job ids it shows."""
    command = example.command.replace("localhost:8000", f"127.0.0.1:{server.port}")
    expected = example.expected
    for shown, real in ids.items():
        command = command.replace(shown, real)
        expected = expected.replace(shown, real).replace(shown[:9] + "…", real[:9] + "…")
    if "<id>" in command:
        command = command.replace("<id>", fresh_job(server, workdir, example))
    deadline = time.monotonic() + REPEAT_FOR_S
    while True:
        status, output = run_curl(command, workdir)
        shown_ids, real_ids = UUID.findall(expected), UUID.findall(output)
        if shown_ids and real_ids and shown_ids[0] not in ids:
            ids[shown_ids[0]] = real_ids[0]  # the README's example job is this one
            expected = expected.replace(shown_ids[0], real_ids[0])
            expected = expected.replace(shown_ids[0][:9] + "…", real_ids[0][:9] + "…")
        try:
            if example.statuses:
                assert status in example.statuses, f"status {status}, README: {example.statuses}"
            else:
                assert 200 <= status < 300, f"status {status}: {output[:500]}"
            check_output(expected, output)
            break
        except AssertionError as failure:
            if not example.safe_to_repeat or time.monotonic() > deadline:
                raise AssertionError(f"README example `{example.command}`: {failure}") from None
            time.sleep(0.1)


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block-{block}" for block in BLOCKS])
def test_readme_block_runs_as_shown(block: int, servers: ReadmeServers, workdir: Path) -> None:
    ids: dict[str, str] = {}
    for example in (example for example in ALL if example.block == block):
        run_example(example, servers.server_for(example.server_env), workdir, ids)


@pytest.mark.parametrize("example", INLINE, ids=[example.command for example in INLINE])
def test_readme_inline_curl_runs_as_described(
    example: Example, servers: ReadmeServers, workdir: Path
) -> None:
    run_example(example, servers.server_for({}), workdir, {})


def test_every_curl_line_of_the_readme_is_an_example() -> None:
    """The reader above misses no curl command the README shows in a code block."""
    in_blocks = sum(1 for example in ALL if example.block)
    lines = code_lines(README.read_text())
    curl_lines = sum(1 for line in lines if re.match(r"^(\$ )?curl ", line))
    assert in_blocks == curl_lines
    assert len(BLOCKS) >= 5 and INLINE
