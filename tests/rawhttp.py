"""HTTP/1.1 over a plain socket, for tests that control exactly which bytes go out when."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass(frozen=True)
class Part:
    """One part of a multipart body: a form field, or the file when `file_name` is set."""

    name: str
    data: bytes
    file_name: str | None = None
    media_type: str | None = None


def multipart_body(parts: Iterable[Part], boundary: str) -> bytes:
    out = bytearray()
    for part in parts:
        disposition = f'form-data; name="{part.name}"'
        if part.file_name is not None:
            disposition += f'; filename="{part.file_name}"'
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if part.media_type:
            out += f"Content-Type: {part.media_type}\r\n".encode()
        out += b"\r\n" + part.data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out)


def chunked(body: bytes, sizes: Sequence[int]) -> bytes:
    """`body` in Transfer-Encoding: chunked framing, cut into chunks at `sizes`."""
    out = bytearray()
    start = 0
    for end in [*sorted(sizes), len(body)]:
        if end > start:
            out += b"%x\r\n" % (end - start) + body[start:end] + b"\r\n"
            start = end
    return bytes(out + b"0\r\n\r\n")


def request_head(method: str, target: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class RawConnection:
    """One keep-alive connection; bytes are sent exactly as cut, each piece its own segment."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = b""

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes, cuts: Iterable[int] = (), pause_s: float = 0.002) -> None:
        """Send `data` in pieces cut at the offsets `cuts`, pausing between pieces so that
        the server reads each piece on its own."""
        start = 0
        for end in [*sorted(set(cuts)), len(data)]:
            if 0 < end - start:
                if start:
                    time.sleep(pause_s)
                self.sock.sendall(data[start:end])
                start = end

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self._buffer += data
        return bool(data)

    def read_response(self) -> RawResponse:
        while b"\r\n\r\n" not in self._buffer:
            if not self._fill():
                raise ConnectionError(f"closed before a response: {self._buffer!r}")
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        status = int(status_line.split()[1])
        if headers.get("transfer-encoding") == "chunked":
            body = self._read_chunked()
        else:
            length = int(headers.get("content-length", "0"))
            while len(self._buffer) < length:
                if not self._fill():
                    raise ConnectionError("closed in the middle of a response body")
            body, self._buffer = self._buffer[:length], self._buffer[length:]
        return RawResponse(status, headers, body)

    def _read_chunked(self) -> bytes:
        body = bytearray()
        while True:
            while b"\r\n" not in self._buffer:
                self._fill()
            size_line, self._buffer = self._buffer.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            while len(self._buffer) < size + 2:
                self._fill()
            body += self._buffer[:size]
            self._buffer = self._buffer[size + 2 :]
            if size == 0:
                return bytes(body)

    def closed_within(self, seconds: float) -> bool:
        """Whether the server closes the connection within `seconds` (anything it sent
        before closing stays readable with `read_response`)."""
        self.sock.settimeout(seconds)
        try:
            while self._fill():
                pass
        except ConnectionResetError:
            pass
        except TimeoutError:
            return False
        return True
