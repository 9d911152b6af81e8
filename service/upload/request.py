"""Reading an upload request before and around its body: the media type and coding, the
declared length, the client's file name, and the body's chunks with a silence deadline."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Protocol

from python_multipart.multipart import parse_options_header
from starlette.requests import ClientDisconnect, Request

from service.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

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
MAX_FILENAME_CHARS = 255


class BodyHash(Protocol):
    def update(self, data: bytes, /) -> None: ...


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


async def body_chunks(
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
