"""Status codes of batchd replies (proto/batchd_status.h, PROTOCOL.md section 12).

The numbers are wire values: new codes are appended, none is renumbered, so
a reply may carry a number this module does not know yet.
"""
from __future__ import annotations

import enum


class Status(enum.IntEnum):
    """One reply's status, as the daemon sends it."""

    OK = 0
    ACCEPTED = 1
    FAIL = 2
    RETRY_EXHAUSTED = 3
    OVERLOADED = 4
    DEADLINE_EXCEEDED = 5
    SINK_TIMEOUT = 6
    SINK_UNAVAILABLE = 7
    CANCELLED = 8
    SHUTTING_DOWN = 9
    BAD_REQUEST = 10
    FRAME_TOO_LARGE = 11
    UNSUPPORTED = 12
    NO_ROUTE = 13
    PERMISSION_DENIED = 14
    TOO_MANY_CONNECTIONS = 15


def status_name(status: int) -> str:
    """The name of a status number ("OVERLOADED"), or "STATUS_N" for one
    this version does not know (like batchd_status_name in libbatchd)."""
    try:
        return Status(status).name
    except ValueError:
        return "STATUS_%d" % status
