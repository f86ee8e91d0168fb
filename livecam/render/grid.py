"""Side by side (``--compare``): one frame's maps tiled into one picture, each panel labelled.

Up to three panels sit in one row, four in two rows of two; panels keep the frame's aspect and
are scaled down only where the grid would be wider than ``MAX_GRID_W``. The picture's size
depends only on the frame's size and the number of panels (``grid_size``), so a recording of a
comparison is made at the grid's size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from livecam.render.renderer import overlay
from livecam.render.text import font_for_height, panel

MAX_GRID_W = 1920  # a grid wider than this has its panels scaled down
_WHITE = (235, 235, 235)


def grid_layout(n: int) -> tuple[int, int]:
    """(columns, rows) for ``n`` panels."""
    cols = n if n <= 3 else math.ceil(math.sqrt(n))
    return cols, math.ceil(n / cols)


def panel_size(frame_wh: tuple[int, int], n: int) -> tuple[int, int]:
    """(width, height) of each of ``n`` panels of a ``frame_wh`` frame."""
    cols, _ = grid_layout(n)
    w, h = frame_wh
    scale = min(1.0, MAX_GRID_W / (cols * w))
    return max(1, round(w * scale)), max(1, round(h * scale))


def grid_size(frame_wh: tuple[int, int], n: int) -> tuple[int, int]:
    """(width, height) of the grid of ``n`` panels of a ``frame_wh`` frame (the frame's own size for 1)."""
    if n <= 1:
        return frame_wh
    cols, rows = grid_layout(n)
    pw, ph = panel_size(frame_wh, n)
    return cols * pw, rows * ph


def draw_grid(
    frame_bgr: np.ndarray,
    panels: Sequence[Any],
    class_names: Sequence[str],
    *,
    titles: Sequence[str] = (),
    colormap: int | str = "jet",
    alpha: float | None = None,
    blend: str = "heat",
) -> np.ndarray:
    """The frame under each panel's map, each labelled with its class and probability (and its
    title, e.g. the method), tiled into one picture of ``grid_size``.

    Args:
        frame_bgr: the uint8 BGR frame; not modified.
        panels: one-row ``CamResult``s of that frame.
        class_names: the model's class names.
        titles: a line over each panel's label ("gradcam", "2nd"); none by default.
    """
    n = len(panels)
    pw, ph = panel_size(frame_bgr.shape[1::-1], n)
    cols, rows = grid_layout(n)
    grid = np.zeros((rows * ph, cols * pw, 3), np.uint8)
    small = font_for_height(ph)
    for i, row in enumerate(panels):
        picture = overlay(frame_bgr, row, class_names=class_names, colormap=colormap, alpha=alpha, blend=blend, hud="label")
        if picture.shape[:2] != (ph, pw):
            picture = cv2.resize(picture, (pw, ph), interpolation=cv2.INTER_AREA)
        if i < len(titles) and titles[i]:  # bottom left: the label and the colour bar take the top and the right
            panel(picture, [(titles[i], _WHITE)], small, (small.pad, ph - small.pad), "bl")
        y, x = divmod(i, cols)
        grid[y * ph : (y + 1) * ph, x * pw : (x + 1) * pw] = picture
    return grid


def panel_titles(panels: Sequence[Any]) -> list[str]:
    """What each panel shows: its method where the methods differ, else its rank ("top 1", "top 2", ...)."""
    if len({row.method for row in panels}) > 1:
        return [row.method for row in panels]
    return [f"top {i}" for i in range(1, len(panels) + 1)]
