"""The HTTP routes of ``livecam serve`` besides the WebSocket: the page, ``/api/config``,
``POST /api/explain`` (a result, or the overlay as PNG), ``/stream.mjpg`` and ``/metrics``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import html
import time
from importlib import resources
from pathlib import PurePosixPath
from typing import Any

import cv2
import numpy as np
from aiohttp import web

from livecam.engine.methods import METHOD_NAMES
from livecam.errors import UserError
from livecam.render import COLORMAPS, HudInfo, hud_info
from livecam.render import page_constants as render_rules
from livecam.render.grid import MAX_GRID_W, draw_grid, panel_titles
from livecam.serve import protocol
from livecam.serve.context import (
    ServeConfig,
    config_key,
    engine_key,
    explain_compare,
    feed_key,
    metrics_key,
    mjpeg_key,
    page_key,
    pixels_key,
    probe_now,
    renderer,
)
from livecam.serve.feed import MjpegStream
from livecam.serve.security import token_query
from livecam.trust.region import REGION_TEXT, RegionBox, result_region
from livecam.trust.scale import NORMALIZE, SCALE_LABELS
from livecam.trust.stamp import made_with, png_with_text
from livecam.viewer.control import ALPHA_DECIMALS, ALPHA_STEP, Controller, ViewerState

# The page's files under serve/web/ besides index.html (which is served at "/"), each at "/NAME":
# nothing else is served, and no path from a request reaches the file system.
# The page's files: its entry module app.js imports the others, each URL with the token (see app.js).
STATIC_FILES = (
    "style.css",
    *(f"{name}.js" for name in ("app", "camera", "files", "heat", "keys", "panels", "rules", "socket", "ui", "webm")),
)
_CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
PAGE_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob: mediastream:; "
    "connect-src 'self'; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'"
)
# POST /api/explain waits this long for room in the pixel budget, then answers 503.
EXPLAIN_WAIT_S = 10.0


# ---------------------------------------------------------------------- the page


def load_page() -> dict[str, tuple[bytes, str]]:
    """The shipped page and its files, read once, by the path they are served at."""
    folder = resources.files("livecam").joinpath("serve", "web")
    page = {}
    for path, name in [("/", "index.html"), *(("/" + name, name) for name in STATIC_FILES)]:
        page[path] = (folder.joinpath(*PurePosixPath(name).parts).read_bytes(), _CONTENT_TYPES[PurePosixPath(name).suffix])
    return page


async def index(request: web.Request) -> web.Response:
    body, content_type = request.app[page_key]["/"]
    # The files are fetched by the browser without the page's query, so their links carry the token
    # (percent-encoded, so that & # or a space stay inside it, then escaped for the attribute).
    body = body.replace(b"{{QUERY}}", html.escape(token_query(request.app[config_key].token)).encode())
    return web.Response(body=body, content_type=content_type, charset="utf-8", headers=_page_headers())


async def asset(request: web.Request) -> web.Response:
    body, content_type = request.app[page_key][request.path]
    return web.Response(body=body, content_type=content_type, charset="utf-8", headers=_page_headers())


def _page_headers() -> dict[str, str]:
    return {
        "Content-Security-Policy": PAGE_CSP,
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


# ---------------------------------------------------------------------- /api/config


async def config(request: web.Request) -> web.Response:
    """``GET /api/config``: what the page starts from."""
    app = request.app
    engine = app[engine_key]
    settings = app[config_key]
    feed = app[feed_key]
    return web.json_response(
        {
            "model": engine.model_name,
            "layer": engine.layer_name,
            "method": engine.method,
            "methods": list(METHOD_NAMES),
            "class_names": list(engine.class_names),
            "topk": engine.topk,
            "input_size": list(engine.input_size),  # (height, width): the page sends frames no smaller
            "alpha": settings.opacity,
            "alpha_step": ALPHA_STEP,  # the page's [ and ] keys step as the window's
            "blend": settings.blend,
            "smooth": settings.smooth,
            "colormap": settings.colormap,
            "colormaps": colormap_tables(),
            "rules": page_constants(settings),
            "source": feed.description if feed is not None else None,
            "faithfulness": settings.faithfulness,  # every Nth frame tested; 0: off (the page hides its toggle)
            "max_message_bytes": protocol.MAX_MESSAGE_BYTES,
        }
    )


def page_constants(settings: ServeConfig) -> dict[str, Any]:
    """The viewer's rules the page applies itself (``render.page_constants``), with this server's
    ``--smooth`` and ``--blend``, and the opacity keys' step (``control.step_alpha``: the step, then
    rounded to ``alpha_decimals`` and kept in [0, 1])."""
    return {
        **render_rules(),
        "smooth": settings.smooth,
        "blend": settings.blend,
        "alpha_step": ALPHA_STEP,
        "alpha_decimals": ALPHA_DECIMALS,
        "region": REGION_TEXT,  # the box's readout, worded as the window draws it
        "normalize": list(NORMALIZE),
        "scale_labels": SCALE_LABELS,  # what the colour bar's top end says, per scale
        "grid_max_w": MAX_GRID_W,  # side by side: a wider grid has its panels scaled down
    }


def colormap_tables() -> dict[str, str]:
    """Every OpenCV colormap as base64 of 256 RGB triples: the page paints maps with the renderer's own tables."""
    ramp = np.arange(256, dtype=np.uint8)[:, None]
    return {
        name: base64.b64encode(cv2.applyColorMap(ramp, cmap)[:, 0, ::-1].tobytes()).decode("ascii")
        for name, cmap in COLORMAPS.items()
    }


# ---------------------------------------------------------------------- POST /api/explain


_NO = ("0", "", "false")  # a query flag that is off


async def explain_http(request: web.Request) -> web.Response:
    app = request.app
    received_s = time.perf_counter()
    if request.content_type not in ("image/jpeg", "image/png", "image/webp"):
        return _error(
            415, f"Expected Content-Type image/jpeg, image/png or image/webp. Received: {request.content_type or 'none'}."
        )
    loop = asyncio.get_running_loop()
    try:
        method, class_id, box, compare = _query_settings(request, app[engine_key])
        data = await request.read()
        _, width, height = protocol.image_size(data) if data else ("", 0, 0)  # (decode_image says what is wrong with no data)
        # The decoded picture is held until the answer is made: the budget bounds the memory of many at once.
        async with app[pixels_key].hold(width * height):
            image = await loop.run_in_executor(None, protocol.decode_image, data)
            row, engine_ms, panels = await explain_compare(app, image, class_id, method, compare)
            faith = await probe_now(app, image, row) if request.query.get("faithfulness", "0") not in _NO else None
            server_ms = (time.perf_counter() - received_s) * 1000
            app[metrics_key].answered("api", server_ms / 1000)
            if request.query.get("overlay", "0") not in _NO:
                png = await loop.run_in_executor(None, overlay_png, app, image, row, class_id is not None, panels)
                return web.Response(body=png, content_type="image/png")
    except UserError as exc:
        app[metrics_key].error()
        return _error(400, str(exc))
    except asyncio.TimeoutError:  # (TimeoutError itself from Python 3.11)
        response = _error(
            503,
            f"The server is decoding as many pictures as it can hold; try again in a few seconds (waited {EXPLAIN_WAIT_S:g} s).",
        )
        response.headers["Retry-After"] = "5"
        return response
    region = result_region(row, image.shape[1::-1], box)
    return web.json_response(
        protocol.result_message(
            row,
            app[engine_key].class_names,
            seq=1,
            engine_ms=engine_ms,
            server_ms=server_ms,
            region=region,
            panels=panels,
            faith=faith,
        )
    )


def _query_settings(request: web.Request, engine: Any) -> tuple[str, int | None, RegionBox | None, str | None]:
    """``method=``, ``class_id=``, ``box=`` and ``compare=`` of a request, checked by a viewer controller like the WebSocket's controls."""
    controls: dict[str, Any] = {}
    if "box" in request.query:
        controls["box"] = request.query["box"]  # x,y,w,h as for --box
    if "compare" in request.query:
        controls["compare"] = request.query["compare"]  # classes, methods, or off
    if "method" in request.query:
        controls["method"] = request.query["method"]
    if "class_id" in request.query:
        text = request.query["class_id"]
        controls["class_id"] = None if text in ("", "null") else text  # an id or a name, as for --class
    settings = request.app[config_key]
    state = ViewerState(method=engine.method, alpha=settings.opacity, colormap=settings.colormap)
    Controller(state, class_names=engine.class_names).apply_all(protocol.commands(controls))
    return state.method, state.class_id, state.box, state.compare


def overlay_png(app: web.Application, image: np.ndarray, row: Any, locked: bool, panels: tuple[Any, ...] = ()) -> bytes:
    """The overlay of one answered image as PNG, drawn as the viewer draws a file (side by side, its
    grid, for ``panels``); ``locked``: the client chose the class."""
    settings = app[config_key]
    if panels:
        overlay = draw_grid(
            image,
            panels,
            app[engine_key].class_names,
            titles=panel_titles(panels),
            colormap=settings.colormap,
            alpha=settings.alpha,
            blend=settings.blend,
        )
    else:
        overlay = renderer(settings, smooth=0.0).render(
            image, row.cam[0] if row.finite[0] else None, _overlay_hud(app, row, locked), view="file", box=row.box
        )
    ok, data = cv2.imencode(".png", overlay)
    if not ok:
        raise RuntimeError("OpenCV could not encode a PNG.")
    return png_with_text(data.tobytes(), made_with(app[engine_key], method=row.method))


def _overlay_hud(app: web.Application, row: Any, locked: bool) -> HudInfo:
    return hud_info(row, app[engine_key].class_names, locked=locked)


def _error(status: int, message: str) -> web.Response:
    return web.json_response(protocol.error_message(1, message), status=status)


# ---------------------------------------------------------------------- the stream and metrics


async def mjpeg(request: web.Request) -> web.StreamResponse:
    stream: MjpegStream | None = request.app[mjpeg_key]
    if stream is None:
        return web.Response(
            status=404, text="livecam: this server has no source of its own; start it with --source to get /stream.mjpg.\n"
        )
    response = web.StreamResponse(
        headers={"Content-Type": "multipart/x-mixed-replace; boundary=frame", "Cache-Control": "no-store"}
    )
    await response.prepare(request)
    metrics = request.app[metrics_key]
    metrics.clients("mjpeg", +1)
    try:
        async with contextlib.aclosing(stream.frames()) as frames:  # the viewer count drops as soon as the client leaves
            async for jpeg in frames:
                header = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
                await response.write(header + jpeg + b"\r\n")
    except ConnectionError:
        pass
    finally:
        metrics.clients("mjpeg", -1)
    return response


async def metrics(request: web.Request) -> web.Response:
    body, content_type = request.app[metrics_key].exposition()
    return web.Response(body=body, headers={"Content-Type": content_type})
