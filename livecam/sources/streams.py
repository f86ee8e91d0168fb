"""Stream URLs (rtsp://, http://, udp://, ...): opened within a deadline, live unless a web server hands out a file."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import cv2

from livecam.errors import UserError, redact
from livecam.sources.cameras import negotiated, quiet_opencv
from livecam.sources.files import VideoFileSource
from livecam.sources.live import LiveSource

__all__ = ["STREAM_SCHEMES", "open_stream"]

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")


def open_stream(url: str, timeout_s: float, *, loop: bool = False) -> LiveSource | VideoFileSource:
    """The stream at ``url``, live; a finite file on a web server is read as a file instead."""
    timeout_ms = int(timeout_s * 1000)
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms]

    def open_capture() -> cv2.VideoCapture:
        with quiet_opencv():
            return cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)

    # The backend has its own timeout, but a server that accepts and then says nothing must not
    # hang us even where that timeout is ignored: open in a helper thread and stop waiting.
    started_s = time.monotonic()
    cap = _call_with_deadline(open_capture, timeout_s + 2.0)
    elapsed_s = time.monotonic() - started_s
    if cap is None or not cap.isOpened():
        if cap is not None:
            cap.release()
        if elapsed_s >= 0.9 * timeout_s:
            raise UserError(
                f"The stream {redact(url)} did not answer within {timeout_s:g} s; check the address and the "
                f"network, and that the camera or server is on."
            )
        raise UserError(
            f"The stream {redact(url)} could not be opened; check the address (scheme, host, port and path) "
            f"and that the camera or server is on."
        )
    if url.lower().startswith(("http://", "https://")) and cap.get(cv2.CAP_PROP_FRAME_COUNT) > 0:
        # A video file on a web server, not a live stream: it has an end, every frame is wanted
        # in order, and reading it again and again as if it were a camera would be wrong.
        cap.release()
        return VideoFileSource(url, loop=loop)
    width, height, fps, _ = negotiated(cap)
    rate = f" {fps:g} fps" if fps else ""
    return LiveSource(
        open_capture,
        capture=cap,
        description=f"stream {redact(url)} at {width}x{height}{rate}",
        fps=fps,
        size=(width, height) if width and height else None,
    )


def _call_with_deadline(open_capture: Callable[[], cv2.VideoCapture], deadline_s: float) -> cv2.VideoCapture | None:
    """``open_capture()``, or None if it takes longer than ``deadline_s`` (released when it ends)."""
    result: list[cv2.VideoCapture] = []
    abandoned = threading.Event()

    def target() -> None:
        cap = open_capture()
        result.append(cap)
        if abandoned.is_set():
            cap.release()

    thread = threading.Thread(target=target, name="livecam stream open", daemon=True)
    thread.start()
    thread.join(deadline_s)
    if thread.is_alive():
        abandoned.set()
        return None
    return result[0] if result else None
