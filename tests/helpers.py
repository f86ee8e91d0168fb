"""Shared by the tests: user errors, AVI files with corrupt frames, videos made by ffmpeg, what a video holds, X windows.

The fakes (windows, sources, cameras, recorders, a spying renderer) are in fakes.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
import pytest

from livecam.cli import main

BOUND_S = 120  # deadlines on waiting for a child process, not measurements
ROOT = str(Path(__file__).resolve().parents[1])
# A child process imports this checkout's livecam, wherever pytest runs from.
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}
# The shipped demo model, headless: the quickest real run.
DEMO = ("--model", "demo", "--no-display")
DEMO_QUIET = (*DEMO, "--quiet")


# ---------------------------------------------------------------------- the command's answers


def run(capsys, *args) -> tuple[int, str]:
    """``livecam ARGS`` in this process: (exit code, stderr)."""
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def assert_user_error(code: int, err: str, *fragments: str) -> None:
    """Exit code 2 and one line, ``livecam: error: ...``, holding every fragment; no traceback."""
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("livecam: error: "), err
    assert "Traceback" not in err and "unexpected error" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def unwritable_folder(tmp_path):
    """A folder no file can be created in: a read-only one, or /proc for root."""
    if os.geteuid() != 0:
        folder = tmp_path / "locked"
        folder.mkdir(mode=0o500)
        return folder
    if sys.platform.startswith("linux"):
        return "/proc"  # not even root can create files there
    pytest.skip("running as root without /proc: no unwritable folder to test with")


# ---------------------------------------------------------------------- videos


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


def decodable(path: Path) -> int:
    """Frames that decode, counted by ffmpeg decoding every one (not from the container's index)."""
    done = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(path), "-map", "0:v:0", "-f", "null",
         "-progress", "pipe:1", "-"],
        capture_output=True, timeout=BOUND_S,
    )  # fmt: skip
    counts = re.findall(rb"^frame=(\d+)", done.stdout, re.MULTILINE)
    return int(counts[-1]) if counts else 0


def opencv_count(path: Path) -> int:
    """Frames that OpenCV reads from ``path``."""
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def kept_in(message: str) -> int:
    """N in a recording failure's "keeps the first N frames"."""
    return int(re.search(r"keeps the first (\d+) frames", message).group(1))


def wait_for(condition, what: str, bound_s: float = BOUND_S) -> None:
    """Polls ``condition`` until it holds; fails the test after ``bound_s`` (a deadline, not a measurement)."""
    deadline = time.monotonic() + bound_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {bound_s} s")
        time.sleep(0.05)


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
