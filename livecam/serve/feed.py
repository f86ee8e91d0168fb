"""The server's own source for ``livecam serve``: the newest frame for every viewer, and one MJPEG stream.

``SourceFeed`` reads the ``--source`` in a thread and keeps only its newest frame (files are
paced at their frame rate, so a video plays in real time rather than as fast as it decodes).
Asyncio code waits for a frame newer than the one it had; each frame is JPEG-encoded at most
once, however many WebSocket viewers pull it.

``MjpegStream`` explains, renders (the viewer's own ``Renderer``, with its HUD and smoothing)
and encodes the newest frame once for all ``/stream.mjpg`` viewers, and only while someone
watches. A slow viewer skips frames instead of queueing them: every viewer always gets the
newest picture. Its HUD says the engine's maps per second (all clients together), the stream's
own pictures per second, and the source's frames the stream skipped because the engine was busy.

Both hand out their newest item through a ``mailbox.AsyncLatest``.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from livecam.mailbox import AsyncLatest
from livecam.meters import Clock, RateMeter
from livecam.render import HudInfo, Renderer, hud_info

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
        self._frames: AsyncLatest[FeedFrame] = AsyncLatest(loop)
        self._jpeg: tuple[int, bytes] | None = None
        self._jpeg_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="livecam-serve-source", daemon=True)
        self._thread.start()

    @property
    def status(self) -> str:
        """The source's status: "ok", "reconnecting" or "ended"."""
        return self.source.status

    async def next_after(self, number: int) -> FeedFrame | None:
        """The newest frame numbered above ``number``, waiting for one; None once the source has ended."""
        newest = await self._frames.next_after(number)
        return None if newest is None else newest[1]

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
        self._frames.close()

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
                self._frames.put(FeedFrame(number, frame.image_bgr, time.monotonic(), frame.unrelated))
        finally:
            self._stop.set()
            self._frames.close()


class MjpegStream:
    """The annotated server stream, rendered and encoded once per frame for all MJPEG viewers.

    Args:
        feed: the server's source.
        explain: ``await explain(frame_bgr) -> (one-row CamResult, engine_ms)``, with the
            server's own method and class.
        renderer: draws the overlay and the HUD (its ``file_hud``: a stream has no keys to hint at).
        class_names: the engine's class names, for the HUD.
        locked: whether the server explains a fixed class (``--class``).
        engine_rate: the engine's maps, all clients together (the HUD's engine fps); None: not shown.
        clock: seconds, monotonic, for the stream's own rate and the latency.
    """

    def __init__(
        self,
        feed: SourceFeed,
        explain: Callable,
        renderer: Renderer,
        class_names: tuple[str, ...],
        *,
        locked: bool,
        engine_rate: RateMeter | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self._feed = feed
        self._explain = explain
        self._renderer = renderer
        self._class_names = class_names
        self._locked = locked
        self._engine_rate = engine_rate
        self._clock = clock
        self._rate = RateMeter(clock=clock)  # pictures drawn per second
        self._jpegs: AsyncLatest[bytes] | None = None  # one per run: viewers of a stopped run are told so
        self._viewers = 0
        self._task: asyncio.Task | None = None
        self._drawn = 0  # the number of the last source frame drawn in this run; 0 before the first
        self._dropped = 0  # the source's frames skipped since the server started
        self._scene = 0  # the number of the last unrelated picture: a new one restarts the smoothing

    @property
    def viewers(self) -> int:
        return self._viewers

    async def frames(self):
        """Yields the newest encoded JPEG each time a new one is ready, for one viewer."""
        self._viewers += 1
        if self._task is None or self._task.done():
            self._jpegs = AsyncLatest(asyncio.get_running_loop())
            self._drawn = 0
            self._task = asyncio.get_running_loop().create_task(self._run(self._jpegs))
        jpegs = self._jpegs
        try:
            seen = 0
            while (newest := await jpegs.next_after(seen)) is not None:
                seen = newest[0]
                yield newest[1]
        finally:
            self._viewers -= 1

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        if self._jpegs is not None:  # (a run cancelled before it started never closed its own)
            self._jpegs.close()

    async def _run(self, jpegs: AsyncLatest[bytes]) -> None:
        loop = asyncio.get_running_loop()
        number = 0
        try:
            while self._viewers > 0:
                frame = await self._feed.next_after(number)
                if frame is None:
                    return
                number = frame.number
                row, engine_ms = await self._explain(frame.image_bgr)
                jpegs.put(await loop.run_in_executor(None, self._draw, frame, row, engine_ms))
        except Exception as exc:  # the viewers' streams end; say why in the server's log
            print(f"livecam: the MJPEG stream stopped: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            raise
        finally:
            jpegs.close()  # the viewers' streams end; a later viewer starts a new run

    def _draw(self, frame: FeedFrame, row: Any, engine_ms: float) -> bytes:
        now = self._clock()
        self._rate.tick(now)
        if self._drawn:  # frames of the source that went by while the engine was busy
            self._dropped += max(0, frame.number - self._drawn - 1)
        self._drawn = frame.number
        if frame.unrelated:
            self._scene = frame.number
        cam = row.cam[0] if row.finite[0] else None
        # Drawn as a file is: the renderer's file_hud, without the window's key hint, help or messages.
        image = self._renderer.render(
            frame.image_bgr, cam, self._hud(frame, row, now), view="file", explains=(row.method, self._scene), box=row.box
        )
        return encode_jpeg(image)

    def _hud(self, frame: FeedFrame, row: Any, now: float) -> HudInfo:
        return hud_info(
            row,
            self._class_names,
            locked=self._locked,
            engine_fps=self._engine_rate.fps if self._engine_rate is not None else None,
            display_fps=self._rate.fps,
            latency_ms=(now - frame.timestamp_s) * 1000,
            dropped=self._dropped,
            status="reconnecting" if self._feed.status == "reconnecting" else "",
        )


def encode_jpeg(image_bgr: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    ok, data = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG.")
    return data.tobytes()
