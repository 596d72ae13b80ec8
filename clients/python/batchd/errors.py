"""Exceptions: one class per reply status, plus the transport's own.

Every exception is a BatchdError with .status (the wire status number, or
None when the failure is not a reply: a connection or protocol problem) and
.message (the daemon's one-line reason, or ours).
"""
from __future__ import annotations

import builtins
from typing import Dict, Optional, Type

from .status import Status, status_name


class BatchdError(Exception):
    """Base of every batchd exception."""

    status: Optional[int]
    message: str

    def __init__(self, message: str, status: Optional[int] = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def __str__(self) -> str:
        if self.status is None:
            return self.message
        return "%s: %s" % (status_name(self.status), self.message)


class Failed(BatchdError):
    """FAIL: the sink failed the item; the message is the sink's."""


class RetryExhausted(BatchdError):
    """RETRY_EXHAUSTED: attempts, delivery_timeout_ms or the deadline ran out."""


class Overloaded(BatchdError):
    """OVERLOADED: a queue bound was hit (the message names it). Retry later."""


class DeadlineExceeded(BatchdError):
    """DEADLINE_EXCEEDED: the item's deadline_ms passed before it was done."""


class SinkTimeout(BatchdError):
    """SINK_TIMEOUT: a sink call ran past the route's sink_timeout_ms."""


class SinkUnavailable(BatchdError):
    """SINK_UNAVAILABLE: the route's sink is down or unhealthy."""


class Cancelled(BatchdError):
    """CANCELLED: cancelled before it reached a sink."""


class ShuttingDown(BatchdError):
    """SHUTTING_DOWN: the daemon is stopping and did not take or finish it."""


class BadRequest(BatchdError):
    """BAD_REQUEST: the daemon refused the request; the message names the field."""


class FrameTooLarge(BatchdError):
    """FRAME_TOO_LARGE: a request frame over the limit (refused by the
    daemon, which then closes the connection, or found before sending)."""


class Unsupported(BatchdError):
    """UNSUPPORTED: unknown command, message type or protocol version."""


class NoRoute(BatchdError):
    """NO_ROUTE: no route matches the key."""


class PermissionDenied(BatchdError):
    """PERMISSION_DENIED: this user may not connect, or run an admin command."""


class TooManyConnections(BatchdError):
    """TOO_MANY_CONNECTIONS: the daemon is at max_conns; try again later."""


class ConnectionError(BatchdError, builtins.ConnectionError):
    """The daemon is not there, or the connection broke. status is None.

    Also a builtins.ConnectionError, so `except OSError` catches it too."""


class Timeout(ConnectionError):
    """A sync call ran past the client's timeout; the connection was closed
    (a late reply would have nobody to go to)."""


class ProtocolError(BatchdError):
    """The daemon (or whatever is on the socket) sent bytes that are not a
    valid reply: a bad length, a frame that fails the bounded walk, wrong
    types, an id nobody asked for. The connection was closed. status is None."""


_BY_STATUS: Dict[int, Type[BatchdError]] = {
    Status.FAIL: Failed,
    Status.RETRY_EXHAUSTED: RetryExhausted,
    Status.OVERLOADED: Overloaded,
    Status.DEADLINE_EXCEEDED: DeadlineExceeded,
    Status.SINK_TIMEOUT: SinkTimeout,
    Status.SINK_UNAVAILABLE: SinkUnavailable,
    Status.CANCELLED: Cancelled,
    Status.SHUTTING_DOWN: ShuttingDown,
    Status.BAD_REQUEST: BadRequest,
    Status.FRAME_TOO_LARGE: FrameTooLarge,
    Status.UNSUPPORTED: Unsupported,
    Status.NO_ROUTE: NoRoute,
    Status.PERMISSION_DENIED: PermissionDenied,
    Status.TOO_MANY_CONNECTIONS: TooManyConnections,
}


def error_for(status: int, message: str) -> BatchdError:
    """The exception for a reply status that is not OK/ACCEPTED. A status
    this version does not know is a plain BatchdError (a failure of that
    item, PROTOCOL.md section 6)."""
    return _BY_STATUS.get(status, BatchdError)(message, status)
