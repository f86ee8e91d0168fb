"""Text on pictures for the HUD: fonts scaled to the picture, darkened boxes, text cut to fit.

OpenCV's Hershey fonts draw ASCII only, so every text is made ASCII here; font metrics are
computed once per size.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_MAX_NAME_CHARS = 40
Colour = tuple[int, int, int]


@dataclass(frozen=True)
class Font:
    """A font size with its metrics in pixels."""

    scale: float
    thickness: int
    ascent: int  # baseline offset from the top of a line
    line_h: int
    pad: int


@functools.lru_cache(maxsize=32)
def font(scale: float, bold: bool = False) -> Font:
    thickness = max(1, round(scale * (2.2 if bold else 1.6)))
    (_, text_h), baseline = cv2.getTextSize("Hg", _FONT, scale, thickness)
    line_h = math.ceil((text_h + baseline) * 1.3)
    return Font(scale, thickness, ascent=text_h + (line_h - text_h - baseline) // 2, line_h=line_h, pad=max(2, line_h // 3))


def font_for_height(height: int) -> Font:
    # Text height is about 2 % of the frame height (480p: scale 0.44, ~10 px capitals;
    # 1080p: scale 0.98), with a floor that keeps small frames legible.
    return font(round(min(3.0, max(0.35, height / 1100)), 2))


def label_font(small: Font) -> Font:
    """The bold font of the explained class, beside the picture's small one."""
    return font(round(small.scale * 1.75, 2), bold=True)


def panel(
    img: np.ndarray, lines: list[tuple[str, Colour]], font: Font, corner: tuple[int, int], anchor: str, keep: float = 0.35
) -> None:
    """A darkened box with lines of text; ``corner`` is its top-left ("tl") or bottom-left ("bl") corner."""
    panel_w = max(text_w(t, font) for t, _ in lines) + 2 * font.pad
    panel_h = len(lines) * font.line_h + 2 * font.pad
    x0, y0 = corner
    if anchor == "bl":
        y0 -= panel_h
    darken(img, x0, y0, x0 + panel_w, y0 + panel_h, keep)
    for i, (text, color) in enumerate(lines):
        put_text(img, text, (x0 + font.pad, y0 + font.pad + i * font.line_h + font.ascent), font, color)


def darken(img: np.ndarray, x0: int, y0: int, x1: int, y1: int, keep: float) -> None:
    """Darkens a box of ``img`` in place to ``keep`` of its brightness (clipped to the picture)."""
    x0, y0 = max(0, x0), max(0, y0)
    x1, y1 = min(img.shape[1], x1), min(img.shape[0], y1)
    if x1 > x0 and y1 > y0:
        roi = img[y0:y1, x0:x1]
        cv2.convertScaleAbs(roi, dst=roi, alpha=keep)  # in place: a view with whole rows contiguous


def put_text(img: np.ndarray, text: str, origin: tuple[int, int], font: Font, color: Colour) -> None:
    cv2.putText(img, text, origin, _FONT, font.scale, color, font.thickness, cv2.LINE_AA)


def text_w(text: str, font: Font) -> int:
    return cv2.getTextSize(text, _FONT, font.scale, font.thickness)[0][0]


def fit(text: str, max_w: int, font: Font) -> str:
    """ASCII text, cut with "..." to fit ``max_w`` pixels (Hershey fonts draw only ASCII)."""
    text = ascii_text(text)
    width = text_w(text, font)
    if width <= max_w:
        return text
    keep = max(0, int(len(text) * max_w / width) - 3)
    while keep > 0 and text_w(text[:keep] + "...", font) > max_w:
        keep -= 1
    return text[:keep] + "..."


def ascii_text(text: str) -> str:
    return str(text).encode("ascii", "replace").decode("ascii")


def short_name(name: str) -> str:
    """A class name cut to at most 40 characters."""
    name = str(name)
    return name if len(name) <= _MAX_NAME_CHARS else name[: _MAX_NAME_CHARS - 3] + "..."
