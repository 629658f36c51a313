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


def test_a_repeated_record_passes_once_per_interval_then_says_how_many_were_dropped(monkeypatch) -> None:  # noqa: ANN001
    import time

    from tray.logs import RepeatFilter

    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    f = RepeatFilter(interval=60)

    def record(msg: str, name: str = "asyncio") -> logging.LogRecord:
        return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, None, None)

    assert f.filter(record("socket.accept() out of system resource"))
    assert [f.filter(record("socket.accept() out of system resource")) for _ in range(500)] == [False] * 500
    assert f.filter(record("another message"))  # another kind is not held back
    clock[0] += 61
    again = record("socket.accept() out of system resource")
    assert f.filter(again)
    assert again.getMessage() == ("socket.accept() out of system resource "
                                  "(and 500 more like it in the last 60 s)")


def test_the_open_files_limit_is_raised_to_the_hard_limit() -> None:
    import resource
    import subprocess
    import sys

    code = ("import resource; from tray.logs import raise_open_files_limit; "
            "resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1])); "
            "print(raise_open_files_limit(), *resource.getrlimit(resource.RLIMIT_NOFILE))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert int(out[1]) == int(out[0]) > 256 and int(out[2]) == hard, out


def test_the_dashboards_one_time_code_is_redacted() -> None:
    line = "opening http://127.0.0.1:41234/d/Xy9/?code=abcDEF123_-x in the browser"
    assert redact(line) == "opening http://127.0.0.1:41234/d/Xy9/?code=[redacted] in the browser"
