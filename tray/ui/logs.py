"""Where the tray logs: a rotating file in the user log dir (``tray.logs`` redacts credentials)."""

from __future__ import annotations

import logging
from pathlib import Path

import platformdirs

from tray.logs import setup_logging


def log_path() -> Path:
    return platformdirs.user_log_path("tender", appauthor=False) / "tender.log"


def setup_tray_logging(level: int = logging.INFO) -> Path:
    """Add the tray's log file; returns its path.

    The CLI's stderr handler keeps showing only what it showed before (the
    tray runs detached at login: the file is where its story is told).
    """
    root = logging.getLogger()
    before = root.level or logging.WARNING
    for handler in root.handlers:
        if handler.level == logging.NOTSET:
            handler.setLevel(before)
    path = log_path()
    setup_logging(min(level, before), logfile=path)
    return path
