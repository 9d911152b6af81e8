"""The protocol of `python -m service.formats --spare`, a converter started ahead of need.

Once warm (see `warm_up.py`) the spare says `ready` on stdout, then reads stdin to its end:
one JSON object with `format`, `result`, `destination` and `columns`. It says `taken` once it
has the request, so that the API can tell a spare that died before it (and convert in a
fresh process instead) from a conversion that failed. An empty stdin (the API stopping it,
or gone) means no request. Loads nothing heavy: the API imports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import orjson

READY = b"ready\n"
TAKEN = b"taken\n"


@dataclass(frozen=True)
class Request:
    format: str
    result: Path
    destination: Path
    columns: list[dict[str, object]]


def request_bytes(
    format: str, result: Path, destination: Path, columns: list[dict[str, object]]
) -> bytes:
    """What the API writes to a spare's stdin (then it closes it)."""
    return orjson.dumps(
        {
            "format": format,
            "result": str(result),
            "destination": str(destination),
            "columns": columns,
        }
    )


def wait_for_request(stdin: BinaryIO, stdout: BinaryIO) -> Request | None:
    """Says `ready`; the request once stdin is closed, having said `taken`, or None if stdin
    held nothing."""
    stdout.write(READY)
    stdout.flush()
    body = stdin.read()
    if not body.strip():
        return None
    fields = orjson.loads(body)
    stdout.write(TAKEN)
    stdout.flush()
    return Request(
        str(fields["format"]),
        Path(fields["result"]),
        Path(fields["destination"]),
        list(fields["columns"]),
    )
