"""32 processes at once, each with its own Client (the case the client
is for: many workers asking for one thing at a time)."""
from __future__ import annotations

import multiprocessing
import os
import threading
import time
import unittest

import batchd
from .daemon import ECHO, Daemon
from .test_async import ledger_batches

PROCS = 32
LOADS = 200      # per process


def _worker(path: str, idx: int, start, results) -> None:
    """One process: wait for the start signal, then LOAD one at a time."""
    try:
        with batchd.Client(path, timeout=60) as c:
            start.wait(30)
            ok = 0
            for i in range(LOADS):
                payload = b"p%d-%d" % (idx, i)
                if c.load("k%d" % (idx % 4), payload) == payload:
                    ok += 1
            c.send("k0", b"s%d" % idx)
        results.put((idx, ok, ""))
    except BaseException as e:   # reported to the test, never lost
        results.put((idx, -1, repr(e)))


class ProcsTest(unittest.TestCase):
    def test_32_processes(self):
        ctx = multiprocessing.get_context("fork")
        body = """[sink.rec]
plugin = @TSINKS@/record.so
ledger = @DIR@/rec.ledger

[route.default]
match = *
sink = rec
policy = immediate
"""
        with Daemon(body) as d:
            start = ctx.Event()
            results = ctx.Queue()
            procs = [ctx.Process(target=_worker, args=(d.socket, i, start, results))
                     for i in range(PROCS)]
            for p in procs:
                p.start()
            start.set()
            got = sorted(results.get(timeout=120) for _ in procs)
            for p in procs:
                p.join(30)
                self.assertEqual(p.exitcode, 0)
            self.assertEqual(got, [(i, LOADS, "") for i in range(PROCS)])
            # Every item reached the sink once; the SENDs may land a bit
            # after their ACCEPTED.
            ledger = os.path.join(d.dir, "rec.ledger")
            end = time.monotonic() + 30
            while sum(ledger_batches(ledger)) < PROCS * (LOADS + 1) and time.monotonic() < end:
                time.sleep(0.05)
            self.assertEqual(sum(ledger_batches(ledger)), PROCS * (LOADS + 1))


    def test_client_shared_across_fork(self):
        # A child that uses its parent's Client opens its own connection
        # and leaves the parent's alone.
        ctx = multiprocessing.get_context("fork")
        with Daemon(ECHO) as d:
            with batchd.Client(d.socket, timeout=30) as c:
                self.assertEqual(c.load("k", b"parent"), b"parent")
                sock = c._sock
                results = ctx.Queue()
                p = ctx.Process(target=_fork_child, args=(c, results))
                p.start()
                self.assertEqual(results.get(timeout=60), [b"child"] * 50)
                p.join(30)
                self.assertEqual(c.load("k", b"parent again"), b"parent again")
                self.assertIs(c._sock, sock)     # the parent's connection lived on

    def test_threads_share_a_client(self):
        # Client is documented thread safe: its lock serialises the calls,
        # so every thread gets its own answers back.
        with Daemon(ECHO) as d:
            with batchd.Client(d.socket, timeout=60) as c:
                wrong = []

                def run(idx: int) -> None:
                    for i in range(200):
                        p = b"t%d-%d" % (idx, i)
                        try:
                            if c.load("k", p) != p:
                                wrong.append(p)
                        except batchd.BatchdError as e:
                            wrong.append(e)
                threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(60)
                self.assertEqual(wrong, [])
                self.assertFalse(any(t.is_alive() for t in threads))


def _fork_child(c, results) -> None:
    try:
        results.put([c.load("k", b"child") for _ in range(50)])
    except BaseException as e:
        results.put(repr(e))


if __name__ == "__main__":
    unittest.main()
