"""Reading an upload request: its options, its media type, and its body streamed to disk.

The body is never buffered whole: multipart bodies go through python-multipart's
streaming parser and raw bodies straight to the `UploadWriter`, which counts size and
sha-256 as bytes arrive and enforces the size limit mid-stream.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from pydantic import ValidationError
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from service.errors import (
    BadRequest,
    InsufficientStorage,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
    validation_errors,
)
from service.options import OPTION_NAMES, JobOptions
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

# An upload's options are the options its job records.
UploadOptions = JobOptions


def validate_options(given: dict[str, Any]) -> JobOptions:
    try:
        return JobOptions.model_validate(given)
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
    options: JobOptions
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
    # An empty Content-Encoding names no coding at all, like an absent one.
    encoding = request.headers.get("content-encoding", "").strip().lower() or "identity"
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


class ClientSilence:
    """Ends the block with TimeoutError once the client has sent nothing for `seconds`.

    Each chunk only records when it arrived; the single timer re-arms itself lazily, so a
    fast upload costs one clock read per chunk, not a timer.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._loop = asyncio.get_running_loop()
        self._last = self._loop.time()
        self._scope = asyncio.timeout(None)
        self._timer: asyncio.TimerHandle | None = None

    def heard(self) -> None:
        self._last = self._loop.time()

    def _check(self) -> None:
        due = self._last + self.seconds
        now = self._loop.time()
        if now >= due:
            self._scope.reschedule(now)
        else:
            self._timer = self._loop.call_at(due, self._check)

    async def __aenter__(self) -> ClientSilence:
        await self._scope.__aenter__()
        self.heard()
        self._timer = self._loop.call_at(self._last + self.seconds, self._check)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._timer is not None:
            self._timer.cancel()
        await self._scope.__aexit__(exc_type, exc, tb)


async def _body(
    request: Request, silence: ClientSilence, body_hash: BodyHash | None = None
) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.stream():
            silence.heard()
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
    client_timeout_s: float,
    expected_sha256: str | None = None,
) -> Upload:
    """Stream the request body to `destination` and return what was stored.

    With `destination` None the body is only measured and hashed, then dropped.
    A body whose sha-256 differs from `expected_sha256` is refused (400) and dropped; a client
    silent for `client_timeout_s` mid-body gets 408. Nothing is left on disk unless this
    returns with a `destination`.
    """
    try:
        async with UploadWriter(incoming_dir, max_bytes) as writer:
            body_hash = hashlib.sha256() if expected_sha256 and media_type == MULTIPART else None
            form = await _receive_body(request, media_type, writer, client_timeout_s, body_hash)
            if form is not None:
                options = validate_options({**query_options, **form.fields})
                name = clean_file_name(form.file_name or file_name)
                stored_type = form.file_media_type or "application/octet-stream"
                encoding = None
            else:
                options = validate_options(query_options)
                name = clean_file_name(file_name)
                stored_type = media_type
                encoding = content_encoding
            stored = await writer.digest()
            body_sha256 = body_hash.hexdigest() if body_hash else stored.sha256
            if expected_sha256 and expected_sha256 != body_sha256:
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


async def _receive_body(
    request: Request,
    media_type: str,
    writer: UploadWriter,
    client_timeout_s: float,
    body_hash: BodyHash | None,
) -> _Form | None:
    """Write the file to `writer`; the form, for a multipart body."""
    try:
        async with ClientSilence(client_timeout_s) as silence:
            if media_type == MULTIPART:
                return await _receive_multipart(request, writer, silence, body_hash)
            async for chunk in _body(request, silence):
                await writer.write(chunk)
            return None
    except TimeoutError:
        raise RequestTimeout(
            f"The client sent nothing for {client_timeout_s:g} s in the middle of the body; "
            "nothing was kept.",
            headers={"Connection": "close"},
        ) from None


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


@dataclass(frozen=True)
class _PartStart:
    """A part's headers are complete; its data follows."""

    headers: dict[bytes, bytes]


class _PartEnd:
    """The current part has ended."""


_PART_END = _PartEnd()
_Event = _PartStart | bytes | _PartEnd


class _PartEvents:
    """Collects python-multipart's callbacks so they can be handled with `await`.

    One network chunk may hold several parts; each start event keeps its own part's headers,
    since the events are handled only after the parser has gone through the whole chunk.
    """

    def __init__(self) -> None:
        self.events: list[_Event] = []
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self.complete = False

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field_data,
            "on_header_value": self._header_value_data,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": lambda data, start, end: self.events.append(data[start:end]),
            "on_part_end": lambda: self.events.append(_PART_END),
            "on_end": self._end,
        }

    def take(self) -> list[_Event]:
        events, self.events = self.events, []
        return events

    def _end(self) -> None:
        self.complete = True

    def _part_begin(self) -> None:
        self._headers = {}

    def _headers_finished(self) -> None:
        self.events.append(_PartStart(self._headers))

    def _header_field_data(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[bytes(self._header_field).lower()] = bytes(self._header_value)
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
    request: Request,
    writer: UploadWriter,
    silence: ClientSilence,
    body_hash: BodyHash | None = None,
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
        async for chunk in _body(request, silence, body_hash):
            parser.write(chunk)
            for event in events.take():
                part = await _handle_event(event, part, form, writer)
        parser.finalize()
    except FormParserError as exc:
        raise BadRequest(f"The multipart body is malformed: {exc}") from None
    if not events.complete:
        raise BadRequest("The multipart body ends before its closing boundary.")
    if form.files == 0:
        raise BadRequest("No file: send the file in a multipart field named 'file'.")
    return form


def _begin_part(headers: dict[bytes, bytes], form: _Form) -> _Part:
    part = _start_part(headers)
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
    elif part.name in form.fields:
        raise BadRequest(f"Form field {part.name!r} is given more than once.")
    return part


async def _handle_event(
    event: _Event, part: _Part | None, form: _Form, writer: UploadWriter
) -> _Part | None:
    if isinstance(event, _PartStart):
        return _begin_part(event.headers, form)
    if part is None:
        return None
    if isinstance(event, bytes):
        if part.is_file:
            await writer.write(event)
        else:
            part.value += event
            if len(part.value) > MAX_FIELD_BYTES:
                raise BadRequest(f"Form field {part.name!r} is too long.")
    elif not part.is_file and part.name:
        form.fields[part.name] = part.value.decode("utf-8", "replace")
    return part
