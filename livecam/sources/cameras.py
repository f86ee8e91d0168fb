"""Cameras: opening one by index (asking for a size, a rate and MJPG), and probing which exist."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import cv2

from livecam.errors import UserError
from livecam.sources.live import LiveSource

__all__ = ["MAX_CAMERA_INDEX", "list_cameras", "open_camera"]

# OpenCV reads an index of 100 or more as "backend * 100 + camera" (200 = V4L2, camera 0).
MAX_CAMERA_INDEX = 99


def list_cameras(max_index: int = 10) -> list[dict]:
    """Probe camera indices ``0 .. max_index - 1`` and describe the ones that open.

    Returns:
        One dict per camera: ``index``, ``width``, ``height``, ``fps``, ``fourcc``, ``backend``.
        An empty list when there is none.
    """
    cameras = []
    with quiet_opencv():
        for index in range(max_index):
            cap = cv2.VideoCapture(index)
            try:
                if cap.isOpened():
                    width, height, fps, fourcc = negotiated(cap)
                    cameras.append(
                        dict(index=index, width=width, height=height, fps=fps, fourcc=fourcc, backend=cap.getBackendName())
                    )
            finally:
                cap.release()
    return cameras


def open_camera(index: int, resolution: tuple[int, int] | None, fps: float | None) -> LiveSource:
    """Camera ``index``, asked for ``resolution`` and ``fps``; ``warnings`` say where it gives otherwise."""
    if index < 0:
        raise UserError(f"Expected a camera index >= 0. Received: {index}.")
    if index > MAX_CAMERA_INDEX:
        raise UserError(
            f"Camera index {index} is out of range: expected 0 to {MAX_CAMERA_INDEX}; "
            f"to read a file with that name, pass it as ./{index}."
        )

    def open_capture() -> cv2.VideoCapture:
        with quiet_opencv():
            cap = cv2.VideoCapture(index)
        if cap.isOpened():
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # keep latency at one frame where the backend allows
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*"MJPG"))  # before the size: V4L2 needs it so
            if resolution is not None:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, resolution[0])
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, resolution[1])
            if fps is not None:
                cap.set(cv2.CAP_PROP_FPS, fps)
        return cap

    cap = open_capture()
    if not cap.isOpened():
        cap.release()
        raise UserError(
            f"Camera {index} did not open; check it is connected and not used by another program, "
            f"or list cameras with `livecam --list-cameras`."
        )
    width, height, got_fps, fourcc = negotiated(cap)
    notes = []
    if resolution is not None and (width, height) != resolution:
        notes.append(f"Camera {index} gives {width}x{height} instead of the {resolution[0]}x{resolution[1]} asked for.")
    if fps is not None and got_fps is not None and abs(got_fps - fps) > 0.5:
        notes.append(f"Camera {index} runs at {got_fps:g} fps instead of the {fps:g} fps asked for.")
    rate = f" {got_fps:g} fps" if got_fps else ""
    return LiveSource(
        open_capture,
        capture=cap,
        description=f"camera {index} at {width}x{height}{rate} ({fourcc or 'unknown format'})",
        fps=got_fps,
        size=(width, height),
        warnings=notes,
    )


def negotiated(cap: cv2.VideoCapture) -> tuple[int, int, float | None, str]:
    """What an open capture delivers: width, height, fps (None if it does not say) and FourCC."""
    width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    fps = cap.get(cv2.CAP_PROP_FPS)
    code = int(cap.get(cv2.CAP_PROP_FOURCC))
    fourcc = "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4)).strip("\0 ") if code > 0 else ""
    return width, height, (float(fps) if math.isfinite(fps) and fps > 0 else None), fourcc


@contextlib.contextmanager
def quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's own warnings (e.g. "can't open camera by index"): our message says it better."""
    logging = cv2.utils.logging
    level = logging.getLogLevel()
    logging.setLogLevel(min(level, logging.LOG_LEVEL_ERROR))  # never louder than asked (livecam.quiet: silent)
    try:
        yield
    finally:
        logging.setLogLevel(level)
