"""The CSV write pass, for output the scan could not write early: rendered from the spill."""

from __future__ import annotations

import asyncio
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiofiles
import pyarrow as pa

from service.parsing.cancelling import cancel_and_wait
from service.parsing.csv_scan import THREADS
from service.parsing.early_output import Resume
from service.parsing.ndjson import render_records
from service.parsing.progress import WRITE, ProgressReporter
from service.parsing.source import TextSource


async def rewrite(
    spill_path: Path,
    result_path: Path,
    names: list[str],
    types: list[str],
    *,
    start: Resume,
    rows: int,
    reporter: ProgressReporter,
    text: TextSource,
) -> None:
    """Replaces the output from `start` on, rendering the spilled blocks on all cores and
    writing them in order as they complete."""
    loop = asyncio.get_running_loop()
    written = start.row
    rendering: deque[asyncio.Future[tuple[memoryview, int]]] = deque()
    with (
        ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="ingest-csv-render") as pool,
        pa.OSFile(str(spill_path), "rb") as source,
        pa.ipc.open_stream(source) as spilled,
    ):
        async with aiofiles.open(result_path, "r+b") as out:
            await out.truncate(start.offset)
            await out.seek(start.offset)
            skipped = 0
            try:
                while True:
                    # One more than the threads, so none waits while a result is written.
                    while len(rendering) <= THREADS:
                        batch = _next_batch(spilled)
                        if batch is None:
                            break
                        if skipped < start.row:  # written early, and right
                            skipped += batch.num_rows
                            continue
                        rendering.append(loop.run_in_executor(pool, _render, batch, names, types))
                    if not rendering:
                        break
                    data, count = await rendering.popleft()
                    await out.write(data)
                    written += count
                    await reporter.update(
                        WRITE,
                        fraction=(written - start.row) / max(rows - start.row, 1),
                        bytes_done=text.bytes_done,
                        rows_done=written,
                    )
            finally:
                await cancel_and_wait(rendering)


def _next_batch(spilled: pa.ipc.RecordBatchStreamReader) -> pa.RecordBatch | None:
    try:
        return spilled.read_next_batch()
    except StopIteration:
        return None


def _render(batch: pa.RecordBatch, names: list[str], types: list[str]) -> tuple[memoryview, int]:
    return render_records(batch.columns, names, types), batch.num_rows
