"""uvicorn's httptools protocol with limits on request heads (request line and headers).

httptools reads a head of any size and waits for it for ever; this protocol refuses
- a head larger than `max_header_bytes`: 431, as soon as that many bytes have arrived
  without the head ending (or, for a head that arrived at once, when it ends);
- a head not complete `header_timeout_s` after its first byte (or, on a new connection,
  after it opened): 408 if part of it came, else the connection is simply closed.
Both answers are problem+json and close the connection. Everything after the head (bodies,
responses, keep-alive) is uvicorn's own code, untouched.
"""

from __future__ import annotations

import asyncio
import http
import logging
from typing import Any, ClassVar

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.errors import PROBLEM_MEDIA_TYPE

logger = logging.getLogger(__name__)


class _HeadRefused(Exception):
    """Raised inside a parser callback to stop httptools at once."""


class HeadLimitedProtocol(HttpToolsProtocol):
    """One connection; the limits are class attributes set by `protocol_with_limits`.

    A status poll pays a clock read and a few comparisons: the deadline is checked by one
    timer per connection that re-arms itself, not a timer per request.
    """

    max_header_bytes: ClassVar[int] = 64 * 1024
    header_timeout_s: ClassVar[float] = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        # Bytes of the chunks that arrived while a head was being read; it may undercount a
        # head that began in the same chunk as the end of the previous request.
        self._head_bytes = 0
        self._counting = False  # the chunk being parsed is counted in `_head_bytes`
        self._head_uncounted = False  # this head began in a chunk that was not counted
        self._head_started: float | None = None
        self._watch: asyncio.TimerHandle | None = None
        self._refusal: tuple[int, str] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._head_started = self.loop.time()
        self._watch = self.loop.call_later(self.header_timeout_s, self._check_head)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._in_head:
            self._counting = False
            super().data_received(data)
            return
        self._counting = True
        self._head_bytes += len(data)
        if self._head_started is None:
            self._head_started = self.loop.time()
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self._refusal is not None:
                self._refuse(*self._refusal)
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._in_head and self._head_bytes > self.max_header_bytes:
            self._refuse(431, self._too_large())

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_uncounted = not self._counting

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_started = None
        if self._head_uncounted or self._head_bytes > self.max_header_bytes:
            size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
            if size > self.max_header_bytes:
                self._refusal = (431, self._too_large())
                raise _HeadRefused
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True
        self._head_bytes = 0
        self._counting = False

    def _check_head(self) -> None:
        self._watch = None
        if self.transport.is_closing():
            return
        now = self.loop.time()
        due = now + self.header_timeout_s
        if self._in_head and self._head_started is not None:
            due = self._head_started + self.header_timeout_s
            if now >= due:
                self._head_timed_out()
                return
        self._watch = self.loop.call_at(due, self._check_head)

    def _head_timed_out(self) -> None:
        if self._head_bytes == 0:
            self.transport.close()
            return
        detail = f"The request headers did not arrive within {self.header_timeout_s:g} s."
        self._refuse(408, detail)

    def _too_large(self) -> str:
        return f"The request headers are larger than {self.max_header_bytes} bytes."

    def _refuse(self, status: int, detail: str) -> None:
        """Answer `status` with a problem document and close; or only close, when a response
        to an earlier pipelined request is still being written."""
        self._in_head = False
        logger.info("request refused", extra={"status": status, "client": self.client})
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(self._problem(status, detail))
        self.transport.close()

    def _problem(self, status: int, detail: str) -> bytes:
        title = http.HTTPStatus(status).phrase
        body = orjson.dumps(
            {"type": "about:blank", "title": title, "status": status, "detail": detail}
        )
        head = [f"HTTP/1.1 {status} {title}".encode()]
        head += [name + b": " + value for name, value in self.server_state.default_headers]
        head += [
            b"content-type: " + PROBLEM_MEDIA_TYPE.encode(),
            b"content-length: %d" % len(body),
            b"connection: close",
        ]
        return b"\r\n".join(head) + b"\r\n\r\n" + body


def protocol_with_limits(
    max_header_bytes: int, header_timeout_s: float
) -> type[HeadLimitedProtocol]:
    """The protocol class to give uvicorn as `http=`, with these limits."""
    return type(
        "ConfiguredHeadLimitedProtocol",
        (HeadLimitedProtocol,),
        {"max_header_bytes": max_header_bytes, "header_timeout_s": header_timeout_s},
    )
