"""How an API server's refusal becomes the one line a user reads."""

from __future__ import annotations

import pytest

from tray.errors import ForbiddenError
from tray.kube.kubeapi import ApiError, NotFound, Unauthorized, error_for, status_message

STATUS = b'{"kind":"Status","status":"Failure","message":"pods \\"web\\" not found","code":404}'


@pytest.mark.parametrize("body", [STATUS, bytearray(STATUS), STATUS.decode()])
def test_status_body_message_whatever_the_buffer_type(body: bytes | bytearray | str) -> None:
    # websockets hands a refused upgrade's body over as a bytearray.
    assert status_message(404, body) == 'pods "web" not found'


@pytest.mark.parametrize("body", [b"unable to upgrade:\n  unable to negotiate protocol", bytearray(b"x  y")])
def test_plain_text_body_is_summarised_on_one_line(body: bytes | bytearray) -> None:
    message = status_message(403, body)
    assert message.startswith("HTTP 403: ") and "\n" not in message and "  " not in message


def test_empty_body_names_the_status() -> None:
    assert status_message(502, b"") == "HTTP 502"


def test_long_body_is_cut() -> None:
    assert len(status_message(500, b"x" * 10_000)) < 220


@pytest.mark.parametrize(("status", "kind"), [(403, ForbiddenError), (404, NotFound), (401, Unauthorized),
                                              (400, ApiError), (500, ApiError)])
def test_error_types(status: int, kind: type) -> None:
    assert isinstance(error_for(status, bytearray(b"no")), kind)


def test_unauthorized_says_what_it_means() -> None:
    assert "rejected the credentials" in str(error_for(401, b'{"message":"Unauthorized"}'))
