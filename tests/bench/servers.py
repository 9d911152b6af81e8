"""uvicorn subprocesses on free loopback ports, each with a fresh data directory."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from tests.bench.rss import RssSampler
from tests.bench.wire import Connection

GiB = 1024**3
SERVICE_ENV = {
    "INGEST_MAX_QUEUED_JOBS": "100000",
    "INGEST_MAX_UPLOAD_BYTES": str(4 * GiB),
    "INGEST_MAX_DECOMPRESSED_BYTES": str(64 * GiB),
    "INGEST_SHUTDOWN_GRACE_S": "1",
}


class ServerError(RuntimeError):
    """A server did not start; the message ends with the tail of its log."""


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    run_dir: Path
    log_path: Path
    sampler: RssSampler = field(init=False)
    ready_s: float = 0.0  # from the process's start to its first ready answer

    def __post_init__(self) -> None:
        self.sampler = RssSampler(self.process.pid)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM, then SIGKILL to the server's process group; removes its data directory."""
        self.sampler.stop()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # worker processes it may have left
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()
        shutil.rmtree(self.run_dir, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def new_run_dir(bench_dir: Path, name: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = bench_dir / f"run-{stamp}-{name}-{os.getpid()}-{free_port()}"
    path.mkdir(parents=True)
    return path


def migrate(repo: Path, env: dict[str, str], log_path: Path) -> None:
    """`alembic upgrade head` for a data directory, as `make serve` does."""
    with open(log_path, "ab") as log:
        done = subprocess.run(
            [sys.executable, "-m", "alembic", "upgrade", "head"],
            cwd=repo,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=120,
            check=False,
        )
    if done.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
        raise ServerError(f"alembic upgrade head failed:\n{tail}")


def uvicorn_command(app: str) -> list[str]:
    """`python -m uvicorn APP`, as the baselines (and any other app) are run."""
    return [sys.executable, "-m", "uvicorn", app, "--no-access-log"]


def service_command(app: str | None) -> list[str]:
    """`python -m service`, as `make serve` runs it, unless another app is named."""
    return [sys.executable, "-m", "service"] if app is None else uvicorn_command(app)


def start(
    command: list[str],
    name: str,
    repo: Path,
    bench_dir: Path,
    *,
    service: bool,
    run_migrations: bool = True,
    timeout: float = 60.0,
    extra_env: dict[str, str] | None = None,
) -> Server:
    """Start COMMAND --host --port and wait until it answers; the service is migrated first
    (`extra_env`: settings of the service beside the benchmark's own)."""
    run_dir = new_run_dir(bench_dir, name)
    log_path = run_dir / "server.log"
    env = {**os.environ, "INGEST_DATA_DIR": str(run_dir.resolve()), "PYTHONUNBUFFERED": "1"}
    if service:
        env.update(SERVICE_ENV)
        env.update(extra_env or {})
        if run_migrations:
            try:
                migrate(repo, env, log_path)
            except Exception:
                shutil.rmtree(run_dir, ignore_errors=True)
                raise
    port = free_port()
    started = time.perf_counter()
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)],
            cwd=repo,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stop() also ends its workers
        )
    server = Server(name, port, process, run_dir, log_path)
    try:
        _wait_ready(server, "/healthz" if service else "/", timeout)
        server.ready_s = time.perf_counter() - started
    except Exception:
        tail = server.log_tail()
        server.stop()
        raise ServerError(f"{name} did not start ({' '.join(command[1:])}):\n{tail}") from None
    server.sampler.start()
    return server


def _wait_ready(server: Server, path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise ServerError(f"exited with status {server.process.returncode}")
        try:
            with Connection(server.port, timeout=2.0) as conn:
                response = conn.request("GET", path)
            if response.status < 500 and (path == "/" or response.status == 200):
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise ServerError(f"not ready after {timeout:.0f} s")
