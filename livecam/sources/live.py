"""The live reader: a capture thread where the latest frame wins, reopening the capture when it stalls.

Cameras, stream URLs and the synthetic scene are all a ``LiveSource`` over a capture
(``cameras``, ``streams`` and ``synth`` open them).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable

import cv2
import numpy as np

from livecam.mailbox import Mailbox
from livecam.sources.protocol import CaptureLike, Frame, SourceBase, Status

__all__ = ["LiveSource"]


class LiveSource(SourceBase):
    """A capture thread where the latest frame wins, reopening the capture when it stalls.

    The thread reads as fast as the capture delivers. A frame that is not read before the next
    one arrives is dropped and counted in ``dropped``; ``read()`` never returns the same frame
    twice. After ``max_failed_reads`` failed reads in a row the capture is released and
    ``open_capture`` is called again after ``backoff_s[0]`` seconds, doubling up to
    ``backoff_s[1]``, while ``status`` says ``"reconnecting"``; no frame is made up meanwhile.

    ``set_paused(True)`` (a viewer that stops reading for a while) keeps the capture running,
    so that the device's buffer stays fresh, but sets its frames aside: they are neither
    captured (``captured``, ``Frame.index``) nor dropped, and the frame that waited is set
    aside too. The first frame read after ``set_paused(False)`` was captured after it.

    Args:
        open_capture: returns a new capture (for instance a ``cv2.VideoCapture``); called for
            every reconnect, and for the first open when ``capture`` is None. It may return a
            capture that is not opened, or raise: both count as a failed attempt.
        capture: an already opened capture to start with.
        description: human text for messages and the HUD.
        fps: nominal rate, if known.
        size: (width, height), if known.
        backoff_s: (first, longest) wait between reopen attempts.
        stall_s: with no frame for this long, ``status`` says ``"reconnecting"`` even while the
            capture is still blocked in a read. Default: the longer of 2 s and 5 frame periods.
        max_failed_reads: failed reads in a row that make the source reopen the capture.
        warnings: notes about the capture, e.g. a resolution that differs from the one asked.
    """

    live = True

    def __init__(
        self,
        open_capture: Callable[[], CaptureLike],
        *,
        capture: CaptureLike | None = None,
        description: str = "live source",
        fps: float | None = None,
        size: tuple[int, int] | None = None,
        backoff_s: tuple[float, float] = (0.5, 5.0),
        stall_s: float | None = None,
        max_failed_reads: int = 5,
        warnings: list[str] | tuple[str, ...] = (),
    ):
        super().__init__()
        if not 0 < backoff_s[0] <= backoff_s[1]:
            raise ValueError(f"Expected 0 < backoff_s[0] <= backoff_s[1]. Received: backoff_s={backoff_s!r}")
        if max_failed_reads < 1:
            raise ValueError(f"Expected max_failed_reads >= 1. Received: max_failed_reads={max_failed_reads!r}")
        self.description = description
        self.fps = fps
        self.size = size
        self.warnings.extend(warnings)
        self.last_error: str | None = None  # why the last open failed, for logs
        self._open_capture = open_capture
        self._backoff_s = (float(backoff_s[0]), float(backoff_s[1]))
        self._stall_s = stall_s if stall_s is not None else max(2.0, 5.0 / fps if fps else 0.0)
        self._max_failed_reads = max_failed_reads
        self._lock = threading.Lock()  # status and counters; frames go through the mailbox
        self._latest: Mailbox[Frame] = Mailbox()  # the capture thread's newest frame
        self._captured = 0
        self._opens = 0 if capture is None else 1
        self._last_frame_s = time.monotonic()
        self._thread_error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(capture,), name=f"livecam capture: {description}", daemon=True)
        self._thread.start()

    @property
    def reconnects(self) -> int:
        """How many times the capture was reopened after the first open."""
        return max(0, self._opens - 1)

    @property
    def captured(self) -> int:
        """Frames captured so far (read or dropped), not counting those set aside while paused."""
        return self._captured

    @property
    def status(self) -> Status:
        with self._lock:
            if self._status == "ok" and time.monotonic() - self._last_frame_s > self._stall_s:
                return "reconnecting"
            return self._status

    def read(self, timeout_s: float | None = None) -> Frame | None:
        """Block until a frame newer than the last one read exists, and return it.

        Args:
            timeout_s: give control back after this many seconds without a new frame, so that
                the caller can show ``status`` ("reconnecting"); None waits for as long as it takes.

        Returns:
            The newest frame; None when no new frame came within ``timeout_s`` (``status`` is
            then "ok" or "reconnecting": call again) or once the source is closed ("ended").
        """
        frame = self._latest.get(timeout_s)
        if self._thread_error is not None and frame is None:
            raise RuntimeError(f"The capture thread of {self.description} failed.") from self._thread_error
        return None if self._closed else frame

    def close(self) -> None:
        """Stop the capture thread; the thread releases the capture (idempotent)."""
        with self._lock:
            if self._closed:
                return
            super().close()
        self._latest.close()
        self._stop.set()
        # A capture blocked inside read() releases itself when the read returns.
        self._thread.join(timeout=2.0)

    def _run(self, capture: CaptureLike | None) -> None:
        backoff_s = self._backoff_s[0]
        try:
            while not self._stop.is_set():
                if capture is None:
                    capture = self._try_open()
                if capture is not None:
                    if self._read_until_failure(capture):
                        backoff_s = self._backoff_s[0]
                    _release(capture)
                    capture = None
                if self._stop.is_set():
                    break
                self._set_status("reconnecting")
                self._stop.wait(backoff_s)
                backoff_s = min(2 * backoff_s, self._backoff_s[1])
        except BaseException as error:  # handed to the reader, which would otherwise wait forever
            self._thread_error = error
            self._latest.close()
        finally:
            if capture is not None:
                _release(capture)

    def _try_open(self) -> CaptureLike | None:
        try:
            capture = self._open_capture()
        except Exception as error:  # a failed attempt like any other; the next one may work
            self.last_error = f"{type(error).__name__}: {error}"
            return None
        if capture is None or not capture.isOpened():
            self.last_error = "the capture did not open"
            if capture is not None:
                _release(capture)
            return None
        self._opens += 1
        return capture

    def _read_until_failure(self, capture: CaptureLike) -> bool:
        """Publish frames until the capture fails; True if at least one frame came."""
        failures = 0
        delivered = False
        while not self._stop.is_set():
            try:
                ok, image = capture.read()
            except Exception as error:  # cv2 raises on some unplugged devices
                self.last_error = f"{type(error).__name__}: {error}"
                ok, image = False, None
            if ok and image is not None and image.size:
                self._publish(image)
                failures = 0
                delivered = True
                continue
            failures += 1
            if failures >= self._max_failed_reads:
                break
            self._stop.wait(0.01)
        return delivered

    def set_paused(self, paused: bool) -> None:
        """While paused, frames are set aside rather than dropped; see the class docstring."""
        with self._lock:
            self._paused = bool(paused)
            if self._paused:
                self._latest.get(timeout_s=0)  # captured before the pause: stale once it ends

    def _publish(self, image: np.ndarray) -> None:
        now = time.monotonic()
        # A copy: a CaptureLike may reuse its buffer, and a Frame must own its pixels. Made outside
        # the lock (a 4K copy takes milliseconds) and not while paused; the check under the lock decides.
        image_bgr = None if self._paused else _to_bgr(image)
        with self._lock:
            if self._closed:
                return
            self._last_frame_s = now  # paused or not, the device delivers: it is no stall
            if self._status == "reconnecting":
                self._status = "ok"
            if self._paused or image_bgr is None:
                return
            frame = Frame(image_bgr, self._captured, now)
            self._captured += 1
            if self._latest.put(frame) is not None:  # the reader did not take the last one in time
                self.dropped += 1

    def _set_status(self, status: Status) -> None:
        with self._lock:
            if not self._closed:
                self._status = status


def _to_bgr(image: np.ndarray) -> np.ndarray:
    """A BGR copy of ``image`` (grey and BGRA captures exist): the frame must own its pixels."""
    image = np.asarray(image)
    if image.ndim == 2:
        return cv2.cvtColor(image.astype(np.uint8, copy=False), cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image.astype(np.uint8, copy=False), cv2.COLOR_BGRA2BGR)
    return np.array(image, dtype=np.uint8, copy=True)


def _release(capture: CaptureLike) -> None:
    with contextlib.suppress(Exception):  # releasing a capture that already failed may raise
        capture.release()
