"""Frame sinks: a video file, snapshots, an OpenCV window. Each is a context manager.

``VideoWriter`` pipes raw BGR frames into ffmpeg (the binary that ``imageio_ffmpeg`` ships,
with libx264) and writes H.264 yuv420p video that browsers play. The file stays playable
however the program ends:

- ffmpeg runs in its own session (``start_new_session=True``), so the Ctrl-C that a terminal
  sends to the whole foreground process group never reaches it. ``imageio_ffmpeg.write_frames``
  shields SIGINT too, but with ``preexec_fn``, which is unsafe in a threaded program (ours is),
  and it kills ffmpeg outright when a KeyboardInterrupt lands inside a write, leaving a file
  without its index. So we start ffmpeg ourselves from ``imageio_ffmpeg.get_ffmpeg_exe()``.
- The MP4 index (moov) goes at the end, written when ffmpeg sees the end of its input. That
  happens on ``close()`` (normal end, exception, Ctrl-C) and also when this process dies of
  SIGTERM or SIGKILL: the kernel closes the pipe and ffmpeg finishes the file on its own.
  ``+faststart`` is not used, because it rewrites the whole file at the end.
- A full disk would stop ffmpeg before it writes the index, so the writer checks the free space
  about once a second and stops cleanly below ``min_free_bytes``, keeping a playable file.

Odd frame sizes, which yuv420p cannot hold, are padded by one pixel at the right or bottom
edge (a copy of the edge pixels): nothing of the picture is lost.

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
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import cv2
import imageio_ffmpeg
import numpy as np

from livecam.errors import UserError, check_bgr_image

__all__ = ["FrameSink", "SinkError", "SnapshotWriter", "VideoWriter", "WindowSink", "check_output", "gui_available"]

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv")
MIN_FREE_BYTES = 64 * 2**20
_FFMPEG_FINISH_TIMEOUT_S = 60.0


class SinkError(RuntimeError):
    """Writing failed (disk full, encoder gone). What was written before is closed and kept."""


class FrameSink(Protocol):
    """Where rendered frames go. Sinks are context managers; ``close()`` is idempotent."""

    def write(self, frame_bgr: np.ndarray, timestamp_s: float | None = None) -> None: ...
    def close(self) -> None: ...


class VideoWriter:
    """Write frames to an H.264 MP4 (or .mov, .m4v, .mkv) file.

    Two ways to time the video:

    - ``live=False`` (files): every frame is written exactly once at ``fps``, so the output
      has exactly as many frames as went in.
    - ``live=True`` (cameras): the file runs at constant ``fps`` but follows the capture
      timestamps: frame n lands at ``timestamp_s - first timestamp``, repeating the previous
      frame over gaps and keeping only the latest of frames that share one output slot. The
      video lasts as long as the recording did.

    Args:
        path: the output file; its folder must exist.
        fps: frames per second of the output.
        size: (width, height) of the video; default: the first frame's. Frames of another
            size are scaled to fit inside it, keeping their aspect ratio (black borders).
        live: follow capture timestamps (see above).
        overwrite: replace an existing file.
        min_free_bytes: stop recording, with a playable file, when the disk has less free.

    Raises:
        UserError: the path is unusable (folder missing or read-only, file exists, wrong type).
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
    ):
        if not (isinstance(fps, (int, float, Fraction)) and math.isfinite(fps) and fps > 0):
            raise UserError(f"Expected fps > 0 for the video. Received: fps={fps!r}.")
        if size is not None and not (
            len(size) == 2 and all(isinstance(v, (int, np.integer)) and v > 0 for v in size)
        ):
            raise UserError(f"Expected size as (width, height), two positive integers. Received: size={size!r}.")
        self.path = check_video_output(path, overwrite=overwrite)
        self.fps = float(fps)
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.live = live
        self.overwrite = overwrite
        self.min_free_bytes = min_free_bytes
        self.backend: str | None = None  # "ffmpeg" or "opencv" once the first frame arrived
        self.warnings: list[str] = []
        self.frames_received = 0
        self.frames_written = 0  # frames in the file, repeats included
        self.repeated = 0  # live mode: extra copies written to fill gaps
        self.dropped = 0  # live mode: frames replaced by a later one in the same slot
        self._encoder: _FfmpegEncoder | _OpenCVEncoder | None = None
        self._pending: np.ndarray | None = None
        self._pending_slot = 0
        self._first_timestamp_s: float | None = None
        self._check_every = max(1, round(self.fps))
        self._error: str | None = None
        self._closed = False

    def write(self, frame_bgr: np.ndarray, timestamp_s: float | None = None) -> None:
        """Add one frame.

        Args:
            frame_bgr: uint8 (height, width, 3) BGR. Not modified; not kept after the call.
            timestamp_s: capture time (``time.monotonic()`` clock) in live mode; default: now.

        Raises:
            SinkError: writing failed; the file holds what came before and is closed.
        """
        if self._closed:
            raise SinkError(self._error or f"The video {self.path} is closed; open a new VideoWriter to record again.")
        image = check_bgr_image(frame_bgr)
        if self.size is None:
            self.size = (image.shape[1], image.shape[0])
        image = _fit(image, self.size)
        self.frames_received += 1
        if not self.live:
            self._encode(image)
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
        """Write what is pending and finish the file so that it plays (idempotent).

        Raises:
            SinkError: ffmpeg could not finish the file.
        """
        if self._closed:
            return
        try:
            if self._pending is not None and not (self._encoder is not None and self._encoder.torn):
                self._encode(self._pending)
        finally:
            self._pending = None
            self._closed = True
            if self._encoder is not None:
                encoder, self._encoder = self._encoder, None
                encoder.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _encode(self, image: np.ndarray) -> None:
        if self.frames_written % self._check_every == 0:
            self._check_free_space()
        if self._encoder is None:
            self._encoder = self._start(image.shape[1], image.shape[0])
        try:
            self._encoder.write(image)
        except SinkError as error:
            self._fail(str(error))
            raise
        self.frames_written += 1

    def _start(self, width: int, height: int) -> _FfmpegEncoder | _OpenCVEncoder:
        try:
            encoder = _FfmpegEncoder(self.path, (width, height), self.fps, self.overwrite)
        except (OSError, RuntimeError) as error:
            message = (
                f"Could not start ffmpeg ({error}); recording {self.path} with OpenCV's mp4v codec instead, "
                f"which browsers may not play and which is lost if the program is killed."
            )
            warnings.warn(message, RuntimeWarning, stacklevel=4)
            self.warnings.append(message)
            encoder = _OpenCVEncoder(self.path, (width, height), self.fps)
        self.backend = encoder.name
        return encoder

    def _check_free_space(self) -> None:
        try:
            free = shutil.disk_usage(self.path.parent).free
        except OSError:
            return
        if free < self.min_free_bytes:
            message = (
                f"Stopped recording {self.path}: only {free / 2**20:.0f} MB left on the disk; the file keeps the "
                f"{self.frames_written} frames written so far. Free some space and record again."
            )
            self._fail(message)
            raise SinkError(message)

    def _fail(self, message: str) -> None:
        self._error = message
        self._pending = None
        self._closed = True
        if self._encoder is not None:
            encoder, self._encoder = self._encoder, None
            with contextlib.suppress(SinkError):  # the first error is the one to report
                encoder.close()


class _FfmpegEncoder:
    """Raw BGR frames on ffmpeg's stdin; libx264, yuv420p; ffmpeg in its own session."""

    name = "ffmpeg"

    def __init__(self, path: Path, size: tuple[int, int], fps: float, overwrite: bool):
        self.path = path
        rate = Fraction(fps).limit_denominator(1001)
        cmd = [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-hide_banner", "-loglevel", "error", "-nostats",
            "-y" if overwrite else "-n",
            "-f", "rawvideo", "-pix_fmt", "bgr24", "-video_size", f"{size[0]}x{size[1]}",
            "-framerate", f"{rate.numerator}/{rate.denominator}", "-i", "pipe:0",
            # ultrafast: the encoder shares the CPU with the network. On livecam's 640x480 overlays
            # it needs about half the CPU of veryfast (4 vs 9 ms a frame on this project's 2-core
            # machine) for files 10-60 % larger at the same quality (crf 20); end to end that is
            # 20 % more frames per second.
            "-an", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "20", "-pix_fmt", "yuv420p",
            # Exact BGR -> YUV rounding (grey stays grey), and the BT.601 matrix that conversion
            # uses written into the file, so that players do not guess BT.709 for HD sizes.
            "-sws_flags", "accurate_rnd+full_chroma_int",
            "-colorspace", "smpte170m", "-color_primaries", "smpte170m", "-color_trc", "smpte170m",
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
        self.torn = False  # part of a frame went out: nothing more can be written

    def write(self, image: np.ndarray) -> None:
        if self.torn:
            raise SinkError(f"Recording {self.path} was interrupted in the middle of a frame; it was stopped.")
        try:
            self._proc.stdin.write(image)
            self._proc.stdin.flush()
        except OSError as error:
            self.torn = True
            detail = self._finish()
            reason = error.strerror or str(error)
            raise SinkError(
                f"Writing {self.path} failed: {reason}{detail}; the recording was stopped and the frames "
                f"written before were kept."
            ) from error
        except BaseException:
            self.torn = True  # e.g. Ctrl-C inside the write: part of a frame may have gone out
            raise

    def close(self) -> None:
        detail = self._finish()
        if detail:
            raise SinkError(f"ffmpeg could not finish {self.path}{detail}; the file may not play.")

    def _finish(self) -> str:
        """Close ffmpeg's input, wait for it to write the index; '' or the reason it failed."""
        proc = self._proc
        if proc.stdin.closed and proc.returncode is not None:
            return ""
        with contextlib.suppress(OSError):  # a broken pipe: ffmpeg is already gone
            proc.stdin.close()
        try:
            returncode = proc.wait(timeout=_FFMPEG_FINISH_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            self._stderr.close()
            return f" (ffmpeg did not finish within {_FFMPEG_FINISH_TIMEOUT_S:g} s and was stopped)"
        self._stderr.seek(0)
        log = self._stderr.read().decode(errors="replace").strip()
        self._stderr.close()
        if returncode == 0:
            return ""
        last_line = log.splitlines()[-1] if log else f"exit code {returncode}"
        return f" (ffmpeg: {last_line})"


class _OpenCVEncoder:
    """Fallback: OpenCV's own mp4v writer, in this process."""

    name = "opencv"
    torn = False

    def __init__(self, path: Path, size: tuple[int, int], fps: float):
        self.path = path
        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
        if not self._writer.isOpened():
            raise SinkError(f"Neither ffmpeg nor OpenCV could open {path} for writing; check the disk and the name.")

    def write(self, image: np.ndarray) -> None:
        self._writer.write(image)

    def close(self) -> None:
        self._writer.release()


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


def check_video_output(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """``check_output`` for a video: also the file type must be one livecam writes."""
    if Path(path).suffix.lower() not in VIDEO_SUFFIXES:
        raise UserError(f"Expected an output file ending in .mp4 (or .mov, .m4v, .mkv). Received: {str(path)!r}.")
    return check_output(path, overwrite=overwrite)


def check_output(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Check, before any work starts, that a file can be written at ``path``.

    Args:
        path: the file to be written.
        overwrite: whether an existing file may be replaced.

    Returns:
        ``path`` as a ``Path`` (``~`` expanded).

    Raises:
        UserError: ``path`` is a folder, its folder is missing or read-only, or the file exists
            and ``overwrite`` is False.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise UserError(f"{str(path)!r} is a folder; give a file name, such as {str(path / 'livecam.mp4')!r}.")
    folder = path.parent
    if not folder.is_dir():
        raise UserError(
            f"The folder {str(folder)!r} for {path.name!r} does not exist; create it first or choose another output path."
        )
    if path.exists() and not overwrite:
        raise UserError(f"{str(path)!r} already exists; pass --overwrite to replace it, or choose another name.")
    _check_writable(folder)
    return path


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
    """``path``, or ``name-2.ext``, ``name-3.ext``... whichever does not exist yet."""
    path = Path(path)
    if not path.exists():
        return path
    n = 2
    while (candidate := path.with_name(f"{path.stem}-{n}{path.suffix}")).exists():
        n += 1
    return candidate
