"""Frame sources: one input argument, auto-detected into a reader that hands out ``Frame``s.

``open_source(spec)`` understands:

- a camera index: ``0``, ``"1"`` (digits always mean a camera, even if a file has that name);
- a video file: ``clip.mp4`` (anything FFmpeg reads);
- an image file, a folder of images or a glob pattern: ``photo.jpg``, ``frames/``,
  ``"frames/*.png"`` (natural order: ``2.png`` before ``10.png``);
- a stream URL: ``rtsp://``, ``rtsps://``, ``rtmp://``, ``http://``, ``https://``, ``udp://``,
  ``tcp://``, ``srt://``;
- ``synth``: the synthetic demo scene. Options follow a colon, separated by commas, in any
  order: ``synth:640x480``, ``synth:seed=3``, ``synth:320x240,seed=3,fps=15``.

Files and folders are read in order, every frame, none dropped. Live sources (camera, URL,
synth) run a capture thread where the latest frame wins: ``read()`` returns the newest frame
that was not handed out before and counts the ones nobody read in ``dropped``. A live source
that stops delivering is reopened with back-off while ``status == "reconnecting"``, and
``read(timeout_s)`` returns None when no new frame came in time, so the viewer stays responsive.
"""

from __future__ import annotations

import collections
import contextlib
import glob
import math
import os
import re
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import cv2
import numpy as np

from livecam.errors import UserError, redact
from livecam.mailbox import Mailbox

__all__ = [
    "CaptureLike",
    "Frame",
    "FrameSource",
    "ImageFolderSource",
    "LiveSource",
    "VideoFileSource",
    "list_cameras",
    "open_source",
]

Status = Literal["ok", "reconnecting", "ended"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".jp2", ".ppm", ".pgm", ".pnm")
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
SYNTH_DEFAULT_SIZE = (640, 480)
SYNTH_MAX_SIZE = (7680, 4320)  # as --resolution: 8K; a 20000x20000 scene needs gigabytes per frame
# OpenCV reads an index of 100 or more as "backend * 100 + camera" (200 = V4L2, camera 0).
MAX_CAMERA_INDEX = 99
FOLDER_DEFAULT_FPS = 30.0

# Without a trustworthy frame count, this many unreadable frames in a row mean the end.
_MAX_FAILED_GRABS = 50


@dataclass(frozen=True)
class Frame:
    """One picture from a source.

    Attributes:
        image_bgr: uint8 array (height, width, 3), BGR. Owned by this frame: no later read
            writes into it.
        index: 0, 1, 2... in delivery order; for live sources the capture counter, so a gap
            between two frames is the number of frames dropped in between.
        timestamp_s: ``time.monotonic()`` when the frame was captured (files: when read).
        media_time_s: video files: the frame's time in the file (seconds from the first frame,
            counting on across ``--loop`` passes); None for other sources.
        name: image folders and globs: the file name the picture came from; None otherwise.
        unrelated: True where the picture has nothing to do with the one before it (every image
            of a folder or glob), so that a viewer starts its smoothing afresh; False for the
            frames of a video or a camera, which follow on from each other.
    """

    image_bgr: np.ndarray
    index: int
    timestamp_s: float
    media_time_s: float | None = None
    name: str | None = None
    unrelated: bool = False


class CaptureLike(Protocol):
    """What ``LiveSource`` needs from a capture: the subset of ``cv2.VideoCapture`` it uses."""

    def read(self) -> tuple[bool, np.ndarray | None]: ...
    def release(self) -> None: ...
    def isOpened(self) -> bool: ...


class FrameSource(Protocol):
    """Where frames come from. Every source is also a context manager and an iterator."""

    live: bool  # camera, URL, synth: True; file, folder: False
    fps: float | None  # nominal rate: the file's fps, the negotiated camera fps
    size: tuple[int, int] | None  # (width, height); folders: the size chosen for the recording
    frame_count: int | None  # files and folders: total frames; live: None
    variable_frame_rate: bool  # files whose frames are unevenly spaced: record by media_time_s
    dropped: int  # frames captured but never read (latest frame wins)
    corrupt: int  # unreadable frames skipped
    description: str  # e.g. "camera 0 at 1280x720 30 fps (MJPG)"
    warnings: list[str]  # where what was negotiated differs from what was asked

    @property
    def status(self) -> Status: ...  # "ok" | "reconnecting" | "ended"

    def read(self, timeout_s: float | None = None) -> Frame | None:
        """The next frame. None at the end (``status == "ended"``) or, for live sources, when no
        new frame came within ``timeout_s`` (``status`` says why; call again)."""

    def close(self) -> None: ...  # idempotent


class _SourceBase:
    live = False
    variable_frame_rate = False
    mixed_sizes = False
    fps: float | None = None
    size: tuple[int, int] | None = None
    frame_count: int | None = None
    description = ""

    def __init__(self) -> None:
        self.dropped = 0
        self.corrupt = 0
        self.warnings: list[str] = []
        self._status: Status = "ok"
        self._closed = False

    @property
    def status(self) -> Status:
        return self._status

    def read(self, timeout_s: float | None = None) -> Frame | None:
        raise NotImplementedError

    def close(self) -> None:
        self._closed = True
        self._status = "ended"

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.read()) is not None:
            yield frame

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description} status={self.status}>"


class _OrderedSource(_SourceBase):
    """Files and folders: every frame in order, none dropped. Subclasses say how to get the next."""

    unrelated_frames = False  # see Frame.unrelated

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()  # close() may come from another thread than read()
        self._next_index = 0
        self._pending: np.ndarray | None = None  # the first image, decoded early to validate the input
        self._pending_media_s: float | None = None
        self._media_s: float | None = None  # the time in the file of the image _next_image returned last
        self._pending_name: str | None = None
        self._image_name: str | None = None  # set by _next_image where pictures have names (folders)

    def _next_image(self) -> np.ndarray | None:
        raise NotImplementedError

    def read(self, timeout_s: float | None = None) -> Frame | None:
        """The next frame, or None at the end. ``timeout_s`` is ignored: files do not stall."""
        with self._lock:
            if self._closed:
                return None
            image, self._pending = self._pending, None
            media_s, name = self._pending_media_s, self._pending_name
            if image is None:
                image = self._next_image()
                media_s, name = self._media_s, self._image_name
            if image is None:
                self._status = "ended"
                return None
            frame = Frame(image, self._next_index, time.monotonic(), media_s, name, self.unrelated_frames)
            self._next_index += 1
            return frame


class VideoFileSource(_OrderedSource):
    """Every frame of a video file, in order; unreadable frames are skipped and counted.

    Before decoding, the packets' timestamps are read (no decoding, about as fast as reading the
    file) to learn how many frames the file really holds and whether they are evenly spaced:

    - Evenly spaced (constant frame rate): a frame missing from the timestamps, or dropped by
      the decoder without a word, shows as a gap and counts in ``corrupt``.
    - Unevenly spaced (variable frame rate, e.g. phone videos or screen recordings):
      ``variable_frame_rate`` is True, ``fps`` is a rate fine enough to place every frame, and
      each frame carries its time (``Frame.media_time_s``) so a recording keeps the timing.

    Args:
        path: the video file, or an http(s) URL of a finite video file.
        loop: start again at the end (indices and media times keep counting up).

    Raises:
        UserError: the file does not open or no frame of it decodes.
    """

    def __init__(self, path: str | os.PathLike, *, loop: bool = False):
        super().__init__()
        self._location = os.fspath(path)
        self._is_url = re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", self._location) is not None
        self.path = Path(self._location) if not self._is_url else None
        self.name = redact(self._location) if self._is_url else self.path.name
        self._loop = loop
        self._cap = self._open()
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        if not (math.isfinite(fps) and fps > 0):
            fps = FOLDER_DEFAULT_FPS
            self.warnings.append(f"{self.name} does not say its frame rate; assuming {fps:g} fps.")
        self.fps = float(fps)
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count = count if count > 0 else None
        self._interval_s: float | None = None  # constant frame rate: the time between frames
        times = _packet_times(self.path) if self.path is not None else None
        if times is not None and len(times) >= 2:
            self._read_timing(times)
        self.size = (int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self._time_offset_s = 0.0  # media time at the start of this pass (loops count on)
        self._pass_end_s = 0.0
        self._last_media_s: float | None = None
        self._pending = self._grab_next()
        self._pending_media_s = self._media_s
        if self._pending is None:
            self._cap.release()
            raise UserError(_not_readable(self.name if self._is_url else self.path))
        frames = f"{self.frame_count} frames" if self.frame_count else "unknown length"
        rate = f"variable frame rate, recorded at {self.fps:g} fps" if self.variable_frame_rate else f"{self.fps:g} fps"
        self.description = f"video {self.name} ({self.size[0]}x{self.size[1]}, {rate}, {frames})"
        if loop:
            self.description += ", looping"

    def _read_timing(self, times: list[float]) -> None:
        intervals = np.diff(np.asarray(times))
        intervals = intervals[intervals > 0]
        if not intervals.size:
            return
        median = float(np.median(intervals))
        steps = intervals / median
        regular = np.abs(steps - np.round(steps)) < 0.15
        single = np.abs(steps - 1) < 0.15
        if regular.mean() >= 0.98 and single.mean() >= 0.9:  # tolerate a glitch or two
            # Evenly spaced, perhaps with holes: the holes are frames lost before they reached us.
            interval = float(intervals[single].mean())  # the mean: timestamps are rounded to the time base
            self._interval_s = interval
            self.frame_count = int(round((times[-1] - times[0]) / interval)) + 1
            if abs(1.0 / interval - self.fps) > 0.01 * self.fps:
                self.fps = 1.0 / interval
        else:
            self.variable_frame_rate = True
            self.frame_count = len(times)
            # A grid fine enough that no two frames share a slot (at most 60 fps).
            self.fps = float(min(60, max(1, math.ceil(1.0 / float(intervals.min()) - 1e-6))))

    def _open(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(self._location, cv2.CAP_FFMPEG)
        if not cap.isOpened():
            cap.release()
            raise UserError(_not_readable(self.name if self._is_url else self.path))
        self._pass_position = 0  # frames of this pass read or counted as corrupt
        self._pass_delivered = 0
        return cap

    def _next_image(self) -> np.ndarray | None:
        image = self._grab_next()
        if image is None and self._loop and self._pass_delivered > 0:
            self._cap.release()
            self._cap = self._open()
            self._time_offset_s = self._pass_end_s
            self._last_media_s = None
            image = self._grab_next()
        return image

    def _grab_next(self) -> np.ndarray | None:
        failures = 0
        while True:
            if self._cap.grab():
                ok, image = self._cap.retrieve()
                if ok and image is not None and image.size:
                    media_s = self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
                    # Failures followed by a good frame were corrupt frames in the middle; with an even
                    # frame rate, a gap in the timestamps counts the frames the decoder left out unsaid.
                    lost = max(failures, self._gap_frames(media_s))
                    self.corrupt += lost
                    self._pass_position += lost + 1
                    self._pass_delivered += 1
                    self._last_media_s = media_s
                    self._media_s = self._time_offset_s + media_s
                    self._pass_end_s = self._media_s + (self._interval_s or 1.0 / self.fps)
                    return image
            failures += 1
            if self.frame_count is not None:
                remaining = self.frame_count - self._pass_position
                if failures >= remaining:
                    # The container promised more frames than decode: they are unreadable.
                    self.corrupt += max(remaining, 0)
                    return None
            elif failures >= _MAX_FAILED_GRABS:
                return None

    def _gap_frames(self, media_s: float) -> int:
        if self._interval_s is None or self._last_media_s is None:
            return 0
        return max(0, int(round((media_s - self._last_media_s) / self._interval_s)) - 1)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._cap.release()
            super().close()


class ImageFolderSource(_OrderedSource):
    """Images from a list of files, in the given order; unreadable ones are skipped and counted.

    Images of different sizes are fine: each frame has its own size. ``size`` is the size a
    recording of them should have: the most common one (the largest of those tied), read from
    the image headers up front; ``mixed_sizes`` says whether they differ.

    Args:
        paths: the image files, already sorted.
        fps: nominal rate for timing the output.
        loop: start again at the end.
        where: how to name the images in messages, e.g. "frames/".

    Raises:
        UserError: no image in ``paths`` can be read.
    """

    unrelated_frames = True  # separate pictures: each frame's map stands alone

    def __init__(self, paths: list[Path], *, fps: float = FOLDER_DEFAULT_FPS, loop: bool = False, where: str = ""):
        super().__init__()
        self.paths = list(paths)
        self.fps = float(fps)
        self.frame_count = len(self.paths)
        self._loop = loop
        self._position = 0
        self._pass_delivered = 0
        self._pending = self._next_image()
        self._pending_name = self._image_name
        if self._pending is None and len(self.paths) == 1:
            raise UserError(_not_readable(self.paths[0]))
        if self._pending is None:
            raise UserError(
                f"None of the {len(self.paths)} images in {where} could be read; check that they are "
                f"valid image files ({', '.join(IMAGE_SUFFIXES[:7])})."
            )
        first = (self._pending.shape[1], self._pending.shape[0])
        sizes = collections.Counter(_image_size(p) for p in self.paths) if len(self.paths) > 1 else collections.Counter()
        sizes.pop(None, None)
        self.mixed_sizes = len(sizes) > 1
        self.size = max(sizes, key=lambda wh: (sizes[wh], wh[0] * wh[1])) if self.mixed_sizes else first
        count = f"{len(self.paths)} images" if len(self.paths) > 1 else "1 image"
        self.description = f"{count} in {where} ({self.fps:g} fps)" + (", looping" if loop else "")
        if self.mixed_sizes:
            self.warnings.append(
                f"The images have {len(sizes)} different sizes; a recording is {self.size[0]}x{self.size[1]}, the most "
                f"common, with the others fitted inside (choose another with --size WxH)."
            )

    def _next_image(self) -> np.ndarray | None:
        while True:
            if self._position == len(self.paths):
                if not (self._loop and self._pass_delivered > 0):
                    return None
                self._position = 0
                self._pass_delivered = 0
            path = self.paths[self._position]
            self._position += 1
            image = _decode_image(path)
            if image is not None:
                self._pass_delivered += 1
                self._image_name = path.name
                return image
            self.corrupt += 1


class LiveSource(_SourceBase):
    """A capture thread where the latest frame wins, reopening the capture when it stalls.

    The thread reads as fast as the capture delivers. A frame that is not read before the next
    one arrives is dropped and counted in ``dropped``; ``read()`` never returns the same frame
    twice. After ``max_failed_reads`` failed reads in a row the capture is released and
    ``open_capture`` is called again after ``backoff_s[0]`` seconds, doubling up to
    ``backoff_s[1]``, while ``status`` says ``"reconnecting"``; no frame is made up meanwhile.

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
        self._thread = threading.Thread(
            target=self._run, args=(capture,), name=f"livecam capture: {description}", daemon=True
        )
        self._thread.start()

    @property
    def reconnects(self) -> int:
        """How many times the capture was reopened after the first open."""
        return max(0, self._opens - 1)

    @property
    def captured(self) -> int:
        """Frames captured so far (read or dropped)."""
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

    def _publish(self, image: np.ndarray) -> None:
        now = time.monotonic()
        # A copy: a CaptureLike may reuse its buffer, and a Frame must own its pixels.
        frame = Frame(_to_bgr(image), self._captured, now)
        with self._lock:
            if self._closed:
                return
            self._captured += 1
            self._last_frame_s = now
            if self._status == "reconnecting":
                self._status = "ok"
            if self._latest.put(frame) is not None:  # the reader did not take the last one in time
                self.dropped += 1

    def _set_status(self, status: Status) -> None:
        with self._lock:
            if not self._closed:
                self._status = status


class _SynthCapture:
    """A CaptureLike over ``AnimatedScene``, paced at ``fps`` by the wall clock."""

    def __init__(self, size: tuple[int, int], fps: float, seed: int):
        from livecam.demo import AnimatedScene  # lazy: keeps `import livecam.sources` light

        self._scene = AnimatedScene(size=size, fps=fps, seed=seed)
        self._period_s = 1.0 / fps
        self._start_s: float | None = None
        self._next = 0

    def isOpened(self) -> bool:
        return True

    def read(self) -> tuple[bool, np.ndarray]:
        now = time.monotonic()
        if self._start_s is None:
            self._start_s = now
        due = self._start_s + self._next * self._period_s
        if due > now:
            time.sleep(due - now)
        else:  # running late: jump to the frame due now, so the scene keeps real time
            self._next = max(self._next, int((now - self._start_s) / self._period_s))
        image = self._scene.frame(self._next)
        self._next += 1
        return True, image

    def release(self) -> None:
        pass


def open_source(
    spec: str | int | os.PathLike = 0,
    *,
    loop: bool = False,
    resolution: tuple[int, int] | None = None,
    fps: float | None = None,
    timeout_s: float = 10.0,
) -> FrameSource:
    """Open whatever ``spec`` names: camera index, video, image(s), folder, glob, URL or synth.

    Args:
        spec: see the module docstring for the forms it takes.
        loop: replay files and folders from the start when they end.
        resolution: (width, height) to ask a camera for, or the synth scene size. Files and
            streams keep their own (a note goes in ``warnings``).
        fps: rate to ask a camera for; the synth pace; the nominal rate of an image folder
            (default 30).
        timeout_s: how long a stream URL may take to answer.

    Returns:
        An open ``FrameSource``; close it (or use ``with``).

    Raises:
        UserError: the input does not exist, does not open or holds nothing readable.
    """
    if resolution is not None:
        resolution = _check_resolution(resolution)
    if fps is not None and not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise UserError(f"Expected fps > 0. Received: fps={fps!r}.")
    if not (isinstance(timeout_s, (int, float)) and timeout_s > 0):
        raise UserError(f"Expected timeout_s > 0. Received: timeout_s={timeout_s!r}.")
    if isinstance(spec, bool) or not isinstance(spec, (int, str, os.PathLike)):
        raise UserError(f"Expected a camera index, path, URL or 'synth' as input. Received: {spec!r}.")
    if isinstance(spec, int):
        return _open_camera(spec, resolution, fps)
    text = os.fspath(spec).strip()
    if not text:
        raise UserError("Expected an input: a camera index, a video, an image folder, a URL or synth. Received: ''.")
    if re.fullmatch(r"[0-9]+", text):
        return _open_camera(int(text), resolution, fps)
    if text.lower() == "synth" or text.lower().startswith("synth:"):
        return _open_synth(text, resolution, fps)
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", text)
    if scheme:
        if scheme.group(1).lower() not in STREAM_SCHEMES:
            raise UserError(
                f"Unsupported URL scheme {scheme.group(1)!r} in {redact(text)!r}; expected one of "
                f"{', '.join(s + '://' for s in STREAM_SCHEMES)}, or a local path."
            )
        source = _open_stream(text, timeout_s, loop=loop)
        _note_ignored(source, resolution, fps)
        return source
    path = Path(text).expanduser()
    if path.is_dir():
        images = [p for p in path.iterdir() if is_image_name(p) and p.is_file()]
        if not images:
            raise UserError(
                f"The folder {str(path)!r} has no images ({', '.join(IMAGE_SUFFIXES[:7])}); put images in it "
                f"or pass a video file, a camera index or a URL instead."
            )
        source = ImageFolderSource(_natural_sorted(images), fps=fps or FOLDER_DEFAULT_FPS, loop=loop, where=f"{path}")
    elif path.is_file():
        if is_image_name(path):
            source = ImageFolderSource([path], fps=fps or FOLDER_DEFAULT_FPS, loop=loop, where=f"{path}")
        else:
            source = VideoFileSource(path, loop=loop)
            _note_ignored(source, None, fps)
    elif os.path.lexists(path):
        raise UserError(_not_a_regular_file(path))
    elif re.search(r"[*?[]", text):
        matches = [Path(p) for p in glob.glob(os.path.expanduser(text))]
        images = [p for p in matches if is_image_name(p) and p.is_file()]
        if not images:
            raise UserError(
                f"No images match {text!r}; check the pattern (for example 'frames/*.png') and that the files exist."
            )
        source = ImageFolderSource(_natural_sorted(images), fps=fps or FOLDER_DEFAULT_FPS, loop=loop, where=repr(text))
    else:
        raise UserError(
            f"The input {text!r} does not exist; check the path, or pass a camera index (0), a folder or "
            f"glob of images, a URL (rtsp://..., http://...) or synth."
        )
    _note_ignored(source, resolution, None)
    return source


def list_cameras(max_index: int = 10) -> list[dict]:
    """Probe camera indices ``0 .. max_index - 1`` and describe the ones that open.

    Returns:
        One dict per camera: ``index``, ``width``, ``height``, ``fps``, ``fourcc``, ``backend``.
        An empty list when there is none.
    """
    cameras = []
    with _quiet_opencv():
        for index in range(max_index):
            cap = cv2.VideoCapture(index)
            try:
                if cap.isOpened():
                    width, height, fps, fourcc = _negotiated(cap)
                    cameras.append(
                        dict(index=index, width=width, height=height, fps=fps, fourcc=fourcc, backend=cap.getBackendName())
                    )
            finally:
                cap.release()
    return cameras


def _open_camera(index: int, resolution: tuple[int, int] | None, fps: float | None) -> LiveSource:
    if index < 0:
        raise UserError(f"Expected a camera index >= 0. Received: {index}.")
    if index > MAX_CAMERA_INDEX:
        raise UserError(
            f"Camera index {index} is out of range: expected 0 to {MAX_CAMERA_INDEX}; "
            f"to read a file with that name, pass it as ./{index}."
        )

    def open_capture() -> cv2.VideoCapture:
        with _quiet_opencv():
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
    width, height, got_fps, fourcc = _negotiated(cap)
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


def _open_stream(url: str, timeout_s: float, *, loop: bool = False) -> LiveSource | VideoFileSource:
    timeout_ms = int(timeout_s * 1000)
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms]

    def open_capture() -> cv2.VideoCapture:
        with _quiet_opencv():
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
    width, height, fps, _ = _negotiated(cap)
    rate = f" {fps:g} fps" if fps else ""
    return LiveSource(
        open_capture,
        capture=cap,
        description=f"stream {redact(url)} at {width}x{height}{rate}",
        fps=fps,
        size=(width, height) if width and height else None,
    )


def _open_synth(text: str, resolution: tuple[int, int] | None, fps: float | None) -> LiveSource:
    size, seed = resolution or SYNTH_DEFAULT_SIZE, 0
    fps = fps or 30.0
    options = text.partition(":")[2]
    for item in filter(None, (s.strip() for s in options.split(","))):
        if m := re.fullmatch(r"([0-9]+)x([0-9]+)", item):
            size = (int(m.group(1)), int(m.group(2)))
        elif m := re.fullmatch(r"seed=([0-9]+)", item):
            seed = int(m.group(1))
        elif (m := re.fullmatch(r"fps=([0-9]*\.?[0-9]+)", item)) and 0 < float(m.group(1)) <= 1000:
            fps = float(m.group(1))
        else:
            raise UserError(
                f"Unknown synth option {item!r}; expected synth:[WxH][,seed=N][,fps=F] with F in (0, 1000], "
                f"for example synth:640x480,seed=3."
            )
    if min(size) < 32:
        raise UserError(f"Expected a synth size of at least 32x32. Received: {size[0]}x{size[1]}")
    if size[0] > SYNTH_MAX_SIZE[0] or size[1] > SYNTH_MAX_SIZE[1]:
        raise UserError(
            f"Expected a synth size of at most {SYNTH_MAX_SIZE[0]}x{SYNTH_MAX_SIZE[1]}, as for --resolution. "
            f"Received: {size[0]}x{size[1]}"
        )
    capture = _SynthCapture(size, fps, seed)
    return LiveSource(
        lambda: capture,
        capture=capture,
        description=f"synthetic scene {size[0]}x{size[1]} at {fps:g} fps (seed {seed})",
        fps=fps,
        size=size,
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


def _negotiated(cap: cv2.VideoCapture) -> tuple[int, int, float | None, str]:
    width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    fps = cap.get(cv2.CAP_PROP_FPS)
    code = int(cap.get(cv2.CAP_PROP_FOURCC))
    fourcc = "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4)).strip("\0 ") if code > 0 else ""
    return width, height, (float(fps) if math.isfinite(fps) and fps > 0 else None), fourcc


def _note_ignored(source: _SourceBase, resolution: tuple[int, int] | None, fps: float | None) -> None:
    if resolution is not None:
        source.warnings.append(
            f"The requested resolution {resolution[0]}x{resolution[1]} applies to cameras and synth only; "
            f"{source.description} keeps its own."
        )
    if fps is not None:
        source.warnings.append(
            f"The requested {fps:g} fps applies to cameras, synth and image folders only; "
            f"{source.description} keeps its own."
        )


def _check_resolution(resolution: tuple[int, int]) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in resolution)
    except (TypeError, ValueError):
        width = height = 0
    if width <= 0 or height <= 0 or (width, height) != tuple(resolution):
        raise UserError(
            f"Expected resolution as (width, height), two positive integers. Received: resolution={resolution!r}."
        )
    return width, height


def _packet_times(path: Path, timeout_s: float = 60.0) -> list[float] | None:
    """Presentation times (s) of every video packet of a local file, sorted; read without decoding.

    None when ffmpeg cannot tell (no ffmpeg, no video stream, too slow).
    """
    try:
        import imageio_ffmpeg

        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", f"file:{path}",
               "-map", "0:v:0", "-c", "copy", "-f", "framecrc", "-"]  # fmt: skip
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_s)
    except (OSError, RuntimeError, subprocess.SubprocessError):
        return None
    text = done.stdout.decode(errors="replace")
    base = re.search(r"^#tb 0: (\d+)/(\d+)", text, re.MULTILINE)
    if done.returncode != 0 or base is None:
        return None
    tick = int(base.group(1)) / int(base.group(2))
    times = [int(m.group(1)) * tick for m in re.finditer(r"^0,\s*-?\d+,\s*(-?\d+),", text, re.MULTILINE)]
    return sorted(times) or None


def _image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the image's header, without decoding it; None if unreadable."""
    from PIL import Image  # lazy: only image folders need it

    try:
        with Image.open(path) as image:
            if image.format in ("JPEG", "MPO", "TIFF", "WEBP", "PNG"):
                # OpenCV turns images as their EXIF orientation says; so must the size.
                orientation = image.getexif().get(0x0112, 1)
                if orientation in (5, 6, 7, 8):
                    return (image.height, image.width)
            return image.size
    except Exception:  # any unreadable header: the image counts as corrupt later, if it is
        return None


def _decode_image(path: Path) -> np.ndarray | None:
    try:
        # imdecode over np.fromfile, not imread: imread fails on non-ASCII paths on Windows.
        data = np.fromfile(path, dtype=np.uint8)
        return cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    except (OSError, cv2.error):
        return None


def _to_bgr(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        return cv2.cvtColor(image.astype(np.uint8, copy=False), cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image.astype(np.uint8, copy=False), cv2.COLOR_BGRA2BGR)
    return np.array(image, dtype=np.uint8, copy=True)


def is_image_name(path: Path) -> bool:
    """Whether a folder or glob source reads ``path``: an image suffix, and not a dot file."""
    # Dot files include macOS "._photo.jpg" metadata, which would only count as corrupt.
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def _natural_sorted(paths: list[Path]) -> list[Path]:
    def key(path: Path) -> list:
        # re.split with a group puts the ASCII digit runs at odd positions. Not str.isdigit(), which
        # is also true of "²" and other digits that int() refuses.
        parts = re.split(r"([0-9]+)", str(path))
        return [int(part) if i % 2 else part.lower() for i, part in enumerate(parts)]

    return sorted(paths, key=key)


def _not_readable(path: Path) -> str:
    return (
        f"{str(path)!r} is not a readable video or image (corrupt, or a type OpenCV cannot decode); check that it "
        f"plays in a video player, or convert it to MP4 (H.264) or PNG."
    )


def _not_a_regular_file(path: Path) -> str:
    """Why ``path``, which exists as a name, is no input: a device, a pipe, a socket, a broken link."""
    try:
        mode = path.stat().st_mode
    except OSError:
        if path.is_symlink():
            return f"The input {str(path)!r} is a link to {os.readlink(path)!r}, which does not exist; fix the link or pass the file itself."
        return f"The input {str(path)!r} cannot be read (no permission to look at it); check its permissions."
    camera = re.fullmatch(r"/dev/video([0-9]+)", os.path.realpath(path))
    if stat.S_ISCHR(mode) and camera:
        return f"The input {str(path)!r} is a camera device; pass its index instead: --source {int(camera.group(1))}."
    kinds = [
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device (a disk)"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISSOCK, "a socket"),
    ]
    kind = next((name for test, name in kinds if test(mode)), "an unusual kind of file")
    return (
        f"The input {str(path)!r} is {kind}, not a video or image file; pass a video file, a folder or glob of "
        f"images, a camera index (0), a URL (a stream can come in as udp://... or rtsp://...) or synth."
    )


def _release(capture: CaptureLike) -> None:
    with contextlib.suppress(Exception):  # releasing a capture that already failed may raise
        capture.release()


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's own warnings (e.g. "can't open camera by index"): our message says it better."""
    logging = cv2.utils.logging
    level = logging.getLogLevel()
    logging.setLogLevel(min(level, logging.LOG_LEVEL_ERROR))  # never louder than asked (livecam.quiet: silent)
    try:
        yield
    finally:
        logging.setLogLevel(level)
