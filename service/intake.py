"""Reading an upload request: its options, its media type, and its body streamed to disk.

The body is never buffered whole: multipart bodies go through python-multipart's
streaming parser and raw bodies straight to the `UploadWriter`, which counts size and
sha-256 as bytes arrive and enforces the size limit mid-stream.
"""

from __future__ import annotations

import codecs
import errno
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from service.errors import (
    BadRequest,
    InsufficientStorage,
    PayloadTooLarge,
    UnsupportedMediaType,
    validation_errors,
)
from service.storage import StoredFile, UploadWriter

RAW_MEDIA_TYPES = frozenset(
    {
        "text/csv",
        "text/tab-separated-values",
        "application/x-ndjson",
        "application/jsonl",
        "application/json",
        "application/gzip",
        "application/octet-stream",
    }
)
MULTIPART = "multipart/form-data"
# A multipart body carries part headers and boundaries besides the file itself.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
MAX_FIELD_BYTES = 4096
MAX_FILENAME_CHARS = 255

Format = Literal["auto", "csv", "tsv", "jsonl", "json"]
MAX_ERRORS_LIMIT = 1_000_000_000
PROBE = "id;name\n1;Zoë\n"
# Codecs that round-trip text but are not how files are encoded.
NOT_FILE_ENCODINGS = frozenset({"idna", "punycode", "raw_unicode_escape", "unicode_escape"})


class UploadOptions(BaseModel):
    """How the client asks for the file to be parsed."""

    model_config = ConfigDict(extra="forbid")

    format: Format = "auto"
    delimiter: str | None = None
    header: bool = True
    encoding: str = "auto"
    max_errors: int = Field(default=1000, ge=0, le=MAX_ERRORS_LIMIT)

    @field_validator("delimiter")
    @classmethod
    def _usable_delimiter(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if len(value) != 1 or not (value == "\t" or (value.isascii() and value.isprintable())):
            raise ValueError("the delimiter must be one printable ASCII character, or a tab")
        if value == '"':
            raise ValueError("the quote character cannot be the delimiter")
        return value

    @field_validator("encoding")
    @classmethod
    def _text_encoding(cls, value: str) -> str:
        if value.lower() == "auto":
            return "auto"
        try:
            name = codecs.lookup(value).name
            # Only codecs that turn bytes into text qualify (not hex, base64, rot13, zlib…).
            usable = name not in NOT_FILE_ENCODINGS and PROBE.encode(name).decode(name) == PROBE
        except (LookupError, UnicodeError):
            usable = False
        if not usable:
            raise ValueError(f"{value!r} is not a text encoding this service can read")
        return name


OPTION_NAMES = frozenset(UploadOptions.model_fields)


def validate_options(given: dict[str, Any]) -> UploadOptions:
    try:
        return UploadOptions.model_validate(given)
    except ValidationError as exc:
        errors = validation_errors(exc.errors())
        raise BadRequest("The upload options are not valid.", errors=errors) from None


class BodyHash(Protocol):
    def update(self, data: bytes, /) -> None: ...


@dataclass
class Upload:
    """What the client sent, once its body is stored."""

    file_name: str
    media_type: str
    content_encoding: str | None
    options: UploadOptions
    stored: StoredFile


def media_type_of(request: Request) -> str:
    content_type = request.headers.get("content-type")
    if not content_type:
        return ""
    media_type, _ = parse_options_header(content_type)
    return media_type.decode("latin-1").lower()


def check_media_type(request: Request) -> tuple[str, str | None]:
    """The request's media type and content coding, or 415 if the service does not take them."""
    media_type = media_type_of(request)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if media_type == MULTIPART or media_type in RAW_MEDIA_TYPES:
        if encoding == "identity":
            return media_type, None
        if encoding == "gzip" and media_type != MULTIPART:
            return media_type, encoding
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding!r} is not supported here; "
            "only gzip, and only on a raw (not multipart) body."
        )
    supported = ", ".join(sorted(RAW_MEDIA_TYPES | {MULTIPART}))
    shown = media_type or "none"
    raise UnsupportedMediaType(f"Media type {shown!r} is not supported. Send one of: {supported}.")


def declared_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        raise BadRequest("Content-Length is not a number.") from None
    if length < 0:
        raise BadRequest("Content-Length is negative.")
    return length


def check_declared_size(request: Request, media_type: str, max_bytes: int) -> int | None:
    """Refuse a body whose Content-Length already says it is too large (413)."""
    length = declared_length(request)
    allowance = MULTIPART_OVERHEAD_BYTES if media_type == MULTIPART else 0
    if length is not None and length > max_bytes + allowance:
        raise PayloadTooLarge(f"The upload is larger than {max_bytes} bytes.")
    return length


def clean_file_name(name: str | None, fallback: str = "upload") -> str:
    """The client's file name as metadata: last path component, printable, bounded."""
    if not name:
        return fallback
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    return base[:MAX_FILENAME_CHARS] or fallback


async def _body(request: Request, body_hash: BodyHash | None = None) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.stream():
            if chunk:
                if body_hash is not None:
                    body_hash.update(chunk)
                yield chunk
    except ClientDisconnect:
        raise BadRequest("The client disconnected before the upload was complete.") from None


async def receive(
    request: Request,
    *,
    media_type: str,
    content_encoding: str | None,
    query_options: dict[str, Any],
    file_name: str | None,
    incoming_dir: Path,
    destination: Path | None,
    max_bytes: int,
    expected_sha256: str | None = None,
) -> Upload:
    """Stream the request body to `destination` and return what was stored.

    With `destination` None the body is only measured and hashed, then dropped.
    A body whose sha-256 differs from `expected_sha256` is refused (400) and dropped.
    Nothing is left on disk unless this returns with a `destination`.
    """
    try:
        async with UploadWriter(incoming_dir, max_bytes) as writer:
            if media_type == MULTIPART:
                body_hash = hashlib.sha256() if expected_sha256 else None
                form = await _receive_multipart(request, writer, body_hash)
                body_sha256 = body_hash.hexdigest() if body_hash else None
                options = validate_options({**query_options, **form.fields})
                name = clean_file_name(form.file_name or file_name)
                stored_type = form.file_media_type or "application/octet-stream"
                encoding = None
            else:
                async for chunk in _body(request):
                    await writer.write(chunk)
                options = validate_options(query_options)
                name = clean_file_name(file_name)
                stored_type = media_type
                encoding = content_encoding
                body_sha256 = None
            stored = await writer.digest()
            if expected_sha256 and expected_sha256 != (body_sha256 or stored.sha256):
                raise BadRequest("The body does not match its digest header; nothing was kept.")
            if destination is not None:
                stored = await writer.commit(destination)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise InsufficientStorage("The disk is full.") from None
        raise
    return Upload(
        file_name=name,
        media_type=stored_type,
        content_encoding=encoding,
        options=options,
        stored=stored,
    )


@dataclass
class _Part:
    name: str | None = None
    file_name: str | None = None
    media_type: str | None = None
    is_file: bool = False
    value: bytearray = field(default_factory=bytearray)


@dataclass
class _Form:
    fields: dict[str, str] = field(default_factory=dict)
    file_name: str | None = None
    file_media_type: str | None = None
    files: int = 0


class _PartEvents:
    """Collects python-multipart's callbacks so they can be handled with `await`."""

    def __init__(self) -> None:
        self.events: list[tuple[str, bytes]] = []
        self._header_field = bytearray()
        self._header_value = bytearray()
        self.headers: dict[bytes, bytes] = {}
        self.complete = False

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field_data,
            "on_header_value": self._header_value_data,
            "on_header_end": self._header_end,
            "on_headers_finished": lambda: self.events.append(("headers", b"")),
            "on_part_data": lambda data, start, end: self.events.append(("data", data[start:end])),
            "on_part_end": lambda: self.events.append(("end", b"")),
            "on_end": self._end,
        }

    def _end(self) -> None:
        self.complete = True

    def _part_begin(self) -> None:
        self.headers = {}

    def _header_field_data(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self.headers[bytes(self._header_field).lower()] = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()


def _start_part(headers: dict[bytes, bytes]) -> _Part:
    disposition, params = parse_options_header(headers.get(b"content-disposition"))
    if disposition != b"form-data":
        raise BadRequest("Each multipart part needs Content-Disposition: form-data.")
    name = params.get(b"name", b"").decode("utf-8", "replace")
    raw_file_name = params.get(b"filename")
    content_type = headers.get(b"content-type")
    part = _Part(name=name, is_file=raw_file_name is not None)
    if raw_file_name is not None:
        part.file_name = raw_file_name.decode("utf-8", "replace")
        if content_type:
            part.media_type = parse_options_header(content_type)[0].decode("latin-1").lower()
    return part


async def _receive_multipart(
    request: Request, writer: UploadWriter, body_hash: BodyHash | None = None
) -> _Form:
    _, params = parse_options_header(request.headers.get("content-type"))
    boundary = params.get(b"boundary")
    if not boundary:
        raise BadRequest("The multipart body has no boundary.")
    events = _PartEvents()
    form = _Form()
    part: _Part | None = None
    try:
        parser = MultipartParser(boundary, events.callbacks())  # type: ignore[arg-type]
        async for chunk in _body(request, body_hash):
            parser.write(chunk)
            for kind, data in events.events:
                part = await _handle_event(kind, data, part, events, form, writer)
            events.events.clear()
        parser.finalize()
    except FormParserError as exc:
        raise BadRequest(f"The multipart body is malformed: {exc}") from None
    if not events.complete:
        raise BadRequest("The multipart body ends before its closing boundary.")
    if form.files == 0:
        raise BadRequest("No file: send the file in a multipart field named 'file'.")
    return form


async def _handle_event(
    kind: str,
    data: bytes,
    part: _Part | None,
    events: _PartEvents,
    form: _Form,
    writer: UploadWriter,
) -> _Part | None:
    if kind == "headers":
        part = _start_part(events.headers)
        if part.is_file:
            if part.name != "file":
                raise BadRequest(f"Unexpected file field {part.name!r}: name it 'file'.")
            form.files += 1
            if form.files > 1:
                raise BadRequest("Send exactly one file per upload.")
            form.file_name = part.file_name
            form.file_media_type = part.media_type
        elif part.name == "file":
            raise BadRequest("The 'file' field must be a file upload, as with curl -F file=@path.")
        elif part.name not in OPTION_NAMES:
            allowed = ", ".join(sorted(OPTION_NAMES))
            raise BadRequest(f"Unknown form field {part.name!r}; known fields: {allowed}.")
        return part
    if part is None:
        return None
    if kind == "data":
        if part.is_file:
            await writer.write(data)
        else:
            part.value += data
            if len(part.value) > MAX_FIELD_BYTES:
                raise BadRequest(f"Form field {part.name!r} is too long.")
    elif kind == "end" and not part.is_file and part.name:
        form.fields[part.name] = part.value.decode("utf-8", "replace")
    return part
