"""A fake server sends broken frames: every client must raise a clean
exception (no hang, no crash), and close the connection when it cannot
trust it any more. Also the statuses the real daemon never sends."""
from __future__ import annotations

import asyncio
import time
import unittest

import msgpack

import batchd
from .fake_server import FakeServer, Peer, frame, pack

SAFETY = 10.0   # seconds: a client that waits this long has hung

# (name, reply to LOAD req_id rid, exception, text in the message)
BROKEN = [
    ("length 0", lambda rid: b"\0\0\0\0", batchd.ProtocolError, "reply frame length 0"),
    ("length over 64 MiB", lambda rid: b"\xff\xff\xff\xff", batchd.ProtocolError,
     "reply frame length 4294967295: must be 1..67108864"),
    ("type byte 0xc1", lambda rid: frame(b"\xc1"), batchd.ProtocolError,
     "invalid msgpack type byte 0xc1"),
    ("truncated header", lambda rid: frame(b"\x94\x01\x02\x00\xd9"), batchd.ProtocolError,
     "truncated msgpack header"),
    ("bin runs past the frame", lambda rid: frame(b"\x94\x01\x02\x00\xc4\x10ab"),
     batchd.ProtocolError, "msgpack length runs past the end of the frame"),
    ("array32 of 4 billion", lambda rid: frame(b"\xdd\xff\xff\xff\xff\x00"),
     batchd.ProtocolError, "msgpack container count exceeds the frame"),
    ("map32 count", lambda rid: frame(b"\xdf\x80\x00\x00\x00\x00\x00"),
     batchd.ProtocolError, "msgpack container count exceeds the frame"),
    ("nesting 9", lambda rid: frame(b"\x91" * 9 + b"\x00"), batchd.ProtocolError,
     "msgpack nesting deeper than 8"),
    ("truncated object", lambda rid: frame(b"\x92\x92\x01\x02"), batchd.ProtocolError,
     "truncated msgpack object"),
    ("trailing bytes", lambda rid: frame(pack([1, rid, 0, b"x"]) + b"\x00"),
     batchd.ProtocolError, "trailing bytes after the msgpack object"),
    ("not an array", lambda rid: frame(pack({"a": 1})), batchd.ProtocolError,
     "array of 4"),
    ("array of 3", lambda rid: frame(pack([1, rid, 0])), batchd.ProtocolError, "array of 4"),
    ("array of 5", lambda rid: frame(pack([1, rid, 0, b"", 0])), batchd.ProtocolError,
     "array of 4"),
    ("type is a str", lambda rid: frame(pack(["1", rid, 0, b""])), batchd.ProtocolError,
     "must be integers"),
    ("req_id negative", lambda rid: frame(pack([1, -rid, 0, b""])), batchd.ProtocolError,
     "must be integers"),
    ("req_id a float", lambda rid: frame(pack([1, float(rid), 0, b""])),
     batchd.ProtocolError, "must be integers"),
    ("status a bool", lambda rid: frame(pack([1, rid, False, b""])), batchd.ProtocolError,
     "must be integers"),
    ("status 256", lambda rid: frame(pack([1, rid, 256, b""])), batchd.ProtocolError,
     "must be integers"),
    ("body an int", lambda rid: frame(pack([1, rid, 0, 5])), batchd.ProtocolError,
     "body must be bin, str or nil"),
    ("body a map", lambda rid: frame(pack([1, rid, 0, {}])), batchd.ProtocolError,
     "body must be bin, str or nil"),
    ("body an ext", lambda rid: frame(pack([1, rid, 0, msgpack.ExtType(1, b"x")])),
     batchd.ProtocolError, "body must be bin, str or nil"),
    ("unknown req_id", lambda rid: frame(pack([1, rid + 100, 0, b"x"])),
     batchd.ProtocolError, "reply for unknown request id %d" % 102),
    ("ERROR frame", lambda rid: frame(pack([15, 0, 10, "too many bad requests"])),
     batchd.BadRequest, "too many bad requests"),
    ("half a frame, then EOF", lambda rid: b"\x00\x00\x00\x10\x94\x01", batchd.ConnectionError,
     "closed the connection"),
    ("EOF", lambda rid: b"", batchd.ConnectionError, "closed the connection"),
]


def _broken_handler(reply, close_after: bool):
    def handler(peer: Peer) -> None:
        peer.hello()
        req = peer.read_request()
        data = reply(req[1])
        if data:
            peer.send(data)
        if close_after:
            peer.sock.close()
            return
        # Keep the connection open: the client must not wait for more.
        peer.closed_by_client = peer.wait_closed()
    return handler


def _sync_load(path: str, **kw):
    with batchd.Client(path, timeout=SAFETY, **kw) as c:
        return c.load("k", b"x")


def _async_load(path: str, **kw):
    async def run():
        async with batchd.AsyncClient(path, **kw) as a:
            return await asyncio.wait_for(a.load("k", b"x"), SAFETY)
    return asyncio.run(run())


CLIENTS = [("sync", _sync_load), ("async", _async_load)]


class BrokenFrameTest(unittest.TestCase):
    def test_broken_replies(self):
        for name, reply, exc, text in BROKEN:
            eof = reply(2) == b"" or name.startswith("half")
            for cname, load in CLIENTS:
                with self.subTest(case=name, client=cname):
                    with FakeServer(_broken_handler(reply, eof)) as srv:
                        t0 = time.monotonic()
                        with self.assertRaises(exc) as cm:
                            load(srv.socket)
                        self.assertNotIsInstance(cm.exception, batchd.Timeout)
                        self.assertLess(time.monotonic() - t0, SAFETY / 2)
                        self.assertIn(text, str(cm.exception))
                        srv.join()
                        self.assertEqual(srv.errors, [])
                        if not eof:
                            # Nothing on this connection can be trusted.
                            self.assertTrue(srv._peers[0].closed_by_client)

    def test_small_reply_limit(self):
        # The body is never read: the length alone is refused.
        for cname, load in CLIENTS:
            with self.subTest(client=cname):
                with FakeServer(_broken_handler(lambda rid: b"\0\0\0\x65", False)) as srv:
                    with self.assertRaises(batchd.ProtocolError) as cm:
                        load(srv.socket, reply_max=100)
                    self.assertIn("reply frame length 101: must be 1..100", str(cm.exception))


def _hello_handler(answer: bytes):
    def handler(peer: Peer) -> None:
        peer.hello(answer)
        peer.wait_closed()
    return handler


class HelloTest(unittest.TestCase):
    def test_wrong_protocol_version(self):
        # A daemon that speaks version 2 only answers HELLO UNSUPPORTED.
        ans = frame(pack([0, 1, 12, "version: protocol 1 not supported, daemon speaks 2"]))
        for cname, load in CLIENTS:
            with self.subTest(client=cname):
                with FakeServer(_hello_handler(ans)) as srv:
                    with self.assertRaises(batchd.Unsupported) as cm:
                        load(srv.socket)
                    self.assertEqual(cm.exception.status, batchd.Status.UNSUPPORTED)
                    self.assertIn("daemon does not speak protocol version 1", str(cm.exception))
                    self.assertIn("daemon speaks 2", str(cm.exception))

    def test_broken_hello_reply(self):
        for ans, text in ((frame(b"\xc1"), "0xc1"), (b"\xff\xff\xff\xff", "4294967295"),
                          (frame(pack([0, 7, 0, "x"])), "unknown request id 7")):
            for cname, load in CLIENTS:
                with self.subTest(answer=ans[:8], client=cname):
                    with FakeServer(_hello_handler(ans)) as srv:
                        with self.assertRaises(batchd.ProtocolError) as cm:
                            load(srv.socket)
                        self.assertIn(text, str(cm.exception))

    def test_silent_server(self):
        # A server that never answers: the sync timeout and asyncio's
        # wait_for both end the wait; nothing is left behind.
        def handler(peer: Peer) -> None:
            peer.read_request()
            peer.wait_closed(SAFETY)
        with FakeServer(handler) as srv:
            t0 = time.monotonic()
            with self.assertRaises(batchd.Timeout):
                batchd.Client(srv.socket, timeout=0.3)
            self.assertLess(time.monotonic() - t0, SAFETY / 2)

            async def run():
                a = batchd.AsyncClient(srv.socket)
                with self.assertRaises(asyncio.TimeoutError):
                    await asyncio.wait_for(a.load("k", b"x"), 0.3)
                await a.close()
            asyncio.run(run())


def _status_handler(replies):
    """Answer HELLO, then each LOAD with the next (status, body)."""
    def handler(peer: Peer) -> None:
        peer.hello()
        for status, body in replies:
            req = peer.read_request()
            peer.send(frame(pack([req[0], req[1], status, body])))
        peer.wait_closed()
    return handler


class StatusMappingTest(unittest.TestCase):
    """Statuses the real daemon does not send to a client: CANCELLED (a
    cancelled item's client is gone), and numbers from a later version."""

    REPLIES = [(8, "cancelled"), (200, "from the future"), (2, b"\xff\xfe not utf-8"),
               (0, "a str body"), (0, None), (1, None)]

    def check(self, results):
        cancelled, future, fail, text, empty, accepted = results
        self.assertIs(type(cancelled), batchd.Cancelled)
        self.assertEqual(cancelled.status, batchd.Status.CANCELLED)
        self.assertIs(type(future), batchd.BatchdError)
        self.assertEqual(future.status, 200)
        self.assertIn("STATUS_200: from the future", str(future))
        self.assertIs(type(fail), batchd.Failed)
        self.assertIn("\ufffd", fail.message)
        self.assertEqual(text, b"a str body")
        self.assertEqual(empty, b"")
        self.assertIsNone(accepted)

    def test_sync(self):
        with FakeServer(_status_handler(self.REPLIES)) as srv:
            with batchd.Client(srv.socket, timeout=SAFETY) as c:
                out = []
                for _ in range(3):
                    try:
                        c.load("k", b"x")
                    except batchd.BatchdError as e:
                        out.append(e)
                out += [c.load("k", b"x"), c.load("k", b"x"), c.send("k", b"x")]
            self.check(out)
            self.assertEqual(len(srv._peers), 1)   # statuses never cost the connection

    def test_async(self):
        async def run():
            async with batchd.AsyncClient(srv.socket) as a:
                out = []
                for _ in range(3):
                    try:
                        await a.load("k", b"x")
                    except batchd.BatchdError as e:
                        out.append(e)
                out += [await a.load("k", b"x"), await a.load("k", b"x"),
                        await a.send("k", b"x")]
                return out
        with FakeServer(_status_handler(self.REPLIES)) as srv:
            self.check(asyncio.run(asyncio.wait_for(run(), SAFETY)))
            self.assertEqual(len(srv._peers), 1)


if __name__ == "__main__":
    unittest.main()
