"""Resident memory of a server and its child processes, sampled in a background thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psutil

INTERVAL_S = 0.05  # 20 Hz
# Finding the descendants walks all of /proc (about 3 ms of CPU, taken from the service under
# test); an RSS read of a known process costs some 30 us. Workers are long-lived, so the list
# is refreshed at most once a second, and at once when one of them has gone.
TREE_REFRESH_S = 1.0


@dataclass
class MemoryPhase:
    """Peak RSS during a phase and its growth over the idle baseline taken just before it."""

    base_server: int = 0
    base_tree: int = 0
    peak_server: int = 0
    peak_tree: int = 0

    @property
    def growth_server(self) -> int:
        return max(0, self.peak_server - self.base_server)

    @property
    def growth_tree(self) -> int:
        return max(0, self.peak_tree - self.base_tree)


class RssSampler:
    """Samples the process and all its descendants at about 20 Hz."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._lock = threading.Lock()
        self._phases: list[MemoryPhase] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)
        self._tree: list[psutil.Process] = []
        self._tree_at = float("-inf")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def sample(self) -> tuple[int, int]:
        """(server RSS, server + descendants RSS) in bytes; zeros once the server is gone."""
        if time.monotonic() - self._tree_at > TREE_REFRESH_S:
            self._refresh_tree()
        sizes = self._rss_of_tree()
        if sizes is None:  # a process of the tree has gone: look again
            self._refresh_tree()
            sizes = self._rss_of_tree(skip_gone=True)  # one still exiting is left out
        if not sizes:
            return 0, 0
        return sizes[0], sum(sizes)

    def _refresh_tree(self) -> None:
        self._tree_at = time.monotonic()
        try:
            process = psutil.Process(self.pid)
            self._tree = [process, *process.children(recursive=True)]
        except psutil.Error:
            self._tree = []

    def _rss_of_tree(self, *, skip_gone: bool = False) -> list[int] | None:
        """RSS of the server, then of each known descendant; None if one of them has gone
        (unless `skip_gone`), empty if the server has."""
        sizes = []
        for process in self._tree:
            try:
                sizes.append(process.memory_info().rss)
            except psutil.Error:
                if process.pid == self.pid:
                    return []
                if not skip_gone:
                    return None
        return sizes

    def tree_cpu_seconds(self) -> float:
        """CPU time used so far by the server and its live descendants."""
        total = 0.0
        try:
            process = psutil.Process(self.pid)
            processes = [process, *process.children(recursive=True)]
        except psutil.Error:
            return total
        for proc in processes:
            try:
                times = proc.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
        return total

    def wait_quiet(self, cap_s: float = 5.0, busy_share: float = 0.05) -> None:
        """Wait (at most cap_s) until the server tree uses under busy_share of one core."""
        deadline = time.monotonic() + cap_s
        before = self.tree_cpu_seconds()
        while time.monotonic() < deadline:
            time.sleep(0.2)
            after = self.tree_cpu_seconds()
            if after - before < 0.2 * busy_share:
                return
            before = after

    @contextmanager
    def phase(self) -> Iterator[MemoryPhase]:
        server, tree = self.sample()
        phase = MemoryPhase(server, tree, server, tree)
        with self._lock:
            self._phases.append(phase)
        try:
            yield phase
        finally:
            with self._lock:
                self._phases.remove(phase)
            self._record(phase, *self.sample())

    def _loop(self) -> None:
        while not self._stop.wait(INTERVAL_S):
            # None is taken unless a phase is measuring memory.
            with self._lock:
                if not self._phases:
                    continue
            server, tree = self.sample()
            with self._lock:
                for phase in self._phases:
                    self._record(phase, server, tree)

    @staticmethod
    def _record(phase: MemoryPhase, server: int, tree: int) -> None:
        phase.peak_server = max(phase.peak_server, server)
        phase.peak_tree = max(phase.peak_tree, tree)
