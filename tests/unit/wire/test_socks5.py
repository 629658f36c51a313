"""tray.wire.socks5: RFC 1928's greeting, request and reply, byte for byte.

Expected bytes are written out by hand from the RFC, not built with the
module's own helpers.
"""

from __future__ import annotations

import pytest

from tray.wire.socks5 import (
    ATYP_DOMAIN,
    ATYP_IPV4,
    ATYP_IPV6,
    CMD_BIND,
    CMD_CONNECT,
    METHOD_NO_AUTH,
    METHOD_NONE_ACCEPTABLE,
    REP_ADDRESS_TYPE_NOT_SUPPORTED,
    REP_COMMAND_NOT_SUPPORTED,
    REP_CONNECTION_REFUSED,
    REP_GENERAL_FAILURE,
    REP_HOST_UNREACHABLE,
    REP_NOT_ALLOWED,
    REP_SUCCEEDED,
    Greeting,
    Request,
    Socks5Error,
    encode_method,
    encode_reply,
    parse_greeting,
    parse_request,
)


def test_reply_codes_are_the_rfcs() -> None:
    assert (REP_SUCCEEDED, REP_GENERAL_FAILURE, REP_NOT_ALLOWED, REP_HOST_UNREACHABLE, REP_CONNECTION_REFUSED,
            REP_COMMAND_NOT_SUPPORTED, REP_ADDRESS_TYPE_NOT_SUPPORTED) == (0, 1, 2, 4, 5, 7, 8)


def test_greeting_as_curl_sends_it() -> None:
    # curl --socks5-hostname: version 5, two methods, "no auth" and "GSSAPI"
    assert parse_greeting(b"\x05\x02\x00\x01") == Greeting((0, 1))
    assert parse_greeting(b"\x05\x02\x00\x01").no_auth_offered


def test_greeting_incremental_asks_for_exactly_what_it_needs() -> None:
    whole = b"\x05\x03\x02\x01\x00"
    assert parse_greeting(b"") == 2
    assert parse_greeting(whole[:1]) == 2
    assert parse_greeting(whole[:2]) == 5
    assert parse_greeting(whole[:4]) == 5
    assert parse_greeting(whole) == Greeting((2, 1, 0))


def test_greeting_ignores_what_follows() -> None:
    # a client that sends its request without waiting for the method answer
    assert parse_greeting(b"\x05\x01\x00" + b"\x05\x01\x00\x01") == Greeting((0,))


def test_greeting_without_no_auth() -> None:
    g = parse_greeting(b"\x05\x01\x02")  # username/password only
    assert isinstance(g, Greeting) and not g.no_auth_offered


@pytest.mark.parametrize("data", [b"\x04\x01\x00", b"GET / HTTP/1.1\r\n"])
def test_bad_greetings_are_closed_without_a_reply(data: bytes) -> None:
    with pytest.raises(Socks5Error) as err:
        parse_greeting(data)
    assert err.value.reply is None


def test_method_answers() -> None:
    assert encode_method(METHOD_NO_AUTH) == b"\x05\x00"
    assert encode_method(METHOD_NONE_ACCEPTABLE) == b"\x05\xff"


def test_request_domain() -> None:
    data = b"\x05\x01\x00\x03\x08web.demo\x00\x50"
    assert parse_request(data) == Request(CMD_CONNECT, ATYP_DOMAIN, "web.demo", 80)


def test_request_ipv4() -> None:
    assert parse_request(b"\x05\x01\x00\x01\x0a\x00\x0d\xdb\x15\x38") == Request(
        CMD_CONNECT, ATYP_IPV4, "10.0.13.219", 5432)


def test_request_ipv6() -> None:
    addr = bytes.fromhex("fd000000000000000000000000000001")
    assert parse_request(b"\x05\x01\x00\x04" + addr + b"\x1f\x90") == Request(CMD_CONNECT, ATYP_IPV6, "fd00::1", 8080)


def test_request_incremental_never_reads_past_the_port() -> None:
    whole = b"\x05\x01\x00\x03\x04db-0\x15\x38"
    needs = [parse_request(whole[:n]) for n in range(len(whole))]
    assert needs == [4, 5, 5, 5, 5, 11, 11, 11, 11, 11, 11]
    assert parse_request(whole + b"payload") == Request(CMD_CONNECT, ATYP_DOMAIN, "db-0", 5432)
    assert parse_request(b"\x05\x01\x00\x01\x7f") == 10
    assert parse_request(b"\x05\x01\x00\x04") == 22


def test_other_commands_parse_for_the_server_to_refuse() -> None:
    assert parse_request(b"\x05\x02\x00\x01\x00\x00\x00\x00\x00\x00").command == CMD_BIND


def test_unknown_address_type_says_so() -> None:
    with pytest.raises(Socks5Error) as err:
        parse_request(b"\x05\x01\x00\x07\x00\x00")
    assert err.value.reply == REP_ADDRESS_TYPE_NOT_SUPPORTED


@pytest.mark.parametrize("name", [b"", b"web demo", b"w\xc3\xa9b"])
def test_bad_names_are_a_general_failure(name: bytes) -> None:
    with pytest.raises(Socks5Error) as err:
        parse_request(b"\x05\x01\x00\x03" + bytes((len(name),)) + name + b"\x00\x50")
    assert err.value.reply == REP_GENERAL_FAILURE


def test_request_wrong_version() -> None:
    with pytest.raises(Socks5Error) as err:
        parse_request(b"\x04\x01\x00\x01")
    assert err.value.reply is None


def test_replies() -> None:
    assert encode_reply(REP_SUCCEEDED) == b"\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    assert encode_reply(REP_HOST_UNREACHABLE) == b"\x05\x04\x00\x01\x00\x00\x00\x00\x00\x00"
    assert encode_reply(REP_CONNECTION_REFUSED, "127.0.0.1", 1080) == b"\x05\x05\x00\x01\x7f\x00\x00\x01\x04\x38"
    assert encode_reply(REP_NOT_ALLOWED, "::1", 1) == (b"\x05\x02\x00\x04" + b"\x00" * 15 + b"\x01" + b"\x00\x01")


def test_a_greeting_without_methods_parses_empty_and_is_answered_none_acceptable() -> None:
    from tray.wire.socks5 import METHOD_NONE_ACCEPTABLE, encode_method, parse_greeting

    greeting = parse_greeting(b"\x05\x00")
    assert not isinstance(greeting, int) and greeting.methods == () and not greeting.no_auth_offered
    assert encode_method(METHOD_NONE_ACCEPTABLE) == b"\x05\xff"


def test_socks4_reject_is_eight_bytes_with_code_5b() -> None:
    from tray.wire.socks5 import encode_socks4_reject

    assert encode_socks4_reject() == b"\x00\x5b\x00\x00\x00\x00\x00\x00"
