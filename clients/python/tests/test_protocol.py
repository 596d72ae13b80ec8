"""The wire code against PROTOCOL.md: the worked examples of section 13
byte for byte, the bounded walk's rules (section 3), and framing of a
stream split anywhere."""
from __future__ import annotations

import unittest

import batchd
from batchd import _request as rq
from batchd import protocol as p


def hexb(s: str) -> bytes:
    return bytes.fromhex(s.replace("\n", " "))


class ExamplesTest(unittest.TestCase):
    """PROTOCOL.md section 13."""

    def test_hello(self):
        self.assertEqual(p.encode_hello(1, "example/1.0.0"), hexb(
            "00 00 00 12 94 00 01 01 ad 65 78 61 6d 70 6c 65 2f 31 2e 30 2e 30"))
        self.assertEqual(p.decode_reply(hexb(
            "94 00 01 00 ac 62 61 74 63 68 64 20 30 2e 31 2e 30")),
            (0, 1, 0, b"batchd 0.1.0"))

    def test_load(self):
        opts = rq.make_opts(500, None, None, None)
        self.assertEqual(rq.item_frame(p.LOAD, 2, "users", b"hello", opts, p.DEFAULT_MAX_FRAME),
                         hexb("00 00 00 20 95 01 02 a5 75 73 65 72 73 c4 05 68 65 6c 6c 6f"
                              " 81 ab 64 65 61 64 6c 69 6e 65 5f 6d 73 cd 01 f4"))
        self.assertEqual(p.decode_reply(hexb("94 01 02 00 c4 05 68 65 6c 6c 6f")),
                         (1, 2, 0, b"hello"))
        t, rid, st, body = p.decode_reply(hexb(
            "94 01 03 0a d9 2b 6f 70 74 73 2e 70 72 69 6f 72 69 74 79 3a 20 6d 75 73"
            " 74 20 62 65 20 61 6e 20 69 6e 74 65 67 65 72 20 69 6e 20 30 2e 2e 32 35 35"))
        e = rq.load_result(st, body)
        self.assertIsInstance(e, batchd.BadRequest)
        self.assertEqual(e.message, "opts.priority: must be an integer in 0..255")

    def test_send_many(self):
        self.assertEqual(rq.many_frame(p.SEND_MANY, 10, "k", [b"a", b"bc"], None,
                                       p.DEFAULT_MAX_FRAME),
                         hexb("00 00 00 0d 94 04 0a a1 6b 92 c4 01 61 c4 02 62 63"))
        self.assertEqual(p.decode_reply(hexb("94 04 0a 01 c0")), (4, 10, 1, None))
        e = rq.send_result(*p.decode_reply(hexb(
            "94 04 0b 04 d9 22 6b 65 79 20 71 75 65 75 65 20 66 75 6c 6c 3a 20 6b 65"
            " 79 5f 6d 61 78 5f 69 74 65 6d 73 3d 31 30 30 30"))[2:])
        self.assertIsInstance(e, batchd.Overloaded)
        self.assertEqual(e.message, "key queue full: key_max_items=1000")

    def test_control(self):
        self.assertEqual(rq.control_frame(4, "ping", None, p.DEFAULT_MAX_FRAME),
                         hexb("00 00 00 09 94 09 04 a4 70 69 6e 67 c0"))
        self.assertEqual(p.decode_reply(hexb("94 09 04 00 a4 70 6f 6e 67")),
                         (9, 4, 0, b"pong"))

    def test_error_frame(self):
        body = hexb("94 0f 00 0b d9 35 66 72 61 6d 65 20 6c 65 6e 67 74 68 20 34 32 39 34"
                    " 39 36 37 32 39 35 3a 20 6d 75 73 74 20 62 65 20 31 2e 2e 34 30 39 36"
                    " 20 62 65 66 6f 72 65 20 48 45 4c 4c 4f")
        t, rid, st, msg = p.decode_reply(body)
        self.assertEqual((t, rid), (p.ERROR, 0))
        e = batchd.error_for(st, p.text(msg))
        self.assertIsInstance(e, batchd.FrameTooLarge)
        self.assertIn("before HELLO", e.message)


class WalkTest(unittest.TestCase):
    """Section 3: each rule, with the daemon's wording."""

    CASES = [
        (b"\xc1", "invalid msgpack type byte 0xc1"),
        (b"\xda\x00", "truncated msgpack header"),
        (b"\xc6\x00\x00\x00\x05ab", "msgpack length runs past the end of the frame"),
        (b"\xcb\x00", "msgpack length runs past the end of the frame"),
        (b"\xd8\x01", "msgpack length runs past the end of the frame"),
        (b"\x93\x01", "msgpack container count exceeds the frame"),
        (b"\x82\x01\x02\x03", "msgpack container count exceeds the frame"),
        (b"\x92\x01", "msgpack container count exceeds the frame"),
        (b"\x92\x92\x01\x02", "truncated msgpack object"),
        (b"\x91" * 8 + b"\x90", "msgpack nesting deeper than 8"),
        (b"\x91" * 8 + b"\x80", "msgpack nesting deeper than 8"),
        (b"\x01\x02", "trailing bytes after the msgpack object"),
        (b"", "truncated msgpack object"),
    ]

    def test_refused(self):
        for body, why in self.CASES:
            with self.subTest(body=body):
                self.assertEqual(p.walk(body), why)

    def test_accepted(self):
        for body in (b"\x91" * 7 + b"\x90", b"\x91" * 8 + b"\x01",
                     b"\x94\x01\x02\x00\xc4\x00", b"\xdd\x00\x00\x00\x01\xc0",
                     b"\xc7\x01\x05x", b"\xd4\x01\x02", b"\x81\xa1a\xcb" + b"\0" * 8):
            with self.subTest(body=body):
                self.assertIsNone(p.walk(body))


class FrameReaderTest(unittest.TestCase):
    def test_split_anywhere(self):
        bodies = [b"\x94\x01\x02\x00\xc4\x03abc", b"\x94\x01\x03\x00\xc0", b"\x94" + b"x" * 70000]
        stream = b"".join(p.frame(b) for b in bodies)
        for step in (1, 3, 7, 4096, len(stream)):
            r = p.FrameReader()
            got = []
            for i in range(0, len(stream), step):
                got += r.feed(stream[i:i + step])
            self.assertEqual(got, bodies)

    def test_refused_on_the_length_alone(self):
        with self.assertRaises(batchd.ProtocolError):
            p.FrameReader(limit=10).feed(b"\x00\x00\x00\x0b")
        with self.assertRaises(batchd.ProtocolError):
            p.FrameReader().feed(b"\x00\x00\x00\x00")


if __name__ == "__main__":
    unittest.main()
