"""Choosing the text encoding and turning any encoding into a UTF-8 byte stream.

Everything after this module works on UTF-8 bytes. Bytes that cannot be decoded are not an
error here: they are carried through as bytes that are never valid UTF-8, so the reader that
owns the record can turn exactly that record into a `decode` row error.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from service.parsing.contract import ParseFailure

_MARK_ERRORS = "ingest.mark-undecodable"
# A lone continuation byte is invalid UTF-8 wherever it stands, and a run of them is too.
_MARK_CHAR = "\udc80"  # encodes (surrogateescape) to the byte 0x80
SURROGATES = re.compile("[\ud800-\udfff]")

_BOMS: tuple[tuple[bytes, str, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le", "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be", "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8", "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le", "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be", "utf-16-be"),
)
_REPORTED_NAMES = {"iso8859-1": "latin-1", "ascii": "ascii"}


def _mark_undecodable(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return _MARK_CHAR * (error.end - error.start), error.end


codecs.register_error(_MARK_ERRORS, _mark_undecodable)


@dataclass(frozen=True)
class TextEncoding:
    """How the stored bytes become text: `codec` is None when they are UTF-8 already."""

    name: str  # the name reported in the result
    codec: str | None
    bom_length: int


def choose_encoding(head: bytes, option: str) -> TextEncoding:
    """A BOM wins; else the `encoding` option; else UTF-8."""
    for bom, codec, name in _BOMS:
        if head.startswith(bom):
            return TextEncoding(name, None if codec == "utf-8" else codec, len(bom))
    wanted = option.strip().lower()
    if wanted in ("", "auto"):
        return TextEncoding("utf-8", None, 0)
    try:
        info = codecs.lookup(wanted)
    except LookupError as exc:
        raise ParseFailure("unsupported_format", f"unknown encoding {option!r}") from exc
    codec = info.name
    if codec in ("utf-8", "utf-8-sig"):
        return TextEncoding("utf-8", None, 0)
    try:
        codecs.getincrementaldecoder(codec)
    except (LookupError, TypeError) as exc:
        raise ParseFailure("unsupported_format", f"{option!r} is not a text encoding") from exc
    return TextEncoding(_REPORTED_NAMES.get(codec, codec), codec, 0)


class Utf8Stream:
    """Converts successive blocks in `encoding` to UTF-8 bytes, BOM removed."""

    def __init__(self, encoding: TextEncoding) -> None:
        self._bom_left = encoding.bom_length
        self._decoder = (
            codecs.getincrementaldecoder(encoding.codec)(errors=_MARK_ERRORS)
            if encoding.codec is not None
            else None
        )

    def convert(self, block: bytes, *, final: bool = False) -> bytes:
        if self._bom_left:
            cut = min(self._bom_left, len(block))
            block = block[cut:]
            self._bom_left -= cut
        if self._decoder is None:
            return block
        text = self._decoder.decode(block, final)
        return text.encode("utf-8", "surrogateescape")


def decode_lossless(data: bytes) -> str:
    """UTF-8 text where each invalid byte becomes a lone surrogate (see `SURROGATES`)."""
    return data.decode("utf-8", "surrogateescape")


def displayable(text: str) -> str:
    """Text safe to serialise: lone surrogates (undecodable bytes) shown as U+FFFD."""
    return SURROGATES.sub("\ufffd", text)
