"""Loading what a conversion uses before it is needed: pyarrow, the readers and writers, and
Arrow's compute kernels, which load on first use (without this the first CSV conversion in a
process took about 0.15 s longer, a Parquet one a few hundredths)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from service.formats.conversion import convert
from service.formats.registry import FORMATS

# One value of every column type, and one column of JSON text, so that each reading path
# (Arrow's JSON reader, the casts, msgspec's raw values, CSV quoting) runs once.
_RECORD = (
    b'{"i":1,"n":9.5,"b":true,"d":"2026-11-01","t":"2026-11-01T10:00:00Z",'
    b'"s":"a, \\"b\\"","o":{"k":[1]}}\n'
)
_COLUMNS: list[dict[str, object]] = [
    {"name": "i", "type": "integer"},
    {"name": "n", "type": "number"},
    {"name": "b", "type": "boolean"},
    {"name": "d", "type": "date"},
    {"name": "t", "type": "datetime"},
    {"name": "s", "type": "string"},
    {"name": "o", "type": "object"},
]


def warm_up() -> None:
    """A tiny result converted to every format, in a temporary directory."""
    try:
        with tempfile.TemporaryDirectory(prefix="ingest-warm-up-") as folder:
            result = Path(folder) / "result.ndjson"
            result.write_bytes(_RECORD)
            for name, known in FORMATS.items():
                if known.converted:
                    convert(result, _COLUMNS, name, Path(folder) / f"result.{name}")
    except OSError as exc:  # no room for a temporary file: the imports are done all the same
        print(f"warm-up skipped: {exc}", file=sys.stderr)
