"""The tray icon, drawn with Pillow from the engine's state.

A rounded square whose colour is the worst status (grey idle, green all
active, amber something reconnecting or starting, red something failed),
with the number of active forwards in white, or a two-way arrow when there
is none.  Shapes are drawn at 4x and scaled down, so edges stay smooth and
the digits stay readable from 16 px up.  The application icon (``icons/``,
the .desktop launcher) uses the same drawing in the brand colour.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from tray.domain.status import Status

SUPERSAMPLE = 4
APP_ICON_SIZES = (16, 22, 24, 32, 48, 64, 128, 256)


class IconState(Enum):
    IDLE = "idle"
    ACTIVE = "active"
    RECONNECTING = "reconnecting"
    ERROR = "error"
    APP = "app"


COLOURS: dict[IconState, tuple[int, int, int]] = {
    IconState.IDLE: (100, 116, 139),  # slate
    IconState.ACTIVE: (22, 128, 61),  # green
    IconState.RECONNECTING: (194, 120, 3),  # amber, dark enough for white digits
    IconState.ERROR: (200, 30, 30),  # red
    IconState.APP: (15, 118, 110),  # teal
}
_EDGE = (0, 0, 0, 90)  # a thin dark rim keeps the icon visible on light panels too


def state_of(statuses: Iterable[str]) -> tuple[IconState, int]:
    """(the icon's state, the number of active forwards) for these session statuses."""
    statuses = list(statuses)
    active = sum(1 for s in statuses if s == Status.ACTIVE)
    if Status.ERROR in statuses:
        return IconState.ERROR, active
    if Status.RECONNECTING in statuses or Status.STARTING in statuses:
        return IconState.RECONNECTING, active
    if active:
        return IconState.ACTIVE, active
    return IconState.IDLE, 0


def count_text(count: int, size: int) -> str:
    """What fits: two digits from 22 px, one below ("9+")."""
    limit = 99 if size >= 22 else 9
    return str(count) if count <= limit else f"{limit}+"


@lru_cache(maxsize=64)
def render(state: IconState, count: int = 0, size: int = 64) -> Image.Image:
    big = size * SUPERSAMPLE
    img = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    margin = round(big * 0.04)
    radius = round(big * 0.24)
    box = (margin, margin, big - 1 - margin, big - 1 - margin)
    d.rounded_rectangle(box, radius=radius, fill=_EDGE)
    inset = max(SUPERSAMPLE, round(big * 0.025))
    inner = (box[0] + inset, box[1] + inset, box[2] - inset, box[3] - inset)
    d.rounded_rectangle(inner, radius=radius - inset, fill=COLOURS[state] + (255,))
    if count > 0 and state is not IconState.APP:
        _digits(d, count_text(count, size), big)
    elif state is IconState.ERROR:
        _bang(d, big)
    else:
        _arrows(d, big)
    return img.resize((size, size), Image.Resampling.LANCZOS)


def _arrows(d: ImageDraw.ImageDraw, big: int) -> None:
    """⇄: a right arrow above a left arrow (a port forward, both ways)."""
    white = (255, 255, 255, 255)
    thick = big * 0.11
    head = big * 0.17
    left, right = big * 0.22, big * 0.78
    for y, direction in ((big * 0.36, 1), (big * 0.64, -1)):
        x0, x1 = (left, right - head * 0.6) if direction > 0 else (left + head * 0.6, right)
        d.rectangle((x0, y - thick / 2, x1, y + thick / 2), fill=white)
        tip = right if direction > 0 else left
        base = tip - direction * head * 1.2
        d.polygon([(tip, y), (base, y - head), (base, y + head)], fill=white)


def _bang(d: ImageDraw.ImageDraw, big: int) -> None:
    white = (255, 255, 255, 255)
    w = big * 0.13
    cx = big / 2
    d.rounded_rectangle((cx - w / 2, big * 0.2, cx + w / 2, big * 0.62), radius=w / 2, fill=white)
    d.ellipse((cx - w * 0.6, big * 0.69, cx + w * 0.6, big * 0.69 + w * 1.2), fill=white)


def _digits(d: ImageDraw.ImageDraw, text: str, big: int) -> None:
    # The digits fill most of the square: at 16 px every pixel counts.
    height = big * (0.68 if len(text) == 1 else 0.56 if len(text) == 2 else 0.44)
    font = _font(round(height * 1.3))
    left, top, right, bottom = d.textbbox((0, 0), text, font=font)
    width_limit = big * 0.84
    if right - left > width_limit:  # "99+" in a wide font: shrink to fit
        font = _font(round(height * 1.3 * width_limit / (right - left)))
        left, top, right, bottom = d.textbbox((0, 0), text, font=font)
    x = (big - (right - left)) / 2 - left
    y = (big - (bottom - top)) / 2 - top
    d.text((x, y), text, font=font, fill=(255, 255, 255, 255))


_FONT_FILES = ("DejaVuSans-Bold.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
               "Arial Bold.ttf", "arialbd.ttf", "Helvetica.ttc")


@lru_cache(maxsize=16)
def _font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for name in _FONT_FILES:
        try:
            return ImageFont.truetype(name, px)
        except OSError:
            continue
    return ImageFont.load_default(px)  # Pillow's own scalable font (Pillow >= 10.1)


def app_icon(size: int) -> Image.Image:
    return render(IconState.APP, 0, size)
