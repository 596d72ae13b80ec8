"""Client: the blocking client. One Client is one Unix socket connection,
opened at construction and opened again by the next call after it broke.
"""
from __future__ import annotations

import os
import select
import socket as _socket
import threading
import time
from typing import Dict, List, Optional, Sequence, Tuple, Union

from . import _request as rq
from . import protocol as p
from .errors import (BatchdError, ConnectionError, ProtocolError, Timeout,
                     error_for)
from .status import Status

_Answer = Tuple[int, Optional[bytes]]   # status, body


class Client:
    """A blocking batchd client.

    Thread safe: a lock serialises the calls, so threads that share one
    Client take turns (one request in flight at a time). For parallel
    requests use one Client per thread, or AsyncClient. After fork(), a
    child that uses its parent's Client opens its own connection.

    socket: the daemon's socket path; None means $BATCHD_SOCKET, else
    /run/batchd/batchd.sock. timeout: seconds for the connect and for each
    call (None: wait forever); a call that runs out raises Timeout and
    closes the connection. max_frame: the largest request body sent (the
    daemon's max_frame, 1 MiB unless the operator changed it); a bigger
    one raises FrameTooLarge before anything is sent. reply_max: the
    largest reply body accepted (64 MiB, as libbatchd).
    Raises ConnectionError when the daemon is not there.
    """

    def __init__(self, socket: Optional[str] = None, *,
                 timeout: Optional[float] = None,
                 name: str = rq.CLIENT_NAME,
                 max_frame: int = p.DEFAULT_MAX_FRAME,
                 reply_max: int = p.REPLY_MAX) -> None:
        self.path = rq.socket_path(socket)  # the daemon's socket
        self.timeout = timeout              # seconds per call, None = forever
        self.name = name                    # HELLO client_name, for logs
        self.max_frame = max_frame          # largest request body we send
        self.reply_max = reply_max          # largest reply body we accept
        self.server = ""                    # HELLO answer, "batchd 0.1.0"
        self._lock = threading.Lock()       # one call at a time
        self._sock: Optional[_socket.socket] = None   # owned; None = closed
        self._reader = p.FrameReader(reply_max)       # of the current socket
        self._pid = 0                       # process that opened _sock
        self._next_id = 1                   # ids start at 1 (0 = ERROR/0)
        with self._lock:
            self._connect(self._deadline())

    # ---- public calls ------------------------------------------------------

    def load(self, key: str, payload: rq.Payload, *,
             deadline_ms: Optional[int] = None, priority: Optional[int] = None,
             dedup_id: Union[bytes, str, None] = None,
             trace: Optional[str] = None) -> bytes:
        """LOAD one item; returns the sink's answer, or raises the
        BatchdError subclass of the reply's status."""
        opts = rq.make_opts(deadline_ms, priority, dedup_id, trace)
        (st, data), = self._call(
            lambda i: rq.item_frame(p.LOAD, i, key, payload, opts,
                                    self.max_frame), 1)
        return rq.value(rq.load_result(st, data))

    def send(self, key: str, payload: rq.Payload, *,
             deadline_ms: Optional[int] = None, priority: Optional[int] = None,
             dedup_id: Union[bytes, str, None] = None,
             trace: Optional[str] = None) -> None:
        """SEND one item (fire and forget): returns once the daemon owns it
        (ACCEPTED), or raises the error that refused it."""
        opts = rq.make_opts(deadline_ms, priority, dedup_id, trace)
        (st, data), = self._call(
            lambda i: rq.item_frame(p.SEND, i, key, payload, opts,
                                    self.max_frame), 1)
        err = rq.send_result(st, data)
        if err is not None:
            raise err

    def load_many(self, key: str, payloads: Sequence[rq.Payload], *,
                  deadline_ms: Optional[int] = None,
                  priority: Optional[int] = None,
                  dedup_id: Union[bytes, str, None] = None,
                  trace: Optional[str] = None) -> List[Union[bytes, BatchdError]]:
        """LOAD_MANY: one frame, one result per payload, in payload order:
        the sink's answer (bytes) or the item's BatchdError (returned, not
        raised, like asyncio.gather(return_exceptions=True))."""
        opts = rq.make_opts(deadline_ms, priority, dedup_id, trace)
        items = rq.many_payloads(payloads)
        answers = self._call(
            lambda i: rq.many_frame(p.LOAD_MANY, i, key, items, opts,
                                    self.max_frame), len(items))
        return [rq.load_result(st, data) for st, data in answers]

    def send_many(self, key: str, payloads: Sequence[rq.Payload], *,
                  deadline_ms: Optional[int] = None,
                  priority: Optional[int] = None,
                  dedup_id: Union[bytes, str, None] = None,
                  trace: Optional[str] = None) -> List[Optional[BatchdError]]:
        """SEND_MANY: one result per payload: None when ACCEPTED, else the
        BatchdError that refused the item (returned, not raised)."""
        opts = rq.make_opts(deadline_ms, priority, dedup_id, trace)
        items = rq.many_payloads(payloads)
        answers = self._call(
            lambda i: rq.many_frame(p.SEND_MANY, i, key, items, opts,
                                    self.max_frame), len(items))
        return [rq.send_result(st, data) for st, data in answers]

    def control(self, command: str, args: Optional[Dict[str, str]] = None) -> str:
        """A CONTROL command (ping, stats, health, pause, resume, drain,
        reload): returns its text (JSON for stats and health)."""
        (st, data), = self._call(
            lambda i: rq.control_frame(i, command, args, self.max_frame), 1)
        return rq.value(rq.control_result(st, data))

    def close(self) -> None:
        """Close the connection. A later call opens a new one."""
        with self._lock:
            self._drop()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- one exchange ----------------------------------------------------------

    def _call(self, build: rq.Build, n: int) -> List[_Answer]:
        """Send the frame build(first_id) makes (n ids) and wait for the n
        replies. Reconnects first when the connection is gone."""
        with self._lock:
            deadline = self._deadline()
            self._check_idle()
            if self._sock is None:
                self._connect(deadline)
            first = self._next_id
            data = build(first)         # may raise ValueError: nothing sent
            self._next_id += n
            return self._exchange(data, first, n, deadline)

    def _exchange(self, data: bytes, first: int, n: int,
                  deadline: Optional[float]) -> List[_Answer]:
        answers: List[Optional[_Answer]] = [None] * n
        left = n
        try:
            self._send(data, deadline)
            while left:
                for body in self._recv(deadline):
                    mtype, rid, st, bd = p.decode_reply(body)
                    if mtype == p.ERROR:
                        raise error_for(st, p.text(bd))
                    i = rid - first
                    if not 0 <= i < n or answers[i] is not None:
                        raise ProtocolError("reply for unknown request id %d" % rid)
                    answers[i] = (st, bd)
                    left -= 1
        except BaseException:
            # Replies may still be owed on this connection (an error, a
            # timeout, KeyboardInterrupt): nobody would take them.
            self._drop()
            raise
        return answers        # type: ignore[return-value]

    def _send(self, data: bytes, deadline: Optional[float]) -> None:
        sock = self._sock
        assert sock is not None
        if deadline is not None:    # else the socket stays blocking
            sock.settimeout(_left(deadline))
        try:
            sock.sendall(data)
        except _socket.timeout:
            raise Timeout("timed out writing to %s" % self.path) from None
        except (BrokenPipeError, ConnectionResetError):
            # The daemon closed: what it said last (an ERROR frame) is
            # still ours to read, and tells why. Reading finds it or EOF.
            pass
        except OSError as e:
            raise ConnectionError("write %s: %s" % (self.path, e)) from None

    def _recv(self, deadline: Optional[float]) -> List[bytes]:
        sock = self._sock
        assert sock is not None
        if deadline is not None:
            sock.settimeout(_left(deadline))
        try:
            chunk = sock.recv(self._reader.want())
        except _socket.timeout:
            raise Timeout("no reply from %s within %ss" % (self.path, self.timeout)) from None
        except OSError as e:
            raise ConnectionError("read %s: %s" % (self.path, e)) from None
        if not chunk:
            raise ConnectionError("the daemon closed the connection")
        return self._reader.feed(chunk)

    # ---- connection ----------------------------------------------------------

    def _deadline(self) -> Optional[float]:
        return None if self.timeout is None else time.monotonic() + self.timeout

    def _connect(self, deadline: Optional[float]) -> None:
        left = _left(deadline)
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            sock.settimeout(left)
            sock.connect(self.path)
        except _socket.timeout:
            sock.close()
            raise Timeout("connect %s: timed out" % self.path) from None
        except OSError as e:
            sock.close()
            raise ConnectionError("connect %s: %s" % (
                self.path, e.strerror or e)) from None
        self._sock, self._pid = sock, os.getpid()
        self._reader = p.FrameReader(self.reply_max)
        self._next_id = 2
        (st, data), = self._exchange(p.encode_hello(1, self.name), 1, 1, deadline)
        if st != Status.OK:
            self._drop()
            raise rq.hello_error(st, data)
        self.server = p.text(data)

    def _check_idle(self) -> None:
        """Between calls nothing is owed to us: anything readable (EOF, an
        ERROR frame such as an idle timeout) means the daemon is done with
        this connection, so drop it and let the call open a new one. A
        socket inherited through fork() is the parent's: leave it be."""
        if self._sock is None:
            return
        if self._pid != os.getpid():
            self._sock.detach()     # the parent's descriptor; not ours
            self._sock = None
            return
        # select, not recv(MSG_DONTWAIT): a socket with a timeout polls
        # for the whole timeout whatever the flags say.
        ready, _, _ = select.select([self._sock], [], [], 0)
        if ready:
            self._drop()        # EOF, an unsolicited frame, or an error

    def _drop(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _left(deadline: Optional[float]) -> Optional[float]:
    """Seconds to a deadline for settimeout (None: block); raises Timeout
    when it has passed."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise Timeout("timed out")
    return left

