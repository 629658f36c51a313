"""The tray icon: sizes, one colour per state, the active count."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from tray.ui.icon import APP_ICON_SIZES, COLOURS, IconState, app_icon, count_text, render, state_of

ICONS = Path(__file__).resolve().parents[2] / "icons"


def background(img: Image.Image) -> tuple[int, int, int]:
    """The square's colour: the most common opaque colour that is not the white glyph."""
    counts: dict[tuple[int, int, int], int] = {}
    for r, g, b, a in pixels(img):
        if a == 255 and min(r, g, b) < 200:
            counts[(r, g, b)] = counts.get((r, g, b), 0) + 1
    return max(counts, key=counts.get)


def close(a: tuple[int, ...], b: tuple[int, ...], tolerance: int = 12) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


def pixels(img: Image.Image) -> list[tuple[int, int, int, int]]:
    return [img.getpixel((x, y)) for y in range(img.height) for x in range(img.width)]


@pytest.mark.parametrize("size", [16, 22, 24, 32, 48, 64])
@pytest.mark.parametrize("state,count", [(IconState.IDLE, 0), (IconState.ACTIVE, 3), (IconState.RECONNECTING, 2),
                                         (IconState.ERROR, 0), (IconState.ERROR, 12), (IconState.ACTIVE, 250)])
def test_renders_at_every_tray_size(size: int, state: IconState, count: int) -> None:
    img = render(state, count, size)
    assert img.size == (size, size) and img.mode == "RGBA"
    assert img.getpixel((0, 0))[3] == 0  # transparent corners: a rounded square
    assert close(background(img), COLOURS[state])
    # the glyph (white) is there
    assert any(p[0] > 230 and p[1] > 230 and p[2] > 230 and p[3] > 200 for p in pixels(img))


def test_states_have_distinct_colours() -> None:
    colours = [background(render(s, 1 if s is not IconState.IDLE else 0, 32)) for s in IconState]
    for i, a in enumerate(colours):
        for b in colours[i + 1:]:
            assert sum(abs(x - y) for x, y in zip(a, b, strict=True)) > 60, (a, b)


def test_count_changes_the_picture() -> None:
    assert render(IconState.ACTIVE, 1, 32).tobytes() != render(IconState.ACTIVE, 2, 32).tobytes()
    assert render(IconState.ACTIVE, 1, 32).tobytes() != render(IconState.IDLE, 0, 32).tobytes()


def test_count_text_fits_the_size() -> None:
    assert count_text(7, 16) == "7"
    assert count_text(12, 16) == "9+"
    assert count_text(12, 22) == "12"
    assert count_text(120, 64) == "99+"


def test_state_of_statuses() -> None:
    assert state_of([]) == (IconState.IDLE, 0)
    assert state_of(["active", "active"]) == (IconState.ACTIVE, 2)
    assert state_of(["active", "reconnecting"]) == (IconState.RECONNECTING, 1)
    assert state_of(["active", "starting"]) == (IconState.RECONNECTING, 1)
    assert state_of(["active", "reconnecting", "error"]) == (IconState.ERROR, 1)


@pytest.mark.parametrize("size", APP_ICON_SIZES)
def test_committed_app_icons_match_the_drawing_code(size: int) -> None:
    path = ICONS / f"tender-{size}.png"
    img = Image.open(path)
    assert img.size == (size, size)
    assert img.convert("RGBA").tobytes() == app_icon(size).tobytes(), "run icons/make_icons.py"


def test_desktop_file_is_committed() -> None:
    from tray.ui.desktop import desktop_entry

    assert (ICONS / "tender.desktop").read_text() == desktop_entry()
