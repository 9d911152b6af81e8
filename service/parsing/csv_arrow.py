"""The fast CSV reader: Arrow's parser on blocks of whole, well-formed records."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from service.parsing.arrow_text import byte_array

ARROW_BLOCK_BYTES = 1 << 20


def internal_names(count: int) -> list[str]:
    """Column names used inside the engine: header names may repeat or be blank."""
    return [f"c{index}" for index in range(count)]


def read_fast(data: bytes | memoryview, *, delimiter: str, field_count: int) -> pa.Table | None:
    """All records of `data` as string columns, or None if any record needs the slow reader.

    Arrow rejects a record with the wrong number of fields and invalid UTF-8, and those are
    exactly the records that become row errors, with line numbers only the slow reader knows.
    """
    names = internal_names(field_count)
    buffer = pa.py_buffer(data)
    try:
        return pa_csv.read_csv(
            buffer,
            read_options=pa_csv.ReadOptions(
                column_names=names, use_threads=False, block_size=_block_size(buffer)
            ),
            parse_options=pa_csv.ParseOptions(
                delimiter=delimiter,
                quote_char='"',
                double_quote=True,
                escape_char=False,
                newlines_in_values=True,
                ignore_empty_lines=True,
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
                check_utf8=not _is_ascii(buffer),
            ),
        )
    except pa.ArrowInvalid:
        return None


def _block_size(data: pa.Buffer) -> int:
    """One Arrow chunk for the whole block, so that its NDJSON is one buffer written as is:
    from several chunks it is joined into a Python bytes copy (`ndjson._concatenated`),
    megabytes per block, allocated in a parse thread and freed in another."""
    return max(ARROW_BLOCK_BYTES, len(data) + 1)


def _is_ascii(data: pa.Buffer) -> bool:
    """ASCII is valid UTF-8, and a max over the bytes costs a tenth of Arrow's UTF-8 check."""
    largest = pc.max(byte_array(data)).as_py()
    return largest is None or largest < 0x80
