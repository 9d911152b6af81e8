"""Progress reports: percent over the scan and write phases, never going backwards."""

from __future__ import annotations

from collections.abc import Callable

from service.parsing.contract import ParseProgress, ProgressCallback

SCAN = "scan"
WRITE = "write"


class ProgressReporter:
    """Calls the runner's callback after every block of work (the runner throttles).

    A two-pass parse gives the scan `scan_share` of the percent and the write the rest; a
    one-pass parse reports `write` from 0 to 100. `rows_failed` is asked for the count of
    failed rows at every report.
    """

    def __init__(
        self,
        callback: ProgressCallback,
        bytes_total: int,
        *,
        rows_failed: Callable[[], int],
    ) -> None:
        self._callback = callback
        self._bytes_total = bytes_total
        self._rows_failed = rows_failed
        self._scan_share = 0.0
        self._percent = 0.0
        self._rows_done = 0

    def set_scan_share(self, share: float) -> None:
        self._scan_share = share

    async def read_up_to(self, phase: str, bytes_done: int, rows_done: int) -> None:
        """A phase that goes as far as the input read: `bytes_done` of all the bytes."""
        await self.update(
            phase,
            fraction=bytes_done / max(self._bytes_total, 1),
            bytes_done=bytes_done,
            rows_done=rows_done,
        )

    async def update(
        self,
        phase: str,
        *,
        fraction: float,
        bytes_done: int,
        rows_done: int,
    ) -> None:
        """`fraction` is how far the phase has got, from 0 to 1."""
        fraction = min(max(fraction, 0.0), 1.0)
        if phase == SCAN:
            percent = 100.0 * self._scan_share * fraction
        else:
            percent = 100.0 * (self._scan_share + (1.0 - self._scan_share) * fraction)
        self._percent = max(self._percent, round(percent, 2))
        self._rows_done = max(self._rows_done, rows_done)
        await self._callback(
            ParseProgress(
                phase=phase,
                bytes_total=self._bytes_total,
                bytes_done=min(bytes_done, self._bytes_total),
                percent=self._percent,
                rows_done=self._rows_done,
                rows_failed=self._rows_failed(),
            )
        )
