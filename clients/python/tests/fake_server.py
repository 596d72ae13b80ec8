"""A fake daemon: a real Unix socket server, in a thread, that answers
HELLO and then whatever a test scripts, broken frames included.

Not a mock of batchd: it stands for a daemon that misbehaves (or a wrong
program on the socket), which the real daemon never does on purpose.
"""
from __future__ import annotations

import os
import shutil
import socket
import struct
import tempfile
import threading
from typing import Callable, List, Optional

import msgpack

IO_TIMEOUT = 10.0       # safety net for every read in the server


def frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def pack(obj) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


class Peer:
    """The server's side of one client connection."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock            # owned
        self.buf = b""              # bytes read, not yet a whole frame
        sock.settimeout(IO_TIMEOUT)

    def read_request(self) -> list:
        """One request frame, decoded."""
        while True:
            if len(self.buf) >= 4:
                (n,) = struct.unpack(">I", self.buf[:4])
                if len(self.buf) >= 4 + n:
                    body, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
                    return msgpack.unpackb(body, raw=False)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("client closed")
            self.buf += chunk

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def hello(self, answer: Optional[bytes] = None) -> None:
        """Read HELLO and answer it (OK by default)."""
        req = self.read_request()
        assert req[0] == 0 and req[2] == 1, req
        self.send(answer if answer is not None else frame(pack([0, req[1], 0, "fake 1"])))

    def wait_closed(self, timeout: float = 5.0) -> bool:
        """True when the client closes its end within timeout."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(65536):
                pass
            return True
        except OSError:
            return False


class FakeServer:
    """Serves each connection with handler(peer) in its own thread.
    handler's exceptions are kept in .errors for the test to check."""

    def __init__(self, handler: Callable[[Peer], None]) -> None:
        self.dir = tempfile.mkdtemp(prefix="bdpy-fake.")
        self.socket = os.path.join(self.dir, "s.sock")
        self.handler = handler
        self.errors: List[BaseException] = []    # from handlers
        self.closed: List[bool] = []             # per connection: client closed?
        self._lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._lsock.bind(self.socket)
        self._lsock.listen(16)
        self._threads: List[threading.Thread] = []
        self._peers: List[Peer] = []
        self._stop = False
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        self._lsock.settimeout(0.1)
        while not self._stop:
            try:
                s, _ = self._lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            peer = Peer(s)
            self._peers.append(peer)
            t = threading.Thread(target=self._serve, args=(peer,), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, peer: Peer) -> None:
        try:
            self.handler(peer)
        except BaseException as e:  # reported by the test
            self.errors.append(e)

    def join(self, timeout: float = 15.0) -> None:
        """Wait for the handlers that started so far."""
        for t in list(self._threads):
            t.join(timeout)

    def close(self) -> None:
        self._stop = True
        self._acceptor.join(5)
        self._lsock.close()
        for p in self._peers:
            try:
                p.sock.shutdown(socket.SHUT_RDWR)   # wakes a blocked recv
            except OSError:
                pass
            p.sock.close()
        self.join(5)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "FakeServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
