"""The recorder: frames into an H.264 video that plays anywhere, and survives however the program ends.

``VideoWriter`` pipes raw BGR frames into ffmpeg (the binary that ``imageio_ffmpeg`` ships,
with libx264) and writes H.264 yuv420p video that browsers play. Nothing the user owns is
destroyed and what was recorded survives however the program ends:

- The video is written under a temporary name beside the target (``rec.partial-1a2b3c.mp4``)
  and renamed onto the target only when it is finished, so an existing file (``--overwrite``)
  is replaced in one step, never truncated while something reads it. If another program wrote
  the target meanwhile, that file is left alone and the recording gets a free name instead.
- While recording, MP4 and MOV files are fragmented, so a file cut short by anything still
  plays up to its last complete second; a clean end copies them, without re-encoding, into an
  ordinary fast-start MP4. A recording cut short by a kill of this process stays under its
  temporary name, playable. ffmpeg runs in its own session, away from the terminal's Ctrl-C.
- Frames go to ffmpeg from a writer thread through a bounded queue (``EncoderFeed``), so ``write()`` never waits
  on a stuck encoder (a stopped process, a hung disk) for longer than ``stall_s``: it then
  stops the recording and says so, and ``close()`` is bounded the same way.
- A failed recording reports how many frames the saved file really holds, counted by decoding it.
- The writer checks the free space at the start and about once a second, and stops cleanly
  below ``min_free_bytes``.

Odd frame sizes, which yuv420p cannot hold, are padded by one pixel at the right or bottom
edge (a copy of the edge pixels): nothing of the picture is lost. Frames larger than H.264
level 5.2 allows (about 4096x2304, the most that browsers' decoders commonly take) are scaled
down to fit, and ``warnings`` says so once.

When ffmpeg cannot start, the writer falls back to OpenCV's ``mp4v`` writer and says so with
``warnings.warn(..., RuntimeWarning)`` (also kept in ``VideoWriter.warnings``).

The encoders, the fast-start copy and the frame count are ``livecam.viewer.encoders``; the
temporary and final names come from ``livecam.viewer.safe_files``.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from livecam.errors import UserError, check_bgr_image
from livecam.trust.stamp import stamp_text
from livecam.viewer.encoders import EncoderFeed, FfmpegEncoder, OpenCVEncoder, decodable_frames, playable_size, remux
from livecam.viewer.safe_files import (
    SinkError,
    check_video_output,
    file_identity,
    free_bytes,
    link_to_free_name,
    remove_files,
    reserve_beside,
)

__all__ = ["VideoWriter", "playable_size"]

MIN_FREE_BYTES = 64 * 2**20
STALL_S = 4.0  # an encoder that takes no frame for this long is stuck


class VideoWriter:
    """Write frames to an H.264 MP4 (or .mov, .m4v, .mkv) file.

    Two ways to time the video:

    - ``live=False`` (files): every frame is written exactly once at ``fps``, so the output
      has exactly as many frames as went in.
    - ``live=True`` (cameras, and files whose frames are unevenly spaced): the file runs at
      constant ``fps`` but follows the timestamps given to ``write``: frame n lands at
      ``timestamp_s - first timestamp``, repeating the previous frame over gaps and keeping only
      the latest of frames that share one output slot. The video lasts as long as the input did.

    The file appears at ``path`` when ``close()`` finishes it (see the module docstring);
    ``saved_path`` says where it went, which differs from ``path`` only when another program
    wrote ``path`` during the recording.

    Args:
        path: the output file; its folder must exist.
        fps: frames per second of the output.
        size: (width, height) of the video; default: the first frame's. Frames of another
            size are scaled to fit inside it, keeping their aspect ratio (black borders).
        live: follow the timestamps (see above).
        overwrite: replace an existing file.
        min_free_bytes: refuse to start, or stop recording with a playable file, when the
            disk has less free.
        stall_s: an encoder that takes no frame for this long is stuck: the recording stops.
        made_with: how the video was made (``livecam.trust.stamp``), written as ``stamp_text``
            into the file's ``comment`` tag (ffmpeg only: OpenCV's fallback writes no tags).

    Raises:
        UserError: the path is unusable (folder missing or read-only, file exists, wrong
            type), or the disk has less than ``min_free_bytes`` free.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        fps: float,
        size: tuple[int, int] | None = None,
        live: bool = False,
        overwrite: bool = False,
        min_free_bytes: int = MIN_FREE_BYTES,
        stall_s: float = STALL_S,
        made_with: dict[str, Any] | None = None,
    ):
        if not (isinstance(fps, (int, float, Fraction)) and math.isfinite(fps) and fps > 0):
            raise UserError(f"Expected fps > 0 for the video. Received: fps={fps!r}.")
        if size is not None and not (len(size) == 2 and all(isinstance(v, (int, np.integer)) and v > 0 for v in size)):
            raise UserError(f"Expected size as (width, height), two positive integers. Received: size={size!r}.")
        self.path = check_video_output(path, overwrite=overwrite)
        self.fps = float(fps)
        self.live = live
        self.overwrite = overwrite
        self.min_free_bytes = min_free_bytes
        self.stall_s = float(stall_s)
        self._comment = None if made_with is None else stamp_text(made_with)
        self.backend: str | None = None  # "ffmpeg" or "opencv" once the first frame arrived
        self.warnings: list[str] = []
        self.saved_path: Path | None = None  # where the finished file is, once closed
        self.frames_received = 0
        self.repeated = 0  # live mode: extra copies written to fill gaps
        self.dropped = 0  # live mode: frames replaced by a later one in the same slot
        self.size: tuple[int, int] | None = None
        if size is not None:
            self._set_size((int(size[0]), int(size[1])))
        self._target_before = file_identity(self.path)  # to tell, at the end, whether someone else wrote it
        free = free_bytes(self.path.parent)
        if free is not None and free < min_free_bytes:
            raise UserError(
                f"Only {free / 2**20:.0f} MB are free on the disk of {str(self.path.parent)!r}, and recording needs "
                f"{min_free_bytes / 2**20:.0f} MB; nothing was recorded. Free some space or record to another disk."
            )
        self._partial: Path | None = None
        self._feed: EncoderFeed | None = None  # the encoder and its writer thread, from the first frame on
        self._stuck = False  # the encoder stopped taking frames and was stopped
        self._pending: np.ndarray | None = None
        self._pending_slot = 0
        self._first_timestamp_s: float | None = None
        self._check_every = max(1, round(self.fps))
        self._sent = 0
        self._error: str | None = None
        self._closed = False
        self._warnings_taken = 0

    def write(self, frame_bgr: np.ndarray, timestamp_s: float | None = None) -> None:
        """Add one frame.

        Args:
            frame_bgr: uint8 (height, width, 3) BGR. Not modified; not kept after the call.
            timestamp_s: in live mode, the frame's time in seconds (any clock that only moves
                forward: capture time, or the frame's time in its file); default: now.

        Raises:
            SinkError: writing failed; the recording is closed and the message says what the
                saved file holds.
        """
        if self._closed:
            raise SinkError(self._error or f"The video {self.path} is closed; open a new VideoWriter to record again.")
        image = check_bgr_image(frame_bgr)
        if self.size is None:
            self._set_size((image.shape[1], image.shape[0]))
        image = _fit(image, self.size)
        self.frames_received += 1
        if not self.live:
            self._encode(image if image is not frame_bgr else image.copy())
            return
        if timestamp_s is None:
            timestamp_s = time.monotonic()
        if self._first_timestamp_s is None:
            self._first_timestamp_s = timestamp_s
        slot = max(0, round((timestamp_s - self._first_timestamp_s) * self.fps))
        if self._pending is not None and slot <= self._pending_slot:
            self.dropped += 1  # same output slot as the pending frame: the later one wins
            slot = self._pending_slot
        elif self._pending is not None:
            for _ in range(slot - self._pending_slot):  # the pending frame lasts until this one
                self._encode(self._pending)
            self.repeated += slot - self._pending_slot - 1
        # A copy: the caller may reuse its buffer before the next frame comes.
        self._pending = image if image is not frame_bgr else image.copy()
        self._pending_slot = slot

    def close(self) -> None:
        """Write what is pending, finish the file and move it to ``path`` (idempotent).

        Bounded: an encoder that stops taking frames is stopped after ``stall_s``.

        Raises:
            SinkError: the recording could not be finished; the message says what was kept.
        """
        if self._closed:
            return
        try:
            if self._pending is not None and self._writer_error() is None:
                self._encode(self._pending)
        finally:
            self._pending = None
            self._closed = True
        if self._feed is None:
            return
        detail = self._stop_encoder(kill=False)
        if self._stuck:
            raise self._salvage(self._stuck_text())
        if detail or self._writer_error() is not None:
            raise self._salvage(f"{self._writer_error_text() or f'ffmpeg could not finish {self.path}'}{detail}")
        self._publish(check=False)

    @property
    def frames_written(self) -> int:
        """Frames the encoder took, repeats included."""
        return self._feed.frames_written if self._feed is not None else 0

    def new_warnings(self) -> list[str]:
        """The entries of ``warnings`` added since the last call (for a caller that prints them once)."""
        fresh = self.warnings[self._warnings_taken :]
        self._warnings_taken = len(self.warnings)
        return fresh

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ------------------------------------------------------------------ feeding the encoder

    def _set_size(self, size: tuple[int, int]) -> None:
        playable = playable_size(size)
        if playable != size:
            self._warn(
                f"Recording {self.path.name} at {playable[0]}x{playable[1]} instead of {size[0]}x{size[1]}: larger H.264 "
                f"video does not play in browsers and most players."
            )
        self.size = playable

    def _warn(self, message: str) -> None:
        self.warnings.append(message)

    def _encode(self, image: np.ndarray) -> None:
        if self._sent % self._check_every == 0:
            self._check_free_space()
        if self._feed is None:
            self._start(image.shape[1], image.shape[0])
        while True:
            self._check_writer()
            if self._feed.put(image, timeout_s=0.05):
                break
        self._sent += 1

    def _start(self, width: int, height: int) -> None:
        self._partial = reserve_beside(self.path, "partial")
        try:
            encoder = FfmpegEncoder(self._partial, (width, height), self.fps, self._comment)
        except (OSError, RuntimeError) as error:
            message = (
                f"Could not start ffmpeg ({error}); recording {self.path} with OpenCV's mp4v codec instead, "
                f"which browsers may not play and which is lost if the program is killed."
            )
            warnings.warn(message, RuntimeWarning, stacklevel=5)
            self._warn(message)
            try:
                encoder = OpenCVEncoder(self._partial, (width, height), self.fps, self._comment)
            except SinkError:
                remove_files([self._partial])
                raise
        self.backend = encoder.name
        name = f"livecam recorder: {self.path.name}"
        self._feed = EncoderFeed(encoder, width * height * 3, stall_s=self.stall_s, name=name)

    def _check_writer(self) -> None:
        """Raise (and stop the recording) if the encoder failed or is stuck."""
        if self._writer_error() is not None:  # ffmpeg is gone or going: wait for its last words
            self._closed, self._pending = True, None
            detail = self._stop_encoder(kill=False)
            raise self._salvage(self._writer_error_text() + detail)
        if self._feed.stalled():
            self._closed, self._pending, self._stuck = True, None, True
            self._stop_encoder(kill=True)
            raise self._salvage(self._stuck_text())

    def _stuck_text(self) -> str:
        return (
            f"The encoder took no frame for {self.stall_s:g} s (a hung disk or a stopped ffmpeg), so recording "
            f"{self.path} was stopped"
        )

    def _writer_error(self) -> SinkError | None:
        return self._feed.error if self._feed is not None else None

    def _writer_error_text(self) -> str:
        error = self._writer_error()
        return f"Recording {self.path} failed: {error}" if error is not None else ""

    def _check_free_space(self) -> None:
        free = free_bytes(self.path.parent)
        if free is not None and free < self.min_free_bytes:
            self._closed, self._pending = True, None
            if self._feed is None:
                raise SinkError(
                    f"Did not record {self.path}: only {free / 2**20:.0f} MB left on the disk; nothing was recorded "
                    f"and no file was written. Free some space and record again."
                )
            detail = self._stop_encoder(kill=False)
            raise self._salvage(f"Stopped recording {self.path}: only {free / 2**20:.0f} MB left on the disk{detail}")

    def _stop_encoder(self, *, kill: bool) -> str:
        """End the writer thread and the encoder, within bounds; '' or why ffmpeg failed."""
        if self._feed is None:
            return ""
        detail, stuck = self._feed.stop(kill=kill)
        self._stuck = self._stuck or stuck
        return detail

    # ------------------------------------------------------------------ finishing the file

    def _salvage(self, reason: str) -> SinkError:
        """After a failure: keep what decodes, and the error that says how much that is."""
        frames = decodable_frames(self._partial) if self._partial is not None else 0
        if frames == 0:
            remove_files([self._partial] if self._partial is not None else [])
            kept = "no frame could be saved, so no file was left"
            if self._target_before is not None:
                kept += f" and the existing {self.path.name} was not touched"
        else:
            self._publish(check=True)
            saved = self.saved_path
            if frames is None:
                kept = f"what was written is in {saved}, but it could not be checked"
            else:
                kept = f"{saved} keeps the first {frames} frames ({frames / self.fps:.1f} s; checked by decoding it)"
        self._error = f"{reason.rstrip('.')}; {kept}."
        return SinkError(self._error)

    def _publish(self, *, check: bool) -> None:
        """Make the finished recording an ordinary fast-start file and move it to ``path``."""
        final = self._partial
        try:
            final = remux(self._partial, check=check)
        finally:
            try:
                self.saved_path = self._move_into_place(final)
            except OSError as error:  # the folder turned read-only, say: the recording stays where it is
                self.saved_path = final
                self._warn(f"Could not rename the recording to {self.path} ({error.strerror or error}); it is in {final}.")
            if final != self._partial:
                remove_files([self._partial])
            self._partial = None

    def _move_into_place(self, source: Path) -> Path:
        target = self.path
        if file_identity(target) != self._target_before:
            moved = link_to_free_name(source, target)
            self._warn(
                f"Another program wrote {target} during this recording; it was left as it is, and this recording "
                f"was saved as {moved}."
            )
            return moved
        if self._target_before is not None:
            os.replace(source, target)  # the one step that replaces the old file
            return target
        return link_to_free_name(source, target)


def _fit(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` letterboxed into ``size``, then padded to even width and height."""
    width, height = size
    if (image.shape[1], image.shape[0]) != (width, height):
        scale = min(width / image.shape[1], height / image.shape[0])
        new_w, new_h = max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))
        resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        canvas = np.zeros((height, width, 3), np.uint8)
        top, left = (height - new_h) // 2, (width - new_w) // 2
        canvas[top : top + new_h, left : left + new_w] = resized
        image = canvas
    if width % 2 or height % 2:
        image = cv2.copyMakeBorder(image, 0, height % 2, 0, width % 2, cv2.BORDER_REPLICATE)
    return image
