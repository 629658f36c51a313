"""Tests for tray.wire.wsstream: cutting a server's WebSocket bytes into binary payload and raw frames.

Frames are built by hand from RFC 6455 §5.2 (not with websockets' own
encoder), so a layout mistake cannot hide behind a shared helper.  The
splitter's contract, checked throughout:

* the payload of unmasked, RSV-free binary frames and of the continuation
  frames of binary messages comes out as payload pieces, in order, never
  empty, without copying (the input chunk itself, or a view of it);
* every other frame (control frames, text messages and their continuations,
  masked frames, frames with RSV bits, reserved opcodes) comes out whole,
  one raw piece per frame, in its place among the payload pieces;
* none of this depends on where the input is cut into chunks.
"""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.exceptions import ProtocolError
from websockets.frames import Opcode
from websockets.protocol import Protocol, Side, State

from tray.wire.wsstream import FrameSplitter

# Opcodes from RFC 6455 §5.2 (deliberately not imported).
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
RSV1, RSV2, RSV3 = 0x40, 0x20, 0x10
MASK_KEY = b"\x12\x34\x56\x78"


# -- helpers ------------------------------------------------------------------


def frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0,
          mask: bytes | None = None, form: int | None = None) -> bytes:
    """One frame.  ``form`` forces the length encoding: 7, 16 or 64 bits (default: the shortest)."""
    n = len(payload)
    if form is None:
        form = 7 if n < 126 else 16 if n < 1 << 16 else 64
    b0 = (0x80 if fin else 0) | rsv | opcode
    m = 0x80 if mask is not None else 0
    if form == 7:
        assert n < 126
        head = bytes([b0, m | n])
    elif form == 16:
        head = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if mask is not None:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        head += mask
    return head + payload


def close_frame(code: int | None = None, reason: bytes = b"") -> bytes:
    return frame(CLOSE, b"" if code is None else struct.pack(">H", code) + reason)


def feed_all(chunks: list[bytes]) -> list[tuple[bool, bytes | memoryview]]:
    """Every piece out of one splitter fed ``chunks``, checking each piece's type on the way."""
    splitter = FrameSplitter()
    pieces = []
    for chunk in chunks:
        for is_payload, piece in splitter.feed(chunk):
            if is_payload:
                assert isinstance(piece, (bytes, memoryview)) and len(piece) > 0, "empty payload piece"
                if isinstance(piece, memoryview):
                    assert piece.obj is chunk, "payload views must be views of the input chunk"
            else:
                assert type(piece) is bytes, "raw frames are handed back as bytes"
            pieces.append((is_payload, piece))
    return pieces


def merged(pieces: list[tuple[bool, bytes | memoryview]]) -> list[tuple[bool, bytes]]:
    """Pieces as bytes, adjacent payload pieces joined (where the input was cut is not the point)."""
    out: list[tuple[bool, bytes]] = []
    for is_payload, piece in pieces:
        if is_payload and out and out[-1][0]:
            out[-1] = (True, out[-1][1] + bytes(piece))
        else:
            out.append((is_payload, bytes(piece)))
    return out


def split(chunks: list[bytes]) -> tuple[bytes, list[bytes]]:
    """(all payload joined, the raw pieces) out of one splitter fed ``chunks``."""
    pieces = feed_all(chunks)
    return (b"".join(bytes(p) for is_payload, p in pieces if is_payload),
            [bytes(p) for is_payload, p in pieces if not is_payload])


def cut(stream: bytes, positions: list[int]) -> list[bytes]:
    bounds = [0, *sorted(set(positions)), len(stream)]
    return [stream[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


def pattern(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


# -- binary frames ------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 5, 125, 126, 127, 300, 65535, 65536, 70000])
def test_a_binary_frame_is_all_payload_at_each_length_encoding(n):
    payload = pattern(n, n)
    data = frame(BINARY, payload)
    assert data[1] & 0x7F == (n if n < 126 else 126 if n < 65536 else 127)
    pieces = feed_all([data])
    assert len(pieces) == 1 and pieces[0][0] is True
    assert bytes(pieces[0][1]) == payload


@pytest.mark.parametrize("form", [7, 16, 64])
@pytest.mark.parametrize("n", [0, 1, 5, 125])
def test_a_longer_length_encoding_than_needed_is_read_as_written(form, n):
    # RFC 6455 asks for the shortest form; the splitter only cuts, so any
    # form it is given must be read right (the library judges the rest).
    payload = pattern(n, 7)
    data = frame(BINARY, payload, form=form) + frame(BINARY, b"next", form=form)
    assert split([data]) == (payload + b"next", [])


def test_a_fragmented_binary_message_is_all_payload():
    data = (frame(BINARY, b"one ", fin=False) + frame(CONT, b"two ", fin=False)
            + frame(CONT, pattern(200), fin=False, form=16) + frame(CONT, b" three", fin=True))
    assert split([data]) == (b"one two " + pattern(200) + b" three", [])


def test_binary_frames_back_to_back_keep_their_order():
    frames = [frame(BINARY, bytes([i]) * (i * 37)) for i in range(1, 20)]
    assert split([b"".join(frames)]) == (b"".join(bytes([i]) * (i * 37) for i in range(1, 20)), [])


@pytest.mark.parametrize("data", [
    frame(BINARY, b""),
    frame(BINARY, b"", form=16),
    frame(BINARY, b"", form=64),
    frame(BINARY, b"", fin=False) + frame(CONT, b"", fin=False) + frame(CONT, b""),
])
def test_zero_length_binary_frames_produce_nothing(data):
    assert FrameSplitter().feed(data) == []
    for i in range(1, len(data)):  # nor when cut anywhere
        assert feed_all([data[:i], data[i:]]) == []


def test_zero_length_binary_frames_between_others_leave_no_trace():
    data = frame(BINARY, b"a") + frame(BINARY, b"") + frame(PING) + frame(BINARY, b"") + frame(BINARY, b"b")
    assert merged(feed_all([data])) == [(True, b"a"), (False, frame(PING)), (True, b"b")]


def test_empty_input_produces_nothing():
    splitter = FrameSplitter()
    assert splitter.feed(b"") == []
    splitter.feed(frame(BINARY, b"abc")[:3])  # mid-header
    assert splitter.feed(b"") == []
    assert [(p, bytes(x)) for p, x in splitter.feed(frame(BINARY, b"abc")[3:])] == [(True, b"bc")]


# -- zero copy ------------------------------------------------------------------


def test_a_chunk_that_is_all_payload_is_passed_on_as_is():
    payload = pattern(100_000)
    data = frame(BINARY, payload)
    head, body = data[:10], data[10:]
    first, second, third = body[:30_000], body[30_000:60_000], body[60_000:]
    splitter = FrameSplitter()
    assert splitter.feed(head) == []
    for chunk in (first, second, third):  # the first, a middle and the last part of the payload
        pieces = splitter.feed(chunk)
        assert len(pieces) == 1 and pieces[0][0] is True
        assert pieces[0][1] is chunk


def test_a_chunk_that_is_a_whole_continuation_payload_is_passed_on_as_is():
    splitter = FrameSplitter()
    splitter.feed(frame(BINARY, b"x", fin=False))
    splitter.feed(frame(CONT, b"0123456789")[:2])
    chunk = b"0123456789"
    ((is_payload, piece),) = splitter.feed(chunk)
    assert is_payload and piece is chunk


def test_payload_sharing_a_chunk_with_headers_is_a_view_of_it():
    data = frame(BINARY, b"hello") + frame(BINARY, b"world")
    pieces = FrameSplitter().feed(data)
    assert [(p, bytes(x)) for p, x in pieces] == [(True, b"hello"), (True, b"world")]
    for _, piece in pieces:
        assert isinstance(piece, memoryview) and piece.obj is data


# -- control frames ---------------------------------------------------------------


@pytest.mark.parametrize("raw", [
    frame(PING),
    frame(PING, b"are you there"),
    frame(PONG),
    frame(PONG, b"\x00\x01"),
    close_frame(),
    close_frame(1000),
    close_frame(1011, b"internal error"),
    frame(PING, pattern(125)),
], ids=["ping", "ping+data", "pong", "pong+data", "close", "close 1000", "close 1011+reason", "ping 125"])
def test_control_frames_come_back_whole_in_their_place(raw):
    data = frame(BINARY, b"before") + raw + frame(BINARY, b"after")
    expected = [(True, b"before"), (False, raw), (True, b"after")]
    assert merged(feed_all([data])) == expected
    assert merged(feed_all([raw, frame(BINARY, b"after")])) == expected[1:]  # also first in a chunk
    for i in range(1, len(data)):
        assert merged(feed_all([data[:i], data[i:]])) == expected, f"cut at {i}"


def test_a_control_frame_is_handed_back_only_once_complete():
    raw = close_frame(1001, b"going away")
    splitter = FrameSplitter()
    for i in range(len(raw) - 1):
        assert splitter.feed(raw[i:i + 1]) == [], f"a partial frame came out after byte {i}"
    assert splitter.feed(raw[-1:] + frame(BINARY, b"z")) == [(False, raw), (True, b"z")]


def test_control_frames_between_binary_fragments_leave_the_message_whole():
    data = (frame(BINARY, b"frag", fin=False) + frame(PING, b"1") + frame(CONT, b"ment", fin=False)
            + frame(PONG) + frame(CONT, b"ed", fin=True) + close_frame(1000))
    assert merged(feed_all([data])) == [
        (True, b"frag"), (False, frame(PING, b"1")), (True, b"ment"), (False, frame(PONG)),
        (True, b"ed"), (False, close_frame(1000)),
    ]


def test_many_control_frames_in_a_row_keep_their_order():
    raws = [frame(PING, bytes([i])) for i in range(10)] + [frame(PONG), close_frame()]
    assert feed_all([b"".join(raws)]) == [(False, raw) for raw in raws]


# -- text messages --------------------------------------------------------------


def test_a_text_message_comes_back_raw():
    raw = frame(TEXT, "héllo".encode())
    data = frame(BINARY, b"a") + raw + frame(BINARY, b"b")
    assert merged(feed_all([data])) == [(True, b"a"), (False, raw), (True, b"b")]


def test_a_fragmented_text_message_comes_back_raw_frame_by_frame():
    # Its continuations are text too, a control frame between them changes
    # nothing, and binary continuations after the message are payload again.
    text = [frame(TEXT, b"he", fin=False), frame(CONT, b"ll", fin=False), frame(CONT, b"o", fin=True)]
    data = (text[0] + frame(PING, b"p") + text[1] + close_frame(1000) + text[2]
            + frame(BINARY, b"x", fin=False) + frame(CONT, b"y", fin=False) + frame(CONT, b"z"))
    expected = [(False, text[0]), (False, frame(PING, b"p")), (False, text[1]), (False, close_frame(1000)),
                (False, text[2]), (True, b"xyz")]
    assert merged(feed_all([data])) == expected
    for i in range(1, len(data)):
        assert merged(feed_all([data[:i], data[i:]])) == expected, f"cut at {i}"
    assert merged(feed_all([data[i:i + 1] for i in range(len(data))])) == expected


def test_an_empty_text_frame_and_an_empty_continuation_come_back_raw():
    raws = [frame(TEXT, b"", fin=False), frame(CONT, b"", fin=False), frame(CONT, b"")]
    assert feed_all([b"".join(raws) + frame(BINARY, b"after")]) == [
        *((False, raw) for raw in raws), (True, b"after")]


def test_text_messages_with_long_frames_come_back_raw():
    raws = [frame(TEXT, b"t" * 300, fin=False), frame(CONT, b"u" * 70_000)]
    assert raws[0][1] == 126 and raws[1][1] == 127
    assert split([b"".join(raws) + frame(BINARY, b"!")]) == (b"!", raws)


def test_a_single_frame_text_message_does_not_capture_later_continuations():
    data = frame(TEXT, b"done") + frame(BINARY, b"a", fin=False) + frame(CONT, b"b")
    assert merged(feed_all([data])) == [(False, frame(TEXT, b"done")), (True, b"ab")]


# -- frames the library must judge ------------------------------------------------


@pytest.mark.parametrize("raw", [
    frame(BINARY, b"masked", mask=MASK_KEY),
    frame(BINARY, pattern(300), mask=MASK_KEY),
    frame(BINARY, b"", mask=MASK_KEY),
    frame(PING, b"masked ping", mask=MASK_KEY),
    frame(TEXT, b"masked text", mask=MASK_KEY),
    frame(BINARY, b"rsv1", rsv=RSV1),
    frame(BINARY, b"rsv2", rsv=RSV2),
    frame(BINARY, b"rsv3", rsv=RSV3),
    frame(BINARY, b"", rsv=RSV1),
    frame(BINARY, pattern(70_000), rsv=RSV1 | RSV3),
    frame(BINARY, b"both", rsv=RSV2, mask=MASK_KEY),
    frame(CLOSE, b"\x03\xe8", rsv=RSV1),
    frame(0x3, b"reserved data opcode"),
    frame(0xB, b"reserved control opcode"),
], ids=["masked binary", "masked binary 16-bit", "masked empty binary", "masked ping", "masked text",
        "rsv1", "rsv2", "rsv3", "rsv1 empty", "rsv1+3 64-bit", "rsv2 masked", "rsv1 close",
        "opcode 3", "opcode 11"])
def test_masked_or_rsv_or_reserved_frames_come_back_raw(raw):
    data = frame(BINARY, b"before") + raw + frame(BINARY, b"after")
    expected = [(True, b"before"), (False, raw), (True, b"after")]
    assert merged(feed_all([data])) == expected
    for i in range(1, len(data), max(1, len(data) // 200)):
        assert merged(feed_all([data[:i], data[i:]])) == expected, f"cut at {i}"


def test_a_masked_or_rsv_continuation_of_a_binary_message_comes_back_raw():
    bad = [frame(CONT, b"m", fin=False, mask=MASK_KEY), frame(CONT, b"r", fin=False, rsv=RSV1)]
    data = frame(BINARY, b"a", fin=False) + bad[0] + bad[1] + frame(CONT, b"b")
    assert merged(feed_all([data])) == [(True, b"a"), (False, bad[0]), (False, bad[1]), (True, b"b")]


# -- cut anywhere ---------------------------------------------------------------


HEADERS = {  # frames whose headers have every shape: 2, 4, 10 bytes, each with or without a mask key
    "7-bit": frame(BINARY, b"seven"),
    "16-bit": frame(BINARY, pattern(300, 1)),
    "64-bit": frame(BINARY, pattern(65_536, 2)),
    "16-bit forced": frame(BINARY, b"sixteen", form=16),
    "64-bit forced": frame(BINARY, b"sixty-four", form=64),
    "masked 7-bit": frame(PING, b"m7", mask=MASK_KEY),
    "masked 16-bit": frame(TEXT, b"m16", mask=MASK_KEY, form=16),
    "masked 64-bit": frame(BINARY, b"m64", mask=MASK_KEY, form=64),
    "close": close_frame(1000, b"bye"),
}


@pytest.mark.parametrize("name", list(HEADERS))
def test_a_frame_cut_at_every_byte_of_its_header_and_payload(name):
    # Two frames of the kind, then a marker: every cut in the first two
    # frames' headers (inside a 16/64-bit length, inside a mask key) and
    # just after them.
    one = HEADERS[name]
    data = one + one + frame(BINARY, b"end")
    expected = merged(feed_all([data]))
    assert expected[-1][0] is True and expected[-1][1].endswith(b"end")
    head = 14  # covers the longest header
    positions = [*range(1, head + 1), *range(len(one) - 2, len(one) + head + 1), len(data) - 3]
    for i in positions:
        assert merged(feed_all([data[:i], data[i:]])) == expected, f"cut at {i}"
    for i in range(1, head + 1):  # two cuts: the header in three pieces
        for j in range(i + 1, head + 2):
            assert merged(feed_all([data[:i], data[i:j], data[j:]])) == expected, f"cuts at {i}, {j}"


@pytest.mark.parametrize("name", [n for n in HEADERS if n not in ("64-bit", "16-bit")])
def test_a_frame_fed_one_byte_at_a_time(name):
    one = HEADERS[name]
    data = one + frame(PING) + one + frame(BINARY, b"end")
    expected = merged(feed_all([data]))
    assert merged(feed_all([data[i:i + 1] for i in range(len(data))])) == expected


def test_a_long_frame_fed_one_byte_at_a_time():
    payload = pattern(70_000, 3)
    data = frame(BINARY, payload) + frame(PONG, b"x")
    assert split([data[i:i + 1] for i in range(len(data))]) == (payload, [frame(PONG, b"x")])


# -- against websockets ---------------------------------------------------------


def library() -> Protocol:
    """websockets' sans-I/O client side, already open: what tray.kube.websocket hands the raw frames to."""
    return Protocol(Side.CLIENT, state=State.OPEN, max_size=None)


def test_raw_pieces_are_whole_frames_to_the_websockets_library():
    # Fed one by one to websockets (as tray.kube.websocket does), the raw pieces
    # make exactly the frames sent, minus the binary ones: pings are
    # answered, a fragmented text message between binary data assembles,
    # and the close frame closes.
    stream = (frame(BINARY, b"a", fin=False) + frame(PING, b"1") + frame(CONT, b"b")
              + frame(TEXT, b"he", fin=False) + frame(PING) + frame(CONT, b"llo")
              + frame(BINARY, pattern(70_000)) + frame(PONG, b"2") + close_frame(1000, b"bye"))
    ws = library()
    payload = b""
    splitter = FrameSplitter()
    for i in range(0, len(stream), 997):
        for is_payload, piece in splitter.feed(stream[i:i + 997]):
            if is_payload:
                payload += bytes(piece)
            else:
                ws.receive_data(piece)
    assert payload == b"ab" + pattern(70_000)
    events = ws.events_received()
    assert [(e.opcode, bytes(e.data), e.fin) for e in events] == [
        (Opcode.PING, b"1", True),
        (Opcode.TEXT, b"he", False),
        (Opcode.PING, b"", True),
        (Opcode.CONT, b"llo", True),
        (Opcode.PONG, b"2", True),
        (Opcode.CLOSE, b"\x03\xe8bye", True),
    ]
    assert ws.parser_exc is None
    assert ws.state is State.CLOSING  # it answered the close
    assert [out[0] & 0x0F for out in ws.data_to_send()] == [PONG, PONG, CLOSE]  # its answers


@pytest.mark.parametrize("raw, message", [
    (frame(BINARY, b"masked", mask=MASK_KEY), "incorrect masking"),
    (frame(BINARY, b"compressed?", rsv=RSV1), "reserved bits must be 0"),
    (frame(0x3, b"?"), "invalid opcode"),
])
def test_frames_handed_back_raw_make_the_library_fail_the_connection(raw, message):
    ws = library()
    for is_payload, piece in FrameSplitter().feed(frame(BINARY, b"ok") + raw):
        if not is_payload:
            ws.receive_data(piece)
    assert isinstance(ws.parser_exc, ProtocolError) and message in str(ws.parser_exc)
    assert ws.state is State.CLOSING


# -- property -----------------------------------------------------------------


@st.composite
def payloads(draw: st.DrawFn, max_size: int = 200) -> bytes:
    if draw(st.integers(0, 19)) == 0:  # now and then one past 16 bits
        return pattern(draw(st.integers(65_536, 70_000)), draw(st.integers(0, 9)))
    return draw(st.binary(max_size=max_size))


@st.composite
def forms(draw: st.DrawFn, payload: bytes) -> int | None:
    n = len(payload)
    return draw(st.sampled_from([None, None, 64] + ([16] if n < 1 << 16 else []) + ([7] if n < 126 else [])))


@st.composite
def odd_bits(draw: st.DrawFn) -> dict:
    """Mask and RSV bits: harmless on frames that come back raw anyway."""
    return {"rsv": draw(st.sampled_from([0, 0, RSV1, RSV2, RSV3, RSV1 | RSV2 | RSV3])),
            "mask": draw(st.sampled_from([None, None, MASK_KEY, b"\xff\x00\xaa\x55"]))}


@st.composite
def control_frames(draw: st.DrawFn) -> bytes:
    opcode = draw(st.sampled_from([PING, PONG, CLOSE, 0xB, 0xF]))
    payload = draw(st.binary(max_size=125))
    return frame(opcode, payload, form=draw(forms(payload)), **draw(odd_bits()))


@st.composite
def messages(draw: st.DrawFn) -> list[tuple[bytes, bytes | None]]:
    """One message's frames (control frames between fragments), each with its payload if it is binary."""
    kind = draw(st.sampled_from(["binary", "binary", "text", "control", "odd"]))
    if kind == "control":
        return [(draw(control_frames()), None)]
    if kind == "odd":  # a whole data message breaking the rules: comes back raw
        payload = draw(payloads())
        bits = draw(odd_bits().filter(lambda b: b["rsv"] or b["mask"]))
        return [(frame(draw(st.sampled_from([BINARY, TEXT, 0x3, 0x7])), payload, form=draw(forms(payload)),
                       **bits), None)]
    parts = draw(st.lists(payloads(), min_size=1, max_size=4))
    out = []
    for i, part in enumerate(parts):
        opcode = (BINARY if kind == "binary" else TEXT) if i == 0 else CONT
        fin = i == len(parts) - 1
        if kind == "binary":
            out.append((frame(opcode, part, fin=fin, form=draw(forms(part))), part))
        else:  # every frame of a text message comes back raw, odd bits or not
            out.append((frame(opcode, part, fin=fin, form=draw(forms(part)), **draw(odd_bits())), None))
        if not fin:
            out.extend((draw(control_frames()), None) for _ in range(draw(st.integers(0, 2))))
    return out


@settings(max_examples=400, deadline=None)
@given(stream=st.lists(messages(), max_size=8), data=st.data())
def test_any_frames_cut_anywhere_split_exactly(stream, data):
    frames = [f for message in stream for f in message]
    whole = b"".join(raw for raw, _ in frames)
    expected_payload = b"".join(p for _, p in frames if p is not None)
    expected_raw = [raw for raw, p in frames if p is None]
    if whole:
        positions = data.draw(st.lists(st.integers(1, len(whole)), max_size=30), label="cuts")
        if data.draw(st.booleans(), label="also cut near every frame boundary"):
            at = 0
            for raw, _ in frames:
                positions += [at + d for d in (1, 2, 3, 5, 11) if at + d < len(whole)]
                at += len(raw)
    else:
        positions = []
    chunks = cut(whole, positions)
    pieces = feed_all(chunks)
    assert b"".join(bytes(p) for is_payload, p in pieces if is_payload) == expected_payload
    assert [p for is_payload, p in pieces if not is_payload] == expected_raw
    # ...and in their places: the raw pieces split the payload where the frames did.
    expected_order: list[tuple[bool, bytes]] = []
    for raw, payload in frames:
        if payload is None:
            expected_order.append((False, raw))
        elif payload:
            if expected_order and expected_order[-1][0]:
                expected_order[-1] = (True, expected_order[-1][1] + payload)
            else:
                expected_order.append((True, payload))
    assert merged(pieces) == expected_order
