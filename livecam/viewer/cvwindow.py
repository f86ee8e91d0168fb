"""The OpenCV window: shows pictures, reports key presses, fills the screen on request.

``gui_available`` says, before a run, whether a window can be opened here at all.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import subprocess
import sys

import cv2
import numpy as np

from livecam.errors import UserError, check_bgr_image
from livecam.viewer.mouse import BoxDrag

__all__ = ["WindowSink", "fit_to_screen", "gui_available", "screen_size"]


class WindowSink:
    """An OpenCV window that shows frames and reports key presses.

    The window takes the size of the first frame it shows (scaled down to fit the screen when
    larger), and the user can resize it; the picture keeps its aspect ratio.

    Args:
        title: window title (and OpenCV's name for it).
        fullscreen: start full screen (``set_fullscreen`` switches later).

    Raises:
        UserError: no window can be opened here (see ``gui_available``).
    """

    def __init__(self, title: str = "livecam", *, fullscreen: bool = False):
        if not gui_available():
            raise UserError(
                "No window can be opened here (this OpenCV has no GUI, or there is no display); "
                "run with --no-display --output out.mp4 to record instead."
            )
        self.title = title
        cv2.namedWindow(title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)
        self._drag = BoxDrag()
        cv2.setMouseCallback(title, self._drag.on_mouse)
        self._open = True
        self._sized = False
        self._fullscreen = fullscreen  # applied once the window has a picture (Qt ignores it before)

    @property
    def fullscreen(self) -> bool:
        """Whether the window fills the screen, or will once it shows its first picture."""
        return self._fullscreen

    def set_fullscreen(self, on: bool) -> None:
        """Fills the screen with the window, or gives it back its size."""
        if self.closed or on == self._fullscreen:
            return
        self._fullscreen = on
        if self._sized:
            self._apply_fullscreen()

    def _apply_fullscreen(self) -> None:
        mode = cv2.WINDOW_FULLSCREEN if self._fullscreen else cv2.WINDOW_NORMAL
        cv2.setWindowProperty(self.title, cv2.WND_PROP_FULLSCREEN, mode)

    def show(self, image_bgr: np.ndarray) -> int:
        """Show a frame, pump window events for 1 ms; the key pressed (``& 0xFF``) or -1.

        Does nothing and returns -1 once the window is closed: ``imshow`` would open it again.
        """
        if self.closed:
            return -1
        image = check_bgr_image(image_bgr, "image_bgr")
        if not self._sized:  # OpenCV opens WINDOW_NORMAL windows at a fixed small size
            self._sized = True
            width, height = fit_to_screen((image.shape[1], image.shape[0]), screen_size())
            cv2.resizeWindow(self.title, width, height)
            cv2.imshow(self.title, image)
            if self._fullscreen:
                self._apply_fullscreen()
        cv2.imshow(self.title, image)
        return cv2.waitKey(1)

    def poll(self, wait_ms: int = 1) -> int:
        """Pump window events for ``wait_ms`` without a new frame (e.g. while paused); the key or -1."""
        return -1 if self.closed else cv2.waitKey(wait_ms)

    def take_box(self) -> tuple[int, int, int, int] | None:
        """The box the user last drew (right-drag, or a drag with Shift or Ctrl), once, in picture pixels; or None."""
        return self._drag.take()

    def write(self, frame_bgr: np.ndarray, timestamp_s: float | None = None) -> None:
        """``FrameSink`` form of ``show``; the key is discarded."""
        self.show(frame_bgr)

    @property
    def closed(self) -> bool:
        """True once ``close()`` ran or the user closed the window."""
        if not self._open:
            return True
        try:
            return cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1
        except cv2.error:  # the window no longer exists
            return True

    def close(self) -> None:
        """Destroy the window (idempotent)."""
        if not self._open:
            return
        self._open = False
        with contextlib.suppress(cv2.error):  # the user may have closed it already
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)  # let the GUI process the destroy

    def __enter__(self) -> WindowSink:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def fit_to_screen(size_wh: tuple[int, int], screen_wh: tuple[int, int] | None, margin: float = 0.9) -> tuple[int, int]:
    """A window size for a picture: its own size, or scaled down (same aspect) to ``margin`` of the screen."""
    width, height = size_wh
    if screen_wh is None:
        return width, height
    scale = min(1.0, margin * screen_wh[0] / width, margin * screen_wh[1] / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


@functools.lru_cache(maxsize=1)
def screen_size() -> tuple[int, int] | None:
    """The X11 screen's (width, height) in pixels, from libX11; None where it cannot be asked (no X11)."""
    display_name = os.environ.get("DISPLAY", "")
    if sys.platform in ("win32", "darwin") or not display_name:
        return None
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("X11")
    if name is None:
        return None
    try:
        xlib = ctypes.CDLL(name)
        xlib.XOpenDisplay.restype = ctypes.c_void_p
        xlib.XOpenDisplay.argtypes = [ctypes.c_char_p]
        xlib.XDefaultScreen.argtypes = [ctypes.c_void_p]
        xlib.XDisplayWidth.argtypes = xlib.XDisplayHeight.argtypes = [ctypes.c_void_p, ctypes.c_int]
        xlib.XCloseDisplay.argtypes = [ctypes.c_void_p]
        display = xlib.XOpenDisplay(display_name.encode())
        if not display:
            return None
        try:
            screen = xlib.XDefaultScreen(display)
            return int(xlib.XDisplayWidth(display, screen)), int(xlib.XDisplayHeight(display, screen))
        finally:
            xlib.XCloseDisplay(display)
    except (OSError, AttributeError):
        return None


def gui_available() -> bool:
    """Whether this OpenCV can open a window here.

    False for builds without a GUI (``opencv-python-headless``) and, on Linux and other X11
    systems, without a working ``DISPLAY``: Qt aborts the whole process when it cannot reach
    the display, so the first call tries a window in a child process (about a second; cached
    per display).
    """
    if not _opencv_has_gui():
        return False
    if sys.platform in ("win32", "darwin"):
        return True
    display = os.environ.get("DISPLAY", "")
    return bool(display) and _display_works(display)


@functools.lru_cache(maxsize=1)
def _opencv_has_gui() -> bool:
    match = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
    return match is not None and match.group(1).upper() != "NONE"


@functools.lru_cache(maxsize=8)
def _display_works(display: str) -> bool:
    code = "import cv2; cv2.namedWindow('livecam probe'); cv2.waitKey(1); cv2.destroyAllWindows(); cv2.waitKey(1)"
    env = {**os.environ, "DISPLAY": display}
    try:
        probe = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0
