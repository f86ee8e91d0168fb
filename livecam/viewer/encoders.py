"""The recorder's encoders, and what is done with a finished file.

``FfmpegEncoder`` pipes raw BGR frames into ffmpeg (the binary that ``imageio_ffmpeg`` ships,
with libx264) and writes H.264 yuv420p video:

- MP4 and MOV files are fragmented while recording (a self-contained piece about every second,
  each starting with a keyframe), so a file cut short by anything (ffmpeg killed, the disk filled
  by another program, this process and ffmpeg killed together) still plays up to its last
  complete second. ``remux`` copies the fragments of a finished recording, without re-encoding,
  into an ordinary MP4 with its index at the front (``+faststart``), which every player and
  browser streams.
- ffmpeg runs in its own session (``start_new_session=True``), so the Ctrl-C that a terminal
  sends to the whole foreground process group never reaches it. ``imageio_ffmpeg.write_frames``
  shields SIGINT too, but with ``preexec_fn``, which is unsafe in a threaded program (ours is).

``OpenCVEncoder`` is the fallback when ffmpeg cannot start. Both take frames from one writer
thread (``livecam.viewer.recorder.VideoWriter``) and share one small contract: ``name``,
``write(image)``, ``kill()``, ``finish(timeout_s)`` -> '' or why it failed.

``EncoderFeed`` hands an encoder its frames from a thread of its own through a bounded queue.
``decodable_frames`` counts what a file cut short really holds; ``playable_size``
is the largest size browsers' H.264 decoders commonly take.
"""

from __future__ import annotations

import contextlib
import math
import queue
import re
import subprocess
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np

from livecam.viewer.safe_files import SinkError, free_bytes, remove_files, reserve_beside

__all__ = ["EncoderFeed", "FfmpegEncoder", "OpenCVEncoder", "decodable_frames", "playable_size", "remux"]

# H.264 level 5.2 (ITU-T H.264 Table A-1): at most 36,864 macroblocks of 16x16 a frame (4096x2304),
# and no side longer than sqrt(8 * 36,864) macroblocks; what browsers' decoders commonly accept.
_MAX_MACROBLOCKS = 36_864
_MAX_SIDE_MACROBLOCKS = 543
_FINISH_S = 10.0  # ffmpeg's time to encode what it holds and end the file after its input closed
_QUEUE_BYTES = 64 * 2**20  # frames waiting for the encoder, at most
# After a failure, the fast-start copy is made only where this much stays free beside both files.
_REMUX_MARGIN_BYTES = 64 * 2**20


class FfmpegEncoder:
    """Raw BGR frames on ffmpeg's stdin; libx264, yuv420p; ffmpeg in its own session; ``comment``
    goes into the file's ``comment`` tag."""

    name = "ffmpeg"

    def __init__(self, path: Path, size: tuple[int, int], fps: float, comment: str | None = None):
        self.path = path
        rate = Fraction(fps).limit_denominator(1001)
        if path.suffix.lower() == ".mkv":
            container = ["-cluster_time_limit", "1000"]  # Matroska: a cluster about every second
        else:
            # Fragments that stand alone, each started by a keyframe about every second: a file cut
            # short plays up to its last complete fragment. remux makes it an ordinary MP4 at the end.
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
            *(["-metadata", f"comment={comment}"] if comment else []),  # how it was made; remux copies it
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


class OpenCVEncoder:
    """Fallback: OpenCV's own mp4v writer, in this process."""

    name = "opencv"

    def __init__(self, path: Path, size: tuple[int, int], fps: float, comment: str | None = None):
        self.path = path  # OpenCV writes no tags: the comment is lost with this fallback
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


class EncoderFeed:
    """An encoder fed by a writer thread through a bounded queue, so that nobody waits on a stuck
    encoder (a stopped process, a hung disk) for longer than ``stall_s``.

    Attributes:
        encoder: the ``FfmpegEncoder`` or ``OpenCVEncoder`` it feeds.
        error: why the encoder failed (the thread then ended); None while it works.
        frames_written: frames the encoder took.
    """

    def __init__(self, encoder: FfmpegEncoder | OpenCVEncoder, frame_bytes: int, *, stall_s: float, name: str):
        self.encoder = encoder
        self.stall_s = stall_s
        self.error: SinkError | None = None
        self.frames_written = 0
        self._busy_since: float | None = None  # when the thread began handing over its current frame
        self._stopped = False
        self._queue: queue.Queue = queue.Queue(maxsize=max(2, _QUEUE_BYTES // frame_bytes))
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def put(self, image: np.ndarray, timeout_s: float) -> bool:
        """Queue ``image`` for the encoder; False when the queue stayed full for ``timeout_s``."""
        try:
            self._queue.put(image, timeout=timeout_s)
        except queue.Full:
            return False
        return True

    def stalled(self) -> bool:
        """The encoder has been taking one frame for longer than ``stall_s``."""
        busy_since = self._busy_since
        return busy_since is not None and time.monotonic() - busy_since > self.stall_s

    def stop(self, *, kill: bool) -> tuple[str, bool]:
        """End the thread and the encoder, within bounds (idempotent).

        Returns:
            '' or why ffmpeg failed; and whether the encoder was stuck (then it was killed).
        """
        if self._stopped:
            return "", False
        self._stopped = True
        thread, stuck = self._thread, False
        if not kill:
            while thread.is_alive() and not self.stalled():
                with contextlib.suppress(queue.Full):
                    self._queue.put(None, timeout=0.05)  # the end of the frames
                    break
            while thread.is_alive() and not self.stalled():
                thread.join(0.05)
            kill = stuck = thread.is_alive()
        if kill:
            self.encoder.kill()  # a stopped process dies too; a write blocked on its pipe then fails
            thread.join(self.stall_s)
            with contextlib.suppress(queue.Empty):
                while True:
                    self._queue.get_nowait()
        return self.encoder.finish(_FINISH_S), stuck

    def _loop(self) -> None:
        while True:
            image = self._queue.get()
            if image is None:
                return
            self._busy_since = time.monotonic()
            try:
                self.encoder.write(image)
            except SinkError as error:
                self.error = error
                return
            finally:
                self._busy_since = None
            self.frames_written += 1


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


def remux(partial: Path, *, check: bool) -> Path:
    """A fast-start copy of a finished recording beside it (no re-encoding); ``partial`` if that fails.

    With ``check`` (after a failure) the copy is made only where it is sure to fit on the disk.
    """
    try:
        fast = reserve_beside(partial, "faststart")
    except SinkError:  # the folder takes no new file now (turned read-only, say): the fragmented file plays too
        return partial
    size = partial.stat().st_size
    free = free_bytes(partial.parent)
    if check and free is not None and free < 2 * size + _REMUX_MARGIN_BYTES:
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


def decodable_frames(path: Path, timeout_s: float = 120.0) -> int | None:
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
