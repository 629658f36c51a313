"""The user's tray settings, kept in ``<user config dir>/tender/settings.json``."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import platformdirs

from tray.atomicfile import write_atomic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    notifications: bool = True
    start_at_login: bool = False


def settings_path() -> Path:
    return platformdirs.user_config_path("tender", appauthor=False) / "settings.json"


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """The saved settings; defaults for a missing file, and for a broken one (logged)."""
    p = Path(path) if path is not None else settings_path()
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Settings()
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable settings file %s: %s", p, exc)
        return Settings()
    if not isinstance(data, dict):
        log.warning("ignoring settings file %s: not a JSON object", p)
        return Settings()
    # Keep only known keys of the right type: a hand edit must not crash the tray.
    known = {f.name: f.default for f in fields(Settings)}
    values = {k: v for k, v in data.items() if k in known and isinstance(v, type(known[k]))}
    return Settings(**values)


def save_settings(settings: Settings, path: str | os.PathLike[str] | None = None) -> None:
    p = Path(path) if path is not None else settings_path()
    p.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(p, json.dumps(asdict(settings), indent=2, sort_keys=True) + "\n")
