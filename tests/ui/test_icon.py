"""The tray icon: the logo in every state, the state as a badge, the attention count."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from tray.ui.icon import APP_ICON_SIZES, BADGES, LOGO, IconState, app_icon, count_text, render, state_of

ICONS = Path(__file__).resolve().parents[2] / "icons"
SIZES = [16, 22, 24, 32, 48, 64]


def close(a: tuple[int, ...], b: tuple[int, ...], tolerance: int = 14) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


def share(img: Image.Image, colour: tuple[int, int, int], box: tuple[float, float, float, float] = (0, 0, 1, 1)) -> float:
    """How much of ``box`` (fractions of the icon) is opaque ``colour``."""
    w, h = img.size
    x0, y0, x1, y1 = round(box[0] * w), round(box[1] * h), round(box[2] * w), round(box[3] * h)
    px = [img.getpixel((x, y)) for y in range(y0, y1) for x in range(x0, x1)]
    return sum(1 for p in px if p[3] > 240 and close(p[:3], colour)) / len(px)


def light(img: Image.Image, box: tuple[float, float, float, float]) -> float:
    w, h = img.size
    x0, y0, x1, y1 = round(box[0] * w), round(box[1] * h), round(box[2] * w), round(box[3] * h)
    px = [img.getpixel((x, y)) for y in range(y0, y1) for x in range(x0, x1)]
    return sum(1 for p in px if p[3] > 200 and min(p[:3]) > 170) / len(px)


TOP_LEFT = (0.0, 0.0, 0.5, 0.5)  # the logo's corner no badge covers
BADGE_CORNER = (0.65, 0.65, 1.0, 1.0)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("state,count", [(IconState.IDLE, 0), (IconState.ACTIVE, 0), (IconState.RECONNECTING, 2),
                                         (IconState.RECONNECTING, 0), (IconState.ERROR, 1), (IconState.ERROR, 12),
                                         (IconState.ERROR, 250)])
def test_the_logo_is_there_in_every_state_at_every_tray_size(size: int, state: IconState, count: int) -> None:
    img = render(state, count, size)
    assert img.size == (size, size) and img.mode == "RGBA"
    assert img.getpixel((0, 0))[3] == 0  # transparent corners: a rounded square
    assert share(img, LOGO, TOP_LEFT) > 0.12  # the teal logo, whatever the state
    # the arrow (white, or nearly where it is smoothed) is there in the logo's top half
    assert light(img, (0.15, 0.2, 0.85, 0.5)) > 0.1


@pytest.mark.parametrize("size", SIZES)
def test_the_state_is_a_badge_of_its_colour(size: int) -> None:
    assert all(share(render(IconState.IDLE, 0, size), c, BADGE_CORNER) == 0 for c in BADGES.values())
    for state, count in ((IconState.ACTIVE, 0), (IconState.RECONNECTING, 1), (IconState.ERROR, 3)):
        img = render(state, count, size)
        assert share(img, BADGES[state], BADGE_CORNER) > 0.2, state
        others = [c for s, c in BADGES.items() if s is not state]
        assert all(share(img, c) == 0 for c in others), state


def test_badge_colours_are_distinct_from_each_other_and_the_logo() -> None:
    colours = [LOGO, *BADGES.values()]
    for i, a in enumerate(colours):
        for b in colours[i + 1:]:
            assert sum(abs(x - y) for x, y in zip(a, b, strict=True)) > 60, (a, b)


def test_the_number_in_the_badge_changes_the_picture() -> None:
    assert render(IconState.ERROR, 1, 32).tobytes() != render(IconState.ERROR, 2, 32).tobytes()
    # a number has white pixels inside the badge; a dot has none
    assert share(render(IconState.ERROR, 2, 32), (255, 255, 255), (0.7, 0.7, 0.95, 0.95)) > 0.05
    assert share(render(IconState.RECONNECTING, 0, 32), (255, 255, 255), (0.7, 0.7, 0.95, 0.95)) == 0
    # the green dot of "all active" never carries a number
    assert render(IconState.ACTIVE, 5, 32).tobytes() == render(IconState.ACTIVE, 0, 32).tobytes()
    # the app icon is the idle logo
    assert app_icon(32).tobytes() == render(IconState.IDLE, 0, 32).tobytes()


def test_count_text_fits_the_size() -> None:
    assert count_text(7, 16) == "7"
    assert count_text(12, 16) == "9+"
    assert count_text(12, 22) == "12"
    assert count_text(120, 64) == "99+"


def test_state_of_counts_the_forwards_needing_attention_not_the_active_ones() -> None:
    assert state_of([]) == (IconState.IDLE, 0)
    assert state_of(["stopped"]) == (IconState.IDLE, 0)
    assert state_of(["active", "active"]) == (IconState.ACTIVE, 0)
    assert state_of(["active", "reconnecting"]) == (IconState.RECONNECTING, 1)
    assert state_of(["active", "starting"]) == (IconState.RECONNECTING, 0)
    # 2 active and 3 in error: a red 4 (3 errors + 1 reconnecting), never a red 2
    assert state_of(["active", "active", "error", "error", "error", "reconnecting"]) == (IconState.ERROR, 4)


@pytest.mark.parametrize("size", APP_ICON_SIZES)
def test_committed_app_icons_match_the_drawing_code(size: int) -> None:
    path = ICONS / f"tender-{size}.png"
    img = Image.open(path)
    assert img.size == (size, size)
    assert img.convert("RGBA").tobytes() == app_icon(size).tobytes(), "run icons/make_icons.py"


def test_desktop_file_is_committed() -> None:
    from tray.ui.desktop import desktop_entry

    assert (ICONS / "tender.desktop").read_text() == desktop_entry()
