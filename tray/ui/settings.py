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
    """What ``settings.json`` holds.

    ``login_environment``: the variables the login entry recorded when the
    user turned Start at login on (``{"KUBECONFIG", "PATH",
    "TENDER_PROFILES"}``, see :func:`tray.ui.autostart.login_environment`),
    and ``login_arguments`` the tray's options then (``["--kubeconfig",
    path, ...]``); both None while it is off, or when saved by a version
    that did not keep them.  The start-up refresh of the entry reuses them.
    """

    notifications: bool = True
    start_at_login: bool = False
    login_environment: dict[str, str] | None = None
    login_arguments: tuple[str, ...] | None = None


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
    env = data.get("login_environment")
    if isinstance(env, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        values["login_environment"] = dict(env)
    args = data.get("login_arguments")
    if isinstance(args, list) and all(isinstance(a, str) for a in args):
        values["login_arguments"] = tuple(args)
    return Settings(**values)


def save_settings(settings: Settings, path: str | os.PathLike[str] | None = None) -> None:
    """Write ``settings`` to ``path`` (default :func:`settings_path`) atomically (a reader sees the
    old file or the new one).  Blocks for one small write.  Raises ``OSError``."""
    p = Path(path) if path is not None else settings_path()
    p.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    data = {k: v for k, v in asdict(settings).items() if v is not None}
    if settings.login_arguments is not None:
        data["login_arguments"] = list(settings.login_arguments)
    write_atomic(p, json.dumps(data, indent=2, sort_keys=True) + "\n")
