"""Shared fixtures: generated videos and image folders, a tiny engine, tiny model files, a virtual X display; markers by fixture.

Generated frames carry their index in a band of 8 black/white blocks along the top (bit b of
``index % 256`` in block b), big enough to survive lossy codecs; ``make_video.index_of(image)``
reads it back. A red square moves across the rest so that frames also differ as pictures.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

# Markers that follow from the fixtures a test uses (the others are written on the tests).
_X11_FIXTURES = {"xvfb_screen", "xvfb_display", "xdotool"}
_BROWSER_FIXTURES = {"browser", "page", "chromium", "browser_page"}


def pytest_collection_modifyitems(config, items):
    """Marks tests ``x11`` and ``browser`` by the fixtures they use, so ``-m "not x11"`` needs no list."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & _X11_FIXTURES:
            item.add_marker(pytest.mark.x11)
        if fixtures & _BROWSER_FIXTURES:
            item.add_marker(pytest.mark.browser)


_FOURCC_BY_SUFFIX = {".avi": "MJPG", ".mp4": "mp4v", ".mov": "mp4v", ".m4v": "mp4v", ".mkv": "mp4v"}


class VideoFactory:
    """``make_video(path, n, size=(160, 120), fps=15.0) -> Path``; frames from ``frame(i, size)``.

    The codec follows the suffix: ``.avi`` is MJPG (every frame stands alone, handy for
    corrupting single frames); ``.mp4``, ``.mov``, ``.m4v``, ``.mkv`` are mp4v.
    """

    def __call__(self, path: str | os.PathLike, n: int, size: tuple[int, int] = (160, 120), fps: float = 15.0) -> Path:
        path = Path(path)
        fourcc = _FOURCC_BY_SUFFIX.get(path.suffix.lower())
        if fourcc is None:
            raise ValueError(f"Expected a video suffix in {sorted(_FOURCC_BY_SUFFIX)}. Received: {path.name!r}")
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), fps, size)
        if not writer.isOpened():
            raise RuntimeError(f"OpenCV could not open {path} for writing.")
        try:
            for i in range(n):
                writer.write(self.frame(i, size))
        finally:
            writer.release()
        return path

    @staticmethod
    def frame(index: int, size: tuple[int, int] = (160, 120)) -> np.ndarray:
        """Frame ``index``: uint8 BGR (height, width, 3) with the index coded along the top."""
        width, height = size
        image = np.full((height, width, 3), 90, np.uint8)
        band, block = max(8, height // 6), width // 8
        for bit in range(8):
            image[:band, bit * block : (bit + 1) * block] = 255 if (index >> bit) & 1 else 0
        x = (index * 5) % max(1, width - band)
        cv2.rectangle(image, (x, band + 4), (x + band, 2 * band + 4), (0, 0, 255), -1)
        return image

    @staticmethod
    def index_of(image: np.ndarray) -> int:
        """The index coded in a frame made by ``frame`` (modulo 256), after any lossy codec."""
        height, width = image.shape[:2]
        band, block = max(8, height // 6), width // 8
        inset = max(1, block // 5)
        bits = [image[2 : band - 2, bit * block + inset : (bit + 1) * block - inset].mean() > 127 for bit in range(8)]
        return sum(1 << bit for bit, on in enumerate(bits) if on)


@pytest.fixture(autouse=True, scope="session")
def _livecam_cache_dir(request, tmp_path_factory):
    """Converted OpenVINO bodies go to the tests' own folder (subprocesses inherit it), not ~/.cache.

    The folder is in pytest's cache (``.pytest_cache``), shared by the xdist workers and kept
    between runs, so the demo and zoo models convert once rather than in every worker and run
    (entries are keyed by the weights, written atomically and checked, as for users); the tests
    of converting and of the cache itself use folders of their own. Without pytest's cache
    (``-p no:cacheprovider``), a folder of this session.
    """
    cache = getattr(request.config, "cache", None)
    folder = cache.mkdir("livecam-openvino") if cache is not None else tmp_path_factory.mktemp("livecam-cache")
    previous = os.environ.get("LIVECAM_CACHE_DIR")
    os.environ["LIVECAM_CACHE_DIR"] = str(folder)
    yield
    if previous is None:
        os.environ.pop("LIVECAM_CACHE_DIR", None)
    else:
        os.environ["LIVECAM_CACHE_DIR"] = previous


@pytest.fixture
def make_video() -> VideoFactory:
    """A factory for small test videos; see ``VideoFactory``."""
    return VideoFactory()


@pytest.fixture
def make_image_folder():
    """``make_image_folder(folder, n, size=(160, 120), suffix=".png", sizes=None) -> Path``.

    Writes ``frame_1<suffix>`` ... ``frame_<n><suffix>`` (not zero-padded, so only natural
    order gets them right); image ``frame_k`` carries index k - 1. ``sizes``, a list of n
    (width, height), gives each image its own size.
    """

    def make(folder: str | os.PathLike, n: int, size=(160, 120), suffix: str = ".png", sizes=None) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            image = VideoFactory.frame(i, sizes[i] if sizes else size)
            if not cv2.imwrite(str(folder / f"frame_{i + 1}{suffix}"), image):
                raise RuntimeError(f"OpenCV could not write {suffix} images.")
        return folder

    return make


@pytest.fixture
def image_folder(tmp_path, make_image_folder) -> Path:
    """A folder of 12 PNG images, 160x120, ``frame_1.png`` ... ``frame_12.png`` (indices 0..11)."""
    return make_image_folder(tmp_path / "images", 12)


@pytest.fixture(scope="module")
def tiny_engine():
    """A CamEngine on a tiny CNN: 32x32 RGB in, a 6-channel conv layer named "target", 4 classes.

    One per test module (a module may change its method; the next module starts afresh).
    """
    import keras

    from livecam.engine.core import CamEngine

    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="target")(x)
    out = keras.layers.Dense(4, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    return CamEngine(keras.Model(inputs, out))


@pytest.fixture(scope="session")
def model_files(tmp_path_factory) -> dict:
    """Each of ``tiny_models.MODELS`` saved as a .keras file: name -> path."""
    from tiny_models import MODELS

    folder = tmp_path_factory.mktemp("models")
    paths = {}
    for name, build in MODELS.items():
        paths[name] = folder / f"{name}.keras"
        build().save(paths[name])
    return paths


def require_tool(name: str, install_hint: str) -> str:
    """The path of executable ``name``; fails the test in CI (env CI=true) when missing, else skips."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed ({install_hint})."
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message + " CI must install it: this test may not skip there.")
        pytest.skip(message)
    return path


class XvfbScreen:
    """A private Xvfb server: its ``display`` (e.g. ":3") and ``grab``, a picture of part of its screen.

    The server runs without the MIT-SHM extension and keeps its screen in a file (``-fbdir``):
    windows are drawn, and screenshots read, without any shared memory between processes, which
    sandboxes do not all allow.
    """

    def __init__(self, display: str, framebuffer: Path) -> None:
        self.display = display
        self.framebuffer = framebuffer

    def grab(self, x: int, y: int, width: int, height: int) -> np.ndarray:
        """The screen's pixels in that rectangle (clipped to the screen), uint8 BGR."""
        data = self.framebuffer.read_bytes()
        header = np.frombuffer(data, ">u4", count=25)  # XWD file header, big-endian
        header_size, depth, screen_w, screen_h, byte_order, bits_per_pixel, bytes_per_line, ncolors = (
            int(header[i]) for i in (0, 3, 4, 5, 7, 11, 12, 19)
        )  # fmt: skip
        if depth != 24 or bits_per_pixel != 32 or byte_order != 0:
            raise AssertionError(f"unexpected Xvfb screen format: depth {depth}, {bits_per_pixel} bpp, byte order {byte_order}")
        pixels = np.frombuffer(data, np.uint8, count=screen_h * bytes_per_line, offset=header_size + 12 * ncolors)
        screen = pixels.reshape(screen_h, bytes_per_line)[:, : 4 * screen_w].reshape(screen_h, screen_w, 4)
        return screen[max(0, y) : y + height, max(0, x) : x + width, :3].copy()  # BGRX, least significant byte first


@pytest.fixture(scope="session")
def xvfb_screen(tmp_path_factory) -> XvfbScreen:
    """A private Xvfb server for the whole session; sets DISPLAY while it runs."""
    exe = require_tool("Xvfb", "apt-get install xvfb")
    fbdir = tmp_path_factory.mktemp("xvfb")
    read_fd, write_fd = os.pipe()
    # -displayfd: Xvfb picks a free display number and writes it to us, so parallel runs never collide.
    command = [exe, "-displayfd", str(write_fd), "-screen", "0", "1280x720x24", "-nolisten", "tcp"]
    command += ["-extension", "MIT-SHM", "-fbdir", str(fbdir)]
    proc = subprocess.Popen(command, pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_fd)
    try:
        ready, _, _ = select.select([read_fd], [], [], 30)
        number = os.read(read_fd, 32).decode().strip() if ready else ""
        if not number:
            pytest.fail("Xvfb did not start within 30 s.")
        display = f":{number}"
        previous = os.environ.get("DISPLAY")
        os.environ["DISPLAY"] = display
        try:
            yield XvfbScreen(display, fbdir / "Xvfb_screen0")
        finally:
            if previous is None:
                os.environ.pop("DISPLAY", None)
            else:
                os.environ["DISPLAY"] = previous
    finally:
        os.close(read_fd)
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def xvfb_display(xvfb_screen) -> str:
    """The display of the session's Xvfb server (e.g. ":3"); DISPLAY is set to it."""
    return xvfb_screen.display


@pytest.fixture(scope="session")
def xdotool(xvfb_display) -> str:
    """The xdotool executable, for sending keys to windows on ``xvfb_display``."""
    return require_tool("xdotool", "apt-get install xdotool")
