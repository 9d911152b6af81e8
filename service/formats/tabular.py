"""Parquet and Arrow IPC stream files from the NDJSON result, in bounded memory.

Most columns' types are settled by `result.columns`; whether a datetime column has an offset
in every value (and so can be a UTC timestamp), or whether every value fits its type, is only
known from all the values. Rather than reading the file twice, the writer assumes they do
and checks each block as it goes; if one does not, writing stops, the rest is only checked,
and the file is written again with those columns as text. So the worst case reads it twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from service.formats.blocks import map_in_order, read_blocks
from service.formats.columns import Plan
from service.formats.typed import TypedBlock, typed_block

# Rows gathered into one Parquet row group: large enough for readers to scan efficiently,
# small enough that the batches held for it stay a few tens of MB, however wide the rows.
ROW_GROUP_ROWS = 128 * 1024
ROW_GROUP_BYTES = 32 << 20
PARQUET_COMPRESSION = "zstd"
DICTIONARY_SHARE = 4


class BatchWriter(Protocol):
    def write(self, batch: pa.RecordBatch) -> None: ...

    def close(self) -> None: ...


def write_parquet(result: Path, plan: Plan, target: Path) -> Plan:
    return _write(result, plan, partial(_ParquetWriter, target))


def write_arrow_stream(result: Path, plan: Plan, target: Path) -> Plan:
    return _write(result, plan, partial(_ArrowStreamWriter, target))


def _write(result: Path, plan: Plan, open_writer: Callable[[pa.Schema], BatchWriter]) -> Plan:
    """Writes the file in the plan's types, demoting what does not fit; returns the plan the
    file was written with."""
    demote = _write_once(result, plan, open_writer)
    if not demote:
        return plan
    plan = plan.demote(demote)
    again = _write_once(result, plan, open_writer)
    assert not again, "every value was checked against the types it is written in"
    return plan


def _write_once(
    result: Path, plan: Plan, open_writer: Callable[[pa.Schema], BatchWriter]
) -> set[str]:
    """Writes every block, or, from the first block with a value that does not fit, checks
    the rest only. Returns the columns to demote (none: the file is written)."""
    demote: set[str] = set()
    current = [plan]  # blocks read from now on are checked in these types
    writer = open_writer(plan.schema)
    try:
        for block in _typed_blocks(result, lambda: current[0]):
            if block.demote:
                demote |= block.demote
                current[0] = plan.demote(demote)
            elif not demote and block.batch is not None:
                writer.write(block.batch)
    finally:
        writer.close()
    return demote


def _typed_blocks(result: Path, plan: Callable[[], Plan]) -> Iterator[TypedBlock]:
    return map_in_order(lambda block: typed_block(block, plan()), read_blocks(result))


class _ParquetWriter:
    """Batches gathered into row groups; the file is opened with the first row group, whose
    values decide which text columns are dictionary-encoded.

    Encoding and compressing a row group takes a while and releases the GIL, so it is done
    on a thread of its own: the calling thread goes on taking typed blocks (and handing new
    ones to the readers) meanwhile, rather than leaving the readers idle. One row group is
    written at a time, in order; the next one is gathered meanwhile.
    """

    def __init__(self, target: Path, schema: pa.Schema) -> None:
        self._target = target
        self._schema = schema
        self._writer: pq.ParquetWriter | None = None
        self._pending: list[pa.RecordBatch] = []
        self._rows = 0
        self._bytes = 0
        self._closed = False
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="ingest-parquet")
        self._writing: Future[None] | None = None

    def write(self, batch: pa.RecordBatch) -> None:
        self._pending.append(batch)
        self._rows += batch.num_rows
        self._bytes += batch.nbytes
        if self._rows >= ROW_GROUP_ROWS or self._bytes >= ROW_GROUP_BYTES:
            self._flush()
        elif self._bytes >= ROW_GROUP_BYTES // 2:
            # Wide rows: the previous row group is written before this one holds more than
            # half of its bytes, so that at most one and a half row groups are held.
            self._wait()

    def _flush(self) -> None:
        table = pa.Table.from_batches(self._pending, self._schema)
        rows = self._rows
        self._pending, self._rows, self._bytes = [], 0, 0
        self._wait()
        if self._writer is None:
            self._writer = pq.ParquetWriter(
                self._target,
                self._schema,
                compression=PARQUET_COMPRESSION,
                use_dictionary=_repetitive_text_columns(table),
            )
        if rows:
            self._writing = self._thread.submit(self._writer.write_table, table, rows)

    def _wait(self) -> None:
        """Until the row group being written is written (raising what writing it raised)."""
        writing, self._writing = self._writing, None
        if writing is not None:
            writing.result()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._flush()
            self._wait()
        finally:
            self._thread.shutdown()
            if self._writer is not None:
                self._writer.close()


def _repetitive_text_columns(table: pa.Table) -> list[str]:
    """Text columns worth a dictionary: at most one distinct value in four. Encoding a column
    of mostly distinct values tries a dictionary, outgrows it and falls back, for nothing."""
    return [
        field.name
        for field, column in zip(table.schema, table.columns, strict=True)
        if pa.types.is_string(field.type)
        and pc.count_distinct(column).as_py() * DICTIONARY_SHARE <= max(len(column), 1)
    ]


class _ArrowStreamWriter:
    def __init__(self, target: Path, schema: pa.Schema) -> None:
        self._sink = pa.OSFile(str(target), "wb")
        self._writer = pa.ipc.new_stream(self._sink, schema)
        self._closed = False

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._writer.close()
            self._sink.close()
