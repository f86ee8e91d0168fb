"""The window's mouse: a box drawn by a right-drag, or a left-drag with Shift or Ctrl (plain clicks stay free).

``BoxDrag`` turns OpenCV's mouse events into finished boxes, in the window picture's pixels
(OpenCV gives the picture's coordinates, whatever the window's size); the window front-end turns
them into the frame's pixels and a ``SET_BOX`` command (``livecam.trust.region``).
"""

from __future__ import annotations

import cv2

MIN_SIDE_PX = 4  # a drag shorter than this either way is a click, not a box
_MODIFIERS = cv2.EVENT_FLAG_SHIFTKEY | cv2.EVENT_FLAG_CTRLKEY


class BoxDrag:
    """Collects one drag at a time; ``take`` hands out the last finished box once."""

    def __init__(self) -> None:
        self._start: tuple[int, int] | None = None
        self._done: tuple[int, int, int, int] | None = None

    def on_mouse(self, event: int, x: int, y: int, flags: int, *_: object) -> None:
        """``cv2.setMouseCallback``'s callback."""
        if event == cv2.EVENT_RBUTTONDOWN or (event == cv2.EVENT_LBUTTONDOWN and flags & _MODIFIERS):
            self._start = (x, y)
        elif event in (cv2.EVENT_RBUTTONUP, cv2.EVENT_LBUTTONUP) and self._start is not None:
            (x0, y0), self._start = self._start, None
            left, top, w, h = min(x0, x), min(y0, y), abs(x - x0), abs(y - y0)
            if w >= MIN_SIDE_PX and h >= MIN_SIDE_PX:
                self._done = (max(0, left), max(0, top), w, h)

    def take(self) -> tuple[int, int, int, int] | None:
        """The last box finished since the last call, (x, y, w, h) in picture pixels, or None."""
        done, self._done = self._done, None
        return done


def frame_box(box: tuple[int, int, int, int], frame_wh: tuple[int, int], side_by_side: bool) -> list[int]:
    """A box drawn on the window's picture in the frame's pixels: side by side, either half is the frame."""
    x, y, w, h = box
    if side_by_side and x >= frame_wh[0]:
        x -= frame_wh[0]
    return [x, y, w, h]
