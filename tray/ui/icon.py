"""The tray icon, drawn with Pillow: the Tender logo with the state as a badge.

The logo -- a teal rounded square with a two-way arrow (a port forward,
both ways) -- is the same in every state, so the icon stays recognisable in
a panel full of others.  The state is a badge in the bottom-right corner,
cut out of the logo by a thin transparent ring:

* idle (no forwards): no badge, the logo alone;
* all active: a small green dot;
* something reconnecting or starting: an amber badge;
* something failed: a red badge.

The amber and red badges carry the number of forwards *needing attention*
(in error or reconnecting), not the number active; a badge with nothing to
count (only forwards starting) is a dot.  Shapes are drawn at 4x and scaled
down, so edges stay smooth and a digit stays readable from 16 px up.  The
application icon (``icons/``, the .desktop launcher) is the logo alone
(:func:`app_icon`).
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
    IDLE = "idle"  #: no forwards: the logo alone
    ACTIVE = "active"  #: every forward active: a green dot
    RECONNECTING = "reconnecting"  #: one reconnecting or starting, none failed: amber badge
    ERROR = "error"  #: at least one forward failed: red badge
    APP = "app"  #: the application icon: the logo alone


#: The logo's colour (every state) and each badge's colour.
LOGO = (15, 118, 110)  # teal
BADGES: dict[IconState, tuple[int, int, int]] = {
    IconState.ACTIVE: (22, 163, 74),  # green
    IconState.RECONNECTING: (217, 119, 6),  # amber, dark enough for a white digit
    IconState.ERROR: (220, 38, 38),  # red
}
_EDGE = (0, 0, 0, 90)  # a thin dark rim keeps the logo visible on light panels too
_WHITE = (255, 255, 255, 255)


def state_of(statuses: Iterable[str]) -> tuple[IconState, int]:
    """(the icon's state, the number of forwards needing attention) for these session statuses.

    ``statuses`` are :class:`~tray.domain.status.Status` values, one per
    forward.  Needing attention: in ``error`` or ``reconnecting`` (a forward
    that is ``starting`` makes the badge amber but is not counted).
    """
    statuses = list(statuses)
    attention = sum(1 for s in statuses if s in (Status.ERROR, Status.RECONNECTING))
    if Status.ERROR in statuses:
        return IconState.ERROR, attention
    if Status.RECONNECTING in statuses or Status.STARTING in statuses:
        return IconState.RECONNECTING, attention
    if Status.ACTIVE in statuses:
        return IconState.ACTIVE, 0
    return IconState.IDLE, 0


def count_text(count: int, size: int) -> str:
    """What fits in the badge: up to two digits from 22 px, one below ("9+")."""
    limit = 99 if size >= 22 else 9
    return str(count) if count <= limit else f"{limit}+"


@lru_cache(maxsize=64)
def render(state: IconState, count: int = 0, size: int = 64) -> Image.Image:
    """The icon for ``state`` with ``count`` (forwards needing attention) in its badge.

    Returns a ``size`` x ``size`` RGBA image (transparent outside the
    logo); pure and cached, so calling it on every refresh costs nothing.
    ``count`` is ignored for the states without a numbered badge (idle,
    active, app).
    """
    big = size * SUPERSAMPLE
    img = _logo(big)
    badge = BADGES.get(state)
    if badge is not None:
        text = count_text(count, size) if count > 0 and state in (IconState.RECONNECTING, IconState.ERROR) else ""
        _badge(img, big, size, badge, text)
    return img.resize((size, size), Image.Resampling.LANCZOS)


def _logo(big: int) -> Image.Image:
    img = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    margin = round(big * 0.04)
    radius = round(big * 0.24)
    box = (margin, margin, big - 1 - margin, big - 1 - margin)
    d.rounded_rectangle(box, radius=radius, fill=_EDGE)
    inset = max(SUPERSAMPLE, round(big * 0.025))
    inner = (box[0] + inset, box[1] + inset, box[2] - inset, box[3] - inset)
    d.rounded_rectangle(inner, radius=radius - inset, fill=LOGO + (255,))
    _arrows(d, big)
    return img


def _arrows(d: ImageDraw.ImageDraw, big: int) -> None:
    """⇄: a right arrow above a left arrow (a port forward, both ways)."""
    thick = big * 0.12
    head = big * 0.17
    left, right = big * 0.2, big * 0.8
    for y, direction in ((big * 0.34, 1), (big * 0.66, -1)):
        x0, x1 = (left, right - head * 0.6) if direction > 0 else (left + head * 0.6, right)
        d.rectangle((x0, y - thick / 2, x1, y + thick / 2), fill=_WHITE)
        tip = right if direction > 0 else left
        base = tip - direction * head * 1.2
        d.polygon([(tip, y), (base, y - head), (base, y + head)], fill=_WHITE)


def _badge(img: Image.Image, big: int, size: int, colour: tuple[int, int, int], text: str) -> None:
    """A disc (a pill for two characters) in the bottom-right corner, ``text`` in white.

    A dot when ``text`` is empty.  Below 32 px the badge takes more of the
    icon, so its digit keeps enough pixels to be read.
    """
    if text:
        diameter = big * (0.6 if size < 22 else 0.56 if size < 32 else 0.52)
    else:
        diameter = big * (0.46 if size < 32 else 0.40)
    font = _font(round(diameter * 0.86)) if text else None
    d = ImageDraw.Draw(img)
    width = diameter
    if text and font is not None:
        left, top, right, bottom = d.textbbox((0, 0), text, font=font)
        width = max(diameter, (right - left) + diameter * 0.36)
        width = min(width, big * 0.7)  # the logo's left half stays in view
    x1, y1 = big - 1, big - 1
    x0, y0 = x1 - width, y1 - diameter
    ring = max(SUPERSAMPLE * 1.0, big * 0.05)
    # The ring: transparent, so the badge stands apart from the logo.
    cut = Image.new("L", img.size, 0)
    ImageDraw.Draw(cut).rounded_rectangle((x0 - ring, y0 - ring, x1 + ring, y1 + ring),
                                          radius=diameter / 2 + ring, fill=255)
    img.paste((0, 0, 0, 0), mask=cut)
    d.rounded_rectangle((x0, y0, x1, y1), radius=diameter / 2, fill=colour + (255,))
    if text and font is not None:
        _fit_text(d, text, font, (x0, y0, x1, y1), width)


def _fit_text(d: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
              box: tuple[float, float, float, float], width: float) -> None:
    left, top, right, bottom = d.textbbox((0, 0), text, font=font)
    limit = width * 0.86
    if right - left > limit and isinstance(font, ImageFont.FreeTypeFont):  # "99+": shrink to fit
        font = _font(max(1, round(font.size * limit / (right - left))))
        left, top, right, bottom = d.textbbox((0, 0), text, font=font)
    x = (box[0] + box[2] - (right - left)) / 2 - left
    y = (box[1] + box[3] - (bottom - top)) / 2 - top
    d.text((x, y), text, font=font, fill=_WHITE)


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
    """The application icon (launcher, notifications): the logo alone, ``size`` x ``size`` RGBA."""
    return render(IconState.APP, 0, size)
