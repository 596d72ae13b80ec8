"""A real batchd daemon for the tests, started the way tests/helpers.c does.

Each test starts its own daemon: a temporary directory with batchd.conf (a
"[daemon]" section with "socket = <dir>/s.sock", then the test's body, in
which "@DIR@" becomes the directory and "@TSINKS@" the test sink
directory), the daemon run with "-c <conf> --sink-dir <sinks>", stderr to
<dir>/stderr.log, and a wait until its socket accepts a connection.
Binaries come from the environment that run_tests.sh sets (BATCHD_BIN,
BATCHD_SINK_DIR, BATCHD_TEST_SINK_DIR), with build/ defaults.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Optional

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
READY_TIMEOUT = 10.0      # seconds for the socket to accept
STOP_TIMEOUT = 15.0       # seconds for an exit after a signal


def _env_path(var: str, default: str) -> str:
    return os.path.abspath(os.environ.get(var) or os.path.join(TOP, default))


BATCHD_BIN = _env_path("BATCHD_BIN", "build/batchd")
SINK_DIR = _env_path("BATCHD_SINK_DIR", "build/sinks")
TSINK_DIR = _env_path("BATCHD_TEST_SINK_DIR", "build/tests/sinks")


def compose_conf(directory: str, sock: str, body: str) -> str:
    """The config text: the socket line goes right after the body's own
    "[daemon]" header, or in a "[daemon]" section of its own before it."""
    body = body.replace("@DIR@", directory).replace("@TSINKS@", TSINK_DIR)
    hdr = "[daemon]\n"
    if body.startswith(hdr):
        at = 0
    elif "\n" + hdr in body:
        at = body.index("\n" + hdr) + 1
    else:
        return "%ssocket = %s\n\n%s" % (hdr, sock, body)
    pre = at + len(hdr)
    return "%ssocket = %s\n%s" % (body[:pre], sock, body[pre:])


class Daemon:
    """One batchd process under test (restartable on the same socket)."""

    def __init__(self, body: str) -> None:
        self.dir = tempfile.mkdtemp(prefix="bdpy.")    # owned, removed by close
        self.socket = os.path.join(self.dir, "s.sock")
        self.conf = os.path.join(self.dir, "batchd.conf")
        with open(self.conf, "w") as f:
            f.write(compose_conf(self.dir, self.socket, body))
        self.proc: Optional[subprocess.Popen] = None   # None when not running
        self.start()

    def start(self) -> None:
        """Start the daemon and wait until its socket accepts."""
        assert self.proc is None
        with open(os.path.join(self.dir, "stderr.log"), "ab") as err:
            self.proc = subprocess.Popen(
                [BATCHD_BIN, "-c", self.conf, "--sink-dir", SINK_DIR],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        end = time.monotonic() + READY_TIMEOUT
        while True:
            code = self.proc.poll()
            if code is not None:
                self.proc = None
                raise AssertionError("batchd exited with %d before listening:\n%s"
                                     % (code, self.log()))
            if self._accepts():
                return
            if time.monotonic() > end:
                raise AssertionError("batchd not listening on %s:\n%s"
                                     % (self.socket, self.log()))
            time.sleep(0.01)

    def _accepts(self) -> bool:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(self.socket)
            return True
        except OSError:
            return False
        finally:
            s.close()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal the daemon and wait for its exit; returns the exit code
        (negative: killed by that signal)."""
        assert self.proc is not None, "batchd is not running"
        proc, self.proc = self.proc, None
        proc.send_signal(sig)
        try:
            return proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError("batchd did not exit after signal %d:\n%s"
                                 % (sig, self.log()))

    def log(self) -> str:
        with open(os.path.join(self.dir, "stderr.log"), errors="replace") as f:
            return f.read()

    def close(self, check: bool = True) -> None:
        """Stop the daemon if it runs (SIGTERM) and remove the directory.
        With check, an exit code other than 0 fails the test (under ASan a
        leak makes the daemon exit non-zero, as in tests/helpers.c)."""
        code = 0
        if self.proc is not None:
            code = self.stop(signal.SIGTERM)
        log = self.log() if code != 0 else ""
        if not os.environ.get("BATCHD_TEST_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)
        if check and code != 0:
            raise AssertionError("batchd exited with %d:\n%s" % (code, log))

    def __enter__(self) -> "Daemon":
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.close(check=exc_type is None)   # do not hide the first failure


ECHO = """[sink.echo]
plugin = echo

[route.default]
match = *
sink = echo
policy = immediate
"""
