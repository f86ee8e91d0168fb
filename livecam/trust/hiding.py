"""Hiding parts of a picture in a map's order: what the live readout and the offline curves share.

Hidden means blurred away, not blacked out: a strong blur keeps the colours and the rough
layout, so a picture with a part hidden is still a picture of the kind the network knows, and a
drop in its probability says the detail there mattered, not that black squares are strange.
"""

from __future__ import annotations

import cv2
import numpy as np

from livecam.render.heat import upsample_cam


def strong_blur(image_bgr: np.ndarray) -> np.ndarray:
    """The picture with its detail gone but its colours kept: a blur a quarter of its shorter side wide."""
    size = max(3, min(image_bgr.shape[:2]) // 4) | 1
    return cv2.stackBlur(image_bgr, (size, size))


def hot_first(cam: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """The picture's pixel indices (flat), hottest first by the map upsampled to ``size_wh``; ties in reading order."""
    return np.argsort(-upsample_cam(cam, size_wh).ravel(), kind="stable")
