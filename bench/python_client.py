#!/usr/bin/env python3
"""Items/s of the Python client (clients/python) against libbatchd, in one
run on one machine (bench/README.md, "Python client").

Cells, each against a fresh daemon (echo sink, as bench/run's batchd-echo):
  lib 32x1   batchctl bench -c 32 -d 1  (libbatchd, 32 processes, 1 in flight)
  py 32x1    32 processes, batchd.Client, 1 LOAD in flight each
  lib 1x64   batchctl bench -c 1 -d 64  (libbatchd, one connection, 64 in flight)
  py 1x64    one process, batchd.AsyncClient, 64 LOADs in flight
The cells are interleaved REPS times; the table shows medians and the
ratios py/lib. Usage: python_client.py [--reps N] [--scale F]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(TOP, "clients", "python"))
import batchd                              # noqa: E402
from tests.daemon import Daemon            # noqa: E402  (one way to start a daemon)

BATCHCTL = os.environ.get("BATCHCTL_BIN") or os.path.join(TOP, "build", "batchctl")
CONF = """[daemon]
max_concurrency = 2
log_level = warn

[sink.echo]
plugin = echo

[route.default]
match = *
sink = echo
policy = immediate
max_items = 256
"""
PAYLOAD = b"x" * 64


def lib_cell(sock: str, clients: int, inflight: int, per_client: int) -> float:
    out = subprocess.run([BATCHCTL, "-s", sock, "bench", "-c", str(clients), "-d",
                          str(inflight), "-n", str(per_client), "-z", "64", "--json"],
                         check=True, capture_output=True, text=True).stdout
    r = json.loads(out)
    assert r["failed"] == 0, r
    return r["items_per_s"]


def _sync_worker(sock: str, n: int, barrier, out) -> None:
    with batchd.Client(sock) as c:
        barrier.wait()
        t0 = time.monotonic()          # CLOCK_MONOTONIC: one clock for all
        for _ in range(n):
            c.load("bench-0", PAYLOAD)
        out.put((t0, time.monotonic()))


def py_sync_cell(sock: str, clients: int, per_client: int) -> float:
    ctx = multiprocessing.get_context("fork")
    barrier, out = ctx.Barrier(clients), ctx.Queue()
    procs = [ctx.Process(target=_sync_worker, args=(sock, per_client, barrier, out))
             for _ in range(clients)]
    for p in procs:
        p.start()
    spans = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join()
        assert p.exitcode == 0
    return clients * per_client / (max(e for _, e in spans) - min(s for s, _ in spans))


def py_async_cell(sock: str, inflight: int, total: int) -> float:
    async def run() -> float:
        async with batchd.AsyncClient(sock) as a:
            await a.connect()
            left = [total]

            async def worker():
                while left[0] > 0:
                    left[0] -= 1
                    await a.load("bench-0", PAYLOAD)
            t0 = time.monotonic()
            await asyncio.gather(*(worker() for _ in range(inflight)))
            return total / (time.monotonic() - t0)
    return asyncio.run(run())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--scale", type=float, default=1.0)
    args = ap.parse_args()
    n = lambda base: max(1, int(base * args.scale))   # noqa: E731
    cells = {
        "lib 32x1": lambda s: lib_cell(s, 32, 1, n(3000)),
        "py 32x1": lambda s: py_sync_cell(s, 32, n(500)),
        "lib 1x64": lambda s: lib_cell(s, 1, 64, n(200000)),
        "py 1x64": lambda s: py_async_cell(s, 64, n(20000)),
    }
    runs = {name: [] for name in cells}
    for rep in range(args.reps):
        for name, cell in cells.items():
            with Daemon(CONF) as d:           # fresh daemon per run
                runs[name].append(cell(d.socket))
            print("rep %d %-9s %10.0f items/s" % (rep + 1, name, runs[name][-1]),
                  flush=True)
    med = {name: statistics.median(v) for name, v in runs.items()}
    print("\n| cell | items/s (median of %d) | py / lib |" % args.reps)
    print("|---|---:|---:|")
    for shape in ("32x1", "1x64"):
        lib, py = med["lib " + shape], med["py " + shape]
        print("| libbatchd %s | %.0f | |" % (shape, lib))
        print("| Python %s (%s) | %.0f | %.2f |" % (
            shape, "Client" if shape == "32x1" else "AsyncClient", py, py / lib))
    print("\nPython %s, msgpack %s" % (sys.version.split()[0],
                                        ".".join(map(str, __import__("msgpack").version))))


if __name__ == "__main__":
    main()
