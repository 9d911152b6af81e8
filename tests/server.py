"""Real processes for the tests that drive the service from outside: `python -m service`
(uvicorn), Celery workers, a private redis-server; `StartedProcesses` stops every one of them
however the test ends; and the JSON logs they write."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Protocol, TypeVar

import httpx
import orjson
import psutil

from tests.apps import ROOT, migrate


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServiceProcess:
    """`python -m service` (uvicorn) in a subprocess, with its own data dir."""

    def __init__(
        self, data_dir: Path, env: Mapping[str, str] | None = None, *, own_group: bool = False
    ) -> None:
        """`env`: `INGEST_*` settings. `own_group`: start it in a process group of its own, as
        a service manager or a terminal does, so that signals can be sent to the whole group."""
        env = env or {}
        self.own_group = own_group
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.database_url = env.get(
            "INGEST_DATABASE_URL", f"sqlite:///{(data_dir / 'ingest.db').resolve()}"
        )
        self.port = free_port()
        self.env = {
            **os.environ,
            "INGEST_DATA_DIR": str(data_dir),
            "INGEST_MIN_FREE_BYTES": "0",
            "INGEST_PROGRESS_INTERVAL_S": "0.2",
            # Workers at niceness 10 rather than SCHED_IDLE: the suite runs in two processes
            # (`make test`), and the other one's work at normal priority would leave
            # SCHED_IDLE workers no CPU until it is done, past the tests' deadlines.
            "INGEST_WORKER_PRIORITY": "low",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / f"server-{self.port}.log"
        self._descendants: list[psutil.Process] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> ServiceProcess:
        migrate(self.database_url)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=self.own_group,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server did not start")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def children(self) -> list[psutil.Process]:
        """The server's worker processes now (all descendants); `stop` kills those still
        running even when the server itself died before them."""
        found: list[psutil.Process] = psutil.Process(self.pid).children(recursive=True)
        self._descendants.extend(found)
        return found

    def kill(self) -> None:
        """kill -9 the server and every worker process it started."""
        assert self.process is not None
        children = self.children() if self.process.poll() is None else []
        self.process.send_signal(signal.SIGKILL)
        for child in children:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        self.process.wait(timeout=10)

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        """kill -9 whatever is left of the server and of the workers it was seen with."""
        if self.process is not None and self.process.poll() is None:
            self.kill()
        for process in self._descendants:
            try:
                if process.is_running():  # the same process: psutil compares start times
                    process.kill()
            except psutil.NoSuchProcess:
                pass


class CeleryWorker:
    """`celery -A service.runner.executors.celery_app worker`, as `make worker` runs it, in a
    process group of its own (as a service manager starts it)."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = {**os.environ, **env}
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def kill_group(self) -> None:
        """kill -9 the worker and its pool processes at once."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def start(self) -> CeleryWorker:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "service.runner.executors.celery_app",
                    "worker",
                    "--concurrency=2",
                    "--loglevel=INFO",
                    "--without-gossip",
                    "--without-mingle",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        if self.process is not None:
            try:  # whatever is left of its pool
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()


class RedisServer:
    """A `redis-server` of the test's own on a free port, without persistence: stopping it
    loses every message, as a Redis without persistence does when it restarts."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.log_dir = log_dir
        self.process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.log_dir)]
        with open(self.log_dir / f"redis-{self.port}.log", "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        """Stop the server (by its PID): whatever it held is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


class Stoppable(Protocol):
    def stop(self) -> None: ...


StoppableT = TypeVar("StoppableT", bound=Stoppable)


class StartService(Protocol):
    """The `start_service` fixture: `python -m service` on `data_dir` (migrated first), with
    the `INGEST_*` settings in `env`, answering /healthz; stopped when the test ends."""

    def __call__(self, data_dir: Path, /, **env: str) -> ServiceProcess: ...


class StartedProcesses:
    """The real processes a test (or a module of tests) started. Leaving it stops each one,
    the last started first, with kill -9 for whatever does not stop by itself: a test that
    fails half-way, or a server that never answered, leaves nothing running."""

    def __init__(self) -> None:
        self._started: list[Stoppable] = []

    def track(self, process: StoppableT) -> StoppableT:
        """Stop `process` with the others; track it before starting it, so that a start that
        fails half-way is cleaned up too."""
        self._started.append(process)
        return process

    def service(self, data_dir: Path, /, **env: str) -> ServiceProcess:
        return self.track(ServiceProcess(data_dir, env)).start()

    def service_in_own_group(self, data_dir: Path, /, **env: str) -> ServiceProcess:
        """A server in a process group of its own, as a service manager or a terminal starts
        it, so that a signal can be sent to the whole group."""
        return self.track(ServiceProcess(data_dir, env, own_group=True)).start()

    def celery_worker(self, env: dict[str, str], log: Path) -> CeleryWorker:
        return self.track(CeleryWorker(env, log)).start()

    def redis(self, log_dir: Path) -> RedisServer:
        return self.track(RedisServer(log_dir)).start()

    def stop_all(self) -> None:
        failures: list[BaseException] = []
        while self._started:
            try:
                self._started.pop().stop()
            except Exception as error:  # stop the others all the same
                failures.append(error)
        if failures:
            raise failures[0]

    def __enter__(self) -> StartedProcesses:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop_all()


def log_records(log: Path) -> list[dict[str, object]]:
    """The JSON log lines a ServiceProcess (and its workers) wrote, in order; other lines,
    such as a traceback printed by a dying process, are left out."""
    records: list[dict[str, object]] = []
    for line in log.read_bytes().splitlines():
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def job_log(records: list[dict[str, object]], job_id: str, message: str) -> list[int]:
    """Positions in the log of the lines with this message about this job."""
    return [
        n
        for n, record in enumerate(records)
        if record.get("job_id") == job_id and record["message"] == message
    ]
