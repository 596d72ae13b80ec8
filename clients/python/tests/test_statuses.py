"""Every reply status through the real daemon and real sinks, and the
exception each one raises (PROTOCOL.md section 12). CANCELLED is never sent
by the daemon (a cancelled item's client is gone); its mapping is checked
with the fake server in test_broken_server.py."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
import unittest

import batchd
from .daemon import ECHO, Daemon

ROUTES = """[daemon]
max_frame = 4K
shutdown_grace_ms = 200

[sink.echo]
plugin = echo

[sink.rec]
plugin = @TSINKS@/record.so
ledger = @DIR@/rec.ledger
fail_payload = bad
retry_payload = again

[sink.slow]
plugin = @TSINKS@/record.so
ledger = @DIR@/slow.ledger
delay_ms = 400

[sink.crashy]
plugin = @TSINKS@/crashy.so
isolation = process
crash = exit
every = yes
restart_base_ms = 10

[route.echo]
match = echo.*
sink = echo
policy = immediate

[route.fail]
match = fail
sink = rec
policy = immediate

[route.retry]
match = retry
sink = rec
policy = immediate
max_attempts = 2
retry_base_ms = 1
retry_cap_ms = 1

[route.over]
match = over
sink = slow
policy = immediate
max_items = 1
key_max_items = 1

[route.deadline]
match = deadline
sink = slow
policy = immediate
max_items = 1

[route.timeout]
match = timeout
sink = slow
policy = immediate
sink_timeout_ms = 50
on_sink_timeout = fail

[route.crash]
match = crash
sink = crashy
policy = immediate
max_attempts = 1

[route.small]
match = small
sink = echo
policy = immediate
max_bytes = 16
"""


class StatusTest(unittest.TestCase):
    """One daemon with a route per status; no catch-all route (NO_ROUTE)."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.d = Daemon(ROUTES)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.d.close()

    def setUp(self) -> None:
        self.c = batchd.Client(self.d.socket, timeout=30)

    def tearDown(self) -> None:
        self.c.close()

    def check_raises(self, exc, status, substr, fn, *args, **kw):
        with self.assertRaises(exc) as cm:
            fn(*args, **kw)
        self.assertIsInstance(cm.exception, batchd.BatchdError)
        self.assertEqual(cm.exception.status, status)
        self.assertIn(substr, cm.exception.message)
        return cm.exception

    def test_ok_and_accepted(self):
        self.assertEqual(self.c.load("echo.a", b"hello"), b"hello")
        self.assertEqual(self.c.load("echo.a", b""), b"")
        self.assertEqual(self.c.load("echo.a", "h\u00e9"), "h\u00e9".encode())
        self.assertIsNone(self.c.send("echo.a", b"x"))
        self.assertEqual(self.c.server, "batchd 0.1.0")

    def test_options_reach_the_daemon(self):
        # Every option is validated by the daemon: a wrong encoding would
        # be answered BAD_REQUEST, not OK.
        self.assertEqual(self.c.load("echo.o", b"p", deadline_ms=5000, priority=7,
                                     dedup_id=b"d1", trace="00-" + "a" * 32 + "-" + "b" * 16 + "-01"),
                         b"p")
        self.assertIsNone(self.c.send("echo.o", b"p", priority=0, dedup_id="x"))

    def test_fail(self):
        self.check_raises(batchd.Failed, batchd.Status.FAIL, "rejected by record sink",
                          self.c.load, "fail", b"bad")

    def test_retry_exhausted(self):
        self.check_raises(batchd.RetryExhausted, batchd.Status.RETRY_EXHAUSTED,
                          "gave up after 2 attempts", self.c.load, "retry", b"again")

    def test_overloaded(self):
        # One frame: item 0 fills the key's queue (key_max_items = 1)
        # before anything is dispatched, so the others are refused.
        res = self.c.load_many("over", [b"0", b"1", b"2"])
        self.assertEqual(res[0], b"0")
        for r in res[1:]:
            self.assertIsInstance(r, batchd.Overloaded)
            self.assertEqual(r.status, batchd.Status.OVERLOADED)
            self.assertIn("key_max_items=1", r.message)
        errs = self.c.send_many("over", [b"0", b"1"])
        self.assertIsNone(errs[0])
        self.assertIsInstance(errs[1], batchd.Overloaded)

    def test_deadline_exceeded(self):
        # deadline_ms goes on the wire: item 1 waits behind item 0's
        # 400 ms sink call (max_items = 1) and expires in the queue.
        res = self.c.load_many("deadline", [b"0", b"1"], deadline_ms=100)
        self.assertIsInstance(res[1], batchd.DeadlineExceeded)
        self.assertEqual(res[1].status, batchd.Status.DEADLINE_EXCEEDED)

    def test_sink_timeout(self):
        self.check_raises(batchd.SinkTimeout, batchd.Status.SINK_TIMEOUT, "",
                          self.c.load, "timeout", b"x")

    def test_sink_unavailable(self):
        self.check_raises(batchd.SinkUnavailable, batchd.Status.SINK_UNAVAILABLE, "",
                          self.c.load, "crash", b"x")

    def test_bad_request(self):
        self.check_raises(batchd.BadRequest, batchd.Status.BAD_REQUEST,
                          "payload: larger than the route's max_bytes (16)",
                          self.c.load, "small", b"x" * 17)
        self.assertEqual(self.c.load("small", b"x" * 16), b"x" * 16)

    def test_unsupported(self):
        self.check_raises(batchd.Unsupported, batchd.Status.UNSUPPORTED,
                          "command: unknown", self.c.control, "nosuch")
        # reload is a command the daemon knows (PROTOCOL.md 11.2).
        self.assertTrue(self.c.control("reload").startswith("reloaded "))
        self.assertEqual(self.c.control("ping"), "pong")
        self.assertIn('"status":"ok"', self.c.control("health"))
        self.c.load("echo.stats", b"x")
        self.assertIn("echo.stats", self.c.control("stats", {"format": "text"}))
        self.assertIn("echo.stats", json.loads(self.c.control("stats")).get("keys", {}))

    def test_no_route(self):
        self.check_raises(batchd.NoRoute, batchd.Status.NO_ROUTE, "",
                          self.c.load, "nomatch", b"x")
        self.check_raises(batchd.NoRoute, batchd.Status.NO_ROUTE, "",
                          self.c.send, "nomatch", b"x")

    def test_frame_too_large_from_daemon(self):
        # The client believes 1 MiB; the daemon's max_frame is 4K: it
        # answers with an ERROR frame and closes. The next call reconnects.
        self.check_raises(batchd.FrameTooLarge, batchd.Status.FRAME_TOO_LARGE,
                          "must be 1..4096", self.c.load, "echo.big", b"x" * 8000)
        self.assertEqual(self.c.load("echo.big", b"small"), b"small")

    def test_frame_too_large_found_before_sending(self):
        c = batchd.Client(self.d.socket, max_frame=4096)
        with c:
            e = self.check_raises(batchd.FrameTooLarge, batchd.Status.FRAME_TOO_LARGE,
                                  "nothing was sent", c.load, "echo.big", b"x" * 5000)
            self.assertIn("over max_frame (4096)", str(e))
            self.assertEqual(c.load("echo.big", b"ok"), b"ok")

    def test_bad_arguments_send_nothing(self):
        for key in ("", "k" * 257, "a\0b", "\ud800"):
            with self.assertRaises(ValueError):
                self.c.load(key, b"x")
        with self.assertRaises(TypeError):
            self.c.load(b"bytes-key", b"x")  # type: ignore[arg-type]
        with self.assertRaises(TypeError):
            self.c.load("echo.a", 5)  # type: ignore[arg-type]
        for kw in ({"priority": 256}, {"deadline_ms": 0}, {"dedup_id": b""},
                   {"trace": "t" * 129}, {"priority": True}):
            with self.assertRaises(ValueError):
                self.c.load("echo.a", b"x", **kw)
        with self.assertRaises(ValueError):
            self.c.load_many("echo.a", [])
        self.assertEqual(self.c.load("echo.a", b"still fine"), b"still fine")

    def test_async_statuses(self):
        async def run():
            async with batchd.AsyncClient(self.d.socket) as a:
                res = await a.load_many("over", [b"0", b"1"])
                self.assertEqual(res[0], b"0")
                self.assertIsInstance(res[1], batchd.Overloaded)
                with self.assertRaises(batchd.Failed):
                    await a.load("fail", b"bad")
                with self.assertRaises(batchd.NoRoute):
                    await a.send("nomatch", b"x")
                with self.assertRaises(batchd.Unsupported):
                    await a.control("nosuch")
                # ERROR frame: every pending call fails, the next reconnects.
                big = asyncio.ensure_future(a.load("echo.big", b"x" * 8000))
                with self.assertRaises(batchd.FrameTooLarge):
                    await big
                self.assertEqual(await a.load("echo.a", b"again"), b"again")
                self.assertEqual(await a.send_many("echo.a", [b"1", b"2"]), [None, None])
        asyncio.run(run())


class ShuttingDownTest(unittest.TestCase):
    def test_shutting_down(self):
        body = """[daemon]
shutdown_grace_ms = 100

[sink.slow]
plugin = @TSINKS@/record.so
ledger = @DIR@/slow.ledger
delay_ms = 3000

[route.default]
match = *
sink = slow
policy = immediate
"""
        with Daemon(body) as d:
            c = batchd.Client(d.socket, timeout=30)
            out = {}

            def load():
                try:
                    out["r"] = c.load("k", b"x")
                except batchd.BatchdError as e:
                    out["e"] = e
            t = threading.Thread(target=load)
            t.start()
            ledger = os.path.join(d.dir, "slow.ledger")
            end = time.monotonic() + 10
            while not (os.path.exists(ledger) and os.path.getsize(ledger)):
                self.assertLess(time.monotonic(), end, "the sink never got the item")
                time.sleep(0.01)
            d.stop(signal.SIGTERM)   # the sink call outlives shutdown_grace_ms
            t.join(30)
            self.assertFalse(t.is_alive())
            self.assertIsInstance(out.get("e"), batchd.ShuttingDown, out)
            self.assertEqual(out["e"].status, batchd.Status.SHUTTING_DOWN)
            # The daemon is gone: a clear error, not a hang.
            with self.assertRaises(batchd.ConnectionError) as cm:
                c.load("k", b"x")
            self.assertIsInstance(cm.exception, OSError)
            self.assertIn(d.socket, str(cm.exception))


class RefusedConnectionTest(unittest.TestCase):
    def test_permission_denied(self):
        # Only uid 65534 may connect; the test runs as another user.
        self.assertNotEqual(os.getuid(), 65534)
        with Daemon("[daemon]\nallow_uids = 65534\n" + "\n" + ECHO) as d:
            with self.assertRaises(batchd.PermissionDenied) as cm:
                batchd.Client(d.socket, timeout=30)
            self.assertEqual(cm.exception.status, batchd.Status.PERMISSION_DENIED)
            self.assertIn("allow_uids", cm.exception.message)
            with self.assertRaises(batchd.PermissionDenied):
                asyncio.run(_async_ping(d.socket))

    def test_too_many_connections(self):
        with Daemon("[daemon]\nmax_conns = 1\n\n" + ECHO) as d:
            with _first_client(d.socket) as first:
                with self.assertRaises(batchd.TooManyConnections) as cm:
                    batchd.Client(d.socket, timeout=30)
                self.assertEqual(cm.exception.status, batchd.Status.TOO_MANY_CONNECTIONS)
                with self.assertRaises(batchd.TooManyConnections):
                    asyncio.run(_async_ping(d.socket))
                self.assertEqual(first.load("k", b"x"), b"x")

    def test_no_daemon(self):
        path = "/nonexistent/batchd.sock"
        with self.assertRaises(batchd.ConnectionError) as cm:
            batchd.Client(path)
        self.assertIsNone(cm.exception.status)
        self.assertIn("connect %s" % path, str(cm.exception))
        with self.assertRaises(batchd.ConnectionError):
            asyncio.run(_async_ping(path))

    def test_socket_from_environment(self):
        with Daemon(ECHO) as d:
            old = os.environ.get("BATCHD_SOCKET")
            os.environ["BATCHD_SOCKET"] = d.socket
            try:
                with batchd.Client() as c:
                    self.assertEqual(c.path, d.socket)
                    self.assertEqual(c.control("ping"), "pong")
            finally:
                if old is None:
                    del os.environ["BATCHD_SOCKET"]
                else:
                    os.environ["BATCHD_SOCKET"] = old
            self.assertEqual(batchd.AsyncClient("/x").path, "/x")


def _first_client(path: str) -> batchd.Client:
    """The one connection max_conns = 1 allows. The daemon may not have
    seen the close of Daemon's readiness probe yet: try for a while."""
    end = time.monotonic() + 10
    while True:
        try:
            return batchd.Client(path, timeout=30)
        except batchd.TooManyConnections:
            if time.monotonic() > end:
                raise
            time.sleep(0.05)


async def _async_ping(path: str) -> str:
    async with batchd.AsyncClient(path) as a:
        return await a.control("ping")


if __name__ == "__main__":
    unittest.main()
