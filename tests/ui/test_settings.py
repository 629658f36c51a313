"""Settings persist in settings.json (atomic writes, tolerant reads)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from tray.ui.settings import Settings, load_settings, save_settings, settings_path


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "tender" / "settings.json"
    save_settings(Settings(notifications=False, start_at_login=True), path)
    assert load_settings(path) == Settings(notifications=False, start_at_login=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"notifications": False, "start_at_login": True}


def test_defaults_for_missing_broken_or_odd_files(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    assert load_settings(path) == Settings()
    path.write_text("{not json")
    assert load_settings(path) == Settings()
    path.write_text("[1, 2]")
    assert load_settings(path) == Settings()
    path.write_text('{"notifications": "no", "start_at_login": true, "future_key": 1}')
    assert load_settings(path) == Settings(notifications=True, start_at_login=True)


def test_default_location_is_the_user_config_dir(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert settings_path() == tmp_path / "tender" / "settings.json"
