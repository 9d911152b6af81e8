"""HTTP/1.1 over plain sockets: the cheapest possible client, so that the server is measured.

Uploads go out with `socket.sendfile` (the kernel copies the file; the client process stays
idle) and the load generator reuses pre-built request bytes on keep-alive connections.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

HEAD_END = b"\r\n\r\n"


@dataclass(frozen=True)
class FileRange:
    """`count` bytes of a file from `offset` on, sent with sendfile() like a whole file."""

    path: Path
    offset: int
    count: int


BodyPart = bytes | Path
RequestPart = BodyPart | FileRange


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """Status code and lower-cased headers of a response head."""
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return status, headers


def _part_size(part: RequestPart) -> int:
    if isinstance(part, FileRange):
        return part.count
    return part.stat().st_size if isinstance(part, Path) else len(part)


def body_size(parts: Sequence[RequestPart]) -> int:
    return sum(_part_size(part) for part in parts)


def multipart(path: Path, media_type: str, field: str = "file") -> tuple[str, list[BodyPart]]:
    """Content-Type and body parts of a form with the file as its only field."""
    boundary = f"bench-{uuid.uuid4().hex}"
    preamble = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="{field}"; filename="{path.name}"\r\n'
        f"Content-Type: {media_type}\r\n\r\n"
    ).encode()
    epilogue = f"\r\n--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", [preamble, path, epilogue]


class Connection:
    """One blocking keep-alive connection."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 600.0) -> None:
        self.host = host
        self.port = port
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        target: str,
        headers: dict[str, str] | None = None,
        body: Sequence[RequestPart] = (),
    ) -> Response:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {body_size(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            self.sock.sendall(head)
            for part in body:
                if isinstance(part, Path):
                    with open(part, "rb") as f:
                        self.sock.sendfile(f)
                elif isinstance(part, FileRange):
                    with open(part.path, "rb") as f:
                        self.sock.sendfile(f, part.offset, part.count)
                else:
                    self.sock.sendall(part)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer early (413, 503); its response is read below
        return self._read_response(method)

    def _read_response(self, method: str) -> Response:
        while HEAD_END not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(HEAD_END)
        status, headers = parse_head(head)
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return Response(status, headers, b"")
        if headers.get("transfer-encoding", "").lower() == "chunked":
            return Response(status, headers, self._read_chunked())
        if "content-length" in headers:
            return Response(status, headers, self._read_exactly(int(headers["content-length"])))
        while self._fill(allow_eof=True):
            pass
        body, self.buffer = self.buffer, b""
        return Response(status, headers, body)

    def _fill(self, allow_eof: bool = False) -> bool:
        data = self.sock.recv(1 << 16)
        if not data:
            if allow_eof:
                return False
            raise ConnectionError("connection closed by the server")
        self.buffer += data
        return True

    def _read_exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            while b"\r\n" not in self.buffer:
                self._fill()
            line, _, self.buffer = self.buffer.partition(b"\r\n")
            size = int(line.split(b";")[0], 16)
            chunk = self._read_exactly(size + 2)[:size]  # no trailers: "0\r\n\r\n" ends it
            if size == 0:
                return b"".join(chunks)
            chunks.append(chunk)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Status, body and whether the server keeps the connection open."""
    head = await reader.readuntil(HEAD_END)
    status, headers = parse_head(head[: -len(HEAD_END)])
    keep_alive = headers.get("connection", "").lower() != "close"
    if status in (204, 304):
        return status, b"", keep_alive
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                return status, b"".join(chunks), keep_alive
            chunks.append(chunk[:size])
    length = headers.get("content-length")
    if length is None:
        return status, await reader.read(), False
    return status, await reader.readexactly(int(length)), keep_alive


def build_request(
    method: str, target: str, port: int, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    """A complete request as bytes, for clients that send the same request many times."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
