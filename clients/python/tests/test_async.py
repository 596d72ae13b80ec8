"""AsyncClient against the real daemon: pipelining on one connection,
cancellation, reconnect after a daemon restart."""
from __future__ import annotations

import asyncio
import os
import unittest

import batchd
from .daemon import Daemon

SAFETY = 60.0    # seconds: a run that takes this long has hung

BODY = """[sink.rec]
plugin = @TSINKS@/record.so
ledger = @DIR@/rec.ledger

[sink.slow]
plugin = @TSINKS@/record.so
ledger = @DIR@/slow.ledger
delay_ms = 300

[route.slow]
match = slow
sink = slow
policy = immediate

[route.default]
match = *
sink = rec
policy = immediate
"""


def ledger_batches(path: str):
    """Item counts of the record sink's batches (one line per batch)."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [int(line.split()[1]) for line in f if line.strip()]


class AsyncTest(unittest.TestCase):
    def setUp(self) -> None:
        self.d = Daemon(BODY)

    def tearDown(self) -> None:
        self.d.close()

    def run_async(self, coro):
        return asyncio.run(asyncio.wait_for(coro, SAFETY))

    def test_pipeline_10000_loads(self):
        n = 10000

        async def run():
            async with batchd.AsyncClient(self.d.socket) as a:
                res = await asyncio.gather(*(a.load("k%d" % (i % 4), b"item %d" % i)
                                             for i in range(n)))
                health = await a.control("health")
                return res, health
        res, health = self.run_async(run())
        self.assertEqual(res, [b"item %d" % i for i in range(n)])
        self.assertIn('"conns":1', health)      # all on one connection
        batches = ledger_batches(os.path.join(self.d.dir, "rec.ledger"))
        self.assertEqual(sum(batches), n)
        # Pipelined: requests queued up while the sink was busy, so some
        # batches hold many items (one at a time would make n batches).
        self.assertLess(len(batches), n)
        self.assertGreater(max(batches), 1)

    def test_many_and_mixed(self):
        async def run():
            async with batchd.AsyncClient(self.d.socket) as a:
                many = a.load_many("m", [b"%d" % i for i in range(1000)])
                sends = a.send_many("m", [b"s"] * 10)
                one = a.load("m", b"one")
                return await asyncio.gather(many, sends, one, a.control("ping"))
        many, sends, one, pong = self.run_async(run())
        self.assertEqual(many, [b"%d" % i for i in range(1000)])
        self.assertEqual(sends, [None] * 10)
        self.assertEqual((one, pong), (b"one", "pong"))

    def test_cancel_is_safe(self):
        ledger = os.path.join(self.d.dir, "slow.ledger")

        async def run():
            async with batchd.AsyncClient(self.d.socket) as a:
                await a.connect()
                conn = a._conn
                slow = asyncio.ensure_future(a.load("slow", b"late"))
                slow_many = asyncio.ensure_future(a.load_many("slow", [b"1", b"2"]))
                while not ledger_batches(ledger):      # the sink has it
                    await asyncio.sleep(0.01)
                slow.cancel()
                slow_many.cancel()
                for t in (slow, slow_many):
                    with self.assertRaises(asyncio.CancelledError):
                        await t
                # A timeout is a cancellation too.
                with self.assertRaises(asyncio.TimeoutError):
                    await asyncio.wait_for(a.load("slow", b"timeout"), 0.05)
                self.assertEqual(await a.load("fast", b"meanwhile"), b"meanwhile")
                # Wait until the late replies have come and been dropped.
                while sum(ledger_batches(ledger)) < 4 or conn.pending:
                    await asyncio.sleep(0.05)
                self.assertEqual(await a.load("fast", b"after"), b"after")
                self.assertIs(a._conn, conn)         # no protocol error, no reconnect
        self.run_async(run())

    def test_restart_mid_run(self):
        """Workers load in a loop while the daemon stops and starts again
        on the same socket: every call ends (result or a clean error) and
        the same client works again after the restart."""
        loop_workers = 8
        state = {"stop": False, "phase": 0}
        outcome = {"ok": 0, "after": [0] * loop_workers, "errors": {}}

        async def worker(a, idx):
            i = 0
            while not state["stop"]:
                i += 1
                payload = b"w%d-%d" % (idx, i)
                try:
                    self.assertEqual(await a.load("r%d" % idx, payload), payload)
                    outcome["ok"] += 1
                    if state["phase"] == 2:
                        outcome["after"][idx] += 1
                except (batchd.ConnectionError, batchd.ShuttingDown) as e:
                    name = type(e).__name__
                    outcome["errors"][name] = outcome["errors"].get(name, 0) + 1
                    await asyncio.sleep(0.01)

        async def run():
            loop = asyncio.get_running_loop()
            async with batchd.AsyncClient(self.d.socket) as a:
                tasks = [asyncio.ensure_future(worker(a, i)) for i in range(loop_workers)]
                while outcome["ok"] < 200:
                    await asyncio.sleep(0.01)
                state["phase"] = 1
                await loop.run_in_executor(None, self.d.stop)
                await asyncio.sleep(0.2)              # calls fail while it is down
                await loop.run_in_executor(None, self.d.start)
                state["phase"] = 2
                while min(outcome["after"]) < 20:
                    await asyncio.sleep(0.01)
                state["stop"] = True
                await asyncio.gather(*tasks)
        self.run_async(run())
        self.assertGreater(outcome["errors"].get("ConnectionError", 0), 0, outcome)


class SyncRestartTest(unittest.TestCase):
    def test_idle_client_survives_restart(self):
        import signal
        with Daemon(BODY) as d:
            with batchd.Client(d.socket, timeout=30) as c:
                self.assertEqual(c.load("k", b"1"), b"1")
                for sig in (signal.SIGTERM, signal.SIGKILL):
                    d.stop(sig)
                    with self.assertRaises(batchd.ConnectionError):
                        c.load("k", b"down")
                    d.start()
                    # A fresh call after the restart just works.
                    self.assertEqual(c.load("k", b"2"), b"2")

    def test_idle_async_client_survives_restart(self):
        with Daemon(BODY) as d:
            async def run():
                async with batchd.AsyncClient(d.socket) as a:
                    self.assertEqual(await a.load("k", b"1"), b"1")
                    d.stop()
                    await asyncio.sleep(0.1)    # let the reader see EOF
                    d.start()
                    self.assertEqual(await a.load("k", b"2"), b"2")
            asyncio.run(asyncio.wait_for(run(), SAFETY))


if __name__ == "__main__":
    unittest.main()
