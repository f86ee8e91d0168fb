"""Frame sinks: a video file, snapshots, an OpenCV window. Each is a context manager.

``VideoWriter`` pipes raw BGR frames into ffmpeg (the binary that ``imageio_ffmpeg`` ships,
with libx264) and writes H.264 yuv420p video that browsers play. Nothing the user owns is
destroyed and what was recorded survives however the program ends:

- The video is written under a temporary name beside the target (``rec.partial-1a2b3c.mp4``)
  and renamed onto the target only when it is finished, so an existing file (``--overwrite``)
  is replaced in one step, never truncated while something reads it. If another program wrote
  the target meanwhile, that file is left alone and the recording gets a free name instead.
- While recording, MP4 and MOV files are fragmented (a self-contained piece about every
  second, each starting with a keyframe), so a file cut short by anything (ffmpeg killed, the
  disk filled by another program, this process and ffmpeg killed together) still plays up to
  its last complete second. When the recording ends cleanly the fragments are copied, without
  re-encoding, into an ordinary MP4 with its index at the front (``+faststart``), which every
  player and browser streams. A recording cut short by a kill of this process stays under its
  temporary name, playable.
- ffmpeg runs in its own session (``start_new_session=True``), so the Ctrl-C that a terminal
  sends to the whole foreground process group never reaches it. ``imageio_ffmpeg.write_frames``
  shields SIGINT too, but with ``preexec_fn``, which is unsafe in a threaded program (ours is).
- Frames go to ffmpeg from a writer thread through a bounded queue, so ``write()`` never waits
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
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import io
import json
import math
import os
import queue
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Protocol

import cv2
import imageio_ffmpeg
import numpy as np

from livecam.errors import UserError, check_bgr_image

__all__ = [
    "FrameSink",
    "SinkError",
    "SnapshotWriter",
    "VideoWriter",
    "WindowSink",
    "check_output",
    "gui_available",
    "write_file_atomic",
]

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv")
MIN_FREE_BYTES = 64 * 2**20
STALL_S = 4.0  # an encoder that takes no frame for this long is stuck
_FINISH_S = 10.0  # ffmpeg's time to encode what it holds and end the file after its input closed
_QUEUE_BYTES = 64 * 2**20  # frames waiting for the encoder, at most
# H.264 level 5.2 (ITU-T H.264 Table A-1): at most 36,864 macroblocks of 16x16 a frame (4096x2304),
# and no side longer than sqrt(8 * 36,864) macroblocks; what browsers' decoders commonly accept.
_MAX_MACROBLOCKS = 36_864
_MAX_SIDE_MACROBLOCKS = 543


class SinkError(RuntimeError):
    """Writing failed (disk full, encoder gone or stuck). The message says what the saved file holds."""


class FrameSink(Protocol):
    """Where rendered frames go. Sinks are context managers; ``close()`` is idempotent."""

    def write(self, frame_bgr: np.ndarray, timestamp_s: float | None = None) -> None: ...
    def close(self) -> None: ...


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
    ):
        if not (isinstance(fps, (int, float, Fraction)) and math.isfinite(fps) and fps > 0):
            raise UserError(f"Expected fps > 0 for the video. Received: fps={fps!r}.")
        if size is not None and not (
            len(size) == 2 and all(isinstance(v, (int, np.integer)) and v > 0 for v in size)
        ):
            raise UserError(f"Expected size as (width, height), two positive integers. Received: size={size!r}.")
        self.path = check_video_output(path, overwrite=overwrite)
        self.fps = float(fps)
        self.live = live
        self.overwrite = overwrite
        self.min_free_bytes = min_free_bytes
        self.stall_s = float(stall_s)
        self.backend: str | None = None  # "ffmpeg" or "opencv" once the first frame arrived
        self.warnings: list[str] = []
        self.saved_path: Path | None = None  # where the finished file is, once closed
        self.frames_received = 0
        self.frames_written = 0  # frames handed to the encoder, repeats included
        self.repeated = 0  # live mode: extra copies written to fill gaps
        self.dropped = 0  # live mode: frames replaced by a later one in the same slot
        self.size: tuple[int, int] | None = None
        if size is not None:
            self._set_size((int(size[0]), int(size[1])))
        self._target_before = _identity(self.path)  # to tell, at the end, whether someone else wrote it
        free = _free_bytes(self.path.parent)
        if free is not None and free < min_free_bytes:
            raise UserError(
                f"Only {free / 2**20:.0f} MB are free on the disk of {str(self.path.parent)!r}, and recording needs "
                f"{min_free_bytes / 2**20:.0f} MB; nothing was recorded. Free some space or record to another disk."
            )
        self._partial: Path | None = None
        self._encoder: _FfmpegEncoder | _OpenCVEncoder | None = None
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        self._busy_since: float | None = None  # when the writer thread began handing over its current frame
        self._writer_error: SinkError | None = None
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
            if self._pending is not None and self._writer_error is None:
                self._encode(self._pending)
        finally:
            self._pending = None
            self._closed = True
        if self._encoder is None:
            return
        detail = self._stop_encoder(kill=False)
        if self._stuck:
            raise self._salvage(self._stuck_text())
        if detail or self._writer_error is not None:
            raise self._salvage(f"{self._writer_error_text() or f'ffmpeg could not finish {self.path}'}{detail}")
        self._publish(check=False)

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
        if self._encoder is None:
            self._start(image.shape[1], image.shape[0])
        while True:
            self._check_writer()
            try:
                self._queue.put(image, timeout=0.05)
                break
            except queue.Full:
                continue
        self._sent += 1

    def _start(self, width: int, height: int) -> None:
        self._partial = _reserve_beside(self.path, "partial")
        try:
            encoder = _FfmpegEncoder(self._partial, (width, height), self.fps)
        except (OSError, RuntimeError) as error:
            message = (
                f"Could not start ffmpeg ({error}); recording {self.path} with OpenCV's mp4v codec instead, "
                f"which browsers may not play and which is lost if the program is killed."
            )
            warnings.warn(message, RuntimeWarning, stacklevel=5)
            self._warn(message)
            try:
                encoder = _OpenCVEncoder(self._partial, (width, height), self.fps)
            except SinkError:
                _remove([self._partial])
                raise
        self._encoder = encoder
        self.backend = encoder.name
        self._queue = queue.Queue(maxsize=max(2, _QUEUE_BYTES // (width * height * 3)))
        self._thread = threading.Thread(target=self._writer_loop, name=f"livecam recorder: {self.path.name}", daemon=True)
        self._thread.start()

    def _writer_loop(self) -> None:
        while True:
            image = self._queue.get()
            if image is None:
                return
            self._busy_since = time.monotonic()
            try:
                self._encoder.write(image)
            except SinkError as error:
                self._writer_error = error
                return
            finally:
                self._busy_since = None
            self.frames_written += 1

    def _stalled(self) -> bool:
        busy_since = self._busy_since
        return busy_since is not None and time.monotonic() - busy_since > self.stall_s

    def _check_writer(self) -> None:
        """Raise (and stop the recording) if the encoder failed or is stuck."""
        if self._writer_error is not None:  # ffmpeg is gone or going: wait for its last words
            self._closed, self._pending = True, None
            detail = self._stop_encoder(kill=False)
            raise self._salvage(self._writer_error_text() + detail)
        if self._stalled():
            self._closed, self._pending, self._stuck = True, None, True
            self._stop_encoder(kill=True)
            raise self._salvage(self._stuck_text())

    def _stuck_text(self) -> str:
        return (
            f"The encoder took no frame for {self.stall_s:g} s (a hung disk or a stopped ffmpeg), so recording "
            f"{self.path} was stopped"
        )

    def _writer_error_text(self) -> str:
        return f"Recording {self.path} failed: {self._writer_error}" if self._writer_error is not None else ""

    def _check_free_space(self) -> None:
        free = _free_bytes(self.path.parent)
        if free is not None and free < self.min_free_bytes:
            self._closed, self._pending = True, None
            if self._encoder is None:
                raise SinkError(
                    f"Did not record {self.path}: only {free / 2**20:.0f} MB left on the disk; nothing was recorded "
                    f"and no file was written. Free some space and record again."
                )
            detail = self._stop_encoder(kill=False)
            raise self._salvage(f"Stopped recording {self.path}: only {free / 2**20:.0f} MB left on the disk{detail}")

    def _stop_encoder(self, *, kill: bool) -> str:
        """End the writer thread and the encoder, within bounds; '' or why ffmpeg failed."""
        encoder, thread = self._encoder, self._thread
        if encoder is None:
            return ""
        if not kill:
            while thread.is_alive() and not self._stalled():
                with contextlib.suppress(queue.Full):
                    self._queue.put(None, timeout=0.05)  # the end of the frames
                    break
            while thread.is_alive() and not self._stalled():
                thread.join(0.05)
            kill = self._stuck = thread.is_alive()
        if kill:
            encoder.kill()  # a stopped process dies too; a write blocked on its pipe then fails
            thread.join(self.stall_s)
            with contextlib.suppress(queue.Empty):
                while True:
                    self._queue.get_nowait()
        self._encoder = None
        return encoder.finish(_FINISH_S)

    # ------------------------------------------------------------------ finishing the file

    def _salvage(self, reason: str) -> SinkError:
        """After a failure: keep what decodes, and the error that says how much that is."""
        frames = _decodable_frames(self._partial) if self._partial is not None else 0
        if frames == 0:
            _remove([self._partial] if self._partial is not None else [])
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
            final = _remux(self._partial, check=check)
        finally:
            try:
                self.saved_path = self._move_into_place(final)
            except OSError as error:  # the folder turned read-only, say: the recording stays where it is
                self.saved_path = final
                self._warn(f"Could not rename the recording to {self.path} ({error.strerror or error}); it is in {final}.")
            if final != self._partial:
                _remove([self._partial])
            self._partial = None

    def _move_into_place(self, source: Path) -> Path:
        target = self.path
        if _identity(target) != self._target_before:
            moved = _link_to_free_name(source, target)
            self._warn(
                f"Another program wrote {target} during this recording; it was left as it is, and this recording "
                f"was saved as {moved}."
            )
            return moved
        if self._target_before is not None:
            os.replace(source, target)  # the one step that replaces the old file
            return target
        return _link_to_free_name(source, target)


class _FfmpegEncoder:
    """Raw BGR frames on ffmpeg's stdin; libx264, yuv420p; ffmpeg in its own session."""

    name = "ffmpeg"

    def __init__(self, path: Path, size: tuple[int, int], fps: float):
        self.path = path
        rate = Fraction(fps).limit_denominator(1001)
        if path.suffix.lower() == ".mkv":
            container = ["-cluster_time_limit", "1000"]  # Matroska: a cluster about every second
        else:
            # Fragments that stand alone, each started by a keyframe about every second: a file cut
            # short plays up to its last complete fragment. _remux makes it an ordinary MP4 at the end.
            container = ["-movflags", "+frag_keyframe+empty_moov+default_base_moof"]
        cmd = [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-hide_banner", "-loglevel", "error", "-nostats", "-y",
            "-f", "rawvideo", "-pix_fmt", "bgr24", "-video_size", f"{size[0]}x{size[1]}",
            "-framerate", f"{rate.numerator}/{rate.denominator}", "-i", "pipe:0",
            # ultrafast: the encoder shares the CPU with the network. On livecam's 640x480 overlays
            # it needs about half the CPU of veryfast (4 vs 9 ms a frame on this project's 2-core
            # machine) for files 10-60 % larger at the same quality (crf 20); end to end that is
            # 20 % more frames per second.
            "-an", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "20", "-pix_fmt", "yuv420p",
            "-g", str(max(1, round(fps))),
            # Exact BGR -> YUV rounding (grey stays grey), and the BT.601 matrix that conversion
            # uses written into the file, so that players do not guess BT.709 for HD sizes.
            "-sws_flags", "accurate_rnd+full_chroma_int",
            "-colorspace", "smpte170m", "-color_primaries", "smpte170m", "-color_trc", "smpte170m",
            *container, "-flush_packets", "1",
            f"file:{path}",
        ]  # fmt: skip
        self._stderr = tempfile.TemporaryFile()  # a file, not a pipe: nobody has to drain it
        try:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=self._stderr,
                start_new_session=True,  # POSIX: out of the terminal's process group, away from Ctrl-C
                creationflags=getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0),  # the same on Windows
            )
        except BaseException:
            self._stderr.close()
            raise

    @property
    def pid(self) -> int:
        return self._proc.pid

    def write(self, image: np.ndarray) -> None:
        """Called by the writer thread only."""
        try:
            self._proc.stdin.write(image)
            self._proc.stdin.flush()
        except (OSError, ValueError) as error:  # ValueError: the pipe was closed after a kill
            reason = getattr(error, "strerror", None) or str(error)
            raise SinkError(f"the encoder's input closed ({reason})") from error

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self._proc.kill()

    def finish(self, timeout_s: float) -> str:
        """Close ffmpeg's input, wait for it to end the file; '' or the reason it failed."""
        proc = self._proc
        with contextlib.suppress(OSError, ValueError):  # a broken pipe: ffmpeg is already gone
            proc.stdin.close()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            self._stderr.close()
            return f" (ffmpeg did not finish within {timeout_s:g} s and was stopped)"
        detail = self._exit_detail()
        self._stderr.close()
        return detail

    def _exit_detail(self) -> str:
        """'' while ffmpeg runs or after it succeeded, else its last words."""
        returncode = self._proc.poll()
        if returncode in (None, 0):
            return ""
        if returncode < 0:
            return f"; ffmpeg was stopped by signal {-returncode}"
        with contextlib.suppress(OSError, ValueError):
            self._stderr.seek(0)
            log = self._stderr.read().decode(errors="replace").strip()
            if log:
                return f"; ffmpeg: {log.splitlines()[-1]}"
        return f"; ffmpeg exit code {returncode}"


class _OpenCVEncoder:
    """Fallback: OpenCV's own mp4v writer, in this process."""

    name = "opencv"

    def __init__(self, path: Path, size: tuple[int, int], fps: float):
        self.path = path
        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
        if not self._writer.isOpened():
            raise SinkError(f"Neither ffmpeg nor OpenCV could open {path} for writing; check the disk and the name.")

    def write(self, image: np.ndarray) -> None:
        self._writer.write(image)

    def kill(self) -> None:
        pass

    def finish(self, timeout_s: float) -> str:
        self._writer.release()
        return ""


def playable_size(size: tuple[int, int]) -> tuple[int, int]:
    """``size`` (width, height), scaled down if needed to what H.264 level 5.2 allows, made even."""
    width, height = size

    def fits(w: int, h: int) -> bool:
        mb_w, mb_h = -(-w // 16), -(-h // 16)
        return mb_w * mb_h <= _MAX_MACROBLOCKS and max(mb_w, mb_h) <= _MAX_SIDE_MACROBLOCKS

    if fits(width, height):
        return size
    scale = min(math.sqrt(_MAX_MACROBLOCKS * 256 / (width * height)), _MAX_SIDE_MACROBLOCKS * 16 / max(width, height))
    while True:
        w, h = max(2, 2 * int(width * scale / 2)), max(2, 2 * int(height * scale / 2))
        if fits(w, h):
            return (w, h)
        scale *= 0.995


def _remux(partial: Path, *, check: bool) -> Path:
    """A fast-start copy of a finished recording beside it (no re-encoding); ``partial`` if that fails.

    With ``check`` (after a failure) the copy is made only where it is sure to fit on the disk.
    """
    try:
        fast = _reserve_beside(partial, "faststart")
    except SinkError:  # the folder takes no new file now (turned read-only, say): the fragmented file plays too
        return partial
    size = partial.stat().st_size
    free = _free_bytes(partial.parent)
    if check and free is not None and free < 2 * size + MIN_FREE_BYTES:
        _remove([fast])
        return partial
    flags = [] if partial.suffix.lower() == ".mkv" else ["-movflags", "+faststart"]
    try:
        ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError:  # no ffmpeg (the OpenCV fallback wrote the file): it stays as it is
        _remove([fast])
        return partial
    cmd = [ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
           "-i", f"file:{partial}", "-map", "0", "-c", "copy", *flags, f"file:{fast}"]  # fmt: skip
    try:
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=60 + size / 20e6)
    except (OSError, subprocess.SubprocessError):  # the fragmented file is kept: it plays too
        _remove([fast])
        return partial
    except BaseException:
        _remove([fast])
        raise
    if done.returncode != 0 or fast.stat().st_size == 0:
        _remove([fast])
        return partial
    return fast


def _decodable_frames(path: Path, timeout_s: float = 120.0) -> int | None:
    """How many video frames of ``path`` decode (0 for no file or no video); None if it cannot be told."""
    if not path.exists() or path.stat().st_size == 0:
        return 0
    try:
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-nostats",
               "-i", f"file:{path}", "-map", "0:v:0", "-f", "null", "-progress", "pipe:1", "-"]  # fmt: skip
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_s)
    except (OSError, RuntimeError, subprocess.TimeoutExpired):
        return None
    counts = re.findall(rb"^frame=(\d+)", done.stdout, re.MULTILINE)
    return int(counts[-1]) if counts else 0


def _reserve_beside(path: Path, tag: str) -> Path:
    """A new empty file ``<stem>.<tag>-<random><suffix>`` in ``path``'s folder, created exclusively."""
    stem = path.stem.split(".partial-")[0]
    while True:
        candidate = path.with_name(f"{stem}.{tag}-{secrets.token_hex(3)}{path.suffix}")
        try:
            os.close(os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return candidate
        except FileExistsError:
            continue
        except OSError as error:
            raise SinkError(f"Could not create a file in {path.parent} ({error.strerror or error}).") from error


def _link_to_free_name(source: Path, target: Path) -> Path:
    """Move ``source`` to ``target`` or, if that name is taken, ``name-2.ext``...; never replaces a file."""
    candidate, n = target, 1
    while True:
        try:
            os.link(source, candidate)  # fails if the name exists, even if it appeared a moment ago
        except FileExistsError:
            n += 1
            candidate = target.with_name(f"{target.stem}-{n}{target.suffix}")
            continue
        except OSError:  # a file system without hard links: check, then rename (a small race)
            if os.path.lexists(candidate):
                n += 1
                candidate = target.with_name(f"{target.stem}-{n}{target.suffix}")
                continue
            os.rename(source, candidate)
            return candidate
        os.unlink(source)
        return candidate


def _identity(path: Path) -> tuple[int, ...] | None:
    """What tells whether a directory entry was replaced or changed: None when there is none."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


class SnapshotWriter:
    """Save what is on screen: raw frame, overlay, raw CAM map and a JSON record.

    Names are ``<prefix>-YYYYmmdd-HHMMSS-NNN-{raw.png,overlay.png,cam.npy,record.json}`` in
    local time; NNN counts up from 001 until no file of that name exists: nothing is ever
    overwritten.

    Args:
        folder: where to save; created if missing.
        prefix: start of every file name.

    Raises:
        UserError: the folder cannot be created or written to.
    """

    def __init__(self, folder: str | os.PathLike, *, prefix: str = "livecam"):
        self.folder = Path(folder).expanduser()
        self.prefix = prefix
        if self.folder.exists() and not self.folder.is_dir():
            raise UserError(f"{str(self.folder)!r} is a file, not a folder; choose a folder for the snapshots.")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UserError(
                f"Could not create the snapshot folder {str(self.folder)!r} ({error.strerror}); choose another folder."
            ) from error
        _check_writable(self.folder)

    def save(self, raw_bgr: np.ndarray, overlay_bgr: np.ndarray, cam: np.ndarray | None, record: dict) -> list[Path]:
        """Write one snapshot.

        Args:
            raw_bgr: the camera frame, uint8 (height, width, 3).
            overlay_bgr: the frame with the heat map, uint8 (height, width, 3).
            cam: the raw map before colouring (any float array), or None to skip the .npy.
            record: what to remember, e.g. class, probability, layer, method. ``time`` (local,
                ISO 8601) is added unless given; ``files`` lists the other files' names.

        Returns:
            The paths written: raw, overlay, cam (if given), record.

        Raises:
            SinkError: the disk refused a file; none of this snapshot's files are left behind.
        """
        blobs = {"raw.png": _png(check_bgr_image(raw_bgr, "raw_bgr")), "overlay.png": _png(check_bgr_image(overlay_bgr, "overlay_bgr"))}
        if cam is not None:
            blobs["cam.npy"] = _npy(np.asarray(cam))
        now = _now()
        stamp = now.strftime("%Y%m%d-%H%M%S")
        record = {"time": now.isoformat(timespec="milliseconds"), **record}
        sequence = 1
        while True:
            stem = f"{self.prefix}-{stamp}-{sequence:03d}"
            paths = {kind: self.folder / f"{stem}-{kind}" for kind in [*blobs, "record.json"]}
            if not any(p.exists() for p in paths.values()):
                files = {kind.split(".")[0]: paths[kind].name for kind in blobs}
                blobs["record.json"] = json.dumps({**record, "files": files}, indent=2, default=_jsonable).encode()
                if self._write_all(paths, blobs):
                    return list(paths.values())
                del blobs["record.json"]
            sequence += 1

    def _write_all(self, paths: dict[str, Path], blobs: dict[str, bytes]) -> bool:
        written: list[Path] = []
        try:
            for kind, path in paths.items():
                with open(path, "xb") as file:  # "x": fail rather than overwrite, even in a race
                    written.append(path)
                    file.write(blobs[kind])
            return True
        except FileExistsError:
            _remove(written)
            return False
        except OSError as error:
            _remove(written)
            raise SinkError(f"Could not save the snapshot in {self.folder}: {error.strerror or error}.") from error


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
        self._open = True
        self._sized = False
        self.fullscreen = False
        self._start_fullscreen = fullscreen  # applied once the window has a picture (Qt ignores it before)

    def set_fullscreen(self, on: bool) -> None:
        """Fills the screen with the window, or gives it back its size."""
        if self.closed or on == self.fullscreen:
            return
        cv2.setWindowProperty(self.title, cv2.WND_PROP_FULLSCREEN, cv2.WINDOW_FULLSCREEN if on else cv2.WINDOW_NORMAL)
        self.fullscreen = on

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
            if self._start_fullscreen:
                self.set_fullscreen(True)
        cv2.imshow(self.title, image)
        return cv2.waitKey(1)

    def poll(self, wait_ms: int = 1) -> int:
        """Pump window events for ``wait_ms`` without a new frame (e.g. while paused); the key or -1."""
        return -1 if self.closed else cv2.waitKey(wait_ms)

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


def check_video_output(
    path: str | os.PathLike, *, overwrite: bool = False, others: Iterable[tuple[str, str | os.PathLike]] = ()
) -> Path:
    """``check_output`` for a video: also the file type must be one livecam writes."""
    if Path(path).suffix.lower() not in VIDEO_SUFFIXES:
        raise UserError(f"Expected an output file ending in .mp4 (or .mov, .m4v, .mkv). Received: {str(path)!r}.")
    return check_output(path, overwrite=overwrite, others=others)


def check_output(
    path: str | os.PathLike, *, overwrite: bool = False, others: Iterable[tuple[str, str | os.PathLike]] = ()
) -> Path:
    """Check, before any work starts, that a file can be written at ``path``.

    Args:
        path: the file to be written.
        overwrite: whether an existing file may be replaced. A symbolic link is itself
            replaced, never written through.
        others: (role, path) of the files that must not be this one, whatever ``overwrite``
            says: the inputs, and the other outputs; e.g. ``[("the input", "in.mp4")]``.
            Compared as files (symbolic and hard links included), not as names.

    Returns:
        ``path`` as a ``Path`` (``~`` expanded).

    Raises:
        UserError: ``path`` is a folder, its folder is missing or read-only, the file exists
            and ``overwrite`` is False, or it is one of ``others``.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise UserError(f"{str(path)!r} is a folder; give a file name, such as {str(path / 'livecam.mp4')!r}.")
    folder = path.parent
    if not folder.is_dir():
        raise UserError(
            f"The folder {str(folder)!r} for {path.name!r} does not exist; create it first or choose another output path."
        )
    for role, other in others:
        if _same_file(path, Path(other).expanduser()):
            raise UserError(
                f"{str(path)!r} is the same file as {role} {str(other)!r}; an output never replaces an input or "
                f"another output, so choose another name."
            )
    if os.path.islink(path) and not path.exists() and not overwrite:
        raise UserError(
            f"{str(path)!r} is a symbolic link to {os.readlink(path)!r}, which does not exist; pass --overwrite to "
            f"replace the link itself, or choose another name."
        )
    if os.path.lexists(path) and not overwrite:
        raise UserError(f"{str(path)!r} already exists; pass --overwrite to replace it, or choose another name.")
    _check_writable(folder)
    return path


def write_file_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file beside it and one rename.

    A reader never sees half a file, a crash leaves the old file whole, and a symbolic link
    at ``path`` is replaced, not written through.
    """
    path = Path(path)
    while True:
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            # Not mkstemp, whose files are private (0600): the umask decides, as for any file the user makes.
            fd = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        _remove([Path(temporary)])
        raise


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file: the same real path, or the same inode (hard links)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _check_writable(folder: Path) -> None:
    # Trying beats os.access, which says yes to root and knows nothing of read-only mounts.
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise UserError(
            f"Cannot write to the folder {str(folder)!r} ({error.strerror or error}); choose another folder or "
            f"fix its permissions."
        ) from error


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


def _png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"Could not encode an image of shape {image.shape} as PNG.")
    return data.tobytes()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (Path, dt.datetime, dt.date)):
        return str(value)
    raise TypeError(f"Cannot store {type(value).__name__} in a snapshot record; use numbers, strings, lists or dicts.")


def _remove(paths: list[Path]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink()


def _now() -> dt.datetime:
    return dt.datetime.now().astimezone()


def free_name(path: str | os.PathLike) -> Path:
    """``path``, or ``name-2.ext``, ``name-3.ext``... whichever does not exist yet (not even as a broken link)."""
    path = Path(path)
    if not os.path.lexists(path):
        return path
    n = 2
    while os.path.lexists(candidate := path.with_name(f"{path.stem}-{n}{path.suffix}")):
        n += 1
    return candidate
