"""The wire format of proto/PROTOCOL.md: framing, the bounded walk, request
encoding and reply decoding. No I/O here: both clients share it.
"""
from __future__ import annotations

import struct
from typing import Any, Dict, List, Optional, Tuple

import msgpack

from .errors import ProtocolError

PROTOCOL_VERSION = 1            # HELLO version (BD_PROTO_VERSION)
HDR = 4                         # the big-endian uint32 length prefix
PRE_HELLO_MAX = 4096            # request body limit before HELLO
DEFAULT_MAX_FRAME = 1 << 20     # the daemon's default max_frame
REPLY_MAX = 64 << 20            # largest reply frame accepted (as libbatchd)
MAX_DEPTH = 8                   # BD_FRAME_MAX_DEPTH
KEY_MAX = 256
DEDUP_MAX = 256
TRACE_MAX = 128
NAME_MAX = 128
MANY_MAX = 65536
STATUS_WIRE_MAX = 255           # a reply status must fit one byte
ID_MAX = (1 << 64) - 1

HELLO, LOAD, SEND, LOAD_MANY, SEND_MANY, CONTROL, ERROR = 0, 1, 2, 3, 4, 9, 15

_LEN = struct.Struct(">I")

# ---- the bounded walk (PROTOCOL.md section 3, proto/frame.c) -------------

# Fixed-size scalars by type byte: the bytes that follow the type byte.
_FIXED = {0xca: 4, 0xcb: 8, 0xcc: 1, 0xd0: 1, 0xcd: 2, 0xd1: 2, 0xce: 4,
          0xd2: 4, 0xcf: 8, 0xd3: 8, 0xd4: 2, 0xd5: 3, 0xd6: 5, 0xd7: 9,
          0xd8: 17}
# Headers with their own length bytes: type byte -> (length bytes, kind).
_RAW, _EXT, _ARRAY, _MAP = 1, 4, 2, 3
_SIZED = {0xc4: (1, _RAW), 0xc5: (2, _RAW), 0xc6: (4, _RAW),
          0xc7: (1, _EXT), 0xc8: (2, _EXT), 0xc9: (4, _EXT),
          0xd9: (1, _RAW), 0xda: (2, _RAW), 0xdb: (4, _RAW),
          0xdc: (2, _ARRAY), 0xdd: (4, _ARRAY),
          0xde: (2, _MAP), 0xdf: (4, _MAP)}


def _header(body: bytes, pos: int) -> Tuple[int, int, int, bool]:
    """Classify the header at body[pos]: (header size, payload bytes to
    skip, child objects, is a container). Raises ValueError(reason)."""
    c = body[pos]
    if c <= 0x7f or c >= 0xe0 or c in (0xc0, 0xc2, 0xc3):
        return 1, 0, 0, False
    if c <= 0x8f:
        return 1, 0, 2 * (c & 0x0f), True
    if c <= 0x9f:
        return 1, 0, c & 0x0f, True
    if c <= 0xbf:
        return 1, c & 0x1f, 0, False
    if c in _FIXED:
        return 1, _FIXED[c], 0, False
    if c not in _SIZED:
        raise ValueError("invalid msgpack type byte 0xc1")
    nlen, kind = _SIZED[c]
    if len(body) - pos < 1 + nlen:
        raise ValueError("truncated msgpack header")
    n = int.from_bytes(body[pos + 1:pos + 1 + nlen], "big")
    if kind == _RAW:
        return 1 + nlen, n, 0, False
    if kind == _EXT:
        return 1 + nlen, n + 1, 0, False     # + the ext type byte
    if kind == _ARRAY:
        return 1 + nlen, 0, n, True
    return 1 + nlen, 0, 2 * n, True


def walk(body: bytes) -> Optional[str]:
    """The daemon's bounded walk over one frame body, without allocating
    for what it declares. Returns None when the body is one well-formed
    msgpack object, else the reason, worded as in PROTOCOL.md section 3.
    Run before msgpack sees the bytes, so a hostile count or length never
    turns into a big allocation."""
    pending = [1]            # objects still owed per nesting level
    pos, end = 0, len(body)
    try:
        while True:
            while len(pending) > 1 and pending[-1] == 0:
                pending.pop()
            if pending[-1] == 0:
                break
            if pos >= end:
                return "truncated msgpack object"
            hdr, skip, children, container = _header(body, pos)
            pending[-1] -= 1
            pos += hdr
            if skip > end - pos:
                return "msgpack length runs past the end of the frame"
            pos += skip
            if not container:
                continue
            # Every child takes at least one byte: a larger count is a lie.
            if children > end - pos:
                return "msgpack container count exceeds the frame"
            if len(pending) > MAX_DEPTH:
                return "msgpack nesting deeper than %d" % MAX_DEPTH
            pending.append(children)
    except ValueError as e:
        return str(e)
    if pos != end:
        return "trailing bytes after the msgpack object"
    return None


# ---- framing ---------------------------------------------------------------

def frame(body: bytes) -> bytes:
    """Length prefix + body."""
    return _LEN.pack(len(body)) + body


class FrameReader:
    """Splits a byte stream into frame bodies. A length of 0 or over the
    limit is refused on the 4 length bytes alone: nothing is buffered or
    allocated for such a body."""

    def __init__(self, limit: int = REPLY_MAX) -> None:
        self.limit = limit            # largest body accepted, bytes
        self._buf = bytearray()       # bytes received, not yet a whole frame

    def feed(self, data: bytes) -> List[bytes]:
        """Add received bytes; return the bodies they completed.
        Raises ProtocolError on a bad length."""
        self._buf += data
        out = []
        buf = self._buf
        pos = 0
        while len(buf) - pos >= HDR:
            (n,) = _LEN.unpack_from(buf, pos)
            if n == 0 or n > self.limit:
                raise ProtocolError("reply frame length %d: must be 1..%d"
                                    % (n, self.limit))
            if len(buf) - pos - HDR < n:
                break
            out.append(bytes(buf[pos + HDR:pos + HDR + n]))
            pos += HDR + n
        if pos:
            del buf[:pos]
        return out

    def want(self) -> int:
        """Bytes worth asking the socket for: the rest of a big frame at
        once, else one chunk."""
        if len(self._buf) >= HDR:
            n: int = _LEN.unpack_from(self._buf, 0)[0]
            if 0 < n <= self.limit:
                return max(HDR + n - len(self._buf), 65536)
        return 65536


# ---- requests ----------------------------------------------------------------

def _pack(obj: Any) -> bytes:
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


def encode_hello(req_id: int, name: str) -> bytes:
    return frame(_pack([HELLO, req_id, PROTOCOL_VERSION, name]))


def encode_item(mtype: int, req_id: int, key: str, payload: Any,
                opts: Optional[Dict[str, Any]]) -> bytes:
    """The body of a LOAD/SEND (payload: bytes) or *_MANY (payload: a
    list of bytes). opts None leaves the 5th element out."""
    if opts is None:
        return _pack([mtype, req_id, key, payload])
    return _pack([mtype, req_id, key, payload, opts])


def encode_control(req_id: int, command: str,
                   args: Optional[Dict[str, str]]) -> bytes:
    return _pack([CONTROL, req_id, command, args])


# ---- replies -------------------------------------------------------------------

Reply = Tuple[int, int, int, Optional[bytes]]   # type, req_id, status, body


def _is_uint(v: Any) -> bool:
    # bool is an int in Python but never a msgpack integer.
    return type(v) is int and v >= 0


def decode_reply(body: bytes) -> Reply:
    """One reply body -> (type, req_id, status, body bytes or None).
    An empty body reads as None. Raises ProtocolError."""
    why = walk(body)
    if why is not None:
        raise ProtocolError("bad reply frame: %s" % why)
    try:
        # raw: str bodies stay bytes (a FAIL message need not be UTF-8).
        obj = msgpack.unpackb(body, raw=True, use_list=True,
                              strict_map_key=False)
    except Exception as e:  # msgpack raises several types on bad input
        raise ProtocolError("bad reply frame: %s" % e) from None
    if type(obj) is not list or len(obj) != 4:
        raise ProtocolError("reply: must be an array of 4 elements")
    mtype, req_id, status, data = obj
    if not (_is_uint(mtype) and _is_uint(req_id) and _is_uint(status)
            and status <= STATUS_WIRE_MAX):
        raise ProtocolError("reply: type, req_id and status must be integers")
    if data is not None and type(data) is not bytes:
        raise ProtocolError("reply: body must be bin, str or nil")
    return mtype, req_id, status, data or None


def text(data: Optional[bytes]) -> str:
    """A str body for people: invalid UTF-8 is replaced, never refused."""
    return data.decode("utf-8", "replace") if data else ""
