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

__all__ = ["RedactingFilter", "redact", "setup_logging"]

_PATTERNS = [
    (re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(bearer|basic)\s+[^\s\"',)]+"), r"\1\2 [redacted]"),
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{8,}"), "Bearer [redacted]"),
    (re.compile(r"(?i)([\"']?(?:token|id-token|refresh-token|access[-_]token|client-key-data|password)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"),
     r"\1[redacted]"),
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
    if os.environ.get("TENDER_DEBUG_WIRE") != "1":
        for name in _WIRE_LOGGERS:
            logging.getLogger(name).setLevel(max(level, logging.WARNING))
