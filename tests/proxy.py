"""A TCP proxy on 127.0.0.1 that cuts a connection in the middle of a request body (or, with
`downstream=True`, of a response body), as a dropped network would: once `cut_after` bytes
have gone from clients to the server (from the server to clients), both sides of that
connection are closed. Connections after the cut pass untouched."""

from __future__ import annotations

import socket
import threading
from types import TracebackType


class CuttingProxy:
    def __init__(self, upstream_port: int, cut_after: int, *, downstream: bool = False) -> None:
        self.upstream_port = upstream_port
        self.cut_after = cut_after
        self.downstream = downstream
        self.forwarded = 0
        self.cut = threading.Event()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._closed = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> CuttingProxy:
        self._start(self._accept)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closed = True
        # Shut down, not only closed: closing a socket does not wake a thread blocked in its
        # accept() or recv(), and joining that thread would wait out its timeout.
        _close(self._listener)
        for sock in self._sockets:
            _close(sock)
        for thread in self._threads:
            thread.join(timeout=5)

    def _start(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream_port))
            self._sockets += [client, server]
            self._start(self._pump, client, server, True)
            self._start(self._pump, server, client, False)

    def _pump(self, source: socket.socket, target: socket.socket, upstream: bool) -> None:
        try:
            while data := source.recv(65536):
                if upstream != self.downstream and not self.cut.is_set():
                    with self._lock:
                        self.forwarded += len(data)
                        cutting = self.forwarded >= self.cut_after
                    if cutting:
                        self.cut.set()
                        break
                target.sendall(data)
        except OSError:
            pass
        _close(source)
        _close(target)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
