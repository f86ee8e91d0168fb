"""Video files: every frame in order, with the timing the file's packets tell.

Before decoding, the packets' timestamps are read with ffmpeg (no decoding) to learn how many
frames the file really holds and whether they are evenly spaced: a gap in an even rate is a
frame lost (counted in ``corrupt``), and an uneven rate is kept frame by frame
(``Frame.media_time_s``) so that a recording keeps the timing.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
from pathlib import Path

import cv2
import numpy as np

from livecam.errors import UserError, redact
from livecam.sources.protocol import FOLDER_DEFAULT_FPS, OrderedSource, not_readable

__all__ = ["VideoFileSource"]

# Without a trustworthy frame count, this many unreadable frames in a row mean the end.
_MAX_FAILED_GRABS = 50


class VideoFileSource(OrderedSource):
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
            raise UserError(not_readable(self.name if self._is_url else self.path))
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
            raise UserError(not_readable(self.name if self._is_url else self.path))
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
