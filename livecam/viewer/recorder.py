"""The recorder: frames into an H.264 video that plays anywhere, and survives however the program ends.

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
import math
import os
import queue
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
import warnings
from fractions import Fraction
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np

from livecam.errors import UserError, check_bgr_image
from livecam.viewer.sinks import SinkError, check_video_output, remove_files

__all__ = ["VideoWriter", "playable_size"]

MIN_FREE_BYTES = 64 * 2**20
STALL_S = 4.0  # an encoder that takes no frame for this long is stuck
_FINISH_S = 10.0  # ffmpeg's time to encode what it holds and end the file after its input closed
_QUEUE_BYTES = 64 * 2**20  # frames waiting for the encoder, at most
# H.264 level 5.2 (ITU-T H.264 Table A-1): at most 36,864 macroblocks of 16x16 a frame (4096x2304),
# and no side longer than sqrt(8 * 36,864) macroblocks; what browsers' decoders commonly accept.
_MAX_MACROBLOCKS = 36_864
_MAX_SIDE_MACROBLOCKS = 543


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
        if size is not None and not (len(size) == 2 and all(isinstance(v, (int, np.integer)) and v > 0 for v in size)):
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
                remove_files([self._partial])
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
            final = _remux(self._partial, check=check)
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
        remove_files([fast])
        return partial
    flags = [] if partial.suffix.lower() == ".mkv" else ["-movflags", "+faststart"]
    try:
        ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError:  # no ffmpeg (the OpenCV fallback wrote the file): it stays as it is
        remove_files([fast])
        return partial
    cmd = [ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
           "-i", f"file:{partial}", "-map", "0", "-c", "copy", *flags, f"file:{fast}"]  # fmt: skip
    try:
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=60 + size / 20e6)
    except (OSError, subprocess.SubprocessError):  # the fragmented file is kept: it plays too
        remove_files([fast])
        return partial
    except BaseException:
        remove_files([fast])
        raise
    if done.returncode != 0 or fast.stat().st_size == 0:
        remove_files([fast])
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
