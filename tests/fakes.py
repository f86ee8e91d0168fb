"""The tests' stand-ins for livecam's parts: windows, sources, recorders, cameras and a spying renderer.

Each fakes a protocol of the package (``livecam.viewer.window.Window``, ``livecam.sources.FrameSource``,
``livecam.viewer.recording.Recorder``, ``livecam.sources.protocol.CaptureLike``,
``livecam.viewer.sinks.FrameSink``) or spies on a real
class; tests/test_fakes.py checks every one against what it stands for, so that a fake cannot drift
from what the code calls. A test that needs its own behaviour subclasses one of these.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from livecam.render import Renderer
from livecam.sources import Frame
from livecam.viewer.recorder import VideoWriter
from livecam.viewer.sinks import SinkError

# ---------------------------------------------------------------------- windows (livecam.viewer.window.Window)


class FakeWindow:
    """Stands in for the OpenCV window: shows nothing, presses no key, is never closed."""

    closed = False
    fullscreen = False

    def show(self, image_bgr: np.ndarray) -> int:
        return -1

    def poll(self, wait_ms: int = 1) -> int:
        time.sleep(wait_ms / 1000)
        return -1

    def set_fullscreen(self, on: bool) -> None:
        self.fullscreen = on

    def close(self) -> None:
        pass


class CountingWindow(FakeWindow):
    """A ``FakeWindow`` that counts the pictures shown (``shown``)."""

    def __init__(self) -> None:
        self.shown = 0

    def show(self, image_bgr: np.ndarray) -> int:
        self.shown += 1
        return -1


class ScriptedWindow(CountingWindow):
    """A window whose user presses the given keys, one per shown or polled frame, then q.

    The user waits for the first picture: polls before it press nothing (on a busy machine the
    first frame can take longer than the display loop's wait).
    """

    def __init__(self, keys: str) -> None:
        super().__init__()
        self.keys = [ord(k) for k in keys]

    def _next(self) -> int:
        if self.shown == 0:
            return -1
        return self.keys.pop(0) if self.keys else ord("q")

    def show(self, image_bgr: np.ndarray) -> int:
        super().show(image_bgr)
        return self._next()

    def poll(self, wait_ms: int = 1) -> int:
        super().poll(wait_ms)
        return self._next()


class PressesAtOnce(FakeWindow):
    """A window whose user presses ``keys`` at once, one per poll, then q."""

    def __init__(self, keys: str = "") -> None:
        self.keys = [ord(k) for k in keys]

    def show(self, image_bgr: np.ndarray) -> int:
        return self.poll()

    def poll(self, wait_ms: int = 1) -> int:
        return self.keys.pop(0) if self.keys else ord("q")


class PressesOnFirstPicture(FakeWindow):
    """A window whose user presses ``key`` on the first picture, then watches to the end."""

    def __init__(self, key: str) -> None:
        self.keys = [ord(key)]

    def show(self, image_bgr: np.ndarray) -> int:
        return self.keys.pop(0) if self.keys else -1

    def poll(self, wait_ms: int = 1) -> int:
        return -1


class StepWindow(FakeWindow):
    """A window whose user looks at each picture, then presses the next key of a script (one key per picture shown).

    ``shown`` lists the frame number of each picture shown: the value of its top left pixel.
    """

    def __init__(self, keys: str = "", quit_when_done: bool = True) -> None:
        self.keys = list(keys)
        self.quit_when_done = quit_when_done
        self.shown: list[int] = []
        self._key = -1
        self.release = threading.Event()  # set: the user presses q at the next poll

    def show(self, image_bgr: np.ndarray) -> int:
        self.shown.append(int(image_bgr[0, 0, 0]))
        if self.keys:
            self._key = ord(self.keys.pop(0))
        elif self.quit_when_done:
            self._key = ord("q")
        return -1

    def poll(self, wait_ms: int = 1) -> int:
        time.sleep(wait_ms / 1000)
        if self.release.is_set():
            return ord("q")
        key, self._key = self._key, -1
        return key


def wait_until(condition, timeout_s: float = 30.0) -> bool:
    """Poll ``condition`` until it holds or ``timeout_s`` passes; a bound on waiting, not a timing check."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not condition():
        time.sleep(0.005)
    return condition()


class PausingUser(FakeWindow):
    """A window whose user watches a live camera, pauses it while the camera goes on, and resumes.

    Each picture carries its capture number (``image[0, 0, 0] + 256 * image[0, 0, 1]``); the
    camera (a ``FakeDevice``) notes when it captured each one.
    """

    def __init__(self, source, device: FakeDevice, captured_at: dict[int, float]) -> None:
        self.source, self.device, self.captured_at = source, device, captured_at
        self.shown: list[int] = []  # the capture number of each picture shown
        self.stage = "watch"
        self.resumed_s = self.dropped_while_paused = None

    def show(self, image_bgr: np.ndarray) -> int:
        self.shown.append(int(image_bgr[0, 0, 0]) + 256 * int(image_bgr[0, 0, 1]))
        return self._key()

    def poll(self, wait_ms: int = 1) -> int:
        time.sleep(wait_ms / 1000)
        return self._key()

    def _key(self) -> int:
        if self.stage == "watch" and len(self.shown) >= 3:
            self.stage = "paused"
            return ord(" ")
        if self.stage == "paused":
            assert wait_until(lambda: self.source.paused), "the loop tells the source it is paused"
            dropped, counter = self.source.dropped, self.device.counter
            assert wait_until(lambda: self.device.counter >= counter + 30)  # the camera goes on meanwhile
            self.dropped_while_paused = self.source.dropped - dropped
            self.stage, self.shown_before_resume, self.resumed_s = "resumed", len(self.shown), time.monotonic()
            return ord(" ")
        if self.stage == "resumed" and len(self.shown) > self.shown_before_resume:
            return ord("q")
        return -1


# ---------------------------------------------------------------------- sources (livecam.sources.FrameSource)


class FakeSource:
    """A file-like FrameSource over a list of frames; ``closed`` counts the calls to ``close``."""

    live = False
    variable_frame_rate = False
    mixed_sizes = False
    dropped = 0
    corrupt = 0
    description = "fake frames"

    def __init__(self, frames: list[np.ndarray], fps: float = 10.0):
        self.frames = frames
        self.fps = fps
        self.size = (frames[0].shape[1], frames[0].shape[0])
        self.frame_count = len(frames)
        self.warnings: list[str] = []
        self.closed = 0
        self.paused = False
        self._next = 0

    @property
    def status(self) -> str:
        return "ended" if self.closed or self._next == len(self.frames) else "ok"

    def read(self, timeout_s: float | None = None) -> Frame | None:
        if self.closed or self._next == len(self.frames):
            return None
        frame = Frame(self.frames[self._next], self._next, time.monotonic())
        self._next += 1
        return frame

    def set_paused(self, paused: bool) -> None:
        self.paused = paused

    def close(self) -> None:
        self.closed += 1


class SilentCamera(FakeSource):
    """A live source that never delivers a frame."""

    live = True

    def __init__(self):
        super().__init__([np.zeros((32, 32, 3), np.uint8)])
        self.frame_count = None

    @property
    def status(self) -> str:
        return "ended" if self.closed else "ok"

    def read(self, timeout_s: float | None = None) -> Frame | None:
        time.sleep(min(timeout_s or 0.05, 0.05))
        return None


# ---------------------------------------------------------------------- cameras (livecam.sources.protocol.CaptureLike)


class FakeDevice:
    """A camera that can be unplugged: its captures fail while ``plugged`` is clear.

    ``make_frame(counter, size)`` draws each capture; ``opens`` counts the captures opened.
    """

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
    """A capture of a ``FakeDevice``, as ``cv2.VideoCapture`` would be."""

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


class FlakyCapture:
    """A real ``cv2.VideoCapture`` whose grab() or retrieve() fails on chosen frames (after really advancing)."""

    def __init__(self, cap, bad_grabs=(), bad_retrieves=()):
        self.cap, self.bad_grabs, self.bad_retrieves = cap, set(bad_grabs), set(bad_retrieves)
        self.position = -1

    def grab(self):
        ok = self.cap.grab()
        self.position += 1
        return ok and self.position not in self.bad_grabs

    def retrieve(self):
        ok, image = self.cap.retrieve()
        return (False, None) if self.position in self.bad_retrieves else (ok, image)

    def __getattr__(self, name):
        return getattr(self.cap, name)


# ---------------------------------------------------------------------- recorders (livecam.viewer.recording.Recorder)


class ListRecorder:
    """A recorder that keeps what it is given."""

    saved_path = None

    def __init__(self, path):
        self.path = path
        self.images: list[np.ndarray] = []
        self.closed = False

    @property
    def frames_received(self) -> int:
        return len(self.images)

    def new_warnings(self) -> list[str]:
        return []

    def write(self, frame_bgr: np.ndarray, timestamp_s: float | None = None) -> None:
        self.images.append(frame_bgr.copy())

    def close(self) -> None:
        self.closed = True


class DiskFillsUp(VideoWriter):
    """A real writer whose disk fills up after ``full_after`` frames (it stops at its next space check)."""

    def __init__(self, *args, full_after: int, **kwargs):
        super().__init__(*args, min_free_bytes=0, **kwargs)
        self._full_after = full_after

    def write(self, frame_bgr, timestamp_s=None):
        if self.frames_received == self._full_after:
            self.min_free_bytes = 2**62
        super().write(frame_bgr, timestamp_s)


class AnotherProgramWritesThenDiskFills(DiskFillsUp):
    """Another program writes the target at frame 5; the disk fills after ``full_after`` frames."""

    def write(self, frame_bgr, timestamp_s=None):
        if self.frames_received == 5:
            self.path.write_bytes(b"another program's file")
        super().write(frame_bgr, timestamp_s)


class FailsMidRun:
    """A recorder that raises SinkError at frame ``fail_at`` and leaves closing the file to its owner."""

    def __init__(self, writer: VideoWriter, fail_at: int):
        self.writer, self.path, self.fail_at, self.writes = writer, writer.path, fail_at, 0

    def write(self, frame_bgr, timestamp_s=None):
        if self.writes == self.fail_at:
            raise SinkError(f"Writing {self.path} failed: the encoder went away.")
        self.writer.write(frame_bgr, timestamp_s)
        self.writes += 1

    def close(self):
        self.writer.close()

    def __getattr__(self, name):  # the rest of the recorder (saved_path, frames_received, new_warnings) is the writer's
        return getattr(self.writer, name)


class DiskFull:
    """A recorder whose disk fills up after ``n`` frames: the writer is closed and the write fails."""

    def __init__(self, writer: VideoWriter, n: int):
        self.writer, self.n, self.path = writer, n, writer.path

    def write(self, frame_bgr, timestamp_s=None):
        if self.writer.frames_received >= self.n:
            self.writer.close()
            raise SinkError(f"No space left on device while writing {self.path}")
        self.writer.write(frame_bgr, timestamp_s)

    def close(self):
        self.writer.close()

    def __getattr__(self, name):  # the rest of the recorder (saved_path, frames_received, new_warnings) is the writer's
        return getattr(self.writer, name)


# ---------------------------------------------------------------------- per-frame outputs (livecam.viewer.sinks.FrameSink)


class KeepPictures:
    """A per-frame output that keeps what the pipeline gives it."""

    keeps_output = True

    def __init__(self):
        self.processed = []

    def write(self, processed) -> None:
        self.processed.append(processed)

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------- a spying renderer (livecam.render.Renderer)


class SpyRenderer(Renderer):
    """A real renderer that notes, for each frame it draws, the HUD and the explicit keys it is given.

    ``render`` draws through ``views``, so both front-ends' calls are noted.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls: list[tuple] = []  # (hud, keys) per frame drawn

    def views(self, frame_bgr, cam, hud, **keys):
        self.calls.append((hud, keys))
        return super().views(frame_bgr, cam, hud, **keys)

    @property
    def huds(self) -> list:
        """The HUD of each frame (None where it had none)."""
        return [hud for hud, _ in self.calls]

    @property
    def statuses(self) -> list[str]:
        """The HUD's status of each frame ("" where it had no HUD)."""
        return [hud.status if hud is not None else "" for hud, _ in self.calls]

    @property
    def keys(self) -> list[tuple]:
        """(explains, map_id) of each frame: what its map answers, and the map's number."""
        return [(keys["explains"], keys["map_id"]) for _, keys in self.calls]

    @property
    def drawn(self) -> list[tuple[bool, int | None]]:
        """(the HUD's padlock, the lock its map was made for) of each frame with a HUD."""
        return [(hud.locked, keys["explains"][1]) for hud, keys in self.calls if hud is not None]
