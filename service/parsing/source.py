"""Reading the stored upload: large aiofiles reads, gzip inflated on the fly under a size cap."""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from pathlib import Path
from types import TracebackType

import aiofiles
from aiofiles.threadpool.binary import AsyncBufferedReader

from service.parsing.contract import ParseFailure
from service.parsing.decoding import Utf8Stream
from service.parsing.threads import ON_THE_LOOP_BYTES

GZIP_MAGIC = b"\x1f\x8b"
DEFAULT_READ_SIZE = 4 * 2**20


class ByteSource:
    """The stored file as a stream of (decompressed) byte blocks.

    `bytes_done` counts bytes of the stored file consumed, so for gzip it is the compressed
    position: progress stays honest for compressed input.
    """

    def __init__(self, path: Path, *, read_size: int, max_decompressed_bytes: int) -> None:
        self._path = path
        self._read_size = max(read_size, 1)
        self._max_decompressed = max_decompressed_bytes
        self._file: AsyncBufferedReader | None = None
        self._inflater: _GzipInflater | None = None
        self._at_eof = False
        self._whole: bytes | None = None  # the content of a file read in one call
        self.bytes_total = path.stat().st_size
        self.bytes_done = 0

    async def __aenter__(self) -> ByteSource:
        if self.bytes_total < self._read_size:
            # A file that fits in one read is read whole in one thread call (open, read,
            # close): a 1 KB job otherwise paid an open, a read, the read that finds the end
            # and a close, each a hand-off to a thread that wakes the event loop. A file of a
            # few KB is read on the loop itself, like the blocks that size (`threads.py`).
            # One byte more than its size, so that a file grown since is noticed.
            if self.bytes_total <= ON_THE_LOOP_BYTES:
                whole = _read_whole(self._path, self.bytes_total + 1)
            else:
                whole = await asyncio.to_thread(_read_whole, self._path, self.bytes_total + 1)
            if whole is not None:
                self._whole = whole
                return self
        self._file = await aiofiles.open(self._path, "rb")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._file is not None:
            await self._file.close()
            self._file = None

    async def read(self) -> bytes:
        """The next block of content; b"" only at the end of the file."""
        while True:
            if self._inflater is not None and self._inflater.has_pending():
                out = await asyncio.to_thread(self._inflater.inflate, b"")
                if out:
                    return out
                continue
            if self._at_eof:
                if self._inflater is not None:
                    self._inflater.finish()
                return b""
            raw = await self._read_raw()
            if not raw:
                self._at_eof = True
                continue
            if self.bytes_done == len(raw) and raw.startswith(GZIP_MAGIC):
                self._inflater = _GzipInflater(self._max_decompressed, self._read_size)
            if self._inflater is None:
                return raw
            out = await asyncio.to_thread(self._inflater.inflate, raw)
            if out:
                return out

    async def _read_raw(self) -> bytes:
        if self._whole is not None:
            raw, self._whole = self._whole, b""
            self.bytes_done += len(raw)
            return raw
        assert self._file is not None, "ByteSource used outside `async with`"
        raw = await self._file.read(self._read_size)
        if self.bytes_done == 0 and 0 < len(raw) < len(GZIP_MAGIC):
            raw += await self._file.read(self._read_size)
        self.bytes_done += len(raw)
        return raw


def _read_whole(path: Path, size: int) -> bytes | None:
    """The whole file if it holds fewer than `size` bytes (it may have grown since its size
    was taken: then None, and it is read block by block)."""
    with open(path, "rb") as file:
        data = file.read(size)
    return data if len(data) < size else None


class _GzipInflater:
    """Inflates one or more concatenated gzip members, never more than `limit` bytes in all."""

    def __init__(self, limit: int, out_size: int) -> None:
        self._limit = limit
        self._out_size = max(out_size, 64 * 1024)
        self._member = zlib.decompressobj(wbits=31)
        self._pending = b""
        self._produced = 0
        self._started_member = False

    def has_pending(self) -> bool:
        return bool(self._pending) or bool(self._member.unconsumed_tail)

    def inflate(self, data: bytes) -> bytes:
        if data:
            self._pending += data
        if self._member.eof:
            self._start_next_member()
        source = self._member.unconsumed_tail or self._pending
        if source is self._pending:
            self._pending = b""
        if not source:
            return b""
        self._started_member = True
        try:
            out = self._member.decompress(source, self._out_size)
        except zlib.error as exc:
            raise ParseFailure("io_error", f"the gzip data is corrupt: {exc}") from exc
        if self._member.eof:
            self._pending = self._member.unused_data + self._pending
        self._produced += len(out)
        if self._produced > self._limit:
            raise ParseFailure(
                "decompressed_too_large",
                f"the file inflates to more than {self._limit} bytes",
            )
        return out

    def _start_next_member(self) -> None:
        if self._pending.startswith(GZIP_MAGIC):
            self._member = zlib.decompressobj(wbits=31)
            self._started_member = False
        else:
            # Bytes after the last member that are not another member: ignored, as gzip does.
            self._pending = b""

    def finish(self) -> None:
        if self._started_member and not self._member.eof:
            raise ParseFailure("io_error", "the gzip data is truncated")


class TextSource:
    """The content as UTF-8 blocks, with a way to put back what was read to look ahead."""

    def __init__(self, raw: ByteSource, stream: Utf8Stream, head: bytes, *, at_eof: bool) -> None:
        self._raw = raw
        self._stream = stream
        self._pending = head
        self._raw_done = at_eof
        self._ahead: asyncio.Future[bytes] | None = None

    @property
    def at_eof(self) -> bool:
        """True once everything has been handed out."""
        return self._raw_done and not self._pending and self._ahead is None

    @property
    def bytes_done(self) -> int:
        return self._raw.bytes_done

    @property
    def bytes_total(self) -> int:
        return self._raw.bytes_total

    def unread(self, data: bytes) -> None:
        self._pending = data + self._pending

    async def read(self) -> bytes:
        """The next UTF-8 block; b"" at the end.

        The block after it is already being read (and inflated) while the caller parses.
        """
        if self._pending:
            block, self._pending = self._pending, b""
            return block
        if self._raw_done and self._ahead is None:
            return b""
        ahead = self._ahead or asyncio.ensure_future(self._next_block())
        self._ahead = None
        block = await ahead
        if not self._raw_done:
            self._ahead = asyncio.ensure_future(self._next_block())
        return block

    async def _next_block(self) -> bytes:
        while True:
            raw = await self._raw.read()
            if not raw:
                self._raw_done = True
                return self._stream.convert(b"", final=True)
            block = self._stream.convert(raw)
            if block:
                return block

    async def aclose(self) -> None:
        """Stops the read-ahead (before the file is closed)."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            ahead.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await ahead

    async def read_at_least(self, size: int, start: bytes = b"") -> bytes:
        """`start` extended by further blocks until it holds `size` bytes or the file ends."""
        parts = [start]
        have = len(start)
        while have < size and not self.at_eof:
            block = await self.read()
            parts.append(block)
            have += len(block)
        return b"".join(parts) if len(parts) > 1 else start
