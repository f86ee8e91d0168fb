"""What every source is: the ``Frame`` it hands out, the ``FrameSource`` protocol, and the bases.

``FrameSource`` names every attribute the viewer's loop reads, so the loop reads them directly.
``SourceBase`` gives each of them its default; ``OrderedSource`` is the base of the readers
that hand out every frame in order (files and folders).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

Status = Literal["ok", "reconnecting", "ended"]

# The nominal rate of what does not say its own: image folders, and videos without a frame rate.
FOLDER_DEFAULT_FPS = 30.0


@dataclass(frozen=True)
class Frame:
    """One picture from a source.

    Attributes:
        image_bgr: uint8 array (height, width, 3), BGR. Owned by this frame: no later read
            writes into it.
        index: 0, 1, 2... in delivery order; for live sources the capture counter, so a gap
            between two frames is the number of frames dropped in between (across a pause,
            which drops nothing, it is at most 1: the frame set aside when the pause began).
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
    mixed_sizes: bool  # folders whose images differ in size: ``size`` is the one chosen to record at
    dropped: int  # frames captured but never read (latest frame wins); a pause drops nothing
    corrupt: int  # unreadable frames skipped
    description: str  # e.g. "camera 0 at 1280x720 30 fps (MJPG)"
    warnings: list[str]  # where what was negotiated differs from what was asked

    @property
    def status(self) -> Status: ...  # "ok" | "reconnecting" | "ended"

    @property
    def paused(self) -> bool: ...  # as last set by set_paused

    def read(self, timeout_s: float | None = None) -> Frame | None:
        """The next frame. None at the end (``status == "ended"``) or, for live sources, when no
        new frame came within ``timeout_s`` (``status`` says why; call again)."""

    def set_paused(self, paused: bool) -> None:
        """The reader stops reading for a while (True) or goes on (False). A live source then
        counts none of the frames it captures meanwhile as dropped, and hands out none captured
        before the pause ended: the first frame read after it was captured after it. Files and
        folders just wait where they are."""

    def close(self) -> None: ...  # idempotent


class SourceBase:
    """The defaults of every ``FrameSource`` attribute, the context manager and the iterator."""

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
        self._paused = False

    @property
    def status(self) -> Status:
        return self._status

    @property
    def paused(self) -> bool:
        return self._paused

    def read(self, timeout_s: float | None = None) -> Frame | None:
        raise NotImplementedError

    def set_paused(self, paused: bool) -> None:
        self._paused = bool(paused)  # nothing else: a file that is not read waits where it is

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


class OrderedSource(SourceBase):
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


def not_readable(path: Path | str) -> str:
    """The sentence for a file that opens as nothing: a video or image that does not decode."""
    return (
        f"{str(path)!r} is not a readable video or image (corrupt, or a type OpenCV cannot decode); check that it "
        f"plays in a video player, or convert it to MP4 (H.264) or PNG."
    )
