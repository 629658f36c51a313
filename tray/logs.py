"""Logging set-up shared by the CLI and the tray, with credentials redacted.

Libraries below Tender log what they send at DEBUG level (websockets prints
request headers, httpcore prints responses), and an exception may quote a
header.  Every handler Tender installs therefore carries
:class:`RedactingFilter`, which rewrites bearer tokens, Authorization
headers, client keys and exec-plugin credential output before anything is
written; the wire-level loggers are also kept at WARNING unless
``TENDER_DEBUG_WIRE=1``.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
from pathlib import Path

__all__ = ["RedactingFilter", "RepeatFilter", "redact", "setup_logging", "raise_open_files_limit"]

_PATTERNS = [
    (re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(bearer|basic)\s+[^\s\"',)]+"), r"\1\2 [redacted]"),
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{8,}"), "Bearer [redacted]"),
    (re.compile(r"(?i)([\"']?(?:token|id-token|refresh-token|access[-_]token|client-key-data|password)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"),
     r"\1[redacted]"),
    # The dashboard's link: a one-time code (and any token) in a query string.
    (re.compile(r"(?i)([?&](?:code|token)=)[^&\s\"']+"), r"\1[redacted]"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S), "[redacted private key]"),
]

_WIRE_LOGGERS = ("websockets", "httpcore", "httpx", "urllib3", "kubernetes", "asyncio")


def redact(text: str) -> str:
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg, record.args = redact(message), None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class RepeatFilter(logging.Filter):
    """Let one record of a kind through per ``interval`` seconds, then one saying how many were dropped.

    A kind is the logger's name and the message's first 60 characters.  For
    asyncio's own logger: out of file descriptors, every listening socket
    logs "socket.accept() out of system resource" with a traceback each time
    it retries (a break-it run wrote 49 MB of them in 10 s).
    """

    def __init__(self, interval: float = 60.0) -> None:
        super().__init__()
        self.interval = interval
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        import time

        key = (record.name, str(record.msg)[:60])
        now = time.monotonic()
        last, dropped = self._seen.get(key, (-self.interval, 0))
        if now - last < self.interval:
            self._seen[key] = (last, dropped + 1)
            return False
        self._seen[key] = (now, 0)
        if dropped:
            record.msg = f"{record.msg} (and {dropped} more like it in the last {self.interval:.0f} s)"
        return True


def raise_open_files_limit() -> int:
    """Raise this process's soft limit of open files to its hard limit (as Go's runtime does); returns it.

    Each forward holds a listener and its connections; a desktop's default
    soft limit (1024, or 256 on macOS) runs out at a few hundred forwards.
    Never raises; returns -1 where there are no such limits (Windows).
    """
    try:
        import resource
    except ImportError:
        return -1
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        if soft == resource.RLIM_INFINITY or soft >= target:
            return soft
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    except (OSError, ValueError):
        return -1


def setup_logging(level: int, *, stream: object | None = None, logfile: Path | None = None) -> None:
    """Configure the root logger: stderr and/or a rotating file, both redacted."""
    root = logging.getLogger()
    root.setLevel(level)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers: list[logging.Handler] = []
    if stream is not None:
        handlers.append(logging.StreamHandler(stream))  # type: ignore[arg-type]
    if logfile is not None:
        logfile.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.handlers.RotatingFileHandler(logfile, maxBytes=2_000_000, backupCount=3))
    for h in handlers:
        h.setFormatter(fmt)
        h.addFilter(RedactingFilter())
        root.addHandler(h)
    asyncio_log = logging.getLogger("asyncio")
    if not any(isinstance(f, RepeatFilter) for f in asyncio_log.filters):
        asyncio_log.addFilter(RepeatFilter())
    if os.environ.get("TENDER_DEBUG_WIRE") != "1":
        for name in _WIRE_LOGGERS:
            logging.getLogger(name).setLevel(max(level, logging.WARNING))
