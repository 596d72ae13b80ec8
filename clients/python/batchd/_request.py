"""Argument checks and request building shared by Client and AsyncClient.

Like libbatchd, a bad argument (key, option, size) is found before
anything is sent: it raises ValueError/TypeError (or FrameTooLarge for a
frame over max_frame) and the connection stays as it was.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, Iterable, List, Optional, TypeVar, Union

from . import protocol as p
from .errors import BatchdError, FrameTooLarge, error_for
from .status import Status

DEFAULT_SOCKET = "/run/batchd/batchd.sock"
CLIENT_NAME = "batchd-python/0.1.0"

Payload = Union[bytes, bytearray, memoryview, str]
Build = Callable[[int], bytes]    # first request id -> the framed request
T = TypeVar("T")


def socket_path(path: Optional[str]) -> str:
    """path, else $BATCHD_SOCKET, else the default (as libbatchd)."""
    if path:
        return os.fspath(path)
    return os.environ.get("BATCHD_SOCKET") or DEFAULT_SOCKET


def check_key(key: str) -> None:
    if not isinstance(key, str):
        raise TypeError("key must be a str, not %s" % type(key).__name__)
    try:
        raw = key.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("key is not valid UTF-8 (lone surrogate)") from None
    if not raw:
        raise ValueError("key must not be empty")
    if len(raw) > p.KEY_MAX:
        raise ValueError("key is longer than %d bytes" % p.KEY_MAX)
    if b"\0" in raw:
        raise ValueError("key contains a NUL byte")


def payload_bytes(data: Payload) -> bytes:
    """bytes-like as is; a str is sent UTF-8 encoded."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):
        return data.encode("utf-8")
    raise TypeError("payload must be bytes or str, not %s" % type(data).__name__)


def make_opts(deadline_ms: Optional[int], priority: Optional[int],
              dedup_id: Union[bytes, str, None],
              trace: Optional[str]) -> Optional[Dict[str, Any]]:
    """The opts map of PROTOCOL.md section 5, or None when every option is
    unset (the 5th element is then left out)."""
    opts: Dict[str, Any] = {}
    if deadline_ms is not None:
        if type(deadline_ms) is not int or not 1 <= deadline_ms <= 0xffffffff:
            raise ValueError("deadline_ms must be an int in 1..4294967295")
        opts["deadline_ms"] = deadline_ms
    if priority is not None:
        if type(priority) is not int or not 0 <= priority <= 255:
            raise ValueError("priority must be an int in 0..255")
        opts["priority"] = priority
    if dedup_id is not None:
        d = dedup_id.encode("utf-8") if isinstance(dedup_id, str) else dedup_id
        if not isinstance(d, bytes) or not 1 <= len(d) <= p.DEDUP_MAX:
            raise ValueError("dedup_id must be 1..%d bytes" % p.DEDUP_MAX)
        opts["dedup_id"] = d
    if trace is not None:
        if not isinstance(trace, str) or len(trace.encode("utf-8")) > p.TRACE_MAX:
            raise ValueError("trace must be a str of at most %d bytes" % p.TRACE_MAX)
        opts["trace"] = trace
    return opts or None


def _framed(body: bytes, max_frame: int) -> bytes:
    if len(body) > max_frame:
        raise FrameTooLarge("request of %d bytes is over max_frame (%d); "
                            "nothing was sent" % (len(body), max_frame),
                            Status.FRAME_TOO_LARGE)
    return p.frame(body)


def item_frame(mtype: int, req_id: int, key: str, data: Payload,
               opts: Optional[Dict[str, Any]], max_frame: int) -> bytes:
    check_key(key)
    return _framed(p.encode_item(mtype, req_id, key, payload_bytes(data), opts),
                   max_frame)


def many_payloads(payloads: Iterable[Payload]) -> List[bytes]:
    items = [payload_bytes(d) for d in payloads]
    if not 1 <= len(items) <= p.MANY_MAX:
        raise ValueError("need 1..%d payloads, got %d" % (p.MANY_MAX, len(items)))
    return items


def many_frame(mtype: int, req_id: int, key: str, items: List[bytes],
               opts: Optional[Dict[str, Any]], max_frame: int) -> bytes:
    check_key(key)
    return _framed(p.encode_item(mtype, req_id, key, items, opts), max_frame)


def control_frame(req_id: int, command: str, args: Optional[Dict[str, str]],
                  max_frame: int) -> bytes:
    if not isinstance(command, str) or not 1 <= len(command.encode()) <= p.NAME_MAX:
        raise ValueError("command must be a str of 1..%d bytes" % p.NAME_MAX)
    if args is not None and not all(isinstance(k, str) and isinstance(v, str)
                                    for k, v in args.items()):
        raise TypeError("control args must map str to str")
    return _framed(p.encode_control(req_id, command, args), max_frame)


# ---- what a reply means to the caller ---------------------------------------

def load_result(status: int, data: Optional[bytes]) -> Union[bytes, BatchdError]:
    """LOAD item: the sink's answer on OK, else the exception to raise."""
    if status == Status.OK:
        return data or b""
    return error_for(status, p.text(data))


def send_result(status: int, data: Optional[bytes]) -> Optional[BatchdError]:
    """SEND item: None once ACCEPTED, else the exception to raise."""
    if status == Status.ACCEPTED:
        return None
    return error_for(status, p.text(data))


def control_result(status: int, data: Optional[bytes]) -> Union[str, BatchdError]:
    if status == Status.OK:
        return p.text(data)
    return error_for(status, p.text(data))


def hello_error(status: int, data: Optional[bytes]) -> BatchdError:
    """The exception for a HELLO that was not answered OK."""
    msg = p.text(data)
    if status == Status.UNSUPPORTED:
        msg = "daemon does not speak protocol version %d: %s" % (
            p.PROTOCOL_VERSION, msg)
    return error_for(status, msg)


def value(result: Union[T, BatchdError]) -> T:
    """Raise an item's error, or return its value."""
    if isinstance(result, BatchdError):
        raise result
    return result
