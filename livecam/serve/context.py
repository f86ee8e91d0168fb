"""What every part of ``livecam serve`` shares: its settings, the application's keys, and the one
way to explain a frame (through the shared ``EngineWorker``, off the event loop).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import numpy as np
from aiohttp import web

from livecam.engine.compare import submit_compare
from livecam.engine.worker import EngineWorker
from livecam.meters import RateMeter
from livecam.render import BLENDS, DEFAULT_ALPHA, DEFAULT_BLEND, DEFAULT_SMOOTH, Renderer, check_choice, check_hud
from livecam.serve import limits, protocol
from livecam.serve.metrics import ServerMetrics

# The engine's maps per second over this many maps: rows of one batch arrive together, so a
# short window would read a batch as a burst.
ENGINE_RATE_WINDOW = 120


@dataclass(frozen=True)
class ServeConfig:
    """How the server behaves (the CLI fills this from its flags).

    Attributes:
        token: the secret every request must carry; None for none (loopback binds only).
        class_id: the class the server's own stream explains (``--class``); None: the top one.
        blend, alpha, colormap, smooth: the renderer's settings for the stream and overlays, and
            the page's starting values (alpha None: the blend's default).
        hud: the HUD of the stream and overlays: "label" (the label and the legend), "full" (adds
            the top-k bars and the diagnostics) or "none". The window's own items (key hint,
            help, messages) are never drawn: nobody presses keys on a stream.
    """

    token: str | None = None
    class_id: int | None = None
    blend: str = DEFAULT_BLEND
    alpha: float | None = None
    colormap: str = "jet"
    smooth: float = DEFAULT_SMOOTH
    hud: str = "label"

    def __post_init__(self) -> None:
        check_choice("blend", self.blend, BLENDS)
        check_hud(self.hud)

    @property
    def opacity(self) -> float:
        """The heat map's opacity: ``alpha``, or the blend's default."""
        return DEFAULT_ALPHA[self.blend] if self.alpha is None else self.alpha


engine_key = web.AppKey("engine", Any)
worker_key = web.AppKey("worker", EngineWorker)
engine_rate_key = web.AppKey("engine_rate", RateMeter)  # maps the engine delivered, all clients together
feed_key = web.AppKey("feed", Any)
mjpeg_key = web.AppKey("mjpeg", Any)
config_key = web.AppKey("config", ServeConfig)
metrics_key = web.AppKey("metrics", ServerMetrics)
sockets_key = web.AppKey("sockets", set)
page_key = web.AppKey("page", dict)
connections_key = web.AppKey("connections", limits.ConnectionGuard)
pixels_key = web.AppKey("pixels", limits.PixelBudget)


async def explain(
    app: web.Application,
    image: np.ndarray | bytes,
    class_id: int | None,
    method: str | None,
    *,
    stream: Any = None,
    contrast: int | None = None,
) -> tuple[Any, float]:
    """One frame (pixels, or encoded bytes to decode first) through the shared worker: (one-row CamResult, engine ms of its batch).

    Raises:
        UserError: the bytes are not an image the server takes.
    """
    row, engine_ms, _ = await explain_compare(app, image, class_id, method, None, stream=stream, contrast=contrast)
    return row, engine_ms


async def explain_compare(
    app: web.Application,
    image: np.ndarray | bytes,
    class_id: int | None,
    method: str | None,
    compare: str | None,
    *,
    stream: Any = None,
    contrast: int | None = None,
) -> tuple[Any, float, tuple[Any, ...]]:
    """``explain``, or side by side as the viewer does (``compare``: "classes" or "methods",
    ``livecam.engine.compare``): (the first panel's one-row CamResult, engine ms, the panels;
    none without ``compare``).

    Raises:
        UserError: the bytes are not an image the server takes.
    """
    worker = app[worker_key]

    def submit():  # decoding and the resize in submit run here, off the event loop, in one hop
        frame_bgr = protocol.decode_image(image) if isinstance(image, bytes) else image
        if compare is None:
            return worker.submit(frame_bgr, class_id=class_id, method=method, stream=stream, contrast=contrast)
        method_name = method or app[engine_key].method
        return submit_compare(worker, frame_bgr, compare, class_id=class_id, method=method_name, stream=stream, contrast=contrast)

    job = await asyncio.get_running_loop().run_in_executor(None, submit)
    rows = await asyncio.wrap_future(job)
    panels = rows if isinstance(rows, tuple) else ()
    for _ in panels or (rows,):
        app[engine_rate_key].tick()
    return (panels[0] if panels else rows), job.engine_ms or 0.0, panels


def renderer(config: ServeConfig, *, smooth: float) -> Renderer:
    """The renderer of the stream and overlays: pictures drawn like the files of a viewer (view "file"), at ``config.hud``."""
    return Renderer(
        colormap=config.colormap, alpha=config.alpha, blend=config.blend, smooth=smooth, hud=config.hud, file_hud=config.hud
    )
