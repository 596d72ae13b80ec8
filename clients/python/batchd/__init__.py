"""batchd: a Python client for the batchd batching daemon.

Written from proto/PROTOCOL.md (protocol version 1). Client is the blocking
client, AsyncClient the asyncio one; every reply status other than OK and
ACCEPTED raises (or, for *_many, returns) a BatchdError subclass.
"""
from .aio import AsyncClient
from .client import Client
from ._request import DEFAULT_SOCKET
from .errors import (BadRequest, BatchdError, Cancelled, ConnectionError,
                     DeadlineExceeded, Failed, FrameTooLarge, NoRoute,
                     Overloaded, PermissionDenied, ProtocolError,
                     RetryExhausted, ShuttingDown, SinkTimeout,
                     SinkUnavailable, Timeout, TooManyConnections,
                     Unsupported, error_for)
from .protocol import PROTOCOL_VERSION
from .status import Status, status_name

__version__ = "0.1.0"

__all__ = [
    "AsyncClient", "Client", "DEFAULT_SOCKET", "PROTOCOL_VERSION", "Status",
    "status_name", "error_for", "BatchdError", "BadRequest", "Cancelled",
    "ConnectionError", "DeadlineExceeded", "Failed", "FrameTooLarge",
    "NoRoute", "Overloaded", "PermissionDenied", "ProtocolError",
    "RetryExhausted", "ShuttingDown", "SinkTimeout", "SinkUnavailable",
    "Timeout", "TooManyConnections", "Unsupported",
]
