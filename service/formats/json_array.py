"""NDJSON to one JSON array, byte for byte the same records, without parsing them."""

from __future__ import annotations

from pathlib import Path

_CHUNK_BYTES = 1 << 20


def write_json_array(result: Path, target: Path) -> None:
    """`[`, the records one a line separated by commas, `]`. Every line of the NDJSON is one
    record and ends with a line break, so each break but the last becomes `,` + break."""
    with open(result, "rb") as source, open(target, "wb") as out:
        out.write(b"[")
        separator = b"\n"  # written before the next record: after `[`, then `,\n`
        ends_in_record = False
        while chunk := source.read(_CHUNK_BYTES):
            ends_in_record = not chunk.endswith(b"\n")
            body = chunk if ends_in_record else chunk[:-1]
            out.write(separator + body.replace(b"\n", b",\n"))
            separator = b"" if ends_in_record else b",\n"
        if separator == b"\n":
            out.write(b"]\n")  # no records
        else:
            out.write(b"\n]\n")
