"""A corpus of hostile files, generated on demand, each with the outcome it must get.

Most cases run with small limits (they are parse options), so that files a few hundred
kilobytes long stand for the multi-megabyte ones; the cases named `default ...` keep the
default limits, like the files that broke the service.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

SMALL = {
    "max_record_bytes": 64 * 1024,
    "max_columns": 100,
    "max_column_name_bytes": 64,
    "max_json_depth": 50,
}


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[], bytes]
    options: Mapping[str, object] = field(default_factory=dict)
    failure: str | None = None  # the job fails with this code
    rows: int | None = None  # else: records written
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line, type) of row errors
    columns: dict[str, str] = field(default_factory=dict)  # name -> type, for those named
    encoding: str | None = None
    chunked: bool = True  # also run with small chunks (block boundaries everywhere)


def nested(depth: int, inner: bytes = b"1") -> bytes:
    return b"[" * (depth - 1) + inner + b"]" * (depth - 1)


def jsonl(*lines: bytes) -> bytes:
    return b"".join(line + b"\n" for line in lines)


def deep_record(depth: int) -> bytes:
    """An object nested `depth` deep in all: the object itself, then arrays."""
    return b'{"a": ' + nested(depth) + b"}"


def csv_lines(*lines: str) -> bytes:
    return "".join(line + "\n" for line in lines).encode()


def wide_header(columns: int, name: str = "c{}") -> bytes:
    header = ",".join(name.format(i) for i in range(columns))
    return (header + "\n" + ",".join("1" for _ in range(columns)) + "\n").encode()


def latin1_labelled_utf8() -> bytes:
    return "name,city\nZoë,Köln\nplain,Paris\nJosé,São Paulo\n".encode("latin-1")


CASES = [
    # Deep nesting: the limit is decided on the bytes, before any JSON parser sees them.
    Case(
        "jsonl just under the depth limit",
        lambda: jsonl(b'{"ok": 1}', deep_record(50), b'{"ok": 2}'),
        SMALL,
        rows=3,
        columns={"ok": "integer", "a": "array"},
    ),
    Case(
        "jsonl just over the depth limit",
        lambda: jsonl(b'{"ok": 1}', deep_record(51), b'{"ok": 2}'),
        SMALL,
        rows=2,
        errors=[(2, "too_deep")],
    ),
    Case(
        "json array elements under and over the depth limit",
        lambda: b"[" + deep_record(50) + b",\n" + deep_record(51) + b',\n{"ok": 1}]',
        SMALL,
        rows=2,
        errors=[(2, "too_deep")],
    ),
    Case(
        "brackets inside strings do not count",
        lambda: jsonl(b'{"s": "' + b"[{" * 5000 + b'"}', b'{"s": "\\"[[[[\\\\"}'),
        SMALL,
        rows=2,
        columns={"s": "string"},
    ),
    Case(
        "brackets never closed",
        lambda: jsonl(b'{"ok": 1}', b'{"a": ' + b"[" * 20_000, b'{"ok": 2}'),
        SMALL,
        rows=2,
        errors=[(2, "too_deep")],
    ),
    Case(
        "default: jsonl nested 20,000 deep",
        lambda: jsonl(b'{"ok": 1}', deep_record(20_000), b'{"ok": 2}'),
        rows=2,
        errors=[(2, "too_deep")],
    ),
    Case(
        "default: json array nested 20,000 deep",
        lambda: b'[{"ok": 1},\n' + deep_record(20_000) + b',\n{"ok": 2}]',
        rows=2,
        errors=[(2, "too_deep")],
    ),
    Case(
        "default: jsonl nested 1,000 deep, the limit",
        lambda: jsonl(deep_record(1000), deep_record(1001)),
        rows=1,
        errors=[(2, "too_deep")],
    ),
    # Giant lines and fields: a row error at their line, reading goes on after them.
    Case(
        "jsonl line longer than the record limit",
        lambda: jsonl(b'{"ok": 1}', b'{"big": "' + b"x" * 200_000 + b'"}', b'{"ok": 2}'),
        SMALL,
        rows=2,
        errors=[(2, "too_long")],
    ),
    Case(
        "jsonl giant last line without a newline",
        lambda: b'{"ok": 1}\n{"big": "' + b"x" * 200_000 + b'"}',
        SMALL,
        rows=1,
        errors=[(2, "too_long")],
    ),
    Case(
        "jsonl with no newline at all",
        lambda: b'{"big": "' + b"x" * 1_000_000 + b'"}',
        SMALL,
        rows=0,
        errors=[(1, "too_long")],
    ),
    Case(
        "json array element longer than the record limit",
        lambda: b'[{"ok": 1},\n{"big": [' + b"1," * 100_000 + b'1]},\n{"ok": 2}]',
        SMALL,
        rows=2,
        errors=[(2, "too_long")],
    ),
    Case(
        "json array string element longer than the record limit",
        lambda: b'[{"ok": 1}, "' + b'a\\\\ \\"b' * 40_000 + b'", {"ok": 2}]',
        SMALL,
        rows=2,
        errors=[(1, "too_long")],
    ),
    Case(
        "csv giant unquoted line",
        lambda: csv_lines("a,b", "1,2", "x" * 200_000 + ",3", "4,5"),
        SMALL,
        rows=2,
        errors=[(3, "too_long")],
    ),
    Case(
        "csv giant quoted field on one line",
        lambda: csv_lines("a,b", '1,"' + "x" * 200_000 + '"', "4,5"),
        SMALL,
        rows=1,
        errors=[(2, "too_long")],
    ),
    Case(
        "csv giant header",
        lambda: csv_lines(",".join(["h"] * 40_000), "1"),
        SMALL,
        failure="header_too_long",
    ),
    Case(
        "csv with no newline at all",
        lambda: b"a," * 500_000,
        SMALL,
        failure="header_too_long",
    ),
    Case(
        "csv with no newline at all, header=false",
        lambda: b"a," * 500_000,
        {**SMALL, "header": False},
        failure="header_too_long",
    ),
    # Unterminated quotes: a row error at the line where the record starts; reading resumes
    # after that line, so nothing after it vanishes.
    Case(
        "unterminated quote in the header",
        lambda: csv_lines('a,"b', "1,2", "3,4"),
        SMALL,
        failure="header_unterminated_quote",
    ),
    Case(
        "unterminated quote mid-file",
        lambda: csv_lines("a,b", '1,"x', "2,y", "3,z"),
        SMALL,
        rows=2,
        errors=[(2, "unterminated_quote")],
        columns={"a": "integer", "b": "string"},
    ),
    Case(
        "unterminated quote followed by more than the record limit",
        lambda: csv_lines("a,b", "0,w", '1,"x', *["2,y"] * 100_000),
        SMALL,
        rows=100_001,
        errors=[(3, "unterminated_quote")],
    ),
    Case(
        "unterminated quote at the end",
        lambda: b'a,b\n1,2\n3,"x',
        SMALL,
        rows=1,
        errors=[(3, "unterminated_quote")],
    ),
    # Columns.
    Case(
        "default: 200,000 columns",
        lambda: wide_header(200_000),
        failure="too_many_columns",
        chunked=False,
    ),
    Case(
        "default: 10,000 duplicate names",
        lambda: wide_header(10_000, name="a"),
        rows=1,
        columns={"a": "integer", "a_2": "integer", "a_10000": "integer"},
        chunked=False,
    ),
    Case("csv over the column limit", lambda: wide_header(101), SMALL, failure="too_many_columns"),
    Case(
        "csv header name too long",
        lambda: csv_lines("id," + "n" * 65, "1,2"),
        SMALL,
        failure="column_name_too_long",
    ),
    Case(
        "jsonl with more distinct keys than allowed",
        lambda: b"".join(b'{"k%d": 1}\n' % i for i in range(20_000)),
        SMALL,
        failure="too_many_columns",
    ),
    Case(
        "json record with more keys than allowed",
        lambda: b"[{" + b",".join(b'"k%d": 1' % i for i in range(101)) + b"}]",
        SMALL,
        failure="too_many_columns",
    ),
    Case(
        "json key too long",
        lambda: jsonl(b'{"ok": 1}', b'{"' + b"k" * 65 + b'": 1}', b'{"ok": 2}'),
        SMALL,
        rows=2,
        errors=[(2, "key_too_long")],
        columns={"ok": "integer"},
    ),
    # Encodings.
    Case(
        "utf-32 without a BOM",
        lambda: "a,b\n1,2\n".encode("utf-32-le"),
        {"encoding": "utf-32"},
        rows=1,
        encoding="utf-32-le",
    ),
    Case(
        "utf-32 big-endian without a BOM",
        lambda: "a,b\n1,é\n".encode("utf-32-be"),
        {"encoding": "utf-32"},
        rows=1,
        encoding="utf-32-be",
        columns={"b": "string"},
    ),
    Case(
        "utf-16 without a BOM",
        lambda: "a,b\n1,2\n".encode("utf-16-le"),
        {"encoding": "utf-16"},
        rows=1,
        encoding="utf-16-le",
    ),
    Case(
        "utf-16 big-endian without a BOM",
        lambda: '{"a": "Zoë"}\n'.encode("utf-16-be"),
        {"encoding": "utf-16"},
        rows=1,
        encoding="utf-16-be",
    ),
    Case(
        "utf-16 without a BOM or the option",
        lambda: "a,b\n1,2\n".encode("utf-16-le"),
        failure="unsupported_format",
    ),
    Case(
        "utf-7 with a lone surrogate",
        lambda: b"a,b\n+2AA-,2\n3,4\n",
        {"encoding": "utf-7"},
        rows=1,
        errors=[(2, "decode")],
    ),
    Case(
        "unicode_escape with a lone surrogate",
        lambda: b"a,b\n\\ud800,2\n3,4\n",
        {"encoding": "unicode_escape"},
        rows=1,
        errors=[(2, "decode")],
    ),
    Case(
        "latin-1 labelled utf-8",
        latin1_labelled_utf8,
        {"encoding": "utf-8"},
        rows=1,
        errors=[(2, "decode"), (4, "decode")],
    ),
    Case(
        "invalid utf-8 in the header",
        lambda: b"id,na\xefme\n1,2\n",
        rows=1,
        errors=[(1, "decode")],
        columns={"na\ufffdme": "integer"},
    ),
    Case(
        "encoded surrogates in csv",
        lambda: b"a,b\n\xed\xa0\x80,1\n2,3\n",
        rows=1,
        errors=[(2, "decode")],
    ),
    Case(
        "lone surrogate escapes in json",
        lambda: jsonl(b'{"v": "\\ud800"}', b'{"\\udc00": 1}'),
        rows=2,
        columns={"v": "string", "\ufffd": "integer"},
    ),
    Case(
        "a codec for bytes, not text",
        lambda: b"a,b\n1,2\n",
        {"encoding": "hex"},
        failure="unsupported_format",
    ),
    Case(
        "a codec for host names",
        lambda: b"a,b\n1,2\n",
        {"encoding": "idna"},
        failure="unsupported_format",
    ),
    # Big integers: one rule for CSV and JSON, on Arrow's path and the line-by-line one.
    Case(
        "json integers at and beyond signed 64 bits",
        lambda: jsonl(
            b'{"max": 9223372036854775807, "min": -9223372036854775808,'
            b' "over": 9223372036854775808, "under": -9223372036854775809,'
            b' "u64": 18446744073709551616, "huge": 123456789012345678901234567890,'
            b' "float": 1.0e30}',
            b'{"max": 1, "min": 2, "over": 3, "under": 4, "u64": 5, "huge": 6, "float": 7.5}',
        ),
        rows=2,
        columns={
            "max": "integer",
            "min": "integer",
            "over": "string",
            "under": "string",
            "u64": "string",
            "huge": "string",
            "float": "number",
        },
    ),
    Case(
        "json big integers read line by line",
        lambda: jsonl(b'{"n": 1}', b"not json", b'{"n": 18446744073709551616}', b'{"n": 2.5}'),
        rows=3,
        errors=[(2, "json")],
        columns={"n": "string"},
    ),
    Case(
        "json big integer in a string or nested is not a column's",
        lambda: jsonl(b'{"s": "12345678901234567890123", "o": {"n": 123456789012345678901}}'),
        rows=1,
        columns={"s": "string", "o": "object"},
    ),
    Case(
        "csv big integers",
        lambda: csv_lines("n,m", "1,9223372036854775807", "18446744073709551616,1"),
        rows=2,
        columns={"n": "string", "m": "integer"},
    ),
    Case(
        "json NaN and Infinity",
        lambda: jsonl(b'{"a": 1}', b'{"a": NaN}', b'{"a": -Infinity}', b'{"a": 2}'),
        rows=2,
        errors=[(2, "json"), (3, "json")],
    ),
    # NUL bytes.
    Case("nul bytes at the start", lambda: b"a,b\n\x00\x00,1\n", failure="unsupported_format"),
    Case(
        "a nul byte after the first 64 KiB",
        lambda: csv_lines("a,b", *["x,1"] * 20_000, "y\x00z,2", "w,3"),
        rows=20_002,
    ),
    Case(
        "a raw nul byte in a json string",
        lambda: jsonl(*[b'{"a": "x"}'] * 20_000, b'{"a": "y\x00z"}', b'{"a": "w"}'),
        rows=20_001,
        errors=[(20_001, "json")],
    ),
]
