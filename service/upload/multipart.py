"""A multipart/form-data body, streamed: the file part goes to the `UploadWriter` as it
arrives, the option fields are collected (small, bounded), anything else is refused."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from service.errors import BadRequest
from service.options import OPTION_NAMES
from service.storage import UploadWriter
from service.upload.request import BodyHash, ClientSilence, body_chunks

MAX_FIELD_BYTES = 4096


@dataclass
class _Part:
    name: str | None = None
    file_name: str | None = None
    media_type: str | None = None
    is_file: bool = False
    value: bytearray = field(default_factory=bytearray)


@dataclass
class Form:
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


async def receive_multipart(
    request: Request,
    writer: UploadWriter,
    silence: ClientSilence,
    body_hash: BodyHash | None = None,
) -> Form:
    _, params = parse_options_header(request.headers.get("content-type"))
    boundary = params.get(b"boundary")
    if not boundary:
        raise BadRequest("The multipart body has no boundary.")
    events = _PartEvents()
    form = Form()
    part: _Part | None = None
    try:
        parser = MultipartParser(boundary, events.callbacks())  # type: ignore[arg-type]
        async for chunk in body_chunks(request, silence, body_hash):
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


def _begin_part(headers: dict[bytes, bytes], form: Form) -> _Part:
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
    event: _Event, part: _Part | None, form: Form, writer: UploadWriter
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
