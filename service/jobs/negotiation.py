"""What a result download answers with: the format (`?format=`, else `Accept`), the byte
range (`Range`, `If-Range`) and the file name offered (`Content-Disposition`)."""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from urllib.parse import quote

from service.errors import NotAcceptable, RangeNotSatisfiable
from service.formats.registry import FORMATS, Format

DEFAULT = FORMATS["ndjson"]
_Q = re.compile(r"^\s*q\s*=\s*([0-9](?:\.[0-9]{0,3})?)\s*$", re.IGNORECASE)
_RANGE = re.compile(r"^\s*bytes\s*=\s*([0-9]*)\s*-\s*([0-9]*)\s*$", re.IGNORECASE)
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ ()+-]")


def offered() -> str:
    return ", ".join(f.media_type for f in FORMATS.values())


def negotiate(accept: str | None, requested: str | None) -> Format:
    """`?format=` wins; else the format `Accept` prefers (by q, then the order the client
    listed its media ranges, then ours: NDJSON first); no `Accept` or `*/*`: NDJSON. 406 when
    `Accept` admits none."""
    if requested:
        return FORMATS[requested]
    if accept is None or not accept.strip():
        return DEFAULT
    ranges = _media_ranges(accept)
    best: tuple[float, int, int] | None = None
    chosen = DEFAULT
    for order, fmt in enumerate(FORMATS.values()):
        match = _match(ranges, fmt.media_type)
        if match is None or match[0] <= 0:
            continue
        key = (match[0], -match[1], -order)
        if best is None or key > best:
            best, chosen = key, fmt
    if best is None:
        raise NotAcceptable(
            f"None of the result's formats is acceptable. Offered: {offered()} "
            "(or ?format=ndjson|json|csv|parquet|arrow)."
        )
    return chosen


def _media_ranges(accept: str) -> list[tuple[str, str, float]]:
    ranges = []
    for item in accept.split(","):
        kind, *params = item.split(";")
        kind = kind.strip().lower()
        if "/" not in kind:
            continue
        main, sub = (part.strip() for part in kind.split("/", 1))
        q = 1.0
        for param in params:
            weight = _Q.match(param)
            if weight:
                q = min(float(weight.group(1)), 1.0)
        ranges.append((main, sub, q))
    return ranges


def _match(ranges: list[tuple[str, str, float]], media_type: str) -> tuple[float, int] | None:
    """(q, position) of the most specific media range that covers `media_type`."""
    main, sub = media_type.split(";")[0].split("/")
    found: tuple[int, float, int] | None = None
    for position, (range_main, range_sub, q) in enumerate(ranges):
        if (range_main, range_sub) == (main, sub):
            specificity = 2
        elif (range_main, range_sub) == (main, "*"):
            specificity = 1
        elif (range_main, range_sub) == ("*", "*"):
            specificity = 0
        else:
            continue
        if found is None or specificity > found[0]:
            found = (specificity, q, position)
    return None if found is None else (found[1], found[2])


# Any offset past this is past the end of any file; longer digit strings are not even
# converted (Python refuses int() of more than 4,300 digits).
_BEYOND_ANY_FILE = 1 << 63


def _offset(digits: str) -> int:
    significant = digits.lstrip("0") or "0"
    return int(significant) if len(significant) <= 18 else _BEYOND_ANY_FILE


def byte_range(
    header: str | None, if_range: str | None, etag: str, size: int
) -> tuple[int, int] | None:
    """The bytes [start, end) a `Range` header asks for, or None for the whole file: no
    header, an `If-Range` other than the current ETag, or a header this server ignores
    (several ranges, another unit, malformed: RFC 9110 lets a server send the whole file).
    416 when the range starts past the end."""
    if header is None or (if_range is not None and if_range.strip() != etag):
        return None
    parsed = _RANGE.match(header)
    if parsed is None:
        return None
    first, last = parsed.groups()
    if not first and not last:
        return None
    if not first:
        suffix = _offset(last)
        if suffix == 0 or size == 0:
            raise _unsatisfiable(size)
        return max(size - suffix, 0), size
    start = _offset(first)
    if last and _offset(last) < start:
        return None
    if start >= size:
        raise _unsatisfiable(size)
    end = min(_offset(last) + 1, size) if last else size
    return start, end


def _unsatisfiable(size: int) -> RangeNotSatisfiable:
    return RangeNotSatisfiable(
        f"The range starts past the end of the file ({size} bytes).",
        headers={"Content-Range": f"bytes */{size}"},
    )


def content_disposition(file_name: str, extension: str, fallback: str) -> str:
    """`attachment` with the uploaded file's name, its extension (and `.gz`) replaced by the
    format's: `orders.csv` → `orders.parquet`. Non-ASCII names travel in `filename*`."""
    name = PurePosixPath(file_name.replace("\\", "/")).name
    if name.lower().endswith(".gz"):
        name = name[:-3]
    stem = PurePosixPath(name).stem if "." in name.lstrip(".") else name
    stem = stem.strip() or fallback
    full = f"{stem}.{extension}"
    ascii_name = _SAFE_NAME.sub("_", full)
    if ascii_name == full:
        return f'attachment; filename="{full}"'
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(full, safe='')}"
