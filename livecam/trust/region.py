"""The region score: how much of a map's heat lies in a box the user drew, and whether its peak does.

The box is what a person debugging a classifier points at ("the dog"): drawn in the window
(right-drag, or a drag with Shift or Ctrl), on the page, or given as ``--box X,Y,W,H``, in a
WebSocket controls message (``"box": [x, y, w, h]``) or as ``box=`` on ``POST /api/explain``. It is
in frame pixels, or in fractions of the frame when all four numbers are in [0, 1].

The readout (``region_score``) is computed on the map as it is drawn, upsampled to the frame where
it lies (``CamResult.box``, the placement ``--fit`` gives it):

- ``energy``: the heat inside the box over all of the map's heat (the upsampled map summed inside,
  over summed everywhere, including any part past the frame under ``--fit pad``);
- ``peak_inside``: the pointing game (Zhang et al. 2016): whether the map's hottest point falls
  in the box.

Results name the region ``box_xywh`` ([x, y, w, h] in frame pixels), ``box_energy`` and
``box_peak_inside`` (``region_fields``); the older ``box`` of a WebSocket result stays where the
map lies on the frame, (x0, y0, x1, y1) in fractions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from livecam.errors import UserError
from livecam.render.heat import upsample_cam

FIELDS = ("box_xywh", "box_energy", "box_peak_inside")
# What is drawn with the box; the page fills in the same words (``/api/config``'s ``rules.region``).
REGION_TEXT = {
    "heat": "in box: {share} of the heat, peak {peak}",
    "no_heat": "in box: no heat",
    "inside": "inside",
    "outside": "outside",
}
_EXAMPLE = "X,Y,W,H in frame pixels (e.g. 40,30,120,90) or in fractions of the frame (e.g. 0.25,0.25,0.5,0.5)"


@dataclass(frozen=True)
class RegionBox:
    """A box as the user gave it: (x, y, w, h) in frame pixels, or in fractions of the frame."""

    x: float
    y: float
    w: float
    h: float
    fractions: bool

    def pixels(self, frame_wh: tuple[int, int]) -> tuple[int, int, int, int]:
        """(x, y, w, h) in whole pixels of a ``frame_wh`` frame, cut to the frame (w or h 0 when it lies outside)."""
        width, height = frame_wh
        sx, sy = (width, height) if self.fractions else (1, 1)
        x0 = min(max(round(self.x * sx), 0), width)
        y0 = min(max(round(self.y * sy), 0), height)
        x1 = min(max(round((self.x + self.w) * sx), x0), width)
        y1 = min(max(round((self.y + self.h) * sy), y0), height)
        return x0, y0, x1 - x0, y1 - y0

    def to_json(self) -> list[float]:
        """The four numbers as given (the page and ``--box`` read them back the same way)."""
        return [self.x, self.y, self.w, self.h]


@dataclass(frozen=True)
class RegionScore:
    """The readout of one map against one box.

    Attributes:
        box_xywh: the box in frame pixels, cut to the frame.
        energy: the share of the map's heat inside the box, in [0, 1]; None when the map has no heat.
        peak_inside: whether the map's hottest point is in the box; None when the map has no heat.
    """

    box_xywh: tuple[int, int, int, int]
    energy: float | None
    peak_inside: bool | None


def parse_box(value: Any) -> RegionBox | None:
    """A box from ``--box``'s text, a JSON list or a query's text; None (or "") clears it.

    Raises:
        UserError: not four finite numbers, a width or height that is not positive, or a negative corner.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, RegionBox):
        return value
    parts = value.split(",") if isinstance(value, str) else value
    try:
        if isinstance(parts, (str, bytes)) or len(parts) != 4 or any(isinstance(v, bool) for v in parts):
            raise ValueError
        x, y, w, h = (float(v) for v in parts)
    except (TypeError, ValueError):
        raise UserError(f"Expected box as {_EXAMPLE}. Received: box={value!r}") from None
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0 or x < 0 or y < 0:
        raise UserError(f"Expected box with x, y >= 0 and a positive width and height, {_EXAMPLE}. Received: box={value!r}")
    fractions = all(v <= 1.0 for v in (x, y, w, h))
    return RegionBox(x, y, w, h, fractions)


def region_score(cam: np.ndarray, map_box: Sequence[float], frame_wh: tuple[int, int], box: RegionBox) -> RegionScore:
    """How much of ``cam``'s heat lies in ``box``, and whether its peak does.

    Args:
        cam: the (h, w) map in [0, 1], as the engine gives it.
        map_box: where the map lies on the frame, (x0, y0, x1, y1) in fractions (``CamResult.box``).
        frame_wh: the frame's (width, height).
        box: the region.

    Returns:
        The ``RegionScore``; a map without heat (all zero, or not finite) scores None.
    """
    width, height = frame_wh
    xywh = box.pixels(frame_wh)
    mx0, my0, mx1, my1 = (float(v) * s for v, s in zip(map_box, (width, height, width, height)))
    # The map at the frame's pixel density over its whole extent (beyond the frame under --fit pad).
    extent_w, extent_h = max(1, round(mx1 - mx0)), max(1, round(my1 - my0))
    big = upsample_cam(np.asarray(cam, np.float32), (extent_w, extent_h))
    total = float(big.sum(dtype=np.float64))
    if not total > 0.0:
        return RegionScore(xywh, None, None)
    # The box in the pixels of the upsampled map.
    sx, sy = extent_w / (mx1 - mx0), extent_h / (my1 - my0)
    bx0, by0 = round((xywh[0] - mx0) * sx), round((xywh[1] - my0) * sy)
    bx1, by1 = round((xywh[0] + xywh[2] - mx0) * sx), round((xywh[1] + xywh[3] - my0) * sy)
    bx0, bx1 = min(max(bx0, 0), extent_w), min(max(bx1, 0), extent_w)
    by0, by1 = min(max(by0, 0), extent_h), min(max(by1, 0), extent_h)
    inside = float(big[by0:by1, bx0:bx1].sum(dtype=np.float64))
    row, col = np.unravel_index(int(np.argmax(big)), big.shape)
    peak_inside = bx0 <= col < bx1 and by0 <= row < by1
    return RegionScore(xywh, min(1.0, inside / total), bool(peak_inside))


def result_region(result: Any, frame_wh: tuple[int, int], box: RegionBox | None) -> RegionScore | None:
    """A one-row result's map scored against ``box``: None without a box; no heat without a map."""
    if box is None:
        return None
    if result is None or not result.finite[0]:
        return RegionScore(box.pixels(frame_wh), None, None)
    return region_score(result.cam[0], result.box, frame_wh, box)


def region_fields(score: RegionScore | None) -> dict[str, Any]:
    """The result fields of a region score (``FIELDS``); all None without a box."""
    if score is None:
        return dict.fromkeys(FIELDS)
    return {
        "box_xywh": list(score.box_xywh),
        "box_energy": None if score.energy is None else round(score.energy, 6),
        "box_peak_inside": score.peak_inside,
    }


def region_text(score: RegionScore) -> str:
    """What is drawn with the box: "in box: 78% of the heat, peak inside"."""
    if score.energy is None:
        return REGION_TEXT["no_heat"]
    peak = REGION_TEXT["inside" if score.peak_inside else "outside"]
    return REGION_TEXT["heat"].format(share=f"{score.energy:.0%}", peak=peak)
