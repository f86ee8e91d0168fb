"""Shared by the tests: a camera that can be unplugged, AVI files with corrupt frames, videos made by ffmpeg, what a video holds, X windows."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np


def corrupt_avi_frames(path: Path, indices: set[int]) -> None:
    """Zero the JPEG data of the given frames of an MJPG AVI, keeping every chunk in place."""
    data = bytearray(path.read_bytes())
    position = data.index(b"movi") + 4
    frame = 0
    while position + 8 <= len(data) and data[position : position + 4] != b"idx1":
        chunk_id = bytes(data[position : position + 4])
        size = int.from_bytes(data[position + 4 : position + 8], "little")
        if chunk_id.endswith(b"dc"):
            if frame in indices:
                data[position + 8 : position + 8 + size] = bytes(size)
            frame += 1
        position += 8 + size + (size & 1)
    path.write_bytes(bytes(data))


class FakeDevice:
    """A camera that can be unplugged: its captures fail while ``plugged`` is clear."""

    def __init__(self, make_frame, size=(160, 120)):
        self.make_frame = make_frame
        self.size = size
        self.plugged = threading.Event()
        self.plugged.set()
        self.opens = 0
        self.counter = 0
        self.buffer = np.zeros((size[1], size[0], 3), np.uint8)  # reused on purpose, like some drivers

    def open(self) -> FakeCapture:
        self.opens += 1
        return FakeCapture(self)


class FakeCapture:
    def __init__(self, device: FakeDevice):
        self.device = device
        self.opened = device.plugged.is_set()

    def isOpened(self) -> bool:
        return self.opened

    def read(self):
        time.sleep(0.002)
        device = self.device
        if not (self.opened and device.plugged.is_set()):
            self.opened = False  # an unplugged device stays dead until reopened
            return False, None
        device.buffer[...] = device.make_frame(device.counter, device.size)
        device.counter += 1
        return True, device.buffer

    def release(self) -> None:
        self.opened = False


def video_info(path) -> dict:
    """What ffmpeg says about a video: codec, pix_fmt, size, fps, duration, and its frame count."""
    reader = imageio_ffmpeg.read_frames(str(path))
    try:
        meta = next(reader)
    finally:
        reader.close()
    meta["frames"] = imageio_ffmpeg.count_frames_and_secs(str(path))[0]
    return meta


def read_frames(path) -> np.ndarray:
    """Every frame of a video as int16 BGR, (n, height, width, 3), for differences without wrap-around."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(image)
    cap.release()
    assert frames, f"{path} has no readable frame"
    return np.stack(frames).astype(np.int16)


def visible_windows(xdotool: str, name: str) -> list[dict[str, int]]:
    """Geometry (WINDOW, X, Y, WIDTH, HEIGHT) of every mapped window called exactly ``name``, now."""
    found = subprocess.run(
        [xdotool, "search", "--onlyvisible", "--name", f"^{name}$"], check=False, capture_output=True, text=True, timeout=60
    )
    windows = []
    for window in found.stdout.split():
        # check=False: a window may close between the search and this question; it is then left out.
        shell = subprocess.run(
            [xdotool, "getwindowgeometry", "--shell", window], check=False, capture_output=True, text=True, timeout=60
        )
        fields = dict(line.split("=", 1) for line in shell.stdout.split() if "=" in line)
        if {"WINDOW", "X", "Y", "WIDTH", "HEIGHT"} <= fields.keys():
            windows.append({k: int(fields[k]) for k in ("WINDOW", "X", "Y", "WIDTH", "HEIGHT")})
    return windows


def ffmpeg_encode(
    make_video, path: Path, n: int, args: list[str], *, size=(160, 120), rate: int = 100, pipe_output: bool = False
) -> Path:
    """``n`` index-coded frames (``make_video.frame``) through ffmpeg into ``path``, with extra output ``args``.

    ``pipe_output``: written through a pipe, so the container cannot go back to note its length.
    """
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    raw = b"".join(make_video.frame(i, size).tobytes() for i in range(n))
    cmd = [ffmpeg, "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{size[0]}x{size[1]}",
           "-framerate", str(rate), "-i", "pipe:0", *args]  # fmt: skip
    done = subprocess.run([*cmd, "-" if pipe_output else str(path)], input=raw, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    if pipe_output:
        path.write_bytes(done.stdout)
    return path


VFR_TIMES = [0.1 * n for n in range(30)] + [3.0 + 0.5 * n for n in range(30)]  # 60 frames over 17.5 s


def vfr_video(make_video, path: Path) -> Path:
    """60 frames at ``VFR_TIMES`` (0.1 s apart, then 0.5 s apart: a variable frame rate), MPEG-4 in Matroska."""
    expression = "if(lt(N,30),N*0.1,3+(N-30)*0.5)/TB"
    return ffmpeg_encode(
        make_video, path, 60, ["-vf", f"setpts='{expression}'", "-fps_mode", "passthrough", "-c:v", "mpeg4", "-q:v", "2"]
    )
