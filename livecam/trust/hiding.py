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


def hot_first(cam: np.ndarray, size_wh: tuple[int, int], cuts: list[int]) -> np.ndarray:
    """The picture's pixel indices (flat), hottest first by the map upsampled to ``size_wh``, as far as the ``cuts`` need.

    Only the groups between cuts are ordered (``order[:cut]`` holds the ``cut`` hottest pixels,
    in no particular order): a partition, not a sort, costs a few times less at 224 x 224, and
    this runs on the live path.
    """
    heat = upsample_cam(cam, size_wh).ravel()
    kth = sorted({min(max(cut, 0), heat.size - 1) for cut in cuts})
    return np.argpartition(-heat, kth)
