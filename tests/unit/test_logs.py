import io
import logging

from tray.logs import RedactingFilter, redact, setup_logging

TOKEN = "2371a83e3776e16ff69ae15980d143dadbb2d09451a4284f"


def test_redacts_authorization_headers_and_tokens():
    for text in (
        f"> Authorization: Bearer {TOKEN}",
        f"headers={{'Authorization': 'Bearer {TOKEN}'}}",
        f"token: {TOKEN}",
        f'{{"token": "{TOKEN}"}}',
        f"bearer {TOKEN}",
    ):
        assert TOKEN not in redact(text), text


def test_redacts_private_keys():
    key = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB\n-----END EC PRIVATE KEY-----"
    assert "MHcCAQEEIB" not in redact(f"loaded {key}")


def test_handler_output_is_redacted_even_for_library_debug_logs():
    out = io.StringIO()
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        setup_logging(logging.DEBUG, stream=out)
        logging.getLogger("tender.test").warning("sending Authorization: Bearer %s", TOKEN)
        try:
            raise ValueError(f"bad header Bearer {TOKEN}")
        except ValueError:
            logging.getLogger("tender.test").exception("failed")
    finally:
        for h in list(root.handlers):
            if h not in before:
                root.removeHandler(h)
    text = out.getvalue()
    assert "sending Authorization: Bearer [redacted]" in text
    assert TOKEN not in text


def test_filter_keeps_ordinary_messages():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "forward %s active on %d", ("svc/web", 8080), None)
    RedactingFilter().filter(record)
    assert record.getMessage() == "forward svc/web active on 8080"
