"""An honest scale: each map divided by its own maximum, or by a running maximum over the session.

The engine scales each map to a maximum of 1 (``normalize="frame"``), so a weak map looks as
sure as a strong one. ``normalize="session"`` divides the raw map by the largest raw maximum
(``CamResult.cam_max``) seen lately for the same class and method instead: that maximum decays
with a half-life of ``HALF_LIFE_S`` (10 s), so the scale follows a scene that changes, and it
starts afresh when the class or the method changes (their raw values are not comparable). A
weak map then looks weak. One ``SessionScale`` per viewer (the window, each page connection).
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Any

import numpy as np

from livecam.errors import UserError

NORMALIZE = ("frame", "session")
HALF_LIFE_S = 10.0
# What the colour bar's top end says, per scale.
SCALE_LABELS = {"frame": "frame max", "session": "session max"}


def check_normalize(value: object) -> str:
    """``value`` if it is one of ``NORMALIZE``, else a UserError naming them."""
    if value not in NORMALIZE:
        raise UserError(f"Expected normalize in {', '.join(NORMALIZE)}. Received: normalize={value!r}")
    return str(value)


class SessionScale:
    """The running maximum of raw maps for one class and method, decaying with a half-life.

    Args:
        half_life_s: how long the running maximum takes to halve when no map reaches it.
    """

    def __init__(self, half_life_s: float = HALF_LIFE_S) -> None:
        self.half_life_s = half_life_s
        self._key: Hashable = None
        self._peak = 0.0
        self._time_s: float | None = None

    def factor(self, cam_max: float, key: Hashable, time_s: float) -> float:
        """What the frame's map (scaled to 1 by its own maximum) is multiplied by on the session's scale.

        Args:
            cam_max: the frame's raw maximum (``CamResult.cam_max``).
            key: what the map explains, e.g. (class id, method): a new key restarts the maximum.
            time_s: the frame's time in seconds (its time in the file, or a clock), for the decay.

        Returns:
            ``cam_max / running maximum``, in [0, 1] (1 when the frame sets a new maximum; 0 for a map without heat).
        """
        cam_max = float(cam_max) if math.isfinite(cam_max) and cam_max > 0 else 0.0
        if key != self._key or self._time_s is None:
            self._key, self._peak = key, 0.0
        else:
            elapsed = max(0.0, time_s - self._time_s)  # a frame from the past (a loop) does not grow the maximum
            self._peak *= 0.5 ** (elapsed / self.half_life_s)
        self._time_s = time_s
        self._peak = max(self._peak, cam_max)
        return cam_max / self._peak if self._peak > 0 else 0.0


def scaled_cam(cam: np.ndarray, factor: float) -> np.ndarray:
    """The map on another scale: ``cam * factor`` (the same array when the factor is 1)."""
    return cam if factor == 1.0 else (cam * np.float32(factor)).astype(np.float32, copy=False)


def scale_key(row: Any) -> tuple[int, str, int]:
    """What a session's scale belongs to: a one-row result's class, method and contrast class (-1: none)."""
    contrast_ids = getattr(row, "contrast_ids", None)
    return int(row.class_ids[0]), row.method, -1 if contrast_ids is None else int(contrast_ids[0])
