"""What every part of ``livecam serve`` shares: its settings, the application's keys, and the one
way to explain a frame (through the shared ``EngineWorker``, off the event loop).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from aiohttp import web

from livecam.engine.compare import submit_compare
from livecam.engine.worker import EngineWorker
from livecam.meters import RateMeter
from livecam.render import BLENDS, DEFAULT_ALPHA, DEFAULT_BLEND, DEFAULT_SMOOTH, Renderer, check_choice, check_hud
from livecam.serve import limits, protocol
from livecam.serve.metrics import ServerMetrics
from livecam.trust.faithfulness import Faithfulness, Schedule, answered, probe

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
        faithfulness: ``--faithfulness N``: every Nth frame a connection sends (or pulls) is
            tested, its hidden copies riding with its next frame; 0: off.
    """

    token: str | None = None
    class_id: int | None = None
    blend: str = DEFAULT_BLEND
    alpha: float | None = None
    colormap: str = "jet"
    smooth: float = DEFAULT_SMOOTH
    hud: str = "label"
    faithfulness: int = 0  # test every Nth map of a connection (``livecam.trust.faithfulness``); 0: off

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


async def explain_probed(
    app: web.Application,
    image: np.ndarray | bytes,
    class_id: int | None,
    method: str | None,
    *,
    stream: Any,
    schedule: Schedule,
    number: int,
    contrast: int | None = None,
    compare: str | None = None,
) -> tuple[Any, float, tuple[Any, ...], Faithfulness | None]:
    """``explain_compare`` with the faithfulness schedule of one stream: (row, engine ms, the
    panels side by side, the faithfulness readout that came with it).

    The probe of an earlier frame that is waiting in ``schedule.riding`` rides in this frame's
    engine call; this frame's own probe (when due) waits there for the next frame. Side by side
    (``compare``) is not probed: the test is of single maps.
    """
    if compare is not None:
        row, engine_ms, panels = await explain_compare(app, image, class_id, method, compare, stream=stream, contrast=contrast)
        return row, engine_ms, panels, None
    worker, engine = app[worker_key], app[engine_key]
    probe, schedule.riding = schedule.riding, None
    riders = [] if probe is None else list(probe.images)

    def submit():
        frame_bgr = protocol.decode_image(image) if isinstance(image, bytes) else image
        prepared = engine.prepare(frame_bgr)
        ids = [class_id] + [probe.class_id] * len(riders) if probe is not None else [class_id]
        jobs = worker.submit_group([prepared, *riders], class_ids=ids, method=method, stream=stream, contrast=contrast)
        return prepared, engine.map_box(frame_bgr.shape[1::-1]), jobs

    loop = asyncio.get_running_loop()
    prepared, box, jobs = await loop.run_in_executor(None, submit)
    rows = [await asyncio.wrap_future(job) for job in jobs]
    app[engine_rate_key].tick()
    row = replace(rows[0], box=box)  # the worker was given the frame prepared: place the map on the frame
    schedule.riding = await loop.run_in_executor(None, schedule.after, prepared, rows[0], number)
    return row, jobs[0].engine_ms or 0.0, (), None if probe is None else answered(probe, rows[1:])


async def probe_now(app: web.Application, image_bgr: np.ndarray, row: Any) -> Faithfulness | None:
    """The faithfulness readout of one answered picture, from one more engine call (``POST /api/explain?faithfulness=1``)."""
    worker, engine = app[worker_key], app[engine_key]

    def submit():
        p = probe(engine.prepare(image_bgr), row, 1)
        jobs = [] if p is None else worker.submit_group(list(p.images), class_ids=[p.class_id] * len(p.images), method=row.method)
        return p, jobs

    p, jobs = await asyncio.get_running_loop().run_in_executor(None, submit)
    return None if p is None else answered(p, [await asyncio.wrap_future(job) for job in jobs])


def renderer(config: ServeConfig, *, smooth: float) -> Renderer:
    """The renderer of the stream and overlays: pictures drawn like the files of a viewer (view "file"), at ``config.hud``."""
    return Renderer(
        colormap=config.colormap, alpha=config.alpha, blend=config.blend, smooth=smooth, hud=config.hud, file_hud=config.hud
    )
