"""Tests for tray.wire.framing: the v4.channel.k8s.io port-forward framing."""

from __future__ import annotations

import array
import itertools
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tray.errors import TenderError
from tray.wire.framing import (
    DATA_CHANNEL,
    ERROR_CHANNEL,
    MAX_ERROR_CHARS,
    SUBPROTOCOL,
    Data,
    ErrorText,
    PortAck,
    PortForwardChannel,
    ProtocolError,
    encode_data,
)


def prefix(channel: int, port: int) -> bytes:
    return bytes([channel]) + struct.pack("<H", port)


def acked(port: int = 8080) -> PortForwardChannel:
    ch = PortForwardChannel(port)
    assert ch.receive(prefix(0, port)) == [PortAck(0, port)]
    assert ch.receive(prefix(1, port)) == [PortAck(1, port)]
    return ch


# -- constants and encode_data ---------------------------------------------


def test_constants() -> None:
    assert DATA_CHANNEL == 0
    assert ERROR_CHANNEL == 1
    assert SUBPROTOCOL == "v4.channel.k8s.io"


def test_protocol_error_is_tender_error() -> None:
    assert issubclass(ProtocolError, TenderError)


@pytest.mark.parametrize(
    "payload",
    [b"", b"x", b"GET / HTTP/1.1\r\n\r\n", bytearray(b"abc"), memoryview(b"hello world")[3:8]],
)
def test_encode_data(payload: bytes | bytearray | memoryview) -> None:
    out = encode_data(payload)
    assert type(out) is bytes
    assert out[0] == DATA_CHANNEL
    assert out[1:] == bytes(payload)


def test_encode_data_non_byte_memoryview() -> None:
    arr = array.array("H", [1, 2, 3])
    assert encode_data(memoryview(arr)) == b"\x00" + arr.tobytes()


def test_encode_data_large() -> None:
    payload = bytes(range(256)) * 40_000  # ~10 MiB
    out = encode_data(memoryview(payload))
    assert len(out) == len(payload) + 1
    assert out[0] == 0 and out[1:] == payload


# -- construction ----------------------------------------------------------


@pytest.mark.parametrize("port", [0, -1, 65536, 10**9])
def test_bad_port_rejected(port: int) -> None:
    with pytest.raises(ValueError):
        PortForwardChannel(port)


@pytest.mark.parametrize("port", ["80", 80.0, True, None])
def test_non_int_port_rejected(port: object) -> None:
    with pytest.raises(TypeError):
        PortForwardChannel(port)  # type: ignore[arg-type]


def test_initial_state() -> None:
    ch = PortForwardChannel(5432)
    assert ch.port == 5432
    assert not ch.ready
    assert not ch.data_acked
    assert ch.error == ""
    assert "5432" in repr(ch)


# -- the happy path --------------------------------------------------------


def test_prefixes_make_ready_in_either_order() -> None:
    ch = PortForwardChannel(80)
    assert ch.receive(prefix(1, 80)) == [PortAck(1, 80)]
    assert not ch.ready and not ch.data_acked
    assert ch.receive(prefix(0, 80)) == [PortAck(0, 80)]
    assert ch.ready and ch.data_acked


def test_data_after_prefix() -> None:
    ch = acked(8080)
    assert ch.receive(b"\x00hello") == [Data(b"hello")]
    assert ch.receive(b"\x00world") == [Data(b"world")]


def test_data_payload_is_bytes() -> None:
    ch = acked()
    (ev,) = ch.receive(bytearray(b"\x00abc"))
    assert isinstance(ev, Data) and type(ev.payload) is bytes


def test_data_allowed_before_error_prefix() -> None:
    ch = PortForwardChannel(80)
    ch.receive(prefix(0, 80))
    assert ch.receive(b"\x00payload") == [Data(b"payload")]
    assert not ch.ready


def test_prefix_and_payload_in_one_message() -> None:
    ch = PortForwardChannel(8080)
    assert ch.receive(prefix(0, 8080) + b"HTTP/1.1 200 OK") == [PortAck(0, 8080), Data(b"HTTP/1.1 200 OK")]


def test_error_prefix_and_text_in_one_message() -> None:
    ch = PortForwardChannel(8080)
    ch.receive(prefix(0, 8080))
    assert ch.receive(prefix(1, 8080) + b"boom") == [PortAck(1, 8080), ErrorText("boom")]
    assert ch.error == "boom"


def test_channel_byte_only_after_prefix_is_no_event() -> None:
    ch = acked()
    assert ch.receive(b"\x00") == []
    assert ch.receive(b"\x01") == []
    assert ch.error == ""


def test_port_bytes_after_prefix_are_payload() -> None:
    # Once acked, bytes that look like a prefix are just data.
    ch = acked(8080)
    assert ch.receive(prefix(0, 8080)) == [Data(struct.pack("<H", 8080))]


def test_high_port_little_endian() -> None:
    ch = PortForwardChannel(65535)
    assert ch.receive(b"\x00\xff\xff") == [PortAck(0, 65535)]
    ch2 = PortForwardChannel(258)
    assert ch2.receive(b"\x01\x02\x01") == [PortAck(1, 258)]


def test_accepts_memoryview_and_bytearray() -> None:
    ch = PortForwardChannel(80)
    assert ch.receive(memoryview(prefix(0, 80))) == [PortAck(0, 80)]
    assert ch.receive(bytearray(prefix(1, 80))) == [PortAck(1, 80)]
    assert ch.receive(memoryview(b"..\x00data")[2:]) == [Data(b"data")]


# -- error text ------------------------------------------------------------


KUBELET_ERROR = (
    "error forwarding port 8080 to pod web-1, uid : failed to execute portforward in network "
    'namespace "/var/run/netns/cni-1": failed to connect to localhost:8080 inside namespace '
    '"abc", IPv4: dial tcp4 127.0.0.1:8080: connect: connection refused'
)


def test_split_error_text_is_surfaced_and_accumulated() -> None:
    ch = acked(8080)
    raw = KUBELET_ERROR.encode()
    chunks = [raw[:10], raw[10:100], raw[100:]]
    events = []
    for c in chunks:
        events += ch.receive(b"\x01" + c)
    assert events == [ErrorText(c.decode()) for c in chunks]
    assert ch.error == KUBELET_ERROR


def test_multibyte_char_split_across_messages() -> None:
    ch = acked()
    text = "port ünreachable — ✓"
    raw = text.encode()
    cut = raw.index("—".encode()) + 1  # in the middle of the em dash
    first = ch.receive(b"\x01" + raw[:cut])
    second = ch.receive(b"\x01" + raw[cut:])
    assert "".join(e.text for e in first + second if isinstance(e, ErrorText)) == text
    assert ch.error == text
    assert ch.finish() == []


def test_chunk_with_only_partial_char_yields_no_event() -> None:
    ch = acked()
    assert ch.receive(b"\x01\xe2\x80") == []
    assert ch.receive(b"\x01\x94") == [ErrorText("—")]


def test_finish_flushes_dangling_bytes() -> None:
    ch = acked()
    ch.receive(b"\x01abc\xe2\x80")
    assert ch.error == "abc"
    assert ch.finish() == [ErrorText("\ufffd")]
    assert ch.error == "abc\ufffd"
    assert ch.finish() == []  # idempotent


def test_invalid_utf8_is_replaced_not_raised() -> None:
    ch = acked()
    assert ch.receive(b"\x01bad \xff byte") == [ErrorText("bad \ufffd byte")]


def test_error_accumulation_is_capped_but_chunks_are_not() -> None:
    ch = acked()
    big = "x" * (MAX_ERROR_CHARS - 10)
    assert ch.receive(b"\x01" + big.encode()) == [ErrorText(big)]
    more = "y" * 100
    assert ch.receive(b"\x01" + more.encode()) == [ErrorText(more)]
    assert len(ch.error) == MAX_ERROR_CHARS
    assert ch.error.endswith("y" * 10)
    assert ch.receive(b"\x01zzz") == [ErrorText("zzz")]
    assert len(ch.error) == MAX_ERROR_CHARS


def test_error_property_is_cached_and_consistent() -> None:
    ch = acked()
    ch.receive(b"\x01a")
    assert ch.error == "a"
    assert ch.error is ch.error
    ch.receive(b"\x01b")
    assert ch.error == "ab"


# -- malformed input -------------------------------------------------------


@pytest.mark.parametrize("message", [b"", bytearray(), memoryview(b"")])
def test_empty_message(message: bytes) -> None:
    with pytest.raises(ProtocolError, match="empty"):
        PortForwardChannel(80).receive(message)


@pytest.mark.parametrize("channel", [2, 3, 4, 255])
def test_unknown_channel(channel: int) -> None:
    ch = acked(80)
    with pytest.raises(ProtocolError, match=f"unknown channel {channel}"):
        ch.receive(bytes([channel]) + b"xx")


def test_unknown_channel_before_prefix() -> None:
    with pytest.raises(ProtocolError, match="unknown channel 2"):
        PortForwardChannel(80).receive(b"\x02\x50\x00")


@pytest.mark.parametrize("channel,name", [(0, "data"), (1, "error")])
def test_wrong_port_prefix(channel: int, name: str) -> None:
    ch = PortForwardChannel(8080)
    with pytest.raises(ProtocolError, match=rf"{name} channel must start with port 8080.*port 8081"):
        ch.receive(prefix(channel, 8081))


def test_big_endian_prefix_is_wrong_port() -> None:
    ch = PortForwardChannel(8080)
    with pytest.raises(ProtocolError, match="wrong port"):
        ch.receive(b"\x00" + struct.pack(">H", 8080))


def test_data_before_port_prefix() -> None:
    ch = PortForwardChannel(8080)
    with pytest.raises(ProtocolError, match="data before the port prefix"):
        ch.receive(b"\x00HTTP/1.1 200 OK\r\n")


def test_error_text_before_port_prefix() -> None:
    ch = PortForwardChannel(8080)
    ch.receive(prefix(0, 8080))
    with pytest.raises(ProtocolError, match="error channel"):
        ch.receive(b"\x01something broke")


@pytest.mark.parametrize("channel", [0, 1])
def test_truncated_prefix_one_byte(channel: int) -> None:
    with pytest.raises(ProtocolError, match=r"truncated port prefix.*1 of 2"):
        PortForwardChannel(80).receive(bytes([channel, 0x50]))


@pytest.mark.parametrize("channel", [0, 1])
def test_channel_byte_only_before_prefix(channel: int) -> None:
    with pytest.raises(ProtocolError, match=r"truncated port prefix.*0 of 2"):
        PortForwardChannel(80).receive(bytes([channel]))


def test_text_message_is_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="text"):
        PortForwardChannel(80).receive("\x00hello")  # type: ignore[arg-type]


@pytest.mark.parametrize("message", [None, 0, [0, 80, 0]])
def test_non_bytes_message_is_protocol_error(message: object) -> None:
    with pytest.raises(ProtocolError):
        PortForwardChannel(80).receive(message)  # type: ignore[arg-type]


def test_failed_prefix_does_not_mark_acked() -> None:
    ch = PortForwardChannel(80)
    with pytest.raises(ProtocolError):
        ch.receive(prefix(0, 81))
    assert not ch.data_acked


# -- large payloads --------------------------------------------------------


def test_large_payload_roundtrip() -> None:
    payload = bytes(range(256)) * 65536  # 16 MiB
    ch = PortForwardChannel(9000)
    events = ch.receive(prefix(0, 9000) + payload)
    assert events[0] == PortAck(0, 9000)
    assert isinstance(events[1], Data)
    assert len(events[1].payload) == len(payload)
    assert events[1].payload == payload


def test_large_payload_from_memoryview_not_retained() -> None:
    # The payload must be an independent bytes object, not a view that keeps
    # (or aliases) the caller's buffer.
    buf = bytearray(b"\x00" + b"a" * 1_000_000)
    ch = PortForwardChannel(80)
    ch.receive(prefix(0, 80))
    (ev,) = ch.receive(memoryview(buf))
    buf[1:4] = b"zzz"
    assert isinstance(ev, Data) and ev.payload[:3] == b"aaa"
    buf.extend(b"more")  # would fail if a memoryview export were still alive


# -- property-based ---------------------------------------------------------

ports = st.integers(min_value=1, max_value=65535)


@given(port=ports, chunks=st.lists(st.binary(max_size=2048), max_size=20), inline=st.booleans())
def test_data_roundtrip(port: int, chunks: list[bytes], inline: bool) -> None:
    """Whatever the client frames with encode_data, a channel parses back."""
    ch = PortForwardChannel(port)
    received: list[bytes] = []
    messages = [encode_data(c) for c in chunks]
    if inline and messages:
        messages[0] = prefix(0, port) + messages[0][1:]
    else:
        messages.insert(0, prefix(0, port))
    for m in messages:
        for ev in ch.receive(m):
            if isinstance(ev, Data):
                received.append(ev.payload)
            else:
                assert ev == PortAck(0, port)
    assert b"".join(received) == b"".join(chunks)
    assert all(received)  # no empty Data events


@given(
    port=ports,
    text=st.text(max_size=500),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=8),
)
def test_error_text_roundtrip_any_split(port: int, text: str, cuts: list[int]) -> None:
    raw = text.encode()
    points = sorted({min(c, len(raw)) for c in cuts} | {0, len(raw)})
    ch = PortForwardChannel(port)
    events = ch.receive(prefix(1, port))
    for a, b in itertools.pairwise(points):
        events += ch.receive(b"\x01" + raw[a:b])
    events += ch.finish()
    assert "".join(e.text for e in events if isinstance(e, ErrorText)) == text
    assert ch.error == text[:MAX_ERROR_CHARS]


@given(port=ports, other=ports, channel=st.sampled_from([0, 1]))
def test_any_wrong_port_rejected(port: int, other: int, channel: int) -> None:
    ch = PortForwardChannel(port)
    if other == port:
        assert ch.receive(prefix(channel, other)) == [PortAck(channel, port)]
    else:
        with pytest.raises(ProtocolError):
            ch.receive(prefix(channel, other))


@settings(max_examples=300)
@given(port=ports, messages=st.lists(st.binary(max_size=64), max_size=10))
def test_arbitrary_messages_only_raise_protocol_error(port: int, messages: list[bytes]) -> None:
    ch = PortForwardChannel(port)
    for m in messages:
        try:
            events = ch.receive(m)
        except ProtocolError:
            return
        for ev in events:
            assert isinstance(ev, (Data, PortAck, ErrorText))
    ch.finish()
