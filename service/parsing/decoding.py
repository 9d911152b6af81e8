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
# Codecs whose byte order a BOM tells; without one it is read from the content.
_BYTE_ORDER_UNITS = {"utf-16": 2, "utf-32": 4}
_BYTE_ORDER_SAMPLE = 4096


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
    if codec in _BYTE_ORDER_UNITS:
        codec = f"{codec}-{_byte_order(head, _BYTE_ORDER_UNITS[codec])}"
        return TextEncoding(codec, codec, 0)
    if not _reads_files(codec):
        raise ParseFailure("unsupported_format", f"{option!r} is not a text encoding")
    return TextEncoding(_REPORTED_NAMES.get(codec, codec), codec, 0)


def _reads_files(codec: str) -> bool:
    """A text encoding whose decoder takes bytes a block at a time and lets undecodable ones
    be marked: not `hex` or `rot13` (bytes.decode refuses them), nor `idna`, `punycode` or
    `undefined`, which refuse any error handler but their own."""
    try:
        b"".decode(codec)
        codecs.getincrementaldecoder(codec)(errors=_MARK_ERRORS).decode(b"a", True)
    except (LookupError, TypeError, UnicodeError, AssertionError):
        return False
    return True


def _byte_order(head: bytes, unit: int) -> str:
    """`le` or `be` for UTF-16 or UTF-32 without a BOM (Python's decoders demand one).

    Characters below U+0100, the commonest in data files, have their zero bytes after the
    other byte in little-endian order and before it in big-endian order; where that does not
    tell, big-endian, as the Unicode standard says for text without a BOM.
    """
    sample = head[: _BYTE_ORDER_SAMPLE - _BYTE_ORDER_SAMPLE % unit]
    zeros_last = sample[unit - 1 :: unit].count(0)
    zeros_first = sample[::unit].count(0)
    return "le" if zeros_last > zeros_first else "be"


class Utf8Stream:
    """Converts successive blocks in `encoding` to UTF-8 bytes, BOM removed."""

    def __init__(self, encoding: TextEncoding) -> None:
        self._name = encoding.name
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
        try:
            text = self._decoder.decode(block, final)
        except UnicodeError as exc:  # a decoder that fails by itself rather than mark bytes
            raise ParseFailure(
                "unsupported_format", f"the file cannot be read as {self._name}: {exc}"
            ) from exc
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            # Lone surrogates: undecodable bytes marked by the error handler, or ones the
            # decoder made itself (UTF-7's `+2AA-`, `\\ud800` in unicode_escape). Each becomes
            # the byte 0x80, never valid UTF-8, so its record becomes a `decode` error.
            return SURROGATES.sub(_MARK_CHAR, text).encode("utf-8", "surrogateescape")


def decode_lossless(data: bytes) -> str:
    """UTF-8 text where each invalid byte becomes a lone surrogate (see `SURROGATES`)."""
    return data.decode("utf-8", "surrogateescape")


def displayable(text: str) -> str:
    """Text safe to serialise: lone surrogates (undecodable bytes) shown as U+FFFD."""
    return SURROGATES.sub("\ufffd", text)
