"""The relay's wire format (tray.wire.relay), byte by byte."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tray.wire.relay import (MAX_LINE, DatagramDecoder, RelayProtocolError, encode_datagram, encode_reply,
                             encode_request, parse_reply, parse_request)


def test_requests_are_one_ascii_line() -> None:
    assert encode_request("tcp", "db.internal", 5432) == b"tender-relay/1 tcp db.internal 5432\n"
    assert encode_request("udp", "10.1.0.5", 53) == b"tender-relay/1 udp 10.1.0.5 53\n"
    assert encode_request("hold") == b"tender-relay/1 hold\n"
    assert parse_request(b"tender-relay/1 udp fd00::7 53\n") == ("udp", "fd00::7", 53)
    assert parse_request(b"tender-relay/1 hold\n") == ("hold", "", 0)


@pytest.mark.parametrize("line", [
    b"tender-relay/2 tcp a 1\n", b"tender-relay/1 tcp a\n", b"tender-relay/1 sctp a 1\n",
    b"tender-relay/1 tcp a 0\n", b"tender-relay/1 tcp a 65536\n", b"tender-relay/1 tcp a -1\n",
    b"tender-relay/1 tcp a 1", b"tender-relay/1 tcp \xff 1\n", b"x" * MAX_LINE + b"\n", b"\n",
])
def test_bad_requests_are_refused_with_a_reason(line: bytes) -> None:
    with pytest.raises(RelayProtocolError):
        parse_request(line)


@pytest.mark.parametrize("kind, host, port", [("tcp", "", 1), ("tcp", "a b", 1), ("udp", "a", 0),
                                              ("udp", "a", 70000), ("icmp", "a", 1)])
def test_bad_requests_are_not_encoded(kind: str, host: str, port: int) -> None:
    with pytest.raises(RelayProtocolError):
        encode_request(kind, host, port)


def test_replies() -> None:
    assert encode_reply() == b"ok\n" and parse_reply(b"ok\n") is None
    assert encode_reply("cannot connect to db:5432: Connection refused\nmore") == \
        b"error cannot connect to db:5432: Connection refused more\n"
    assert parse_reply(b"error no route\n") == "no route"
    assert len(encode_reply("x" * 5000)) == MAX_LINE
    with pytest.raises(RelayProtocolError, match="without answering"):
        parse_reply(b"")
    with pytest.raises(RelayProtocolError, match="unexpected"):
        parse_reply(b"HTTP/1.1 200 OK\r\n")


def test_datagrams_are_length_prefixed() -> None:
    assert encode_datagram(b"") == b"\x00\x00"
    assert encode_datagram(b"abc") == b"\x00\x03abc"
    assert len(encode_datagram(b"x" * 65535)) == 65537
    with pytest.raises(RelayProtocolError):
        encode_datagram(b"x" * 65536)


@given(st.lists(st.binary(max_size=1500), max_size=20), st.data())
def test_decoder_gives_back_every_datagram_however_the_bytes_are_cut(datagrams: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(encode_datagram(d) for d in datagrams)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    decoder, out, last = DatagramDecoder(), [], 0
    for cut in [*cuts, len(stream)]:
        out += decoder.feed(stream[last:cut])
        last = cut
    assert out == datagrams and decoder.pending == 0
