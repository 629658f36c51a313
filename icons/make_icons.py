"""Writes icons/tender-<size>.png and icons/tender.desktop from the tray's own drawing code.

Run from the repository root: ``.venv/bin/python icons/make_icons.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tray.ui.desktop import desktop_entry  # noqa: E402
from tray.ui.icon import APP_ICON_SIZES, app_icon  # noqa: E402


def main() -> None:
    for size in APP_ICON_SIZES:
        app_icon(size).save(HERE / f"tender-{size}.png", "PNG", optimize=True)
    (HERE / "tender.desktop").write_text(desktop_entry(), encoding="utf-8")
    print(f"wrote {len(APP_ICON_SIZES)} icons and tender.desktop to {HERE}")


if __name__ == "__main__":
    main()
