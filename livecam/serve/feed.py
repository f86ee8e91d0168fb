"""The server's own source for ``livecam serve``: the newest frame for every viewer, and one MJPEG stream.

``SourceFeed`` reads the ``--source`` in a thread and keeps only its newest frame (files are
paced at their frame rate, so a video plays in real time rather than as fast as it decodes).
Asyncio code waits for a frame newer than the one it had; each frame is JPEG-encoded at most
once, however many WebSocket viewers pull it.

``MjpegStream`` explains, renders (the viewer's own ``Renderer``, with its HUD and smoothing)
and encodes the newest frame once for all ``/stream.mjpg`` viewers, and only while someone
watches. A slow viewer skips frames instead of queueing them: every viewer always gets the
newest picture.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import cv2
import numpy as np

from livecam.render import Renderer, hud_info

JPEG_QUALITY = 85


@dataclass(frozen=True)
class FeedFrame:
    """One frame of the server's source: its number (1, 2, ...) and pixels.

    ``unrelated``: a picture that does not follow on from the one before (``Frame.unrelated``).
    """

    number: int
    image_bgr: np.ndarray
    timestamp_s: float
    unrelated: bool = False


class SourceFeed:
    """The newest frame of a ``FrameSource``, for asyncio readers.

    Args:
        source: an open ``FrameSource``; the feed closes it.
        loop: the event loop that readers wait on.
    """

    def __init__(self, source: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.source = source
        self.description: str = source.description
        self._loop = loop
        self._latest: FeedFrame | None = None
        self._jpeg: tuple[int, bytes] | None = None
        self._jpeg_lock = threading.Lock()
        self._changed = asyncio.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="livecam-serve-source", daemon=True)
        self._thread.start()

    @property
    def status(self) -> str:
        """The source's status: "ok", "reconnecting" or "ended"."""
        return self.source.status

    async def next_after(self, number: int) -> FeedFrame | None:
        """The newest frame numbered above ``number``, waiting for one; None once the source has ended."""
        while True:
            latest = self._latest
            if latest is not None and latest.number > number:
                return latest
            if self._stop.is_set():
                return None
            changed = self._changed
            await changed.wait()

    def jpeg(self, frame: FeedFrame) -> bytes:
        """``frame`` as JPEG, encoded once however many callers ask (call it off the event loop)."""
        with self._jpeg_lock:
            if self._jpeg is not None and self._jpeg[0] == frame.number:
                return self._jpeg[1]
            data = encode_jpeg(frame.image_bgr)
            self._jpeg = (frame.number, data)
            return data

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.source.close()
        self._notify()

    def _run(self) -> None:
        number = 0
        period_s = 1.0 / self.source.fps if not self.source.live and self.source.fps else 0.0
        next_due = time.monotonic()
        try:
            while not self._stop.is_set():
                frame = self.source.read(timeout_s=0.25) if self.source.live else self.source.read()
                if frame is None:
                    if self.source.status == "ended":
                        break
                    continue
                if period_s:  # a file plays at its own pace
                    next_due += period_s
                    delay = next_due - time.monotonic()
                    if delay > 0 and self._stop.wait(delay):
                        break
                    next_due = max(next_due, time.monotonic() - period_s)
                number += 1
                self._latest = FeedFrame(number, frame.image_bgr, time.monotonic(), frame.unrelated)
                self._notify()
        finally:
            self._stop.set()
            self._notify()

    def _notify(self) -> None:
        def wake() -> None:
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()

        try:
            self._loop.call_soon_threadsafe(wake)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass


class MjpegStream:
    """The annotated server stream, rendered and encoded once per frame for all MJPEG viewers.

    Args:
        feed: the server's source.
        explain: ``await explain(frame_bgr) -> (one-row CamResult, engine_ms)``, with the
            server's own method and class.
        renderer: draws the overlay and the HUD (its ``file_hud``: a stream has no keys to hint at).
        class_names: the engine's class names, for the HUD.
        locked: whether the server explains a fixed class (``--class``).
    """

    def __init__(self, feed: SourceFeed, explain: Callable, renderer: Renderer, class_names: tuple[str, ...], *, locked: bool) -> None:
        self._feed = feed
        self._explain = explain
        self._renderer = renderer
        self._class_names = class_names
        self._locked = locked
        self._latest: tuple[int, bytes] | None = None
        self._changed = asyncio.Event()
        self._viewers = 0
        self._viewers_changed = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._times: list[float] = []
        self._scene = 0  # the number of the last unrelated picture: a new one restarts the smoothing

    @property
    def viewers(self) -> int:
        return self._viewers

    async def frames(self):
        """Yields the newest encoded JPEG each time a new one is ready, for one viewer."""
        self._viewers += 1
        self._viewers_changed.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        try:
            seen = 0
            while True:
                latest = self._latest
                if latest is not None and latest[0] > seen:
                    seen = latest[0]
                    yield latest[1]
                    continue
                if self._task.done():
                    return
                changed = self._changed
                await changed.wait()
        finally:
            self._viewers -= 1

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        self._publish(None)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        number = 0
        try:
            while self._viewers > 0:
                frame = await self._feed.next_after(number)
                if frame is None:
                    return
                number = frame.number
                row, engine_ms = await self._explain(frame.image_bgr)
                data = await loop.run_in_executor(None, self._draw, frame, row, engine_ms)
                self._publish((frame.number, data))
        except Exception as exc:  # the viewers' streams end; say why in the server's log
            print(f"livecam: the MJPEG stream stopped: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            raise
        finally:
            self._publish(None)  # wakes the viewers, who see that the stream has stopped

    def _draw(self, frame: FeedFrame, row: Any, engine_ms: float) -> bytes:
        now = time.monotonic()
        self._times = [t for t in self._times if now - t < 2.0] + [now]
        fps = (len(self._times) - 1) / (self._times[-1] - self._times[0]) if len(self._times) > 1 and self._times[-1] > self._times[0] else None
        hud = hud_info(
            row,
            self._class_names,
            locked=self._locked,
            engine_fps=fps,
            display_fps=fps,
            latency_ms=(now - frame.timestamp_s) * 1000,
            dropped=0,
            status="reconnecting" if self._feed.status == "reconnecting" else "",
        )
        if frame.unrelated:
            self._scene = frame.number
        cam = row.cam[0] if row.finite[0] else None
        # Drawn as a file is: the renderer's file_hud, without the window's key hint, help or messages.
        image = self._renderer.render(frame.image_bgr, cam, hud, view="file", explains=(row.method, self._scene), box=row.box)
        return encode_jpeg(image)

    def _publish(self, latest: tuple[int, bytes] | None) -> None:
        if latest is not None:
            self._latest = latest
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()


def encode_jpeg(image_bgr: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    ok, data = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG.")
    return data.tobytes()
