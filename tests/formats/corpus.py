"""Uploads covering every column type, parsed by the service's own parser into the results
that the conversions start from."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

from service.formats import FORMATS, convert
from service.parsing import ParseOptions, ParseProgress, parse_file

CSV_ROWS = (
    "id,amount,ratio,paid,day,at,local,mixed_zone,name,zip,big,empty",
    # datetimes: `at` has an offset in every value, `local` in none, `mixed_zone` in some
    "1,9.50,-0.5,true,2026-11-01,2026-11-01T10:00:00Z,2026-11-01 10:00,2026-11-01T10:00Z,"
    '"Hopper, Grace",007,123456789012345678901234567890,',
    "2,12,1e5,FALSE,2024-02-29,2026-11-01T10:00:00.123456+02:00,2026-11-01T10:00:00,"
    '2026-11-01T12:00,"say ""hi""",01234,-9223372036854775809,',
    "3,,0.0001,,,2026-11-01 23:59:59-0530,,,,,,",
    "-9223372036854775808,1.5E-3,2,True,1970-01-01,1970-01-01T00:00+01,2000-01-01T00:00:00.5,"
    '2026-11-01T10:00+01:00,"two\r\nlines",00,1,',
    "9223372036854775807,0,3.25,false,9999-12-31,9999-12-31T23:59:59.999999Z,1999-12-31 23:59,"
    "2026-11-01 10:00,Łódź 日本 🎉,10,2,",
)
EVERY_TYPE_CSV = "".join(row + "\r\n" for row in CSV_ROWS)

# Keys missing from some records, in other orders, with spaces; objects, arrays, mixed values.
JSON_LINES = (
    '{"id":1,"price":9.50,"tags":["a","b"],"meta":{"k":1,"nested":{"x":[1,2.50]}},"any":1,'
    '"huge":123456789012345678901234567890,"flag":true,"note":"caf\\u00e9 \\"q\\"",'
    '"nothing":null}\n'
    '{"id":2,"price":12,"tags":[],"meta":{},"any":"one","huge":"text","flag":false,'
    '"note":"tab\\there, \\\\ back"}\n'
    '{"note": "spaced out", "id": 3, "any": [1, {"a": null}], "price": 1.0e3,'
    ' "extra": "only here"}\n'
    '{"id":4,"any":{"b":[true,false]},"price":-0.0,"note":"\\ud83c\\udf89 \\u2028",'
    '"meta":null,"tags":null}\n'
    '{"id":5,"any":null,"note":"","price":null,"flag":null}\n'
)

JSON_ARRAY = """[
  {"name": "Ada", "born": 1815, "langs": ["en", "fr"], "score": 9.50},
  {
    "name": "Grace",
    "born": 1906,
    "langs": [],
    "score": 7
  },
  {"name": "Łódź, \\"quoted\\"", "born": null, "score": 1e-7}
]
"""


@dataclass(frozen=True)
class Upload:
    name: str
    data: bytes
    format: str


UPLOADS = (
    Upload("every_type_csv", EVERY_TYPE_CSV.encode(), "csv"),
    Upload("every_type_tsv", EVERY_TYPE_CSV.replace(",", "\t").encode(), "tsv"),
    Upload("json_lines", JSON_LINES.encode(), "jsonl"),
    Upload("json_array", JSON_ARRAY.encode(), "json"),
    Upload("lone_surrogate", b'{"s":"a\\ud800b","n":1}\n{"s":"\\udfff","n":2}\n', "jsonl"),
    Upload("header_only_csv", b"id,name,when\r\n", "csv"),
    Upload("empty_json_array", b"[]", "json"),
)


@dataclass(frozen=True)
class Result:
    """A succeeded job's result: the NDJSON file and `result.columns`."""

    name: str
    path: Path
    columns: list[dict[str, object]]

    @property
    def types(self) -> dict[str, str]:
        return {str(c["name"]): str(c["type"]) for c in self.columns}

    def lines(self) -> list[bytes]:
        return self.path.read_bytes().splitlines()


def parse(upload: Upload, directory: Path) -> Result:
    """Runs the service's parser on the upload, as a job would."""
    source = directory / f"{upload.name}.upload"
    source.write_bytes(upload.data)
    result_path = directory / f"{upload.name}.ndjson"

    async def ignore(_: ParseProgress) -> None:
        return None

    parsed = asyncio.run(
        parse_file(
            source,
            result_path,
            directory / f"{upload.name}.errors",
            ParseOptions(format=upload.format),
            ignore,
        )
    )
    assert parsed.rows_failed == 0, json.dumps(parsed.columns)
    return Result(upload.name, result_path, parsed.columns)


class Converted:
    """A parsed result and its conversion to every converted format, side by side."""

    def __init__(self, result: Result, directory: Path) -> None:
        self.result = result
        self.files: dict[str, Path] = {}
        for name, known in FORMATS.items():
            if known.converted:
                path = directory / f"{result.name}.{known.extension}"
                convert(result.path, result.columns, name, path)
                self.files[name] = path
