"""Format detection (option, media type, extension, content), binary check, delimiter sniffing."""

from __future__ import annotations

import csv
import re
import sys
from collections.abc import Iterator
from pathlib import PurePosixPath

from service.parsing.contract import ParseFailure

FORMATS = ("csv", "tsv", "jsonl", "json")
CONTENT_SAMPLE_BYTES = 64 * 1024
SNIFF_SAMPLE_BYTES = 1024 * 1024
DELIMITER_CANDIDATES = (",", "\t", ";", "|")

_MEDIA_TYPES = {
    "text/csv": "csv",
    "application/csv": "csv",
    "text/tab-separated-values": "tsv",
    "application/x-ndjson": "jsonl",
    "application/ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/x-jsonlines": "jsonl",
    "application/jsonlines": "jsonl",
    "application/json": "json",
    "text/json": "json",
}
_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
}
_COMPRESSED_SUFFIXES = {".gz", ".gzip"}
_TEXT_CONTROLS = frozenset(b"\t\n\r\f\v\x1b")
# Every byte but the control bytes that are no text: deleting these leaves only those.
_ALL_BUT_BINARY_CONTROLS = bytes(b for b in range(256) if b >= 32 or b in _TEXT_CONTROLS)
# Records the sniffer compares, and the start of the sample it reads them from first: most
# files hold that many records in far less than the sample, and decoding and reading the
# whole sample (megabytes) cost several milliseconds per job.
_SNIFF_RECORDS = 2000
_SNIFF_FIRST_BYTES = 256 * 1024
# A physical line with its line break (LF, CRLF or a lone CR), or the unterminated last one:
# the lines io.StringIO(text, newline="") gives, found lazily.
_LINE = re.compile(r"[^\r\n]*(?:\r\n?|\n)|[^\r\n]+")


def detect_format(option: str, media_type: str | None, filename: str | None, head: bytes) -> str:
    """The format, first match wins: option, media type, file extension, content.

    A JSON media type or extension is only a family hint: `[` at the start means a JSON array
    and `{` means JSON lines, because clients label both `application/json`.
    """
    wanted = option.strip().lower()
    if wanted in FORMATS:
        return wanted
    if wanted not in ("", "auto"):
        raise ParseFailure("unsupported_format", f"unknown format {option!r}")
    hinted = _from_media_type(media_type) or _from_extension(filename)
    content = _from_content(head)
    if hinted in ("json", "jsonl") and content in ("json", "jsonl"):
        return content
    return hinted or content


def _from_media_type(media_type: str | None) -> str | None:
    if not media_type:
        return None
    essence = media_type.split(";", 1)[0].strip().lower()
    return _MEDIA_TYPES.get(essence)


def _from_extension(filename: str | None) -> str | None:
    if not filename:
        return None
    path = PurePosixPath(filename.replace("\\", "/").lower())
    if path.suffix in _COMPRESSED_SUFFIXES:
        path = path.with_suffix("")
    return _EXTENSIONS.get(path.suffix)


def _from_content(head: bytes) -> str:
    first = head.lstrip()[:1]
    if first == b"[":
        return "json"
    if first == b"{":
        return "jsonl"
    return "csv"


def looks_binary(head: bytes) -> bool:
    """True for content that is no text: NUL bytes, or many invalid or control bytes.

    The bar is high because a legacy-encoded text (Latin-1 read as UTF-8) is still text: its
    undecodable rows become row errors, not a rejected file.
    """
    sample = head[:CONTENT_SAMPLE_BYTES]
    if not sample:
        return False
    if b"\x00" in sample:
        return True
    text = sample.decode("utf-8", "replace")
    # The sample may end inside a multi-byte character: one replacement there is no evidence.
    bad = text.count("\ufffd") - (1 if text.endswith("\ufffd") else 0)
    controls = len(sample.translate(None, _ALL_BUT_BINARY_CONTROLS))
    return (bad + controls) > len(text) * 0.3


def sniff_delimiter(sample: bytes, *, at_eof: bool) -> str:
    """The candidate that splits the sample into the most consistent records.

    Each candidate is tried with a real CSV reader (so quoted delimiters do not count); the
    winner is the one whose records most often have the header's field count, with more than
    one field. A decimal comma in a `;` file gives the data rows a different field count from
    the header, which is why the header's count is the reference rather than the commonest.

    Only the first records count, so the start of the sample is read first; the whole sample
    only when a candidate's first records do not all end within that start.
    """
    if len(sample) > _SNIFF_FIRST_BYTES:
        chosen = _sniff(sample[:_SNIFF_FIRST_BYTES], at_eof=False, prefix=True)
        if chosen is not None:
            return chosen
    return _sniff(sample, at_eof=at_eof, prefix=False) or ","


def _sniff(sample: bytes, *, at_eof: bool, prefix: bool) -> str | None:
    """`sniff_delimiter` over `sample`; with `prefix`, None unless every candidate read gets
    all its records, each ending before the sample does (so a longer sample would give the
    same counts)."""
    text = sample.decode("utf-8", "replace")
    if not at_eof:
        # The last line may be cut short; a record split there would skew the counts.
        cut = max(text.rfind("\n"), text.rfind("\r"))
        if cut > 0:
            text = text[:cut]
        elif prefix:
            return None  # not one whole line: its records are not known yet
    best: tuple[float, int, int] | None = None
    chosen = ","
    for rank, candidate in enumerate(DELIMITER_CANDIDATES):
        if candidate not in text:
            # Every record would be one field: not worth reading. (Unless the first record
            # runs on past a prefix, where the rest of it might hold the candidate.)
            if prefix and not _first_record_ends(text, candidate):
                return None
            continue
        lines = _Lines(text)
        counts = _field_counts(lines, candidate)
        if prefix and (len(counts) < _SNIFF_RECORDS or lines.exhausted):
            return None
        if not counts or counts[0] < 2:
            continue
        reference = counts[0]
        agreeing = sum(1 for count in counts if count == reference) / len(counts)
        score = (agreeing, reference, -rank)
        if best is None or score > best:
            best, chosen = score, candidate
    return chosen


class _Lines:
    """The physical lines of a text, handed out one at a time; `exhausted` once the last one
    has been."""

    def __init__(self, text: str) -> None:
        self._matches = _LINE.finditer(text)
        self.exhausted = False

    def __iter__(self) -> Iterator[str]:
        for match in self._matches:
            yield match.group()
        self.exhausted = True


def _first_record_ends(text: str, delimiter: str) -> bool:
    lines = _Lines(text)
    return len(_field_counts(lines, delimiter, limit=1)) == 1 and not lines.exhausted


def _field_counts(lines: _Lines, delimiter: str, limit: int = _SNIFF_RECORDS) -> list[int]:
    csv.field_size_limit(sys.maxsize)
    reader = csv.reader(lines, delimiter=delimiter, strict=False)
    counts: list[int] = []
    try:
        for row in reader:
            if row:
                counts.append(len(row))
                if len(counts) >= limit:
                    break
    except csv.Error:
        pass
    return counts
