"""AsyncClient: the asyncio client. Many requests share one connection:
each call writes its frame and waits on a future; one reader task matches
replies to futures by req_id.
"""
from __future__ import annotations

import asyncio
import socket as _socket
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from . import _request as rq
from . import protocol as p
from .errors import BatchdError, ConnectionError, ProtocolError, error_for
from .status import Status


_Answer = Tuple[int, Optional[bytes]]   # status, body


class _One:
    """A request of one id waiting for its reply."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.fut = loop.create_future()   # (status, body); ours

    def answer(self, rid: int, status: int, data: Optional[bytes]) -> None:
        if not self.fut.done():           # done: the caller was cancelled
            self.fut.set_result((status, data))

    def fail(self, exc: BaseException) -> None:
        if not self.fut.done():
            self.fut.set_exception(exc)


class _Many:
    """A *_MANY request of n ids: resolves once every item is answered."""

    def __init__(self, loop: asyncio.AbstractEventLoop, first: int, n: int) -> None:
        self.fut = loop.create_future()   # list of (status, body); ours
        self.first = first                # id of item 0
        self.answers: List[Any] = [None] * n
        self.left = n                     # items not answered yet

    def answer(self, rid: int, status: int, data: Optional[bytes]) -> None:
        self.answers[rid - self.first] = (status, data)
        self.left -= 1
        if self.left == 0 and not self.fut.done():
            self.fut.set_result(self.answers)

    def fail(self, exc: BaseException) -> None:
        if not self.fut.done():
            self.fut.set_exception(exc)


class _Conn:
    """One connection after its HELLO, and its reader task."""

    def __init__(self, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, reply_max: int) -> None:
        self.reader = reader              # owned
        self.writer = writer              # owned
        self.frames = p.FrameReader(reply_max)
        self.pending: Dict[int, Any] = {}  # id -> _One/_Many (one entry per id)
        self.next_id = 2                  # 1 was the HELLO
        self.error: Optional[BatchdError] = None  # set once it is dead
        self.task: Optional["asyncio.Task[None]"] = None  # the reader, owned
        self.out: List[bytes] = []        # frames not yet handed to writer
        self.flush_due = False            # a flush is scheduled on the loop

    def queue(self, data: bytes) -> None:
        """Write data with the frames of the other calls made in this
        turn of the loop: one write (one send) for all of them."""
        self.out.append(data)
        if not self.flush_due:
            self.flush_due = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self.flush_due = False
        out, self.out = self.out, []
        if self.error is None and out:
            self.writer.write(b"".join(out))

    async def run(self) -> None:
        """The reader task: hand each reply to its waiter until the
        connection ends, then fail everything still pending."""
        try:
            while True:
                chunk = await self.reader.read(self.frames.want())
                if not chunk:
                    raise ConnectionError("the daemon closed the connection")
                for body in self.frames.feed(chunk):
                    self.dispatch(body)
        except BatchdError as e:
            self.die(e)
        except OSError as e:
            self.die(ConnectionError("read: %s" % e))
        except asyncio.CancelledError:
            self.die(ConnectionError("client closed"))
            raise
        except Exception as e:  # a bug here must not leave callers waiting
            self.die(ProtocolError("reply reader failed: %r" % e))
            raise

    def dispatch(self, body: bytes) -> None:
        mtype, rid, status, data = p.decode_reply(body)
        if mtype == p.ERROR:
            raise error_for(status, p.text(data))
        waiter = self.pending.pop(rid, None)
        if waiter is None:
            raise ProtocolError("reply for unknown request id %d" % rid)
        waiter.answer(rid, status, data)

    def die(self, exc: BatchdError) -> None:
        """Mark the connection dead, fail every waiter once, close."""
        if self.error is None:
            self.error = exc
        waiters = {id(w): w for w in self.pending.values()}
        self.pending.clear()
        for w in waiters.values():
            w.fail(exc)
        self.writer.close()


class AsyncClient:
    """An asyncio batchd client; the calls are coroutines.

    Calls from many tasks share one connection and are pipelined: each
    queues its frame at once (the frames of one turn of the event loop go
    out in one write) and waits for its own reply (matched by req_id). Cancelling a waiting call is safe: its reply, when it comes,
    is dropped (the item itself may still be done by the daemon). Use
    asyncio.wait_for for timeouts. When the connection breaks, the calls
    waiting on it raise ConnectionError (or the ERROR frame's exception)
    and the next call connects again. Use from one event loop.

    The connection opens on the first call (or `await connect()`); the
    arguments are those of Client, without timeout.
    """

    def __init__(self, socket: Optional[str] = None, *,
                 name: str = rq.CLIENT_NAME,
                 max_frame: int = p.DEFAULT_MAX_FRAME,
                 reply_max: int = p.REPLY_MAX) -> None:
        self.path = rq.socket_path(socket)  # the daemon's socket
        self.name = name                    # HELLO client_name
        self.max_frame = max_frame          # largest request body we send
        self.reply_max = reply_max          # largest reply body we accept
        self.server = ""                    # HELLO answer, "batchd 0.1.0"
        self._conn: Optional[_Conn] = None  # owned; None or dead = reconnect
        self._connecting: Optional["asyncio.Future[_Conn]"] = None  # a connect under way

    # ---- public calls ------------------------------------------------------

    async def connect(self) -> None:
        """Connect now (calls do it by themselves when needed)."""
        await self._live()

    async def load(self, key: str, payload: rq.Payload, *,
                   deadline_ms: Optional[int] = None,
                   priority: Optional[int] = None,
                   dedup_id: Union[bytes, str, None] = None,
                   trace: Optional[str] = None) -> bytes:
        """As Client.load."""
        opts = rq.make_opts(deadline_ms, priority, dedup_id, trace)
        st, data = await self._one(
            lambda i: rq.item_frame(p.LOAD, i, key, payload, opts, self.max_frame))
        return rq.value(rq.load_result(st, data))

    async def send(self, key: str, payload: rq.Payload, *,
                   deadline_ms: Optional[int] = None,
                   priority: Optional[int] = None,
                   dedup_id: Union[bytes, str, None] = None,
                   trace: Optional[str] = None) -> None:
        """As Client.send."""
        opts = rq.make_opts(deadline_ms, priority, dedup_id, trace)
        st, data = await self._one(
            lambda i: rq.item_frame(p.SEND, i, key, payload, opts, self.max_frame))
        err = rq.send_result(st, data)
        if err is not None:
            raise err

    async def load_many(self, key: str, payloads: Sequence[rq.Payload], *,
                        deadline_ms: Optional[int] = None,
                        priority: Optional[int] = None,
                        dedup_id: Union[bytes, str, None] = None,
                        trace: Optional[str] = None
                        ) -> List[Union[bytes, BatchdError]]:
        """As Client.load_many."""
        opts = rq.make_opts(deadline_ms, priority, dedup_id, trace)
        items = rq.many_payloads(payloads)
        answers = await self._many(
            lambda i: rq.many_frame(p.LOAD_MANY, i, key, items, opts,
                                    self.max_frame), len(items))
        return [rq.load_result(st, data) for st, data in answers]

    async def send_many(self, key: str, payloads: Sequence[rq.Payload], *,
                        deadline_ms: Optional[int] = None,
                        priority: Optional[int] = None,
                        dedup_id: Union[bytes, str, None] = None,
                        trace: Optional[str] = None
                        ) -> List[Optional[BatchdError]]:
        """As Client.send_many."""
        opts = rq.make_opts(deadline_ms, priority, dedup_id, trace)
        items = rq.many_payloads(payloads)
        answers = await self._many(
            lambda i: rq.many_frame(p.SEND_MANY, i, key, items, opts,
                                    self.max_frame), len(items))
        return [rq.send_result(st, data) for st, data in answers]

    async def control(self, command: str,
                      args: Optional[Dict[str, str]] = None) -> str:
        """As Client.control."""
        st, data = await self._one(
            lambda i: rq.control_frame(i, command, args, self.max_frame))
        return rq.value(rq.control_result(st, data))

    async def close(self) -> None:
        """Close the connection; waiting calls raise ConnectionError. A
        later call connects again."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        conn.die(ConnectionError("client closed"))
        if conn.task is not None:
            conn.task.cancel()
            try:
                await conn.task
            except asyncio.CancelledError:
                pass
        try:
            await conn.writer.wait_closed()
        except OSError:
            pass

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- requests ------------------------------------------------------------

    async def _one(self, build: rq.Build) -> _Answer:
        conn = await self._live()
        rid = conn.next_id
        data = build(rid)               # may raise: nothing registered
        conn.next_id += 1
        waiter = _One(asyncio.get_running_loop())
        answer: _Answer = await self._submit(conn, data, {rid: waiter}, waiter)
        return answer

    async def _many(self, build: rq.Build, n: int) -> List[_Answer]:
        conn = await self._live()
        first = conn.next_id
        data = build(first)
        conn.next_id += n
        waiter = _Many(asyncio.get_running_loop(), first, n)
        answers: List[_Answer] = await self._submit(
            conn, data, dict.fromkeys(range(first, first + n), waiter), waiter)
        return answers

    async def _submit(self, conn: _Conn, data: bytes, ids: Dict[int, Any],
                      waiter: Any) -> Any:
        """Register the ids, queue the frame, wait. The frame is queued
        right after the ids are registered, with no await in between, so
        a cancelled caller always leaves a known id behind (its reply is
        dropped), never a stray reply."""
        if conn.error is not None:      # died while we waited to connect
            raise conn.error
        conn.pending.update(ids)
        conn.queue(data)
        try:
            await conn.writer.drain()
        except OSError:
            pass        # the reader task sees the close and fails the waiter
        except BaseException:
            waiter.fut.cancel()         # nobody will look at it
            raise
        return await waiter.fut

    # ---- connection ------------------------------------------------------------

    async def _live(self) -> _Conn:
        """The current connection, or a new one when there is none or it
        died. Concurrent callers share one connect attempt."""
        conn = self._conn
        if conn is not None and conn.error is None and conn.writer.transport.is_closing():
            # Lost, and the reader task has not run since to say so: do not
            # write into a dead transport (asyncio would log every write).
            conn.die(ConnectionError("the daemon closed the connection"))
        if conn is not None and conn.error is None:
            return conn
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open())
        try:
            # shield: one caller's cancellation must not abort the others'
            new = await asyncio.shield(self._connecting)
        finally:
            if self._connecting is not None and self._connecting.done():
                self._connecting = None
        return new

    async def _open(self) -> _Conn:
        old, self._conn = self._conn, None
        if old is not None and old.task is not None:
            old.task.cancel()
        sock = await self._hello()
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=2 ** 16)
        conn = _Conn(reader, writer, self.reply_max)
        conn.task = asyncio.ensure_future(conn.run())
        self._conn = conn
        return conn

    async def _hello(self) -> _socket.socket:
        """Connect and say HELLO on a plain socket, then hand it to the
        streams. A daemon that refuses us sends its ERROR frame at once
        and closes; our HELLO write may then fail with EPIPE, but the
        frame is still in the socket: a stream would drop it on the write
        error, the socket keeps it readable."""
        loop = asyncio.get_running_loop()
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            try:
                await loop.sock_connect(sock, self.path)
            except OSError as e:
                raise ConnectionError("connect %s: %s" % (
                    self.path, e.strerror or e)) from None
            try:
                await loop.sock_sendall(sock, p.encode_hello(1, self.name))
            except (BrokenPipeError, ConnectionResetError):
                pass        # refused at once: its ERROR frame says why
            frames = p.FrameReader(self.reply_max)
            bodies: List[bytes] = []
            while not bodies:
                try:
                    chunk = await loop.sock_recv(sock, frames.want())
                except OSError as e:
                    raise ConnectionError("HELLO: read: %s" % e) from None
                if not chunk:
                    raise ConnectionError("the daemon closed the connection")
                bodies = frames.feed(chunk)
            if len(bodies) > 1:
                raise ProtocolError("more than one reply to HELLO")
            mtype, rid, st, data = p.decode_reply(bodies[0])
            if mtype == p.ERROR:
                raise error_for(st, p.text(data))
            if rid != 1:
                raise ProtocolError("reply for unknown request id %d" % rid)
            if st != Status.OK:
                raise rq.hello_error(st, data)
        except BaseException:
            sock.close()
            raise
        self.server = p.text(data)
        return sock

