"""Random identifiers without a system call each.

`os.urandom` releases the GIL for its system call; on a busy event loop, with threads
writing files and talking to the database, taking the GIL back can cost far more than the
call itself. Identifiers are cut from a block of `os.urandom` bytes drawn once per
`POOL_BYTES`; a forked child draws its own block, so no two processes share one.
"""

from __future__ import annotations

import os
import threading
import uuid

POOL_BYTES = 4096


class _RandomPool:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._block = b""
        self._at = 0

    def take(self, size: int) -> bytes:
        with self._lock:
            if self._at + size > len(self._block):
                self._block = os.urandom(max(POOL_BYTES, size))
                self._at = 0
            start, self._at = self._at, self._at + size
            return self._block[start : self._at]

    def forget(self) -> None:
        self._lock = threading.Lock()
        self._block = b""
        self._at = 0


_pool = _RandomPool()
os.register_at_fork(after_in_child=_pool.forget)


def random_uuid() -> uuid.UUID:
    """A random (version 4) UUID, as unguessable as `uuid.uuid4()`."""
    return uuid.UUID(bytes=_pool.take(16), version=4)


def random_hex(size: int = 16) -> str:
    """`size` random bytes as hex."""
    return _pool.take(size).hex()
