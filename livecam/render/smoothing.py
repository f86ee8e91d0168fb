"""Temporal smoothing of the maps: an exponential moving average that removes frame-to-frame flicker.

The renderer keeps one ``CamSmoother`` per viewer; the page applies the same rule with the
constant it reads from ``livecam.render.page_constants()``.
"""

from __future__ import annotations

import cv2
import numpy as np

from livecam.render.heat import check_unit, finite01

# Weight of the running average per new map. At 30 maps/s, 0.5 is a time constant of
# -1/ln(0.5) = 1.4 frames (48 ms) and 90 % of a step within 3.3 frames (110 ms): frame-to-frame
# flicker is damped (white-noise amplitude x0.58) while a moving object's map does not trail
# visibly. Smoothing is per map, so at a slower engine the lag in seconds grows with its period.
DEFAULT_SMOOTH = 0.5


class CamSmoother:
    """Exponential moving average of successive maps, to remove frame-to-frame flicker.

    ``out = smooth * previous_out + (1 - smooth) * cam``. The average restarts when the map's
    shape changes, and should be restarted with ``reset`` when the explained class or the
    method changes (the old map says nothing about the new question).

    Args:
        smooth: weight of the past in [0, 1); 0 turns smoothing off. See ``DEFAULT_SMOOTH``.
    """

    def __init__(self, smooth: float = DEFAULT_SMOOTH) -> None:
        self._smooth = check_unit("smooth", smooth, upper_open=True)
        self._state: np.ndarray | None = None

    @property
    def smooth(self) -> float:
        return self._smooth

    def update(self, cam: np.ndarray) -> np.ndarray:
        """Folds one new map into the average.

        Args:
            cam: (h, w) map in [0, 1]; non-finite values count as 0 (NaN, -inf) or 1 (+inf) so
                that one bad map cannot poison the average.

        Returns:
            A new float32 array: the smoothed map.
        """
        cam01 = finite01(cam)
        if self._smooth == 0.0 or self._state is None or self._state.shape != cam01.shape:
            self._state = cam01
        else:
            self._state = cv2.addWeighted(self._state, self._smooth, cam01, 1.0 - self._smooth, 0.0)
        return self._state.copy()

    def reset(self) -> None:
        """Forgets the past maps; the next map is taken as it is."""
        self._state = None
