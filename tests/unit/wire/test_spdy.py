"""Tests for tray.wire.spdy: the SPDY/3.1 framing of kubectl's port-forward tunnel.

Expected bytes are written out by hand from the SPDY/3 draft rather than
computed with the module's own structs, so a layout mistake cannot hide
behind a shared helper.
"""

from __future__ import annotations

import array
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tray.errors import TenderError
from tray.wire.spdy import (
    FLAG_FIN,
    MAX_CONTROL_LENGTH,
    MAX_DATA_LENGTH,
    MAX_STREAM_ID,
    RST_CANCEL,
    RST_NAMES,
    RST_PROTOCOL_ERROR,
    RST_REFUSED_STREAM,
    SUBPROTOCOL,
    VERSION,
    Event,
    GoAway,
    Ping,
    SpdyEncoder,
    SpdyError,
    SpdyParser,
    StreamData,
    StreamPushed,
    StreamReply,
    StreamReset,
    encode_header_block,
)

# Frame type numbers from the draft (deliberately not imported).
T_SYN_STREAM, T_SYN_REPLY, T_RST_STREAM, T_SETTINGS = 1, 2, 3, 4
T_PING, T_GOAWAY, T_HEADERS, T_WINDOW_UPDATE = 6, 7, 8, 9

SYNC_FLUSH_TAIL = b"\x00\x00\xff\xff"

# A port-forward stream pair as kubectl opens it.
ERROR_HEADERS = {"streamType": "error", "port": "8080", "requestID": "0"}
DATA_HEADERS = {"streamType": "data", "port": "8080", "requestID": "0"}


# -- helpers: hand-built frames ---------------------------------------------


def u32(n: int) -> bytes:
    return struct.pack(">I", n)


def control(frame_type: int, body: bytes = b"", flags: int = 0, version: int = VERSION) -> bytes:
    """A control frame: C bit, 15-bit version, 16-bit type, flags, 24-bit length."""
    word1 = 0x80000000 | version << 16 | frame_type
    return u32(word1) + bytes([flags]) + len(body).to_bytes(3, "big") + body


def data_frame(stream_id: int, payload: bytes, fin: bool = False) -> bytes:
    return u32(stream_id) + bytes([FLAG_FIN if fin else 0]) + len(payload).to_bytes(3, "big") + payload


def syn_reply(stream_id: int, fin: bool = False, block: bytes = b"") -> bytes:
    return control(T_SYN_REPLY, u32(stream_id) + block, FLAG_FIN if fin else 0)


def headers_frame(stream_id: int, fin: bool = False) -> bytes:
    return control(T_HEADERS, u32(stream_id), FLAG_FIN if fin else 0)


def rst(stream_id: int, status: int) -> bytes:
    return control(T_RST_STREAM, u32(stream_id) + u32(status))


def ping(ping_id: int) -> bytes:
    return control(T_PING, u32(ping_id))


def goaway(last_good: int, status: int | None = 0) -> bytes:
    """GOAWAY with a SPDY/3 8-byte body, or SPDY/2-style 4 bytes if status is None."""
    return control(T_GOAWAY, u32(last_good) + (b"" if status is None else u32(status)))


def server_syn_stream(stream_id: int) -> bytes:
    # stream id, associated id, priority+unused, slot, then a header block.
    return control(T_SYN_STREAM, u32(stream_id) + u32(0) + b"\x00\x00" + b"\x78\x9c")


def settings_frame(*entries: tuple[int, int]) -> bytes:
    body = u32(len(entries)) + b"".join(u32(i) + u32(v) for i, v in entries)
    return control(T_SETTINGS, body)


def window_update(stream_id: int, delta: int) -> bytes:
    return control(T_WINDOW_UPDATE, u32(stream_id) + u32(delta))


def feed_pieces(parser: SpdyParser, stream: bytes, cuts: list[int]) -> list[Event]:
    events: list[Event] = []
    points = sorted({0, len(stream), *cuts})
    for a, b in zip(points, points[1:]):
        events += parser.feed(stream[a:b])
    return events


def merged(events: list[Event]) -> list[Event]:
    """Join consecutive StreamData pieces of one stream until a piece with FIN.

    The logical content of an event list, independent of where the input was
    split: the payload per stream and where the FINs fall.
    """
    out: list[Event] = []
    for ev in events:
        last = out[-1] if out else None
        if (
            isinstance(ev, StreamData)
            and isinstance(last, StreamData)
            and last.stream_id == ev.stream_id
            and not last.fin
        ):
            out[-1] = StreamData(ev.stream_id, bytes(last.payload) + bytes(ev.payload), ev.fin)
        else:
            out.append(ev)
    return out


def header_block_of(syn_stream_frame: bytes) -> bytes:
    """The compressed header block of an encoded SYN_STREAM."""
    return syn_stream_frame[8 + 10:]


# -- constants --------------------------------------------------------------


def test_constants() -> None:
    assert SUBPROTOCOL == "SPDY/3.1+portforward.k8s.io"
    assert VERSION == 3
    assert FLAG_FIN == 0x01
    assert MAX_DATA_LENGTH == 2**24 - 1
    assert MAX_STREAM_ID == 2**31 - 1
    assert (RST_PROTOCOL_ERROR, RST_REFUSED_STREAM, RST_CANCEL) == (1, 3, 5)


def test_spdy_error_is_tender_error() -> None:
    assert issubclass(SpdyError, TenderError)


# -- encoder: control frames ------------------------------------------------


def test_ping_bytes() -> None:
    # 0x8003 (C bit + version 3), type 6, flags 0, length 4, id.
    assert SpdyEncoder.ping(1) == bytes.fromhex("80030006 00000004 00000001")
    assert SpdyEncoder.ping(0xFFFFFFFE) == bytes.fromhex("80030006 00000004 fffffffe")


def test_rst_stream_bytes() -> None:
    assert SpdyEncoder.rst_stream(5, RST_CANCEL) == bytes.fromhex("80030003 00000008 00000005 00000005")
    assert SpdyEncoder.rst_stream(MAX_STREAM_ID, RST_PROTOCOL_ERROR) == bytes.fromhex(
        "80030003 00000008 7fffffff 00000001"
    )


def test_goaway_bytes() -> None:
    assert SpdyEncoder.goaway(7) == bytes.fromhex("80030007 00000008 00000007 00000000")
    assert SpdyEncoder.goaway(0, 2) == bytes.fromhex("80030007 00000008 00000000 00000002")


def test_encoder_output_is_bytes() -> None:
    enc = SpdyEncoder()
    for out in (
        enc.syn_stream(1, DATA_HEADERS),
        enc.data(1, bytearray(b"x")),
        enc.data(1, memoryview(b"xyz")[1:]),
        enc.rst_stream(1, 1),
        enc.ping(1),
        enc.goaway(1),
    ):
        assert type(out) is bytes


# -- encoder: SYN_STREAM ----------------------------------------------------


def test_syn_stream_layout() -> None:
    frame = SpdyEncoder().syn_stream(1, ERROR_HEADERS)
    assert frame[:4] == bytes.fromhex("80030001")  # control, version 3, SYN_STREAM
    assert frame[4] == 0  # no flags
    assert int.from_bytes(frame[5:8], "big") == len(frame) - 8
    assert frame[8:12] == bytes.fromhex("00000001")  # stream id
    assert frame[12:16] == bytes.fromhex("00000000")  # associated-to stream id
    assert frame[16:18] == b"\x00\x00"  # priority (3 bits) + unused, slot
    block = header_block_of(frame)
    assert zlib.decompressobj().decompress(block) == encode_header_block(ERROR_HEADERS)


def test_syn_stream_fin_flag() -> None:
    frame = SpdyEncoder().syn_stream(3, DATA_HEADERS, fin=True)
    assert frame[:5] == bytes.fromhex("80030001 01")


def test_syn_stream_max_stream_id() -> None:
    frame = SpdyEncoder().syn_stream(MAX_STREAM_ID, {})
    assert frame[8:12] == bytes.fromhex("7fffffff")


def test_syn_stream_uses_given_headers_verbatim_after_lowercasing() -> None:
    frame = SpdyEncoder().syn_stream(1, {"StreamType": "data", "Port": "80"})
    block = zlib.decompressobj().decompress(header_block_of(frame))
    assert block == (
        bytes.fromhex("00000002")
        + bytes.fromhex("0000000a") + b"streamtype" + bytes.fromhex("00000004") + b"data"
        + bytes.fromhex("00000004") + b"port" + bytes.fromhex("00000002") + b"80"
    )


# -- encoder: data frames ---------------------------------------------------


def test_data_bytes() -> None:
    # C bit clear, 31-bit stream id, flags, 24-bit length, payload.
    assert SpdyEncoder.data(1, b"hello") == bytes.fromhex("00000001 00000005") + b"hello"


def test_data_fin_bytes() -> None:
    assert SpdyEncoder.data(3, b"bye", fin=True) == bytes.fromhex("00000003 01000003") + b"bye"


def test_data_empty() -> None:
    assert SpdyEncoder.data(3, b"", fin=True) == bytes.fromhex("00000003 01000000")
    assert SpdyEncoder.data(3, b"") == bytes.fromhex("00000003 00000000")


def test_data_max_stream_id() -> None:
    assert SpdyEncoder.data(MAX_STREAM_ID, b"z") == bytes.fromhex("7fffffff 00000001") + b"z"


@pytest.mark.parametrize("payload", [bytearray(b"abc"), memoryview(b"..abc")[2:]])
def test_data_accepts_buffers(payload: bytearray | memoryview) -> None:
    assert SpdyEncoder.data(1, payload) == bytes.fromhex("00000001 00000003") + b"abc"


@pytest.mark.parametrize("fin", [False, True])
def test_data_non_byte_memoryview(fin: bool) -> None:
    # The length field must count bytes, not items of a typed buffer.
    arr = array.array("H", [1, 2, 3])
    raw = arr.tobytes()
    out = SpdyEncoder.data(1, memoryview(arr), fin=fin)
    assert out == u32(1) + bytes([FLAG_FIN if fin else 0]) + len(raw).to_bytes(3, "big") + raw


def test_data_exactly_max_length_is_one_frame() -> None:
    payload = b"\xab" * MAX_DATA_LENGTH
    out = SpdyEncoder.data(5, payload, fin=True)
    assert len(out) == 8 + MAX_DATA_LENGTH
    assert out[:8] == bytes.fromhex("00000005 01ffffff")
    assert out[8:] == payload


@pytest.fixture(scope="module")
def big_payload() -> bytes:
    """Just over one frame's worth: MAX_DATA_LENGTH 'a's then 'bc'."""
    return b"a" * MAX_DATA_LENGTH + b"bc"


@pytest.mark.parametrize("fin", [True, False])
def test_data_split_above_max_length(big_payload: bytes, fin: bool) -> None:
    out = SpdyEncoder.data(7, memoryview(big_payload), fin=fin)
    assert type(out) is bytes
    assert len(out) == len(big_payload) + 16
    # First frame: full length, never FIN.
    assert out[:8] == bytes.fromhex("00000007 00ffffff")
    assert out[8:8 + MAX_DATA_LENGTH] == big_payload[:MAX_DATA_LENGTH]
    # Second frame: the 2 remaining bytes, FIN only if asked for.
    tail = out[8 + MAX_DATA_LENGTH:]
    assert tail == bytes.fromhex("00000007") + bytes([1 if fin else 0]) + b"\x00\x00\x02" + b"bc"


def test_data_split_round_trip(big_payload: bytes) -> None:
    out = SpdyEncoder.data(7, big_payload, fin=True)
    events = SpdyParser().feed(out)
    assert [(type(e), e.stream_id, len(e.payload), e.fin) for e in events] == [  # type: ignore[union-attr]
        (StreamData, 7, MAX_DATA_LENGTH, False),
        (StreamData, 7, 2, True),
    ]
    assert b"".join(e.payload for e in events) == big_payload  # type: ignore[union-attr]


# -- encoder: stream id range -----------------------------------------------

BAD_STREAM_IDS = [0, -1, MAX_STREAM_ID + 1, 2**32, 2**40]


@pytest.mark.parametrize("stream_id", BAD_STREAM_IDS)
def test_syn_stream_bad_stream_id(stream_id: int) -> None:
    with pytest.raises(ValueError, match="stream id"):
        SpdyEncoder().syn_stream(stream_id, DATA_HEADERS)


@pytest.mark.parametrize("stream_id", BAD_STREAM_IDS)
def test_data_bad_stream_id(stream_id: int) -> None:
    with pytest.raises(ValueError, match="stream id"):
        SpdyEncoder.data(stream_id, b"x")


def test_data_bad_stream_id_checked_before_splitting() -> None:
    with pytest.raises(ValueError, match="stream id"):
        SpdyEncoder.data(0, b"")


@pytest.mark.parametrize("stream_id", BAD_STREAM_IDS)
def test_rst_stream_bad_stream_id(stream_id: int) -> None:
    with pytest.raises(ValueError, match="stream id"):
        SpdyEncoder.rst_stream(stream_id, RST_CANCEL)


def test_refused_syn_stream_leaves_compressor_untouched() -> None:
    # A refused id must not feed the zlib stream: the next block still
    # decompresses as the first of the stream.
    enc = SpdyEncoder()
    with pytest.raises(ValueError):
        enc.syn_stream(0, ERROR_HEADERS)
    frame = enc.syn_stream(1, DATA_HEADERS)
    assert frame == SpdyEncoder().syn_stream(1, DATA_HEADERS)


# -- encode_header_block ----------------------------------------------------


def test_header_block_empty() -> None:
    assert encode_header_block({}) == bytes.fromhex("00000000")


def test_header_block_layout() -> None:
    assert encode_header_block({"port": "8080", "streamtype": "error"}) == (
        bytes.fromhex("00000002")
        + bytes.fromhex("00000004") + b"port" + bytes.fromhex("00000004") + b"8080"
        + bytes.fromhex("0000000a") + b"streamtype" + bytes.fromhex("00000005") + b"error"
    )


def test_header_block_names_lower_cased() -> None:
    assert encode_header_block({"RequestID": "7"}) == (
        bytes.fromhex("00000001 00000009") + b"requestid" + bytes.fromhex("00000001") + b"7"
    )


def test_header_block_keeps_order() -> None:
    block = encode_header_block({"b": "1", "a": "2"})
    assert block.index(b"b") < block.index(b"a")


def test_header_block_utf8_value() -> None:
    # "ü" is two bytes in utf-8: the length counts bytes, not characters.
    assert encode_header_block({"x": "ü"}) == bytes.fromhex("00000001 00000001") + b"x" + (
        bytes.fromhex("00000002") + "ü".encode()
    )


def test_header_block_empty_value() -> None:
    assert encode_header_block({"x": ""}) == bytes.fromhex("00000001 00000001") + b"x" + bytes.fromhex("00000000")


def test_header_block_lengths_are_32_bit() -> None:
    value = "v" * 70_000  # > 16 bits
    block = encode_header_block({"big": value})
    assert block[:11] == bytes.fromhex("00000001 00000003") + b"big"
    assert block[11:15] == bytes.fromhex("00011170")
    assert block[15:] == value.encode()


def test_header_block_empty_name_refused() -> None:
    with pytest.raises(ValueError, match="empty header name"):
        encode_header_block({"": "x"})


def test_header_block_non_ascii_name_refused() -> None:
    with pytest.raises(ValueError):
        encode_header_block({"pört": "x"})


def test_header_block_accepts_any_mapping() -> None:
    from types import MappingProxyType

    assert encode_header_block(MappingProxyType({"a": "b"})) == encode_header_block({"a": "b"})


# -- header compression -----------------------------------------------------


def test_first_block_zlib_header_without_dictionary() -> None:
    block = header_block_of(SpdyEncoder().syn_stream(1, ERROR_HEADERS))
    cmf, flg = block[0], block[1]
    assert cmf & 0x0F == 8  # deflate
    assert (cmf << 8 | flg) % 31 == 0  # header check
    assert not flg & 0x20  # FDICT clear: no preset dictionary
    # Decompressing needs no dictionary at all.
    assert zlib.decompressobj().decompress(block) == encode_header_block(ERROR_HEADERS)


def test_blocks_form_one_zlib_stream() -> None:
    enc = SpdyEncoder()
    requests = [ERROR_HEADERS, DATA_HEADERS, {**ERROR_HEADERS, "requestID": "1"}, {}, DATA_HEADERS]
    frames = [enc.syn_stream(2 * i + 1, h) for i, h in enumerate(requests)]
    inflate = zlib.decompressobj()
    for frame, headers in zip(frames, requests):
        block = header_block_of(frame)
        assert block.endswith(SYNC_FLUSH_TAIL)  # everything so far is decodable
        assert inflate.decompress(block) == encode_header_block(headers)
    assert not inflate.eof and inflate.unconsumed_tail == b""


def test_later_blocks_need_the_earlier_ones() -> None:
    enc = SpdyEncoder()
    first = header_block_of(enc.syn_stream(1, ERROR_HEADERS))
    second = header_block_of(enc.syn_stream(3, ERROR_HEADERS))
    # Only the first block carries the zlib header; a repeat compresses
    # against the history and comes out smaller.
    assert len(second) < len(first)
    with pytest.raises(zlib.error):
        zlib.decompressobj().decompress(second)


def test_encoders_are_independent() -> None:
    a, b = SpdyEncoder(), SpdyEncoder()
    a_frames = [a.syn_stream(1, ERROR_HEADERS), a.syn_stream(3, DATA_HEADERS)]
    # b starts its own zlib stream no matter what a has done.
    b_first = b.syn_stream(1, ERROR_HEADERS)
    assert b_first == a_frames[0]
    a_frames.append(a.syn_stream(5, ERROR_HEADERS))
    b_second = b.syn_stream(3, DATA_HEADERS)
    assert b_second == a_frames[1]
    ia, ib = zlib.decompressobj(), zlib.decompressobj()
    for frame, headers in zip(a_frames, [ERROR_HEADERS, DATA_HEADERS, ERROR_HEADERS]):
        assert ia.decompress(header_block_of(frame)) == encode_header_block(headers)
    for frame, headers in zip([b_first, b_second], [ERROR_HEADERS, DATA_HEADERS]):
        assert ib.decompress(header_block_of(frame)) == encode_header_block(headers)


# -- parser: one event per frame type ---------------------------------------


@pytest.mark.parametrize("fin", [False, True])
def test_syn_reply(fin: bool) -> None:
    assert SpdyParser().feed(syn_reply(1, fin)) == [StreamReply(1, fin)]


def test_syn_reply_with_header_block() -> None:
    # The kubelet's header block is not decompressed, just skipped.
    assert SpdyParser().feed(syn_reply(3, block=b"\x78\x9c\x00\x00\xff\xff")) == [StreamReply(3, False)]


def test_syn_reply_reserved_bit_masked() -> None:
    assert SpdyParser().feed(syn_reply(0x80000005)) == [StreamReply(5, False)]


@pytest.mark.parametrize("fin", [False, True])
def test_headers_frame(fin: bool) -> None:
    assert SpdyParser().feed(headers_frame(7, fin)) == [StreamReply(7, fin)]


@pytest.mark.parametrize("fin", [False, True])
def test_data(fin: bool) -> None:
    assert SpdyParser().feed(data_frame(1, b"payload", fin)) == [StreamData(1, b"payload", fin)]


def test_data_max_stream_id() -> None:
    assert SpdyParser().feed(data_frame(MAX_STREAM_ID, b"x")) == [StreamData(MAX_STREAM_ID, b"x", False)]


def test_empty_data_with_fin() -> None:
    assert SpdyParser().feed(data_frame(3, b"", fin=True)) == [StreamData(3, b"", True)]


def test_empty_data_without_fin_is_no_event() -> None:
    p = SpdyParser()
    assert p.feed(data_frame(3, b"")) == []
    # ... and leaves the parser in step.
    assert p.feed(ping(2)) == [Ping(2)]


def test_rst_stream() -> None:
    (ev,) = SpdyParser().feed(rst(3, RST_CANCEL))
    assert ev == StreamReset(3, RST_CANCEL)
    assert isinstance(ev, StreamReset) and ev.reason == "cancelled"


def test_rst_stream_reserved_bit_masked() -> None:
    assert SpdyParser().feed(rst(0x80000003, 1)) == [StreamReset(3, 1)]


@pytest.mark.parametrize("status,reason", sorted(RST_NAMES.items()))
def test_rst_reason_known(status: int, reason: str) -> None:
    assert StreamReset(1, status).reason == reason


def test_rst_reasons_from_the_draft() -> None:
    assert StreamReset(1, 1).reason == "protocol error"
    assert StreamReset(1, 3).reason == "refused"
    assert StreamReset(1, 6).reason == "internal error"


@pytest.mark.parametrize("status", [0, 10, 12, 0xFFFFFFFF])
def test_rst_reason_unknown(status: int) -> None:
    assert StreamReset(1, status).reason == f"status {status}"


def test_server_syn_stream_is_pushed() -> None:
    assert SpdyParser().feed(server_syn_stream(2)) == [StreamPushed(2)]


def test_server_syn_stream_minimal_body() -> None:
    assert SpdyParser().feed(control(T_SYN_STREAM, u32(4) + u32(0) + b"\x00\x00")) == [StreamPushed(4)]


def test_ping() -> None:
    assert SpdyParser().feed(ping(2)) == [Ping(2)]
    assert SpdyParser().feed(ping(0xFFFFFFFF)) == [Ping(0xFFFFFFFF)]


def test_goaway_spdy3_body() -> None:
    assert SpdyParser().feed(goaway(5, 1)) == [GoAway(5, 1)]


def test_goaway_spdy2_body() -> None:
    assert SpdyParser().feed(goaway(5, None)) == [GoAway(5, 0)]


def test_goaway_reserved_bit_masked() -> None:
    assert SpdyParser().feed(goaway(0x80000009, 2)) == [GoAway(9, 2)]


# -- parser: ignored frames -------------------------------------------------


IGNORED_FRAMES = {
    "settings": settings_frame((7, 65536), (4, 100)),
    "settings-empty": settings_frame(),
    "window_update": window_update(1, 1024),
    "credential(10)": control(10, b"whatever"),
    "unknown-type": control(0xFFFF, b"\x01\x02\x03"),
    "unknown-empty": control(0x0B),
    "noop(5)": control(5),
    "unknown-with-fin": control(0x1234, b"abc", flags=FLAG_FIN),
}


@pytest.mark.parametrize("frame", IGNORED_FRAMES.values(), ids=IGNORED_FRAMES.keys())
def test_ignored_frames(frame: bytes) -> None:
    p = SpdyParser()
    assert p.feed(frame) == []
    # Frames after an ignored one are read in step, in the same chunk or later.
    assert p.feed(frame + data_frame(1, b"after") + frame) == [StreamData(1, b"after", False)]
    assert p.feed(ping(4)) == [Ping(4)]


def test_settings_byte_by_byte_then_data() -> None:
    stream = settings_frame((7, 1)) + data_frame(1, b"x", fin=True)
    events = feed_pieces(SpdyParser(), stream, list(range(len(stream))))
    assert events == [StreamData(1, b"x", True)]


# -- parser: several frames, partial frames -----------------------------------


def test_several_frames_in_one_chunk() -> None:
    stream = (
        syn_reply(1) + syn_reply(3) + data_frame(3, b"hello") + ping(2)
        + data_frame(3, b"", fin=True) + rst(1, RST_CANCEL) + goaway(3)
    )
    assert SpdyParser().feed(stream) == [
        StreamReply(1, False),
        StreamReply(3, False),
        StreamData(3, b"hello", False),
        Ping(2),
        StreamData(3, b"", True),
        StreamReset(1, RST_CANCEL),
        GoAway(3, 0),
    ]


def test_empty_feed() -> None:
    p = SpdyParser()
    assert p.feed(b"") == []
    p.feed(b"\x80\x03")
    assert p.feed(b"") == []
    assert p.feed(ping(2)[2:]) == [Ping(2)]


def test_control_frame_byte_by_byte() -> None:
    p = SpdyParser()
    frame = goaway(11, 2)
    for b in frame[:-1]:
        assert p.feed(bytes([b])) == []
    assert p.feed(frame[-1:]) == [GoAway(11, 2)]


def test_data_header_split() -> None:
    p = SpdyParser()
    frame = data_frame(1, b"abcdef", fin=True)
    assert p.feed(frame[:5]) == []
    assert p.feed(frame[5:]) == [StreamData(1, b"abcdef", True)]


def test_data_payload_in_pieces_fin_on_last() -> None:
    p = SpdyParser()
    frame = data_frame(5, b"0123456789", fin=True)
    assert p.feed(frame[:8 + 3]) == [StreamData(5, b"012", False)]
    assert p.feed(frame[11:15]) == [StreamData(5, b"3456", False)]
    assert p.feed(frame[15:] + ping(2)) == [StreamData(5, b"789", True), Ping(2)]


def test_data_payload_in_pieces_without_fin() -> None:
    p = SpdyParser()
    frame = data_frame(5, b"0123456789")
    events = feed_pieces(p, frame, [3, 9, 12])
    assert events == [StreamData(5, b"0", False), StreamData(5, b"123", False), StreamData(5, b"456789", False)]


def test_data_payload_byte_by_byte() -> None:
    frame = data_frame(1, b"abc", fin=True)
    events = feed_pieces(SpdyParser(), frame, list(range(len(frame))))
    assert events == [StreamData(1, b"a", False), StreamData(1, b"b", False), StreamData(1, b"c", True)]


def test_next_frame_header_in_same_chunk_as_payload_end() -> None:
    p = SpdyParser()
    stream = data_frame(1, b"abcd") + data_frame(3, b"xy", fin=True)
    assert p.feed(stream[:10]) == [StreamData(1, b"ab", False)]
    # end of frame 1 + 3 bytes of frame 2's header
    assert p.feed(stream[10:15]) == [StreamData(1, b"cd", False)]
    assert p.feed(stream[15:]) == [StreamData(3, b"xy", True)]


# -- parser: payload identity and buffer types --------------------------------


def test_whole_message_payload_not_copied() -> None:
    p = SpdyParser()
    payload = b"x" * 5000
    assert p.feed(data_frame(1, b"")[:4] + b"\x01" + (5000).to_bytes(3, "big")) == []
    (ev,) = p.feed(payload)
    assert ev == StreamData(1, payload, True)
    assert isinstance(ev, StreamData) and ev.payload is payload


def test_middle_piece_not_copied() -> None:
    p = SpdyParser()
    frame = data_frame(1, b"a" * 100 + b"b" * 100 + b"c" * 100, fin=True)
    p.feed(frame[:108])
    piece = frame[108:208]
    (ev,) = p.feed(piece)
    assert isinstance(ev, StreamData) and ev.payload is piece and not ev.fin


def test_payload_with_more_frames_is_a_slice() -> None:
    p = SpdyParser()
    p.feed(data_frame(1, b"")[:4] + (3).to_bytes(4, "big"))
    chunk = b"abc" + ping(2)
    assert p.feed(chunk) == [StreamData(1, b"abc", False), Ping(2)]


@pytest.mark.parametrize("wrap", [bytearray, memoryview], ids=["bytearray", "memoryview"])
def test_payload_is_bytes_and_independent_of_caller_buffer(wrap: type) -> None:
    p = SpdyParser()
    p.feed(data_frame(1, b"")[:4] + (6).to_bytes(4, "big"))
    buf = bytearray(b"abcdef")
    (ev,) = p.feed(wrap(buf))
    assert isinstance(ev, StreamData) and type(ev.payload) is bytes
    buf[:3] = b"zzz"
    assert ev.payload == b"abcdef"


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview], ids=["bytes", "bytearray", "memoryview"])
def test_feed_accepts_buffers_split(wrap: type) -> None:
    p = SpdyParser()
    stream = syn_reply(1) + data_frame(1, b"hello", fin=True)
    events = p.feed(wrap(stream[:7])) + p.feed(wrap(stream[7:15])) + p.feed(wrap(stream[15:]))
    assert merged(events) == [StreamReply(1, False), StreamData(1, b"hello", True)]
    # Payload is the chunk itself or a read-only view of it: never the caller's mutable buffer.
    for e in events:
        if isinstance(e, StreamData):
            assert type(e.payload) is bytes or (type(e.payload) is memoryview and e.payload.readonly)


def test_parser_does_not_hold_caller_memoryview() -> None:
    p = SpdyParser()
    buf = bytearray(ping(2)[:5])
    assert p.feed(memoryview(buf)) == []
    buf.extend(b"more")  # would raise BufferError if a view were still exported
    assert p.feed(ping(2)[5:]) == [Ping(2)]


def test_large_data_frame_streams_through() -> None:
    # A 1 MiB frame in 64 KiB messages: every message comes out at once.
    payload = bytes(range(256)) * 4096
    frame = data_frame(9, payload, fin=True)
    p = SpdyParser()
    events = feed_pieces(p, frame, list(range(8, len(frame), 65536)))
    assert len(events) == 16
    assert all(isinstance(e, StreamData) and len(e.payload) == 65536 for e in events)
    assert [e.fin for e in events] == [False] * 15 + [True]  # type: ignore[union-attr]
    assert b"".join(e.payload for e in events) == payload  # type: ignore[union-attr]


# -- parser: framing errors ---------------------------------------------------


@pytest.mark.parametrize("version", [0, 1, 2, 4, 0x7FFF])
def test_wrong_version(version: int) -> None:
    with pytest.raises(SpdyError, match=f"version {version}"):
        SpdyParser().feed(control(T_PING, u32(1), version=version))


def test_wrong_version_after_good_frames() -> None:
    p = SpdyParser()
    assert p.feed(ping(2)) == [Ping(2)]
    with pytest.raises(SpdyError, match="version 2"):
        p.feed(control(T_SYN_REPLY, u32(1), version=2))


def test_oversized_control_frame_refused_from_its_header() -> None:
    # Only the 8-byte header has arrived: no waiting for a huge body.
    header = control(T_SETTINGS)[:5] + (MAX_CONTROL_LENGTH + 1).to_bytes(3, "big")
    with pytest.raises(SpdyError, match="control frame of"):
        SpdyParser().feed(header)


def test_oversized_control_frame_max_24_bit() -> None:
    header = bytes.fromhex("80030004 00ffffff")
    with pytest.raises(SpdyError):
        SpdyParser().feed(header)


def test_control_frame_at_the_limit_is_accepted() -> None:
    frame = control(T_SETTINGS, bytes(MAX_CONTROL_LENGTH))
    p = SpdyParser()
    assert p.feed(frame[:8]) == []  # waits for the body
    assert p.feed(frame[8:] + ping(2)) == [Ping(2)]


def test_big_data_frame_is_not_a_control_frame() -> None:
    # Data frames may be up to 16 MiB: no cap on their length field.
    p = SpdyParser()
    assert p.feed(bytes.fromhex("00000001 00ffffff")) == []
    assert p.feed(b"abc") == [StreamData(1, b"abc", False)]


MALFORMED = {
    "rst-empty": control(T_RST_STREAM),
    "rst-4": control(T_RST_STREAM, u32(1)),
    "rst-7": control(T_RST_STREAM, bytes(7)),
    "rst-9": control(T_RST_STREAM, bytes(9)),
    "rst-12": control(T_RST_STREAM, bytes(12)),
    "ping-empty": control(T_PING),
    "ping-3": control(T_PING, bytes(3)),
    "ping-5": control(T_PING, bytes(5)),
    "ping-8": control(T_PING, bytes(8)),
    "syn_reply-empty": control(T_SYN_REPLY),
    "syn_reply-3": control(T_SYN_REPLY, bytes(3)),
    "headers-2": control(T_HEADERS, bytes(2)),
    "syn_stream-4": control(T_SYN_STREAM, u32(2)),
    "syn_stream-9": control(T_SYN_STREAM, bytes(9)),
    "goaway-empty": control(T_GOAWAY),
    "goaway-3": control(T_GOAWAY, bytes(3)),
}


@pytest.mark.parametrize("frame", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_control_body(frame: bytes) -> None:
    with pytest.raises(SpdyError, match="-byte body"):
        SpdyParser().feed(frame)


def test_malformed_body_raised_once_complete() -> None:
    p = SpdyParser()
    frame = control(T_RST_STREAM, bytes(7))
    assert p.feed(frame[:-1]) == []
    with pytest.raises(SpdyError):
        p.feed(frame[-1:])


# -- round trip: encoder -> parser --------------------------------------------


def test_round_trip_control_frames() -> None:
    enc = SpdyEncoder()
    stream = (
        enc.syn_stream(1, ERROR_HEADERS) + enc.syn_stream(3, DATA_HEADERS, fin=True)
        + enc.data(3, b"GET / HTTP/1.1\r\n\r\n") + enc.data(3, b"", fin=True)
        + enc.rst_stream(1, RST_REFUSED_STREAM) + enc.ping(1) + enc.goaway(3, 1)
    )
    assert SpdyParser().feed(stream) == [
        StreamPushed(1),
        StreamPushed(3),
        StreamData(3, b"GET / HTTP/1.1\r\n\r\n", False),
        StreamData(3, b"", True),
        StreamReset(1, RST_REFUSED_STREAM),
        Ping(1),
        GoAway(3, 1),
    ]


stream_ids = st.integers(min_value=1, max_value=MAX_STREAM_ID)


@given(stream_id=stream_ids, payload=st.binary(min_size=1, max_size=4096), fin=st.booleans())
def test_round_trip_data(stream_id: int, payload: bytes, fin: bool) -> None:
    assert SpdyParser().feed(SpdyEncoder.data(stream_id, payload, fin=fin)) == [StreamData(stream_id, payload, fin)]


@given(
    stream_id=stream_ids,
    headers=st.dictionaries(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz-ABC", min_size=1, max_size=12), st.text(max_size=40), max_size=5
    ),
)
def test_round_trip_syn_stream(stream_id: int, headers: dict[str, str]) -> None:
    frame = SpdyEncoder().syn_stream(stream_id, headers)
    assert SpdyParser().feed(frame) == [StreamPushed(stream_id)]


# -- property: splitting never changes the meaning ----------------------------

# Each frame is described by a tuple and built in the test, so that
# SYN_STREAMs share one encoder (their compression is stateful).
frame_specs = st.one_of(
    st.tuples(st.just("data"), stream_ids, st.binary(max_size=300), st.booleans()),
    st.tuples(st.just("syn_stream"), st.integers(1, 999)),
    st.tuples(st.just("syn_reply"), stream_ids, st.booleans()),
    st.tuples(st.just("headers"), stream_ids, st.booleans()),
    st.tuples(st.just("rst"), stream_ids, st.integers(0, 2**32 - 1)),
    st.tuples(st.just("ping"), st.integers(0, 2**32 - 1)),
    st.tuples(st.just("goaway"), st.integers(0, MAX_STREAM_ID), st.integers(0, 2**32 - 1), st.booleans()),
    st.tuples(st.just("settings"), st.integers(0, 5)),
    st.tuples(st.just("window_update"), stream_ids),
    st.tuples(st.just("unknown"), st.integers(10, 0xFFFF), st.binary(max_size=40)),
)


def build(specs: list[tuple]) -> tuple[bytes, list[Event]]:
    """The byte stream for ``specs`` and the events it must produce."""
    enc = SpdyEncoder()
    parts: list[bytes] = []
    expected: list[Event] = []
    for kind, *args in specs:
        if kind == "data":
            sid, payload, fin = args
            parts.append(enc.data(sid, payload, fin=fin))
            if payload or fin:
                expected.append(StreamData(sid, payload, fin))
        elif kind == "syn_stream":
            (sid,) = args
            parts.append(enc.syn_stream(sid, {**DATA_HEADERS, "requestID": str(sid)}))
            expected.append(StreamPushed(sid))
        elif kind == "syn_reply":
            sid, fin = args
            parts.append(syn_reply(sid, fin))
            expected.append(StreamReply(sid, fin))
        elif kind == "headers":
            sid, fin = args
            parts.append(headers_frame(sid, fin))
            expected.append(StreamReply(sid, fin))
        elif kind == "rst":
            sid, status = args
            parts.append(rst(sid, status))
            expected.append(StreamReset(sid, status))
        elif kind == "ping":
            (pid,) = args
            parts.append(ping(pid))
            expected.append(Ping(pid))
        elif kind == "goaway":
            last, status, long_body = args
            parts.append(goaway(last, status if long_body else None))
            expected.append(GoAway(last, status if long_body else 0))
        elif kind == "settings":
            (n,) = args
            parts.append(settings_frame(*[(i + 1, i * 1000) for i in range(n)]))
        elif kind == "window_update":
            (sid,) = args
            parts.append(window_update(sid, 65536))
        else:
            frame_type, body = args
            parts.append(control(frame_type, body))
    return b"".join(parts), expected


@settings(max_examples=200, deadline=None)
@given(specs=st.lists(frame_specs, max_size=25), data=st.data())
def test_any_split_same_result(specs: list[tuple], data: st.DataObject) -> None:
    stream, expected = build(specs)
    whole = SpdyParser().feed(stream)
    assert whole == expected  # the whole stream at once: exactly one event per frame
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=30), label="cuts")
    pieces = feed_pieces(SpdyParser(), stream, cuts)
    assert merged(pieces) == merged(whole)
    # Pieces are never empty unless they carry a FIN.
    assert all(e.payload or e.fin for e in pieces if isinstance(e, StreamData))


@settings(max_examples=30, deadline=None)
@given(specs=st.lists(frame_specs, max_size=6))
def test_byte_by_byte_same_result(specs: list[tuple]) -> None:
    stream, expected = build(specs)
    pieces = feed_pieces(SpdyParser(), stream, list(range(len(stream))))
    assert merged(pieces) == merged(expected)


# -- property: garbage only ever raises SpdyError -----------------------------


def feed_garbage(messages: list[bytes]) -> None:
    p = SpdyParser()
    try:
        for m in messages:
            events = p.feed(m)
            assert all(isinstance(e, (StreamReply, StreamData, StreamReset, StreamPushed, Ping, GoAway)) for e in events)
    except SpdyError:
        pass


@settings(max_examples=300, deadline=None)
@given(messages=st.lists(st.binary(max_size=64), max_size=10))
def test_random_bytes_only_raise_spdy_error(messages: list[bytes]) -> None:
    feed_garbage(messages)


# Random bodies behind a valid version-3 header reach the per-type checks,
# which pure random bytes seldom do.
@settings(max_examples=300, deadline=None)
@given(
    frames=st.lists(
        st.tuples(st.sampled_from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0xFFFF]), st.integers(0, 255), st.binary(max_size=20)),
        max_size=8,
    ),
    cut=st.integers(0, 400),
)
def test_random_control_bodies_only_raise_spdy_error(frames: list[tuple[int, int, bytes]], cut: int) -> None:
    stream = b"".join(control(t, body, flags) for t, flags, body in frames)
    feed_garbage([stream[:cut], stream[cut:]])
