"""``livecam serve``: the live viewer in a browser, many viewers on one engine.

An aiohttp application whose handlers only translate messages: bytes in, frames to the one
``EngineWorker`` (which batches frames from every connection), JSON out. Routes:

    GET  /             the page (livecam/serve/web/), with its script modules and style.css; nothing else is served
    GET  /api/config   what the page needs: model, methods, class names, colormap tables, defaults
    GET  /ws           the WebSocket API (see the README): frames in, one result per answered frame
    POST /api/explain  one image in, one result (JSON) or the overlay (PNG, ?overlay=1) out
    GET  /stream.mjpg  the server source's annotated stream (with --source)
    GET  /metrics      Prometheus text format

Every connection keeps at most one frame waiting (a ``Mailbox``: a newer frame replaces it, and
the replaced one is never answered) and at most one in the engine, so latency stays at about
one engine step however fast a client sends. Each connection has its own method and class lock.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import hmac
import html
import ipaddress
import json
import secrets
import signal
import socket
import ssl
import sys
import time
import urllib.parse
from dataclasses import dataclass
from importlib import resources
from typing import Any, Callable

import cv2
import numpy as np
from aiohttp import WSCloseCode, WSMsgType, web
from yarl import URL

from livecam.serve import limits, protocol
from livecam.viewer.control import ALPHA_STEP, Action, Command, Controller, ViewerState
from livecam.errors import UserError, first_line
from livecam.serve.feed import MjpegStream, SourceFeed
from livecam.mailbox import Mailbox
from livecam.engine.methods import METHOD_NAMES
from livecam.serve.metrics import ServerMetrics
from livecam.render import BLENDS, COLORMAPS, DEFAULT_ALPHA, DEFAULT_BLEND, DEFAULT_SMOOTH, Renderer, check_choice, check_hud, hud_info
from livecam.engine.worker import EngineWorker, WorkerClosed

DEFAULT_PORT = 8765
CLOSE_TIMEOUT_S = 0.5  # how long a closing WebSocket waits for the client's half of the handshake
SHUTDOWN_TIMEOUT_S = 0.5  # then how long open requests (streams) get before they are cancelled
# POST /api/explain decodes at most two of the largest images at once (a 4096x4096 16-bit PNG is
# 128 MB decoded, and a small file); a request waits this long for its turn, then gets 503.
EXPLAIN_PIXELS = 2 * protocol.MAX_PIXELS
EXPLAIN_WAIT_S = 10.0
# The page's files: its entry module app.js imports the others (each URL with the token, see app.js).
_MODULES = ("app", "camera", "files", "heat", "keys", "rules", "socket", "ui", "webm")
_ASSETS = {"/style.css": ("style.css", "text/css"), **{f"/{name}.js": (f"{name}.js", "text/javascript") for name in _MODULES}}
_PAGE_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob: mediastream:; "
    "connect-src 'self'; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'"
)


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


# ---------------------------------------------------------------------- the application

_engine_key = web.AppKey("engine", Any)
_worker_key = web.AppKey("worker", EngineWorker)
_feed_key = web.AppKey("feed", Any)
_mjpeg_key = web.AppKey("mjpeg", Any)
_config_key = web.AppKey("config", ServeConfig)
_metrics_key = web.AppKey("metrics", ServerMetrics)
_sockets_key = web.AppKey("sockets", set)
_page_key = web.AppKey("page", dict)
_connections_key = web.AppKey("connections", limits.ConnectionGuard)
_pixels_key = web.AppKey("pixels", limits.PixelBudget)


def create_app(engine: Any, worker: EngineWorker, config: ServeConfig = ServeConfig(), *, source: Any = None) -> web.Application:
    """The aiohttp application.

    Args:
        engine: the ``CamEngine`` (for its class names, layer and default method).
        worker: the ``EngineWorker`` that runs that engine; every request goes through it.
        config: token and rendering settings.
        source: an open ``FrameSource`` to serve as the server's own view (a file plays at its
            frame rate); the app closes it.
    """
    connections = limits.ConnectionGuard()
    app = web.Application(middlewares=[connections.middleware, _guard], client_max_size=protocol.MAX_MESSAGE_BYTES)
    app[_connections_key] = connections
    app[_pixels_key] = limits.PixelBudget(EXPLAIN_PIXELS, EXPLAIN_WAIT_S)
    app[_engine_key] = engine
    app[_worker_key] = worker
    app[_config_key] = config
    app[_metrics_key] = ServerMetrics(worker)
    app[_sockets_key] = set()
    app[_page_key] = _load_page()
    app[_feed_key] = None
    app[_mjpeg_key] = None
    app.router.add_get("/", _index)
    for path in _ASSETS:
        app.router.add_get(path, _asset)
    app.router.add_get("/api/config", _config)
    app.router.add_get("/ws", _websocket)
    app.router.add_post("/api/explain", _explain_http)
    app.router.add_get("/stream.mjpg", _mjpeg)
    app.router.add_get("/metrics", _metrics)
    if source is not None:
        app.on_startup.append(_start_feed(source))
    app.on_shutdown.append(_shutdown)
    return app


def _start_feed(source: Any) -> Callable:
    async def start(app: web.Application) -> None:
        feed = SourceFeed(source, asyncio.get_running_loop())
        config = app[_config_key]
        renderer = _renderer(config, smooth=config.smooth)
        app[_feed_key] = feed
        app[_mjpeg_key] = MjpegStream(
            feed,
            lambda frame: _explain(app, frame, config.class_id, None, stream="mjpeg"),
            renderer,
            app[_engine_key].class_names,
            locked=config.class_id is not None,
        )

    return start


async def _shutdown(app: web.Application) -> None:
    """Closes every WebSocket (without waiting long for clients that never answer) and the streams."""
    sockets = list(app[_sockets_key])
    if sockets:
        closing = [ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down") for ws in sockets]
        await asyncio.wait([asyncio.ensure_future(c) for c in closing], timeout=CLOSE_TIMEOUT_S + 0.2)
    if app[_mjpeg_key] is not None:
        await app[_mjpeg_key].close()
    if app[_feed_key] is not None:
        await asyncio.get_running_loop().run_in_executor(None, app[_feed_key].close)


async def _explain(
    app: web.Application, image: np.ndarray | bytes, class_id: int | None, method: str | None, *, stream: Any = None
) -> tuple[Any, float]:
    """One frame (pixels, or encoded bytes to decode first) through the shared worker: (one-row CamResult, engine ms of its batch).

    Raises:
        UserError: the bytes are not an image the server takes.
    """
    worker = app[_worker_key]

    def submit():  # decoding and the resize in submit run here, off the event loop, in one hop
        frame_bgr = protocol.decode_image(image) if isinstance(image, bytes) else image
        return worker.submit(frame_bgr, class_id=class_id, method=method, stream=stream)

    job = await asyncio.get_running_loop().run_in_executor(None, submit)
    row = await asyncio.wrap_future(job)
    return row, job.engine_ms or 0.0


# ---------------------------------------------------------------------- security


@web.middleware
async def _guard(request: web.Request, handler: Callable) -> web.StreamResponse:
    """The token on every request when there is one; otherwise a loopback Host (no DNS rebinding)."""
    token = request.app[_config_key].token
    if token is not None:
        supplied = request.query.get("token", "")
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            supplied = auth[7:].strip()
        if not hmac.compare_digest(supplied.encode(), token.encode()):
            return web.Response(
                status=401,
                text="livecam: this server needs its token: open the URL it printed (ending in ?token=...), "
                "or send the header 'Authorization: Bearer TOKEN'.\n",
                headers={"WWW-Authenticate": "Bearer"},
            )
    elif not _is_loopback_name(_host_name(request.host)):
        return web.Response(status=403, text="livecam: without a token this server answers only http://127.0.0.1 or localhost.\n")
    return await handler(request)


def _origin_ok(request: web.Request) -> bool:
    """Browsers send Origin: it must be this server's scheme, host and port. Scripts send none and may pass."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    try:
        theirs, ours = URL(origin), request.url
        # A missing port is the scheme's default on both sides; "null" (a sandboxed page) has no host.
        return theirs.path in ("", "/") and (theirs.scheme, theirs.host, theirs.port) == (ours.scheme, ours.host, ours.port)
    except ValueError:  # not a URL, or a Host header that is not one
        return False


def _host_name(host_header: str) -> str:
    """The name in a Host header, without the port: "[::1]:8765" -> "::1", "localhost" -> "localhost"."""
    if host_header.startswith("["):
        return host_header[1:].partition("]")[0]
    return host_header.partition(":")[0]


def _is_loopback_name(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ---------------------------------------------------------------------- the page


def _load_page() -> dict[str, tuple[bytes, str]]:
    """The shipped page and its assets, read once: no path from a request reaches the file system."""
    folder = resources.files("livecam").joinpath("serve", "web")
    page = {"/": (folder.joinpath("index.html").read_bytes(), "text/html")}
    for path, (name, content_type) in _ASSETS.items():
        page[path] = (folder.joinpath(name).read_bytes(), content_type)
    return page


async def _index(request: web.Request) -> web.Response:
    body, content_type = request.app[_page_key]["/"]
    # The assets are fetched by the browser without the page's query, so their links carry the token
    # (percent-encoded, so that & # or a space stay inside it, then escaped for the attribute).
    body = body.replace(b"{{QUERY}}", html.escape(token_query(request.app[_config_key].token)).encode())
    return web.Response(body=body, content_type=content_type, charset="utf-8", headers=_page_headers())


async def _asset(request: web.Request) -> web.Response:
    body, content_type = request.app[_page_key][request.path]
    return web.Response(body=body, content_type=content_type, charset="utf-8", headers=_page_headers())


def _page_headers() -> dict[str, str]:
    return {"Content-Security-Policy": _PAGE_CSP, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


async def _config(request: web.Request) -> web.Response:
    app = request.app
    engine = app[_engine_key]
    config = app[_config_key]
    feed = app[_feed_key]
    return web.json_response(
        {
            "model": engine.model_name,
            "layer": engine.layer_name,
            "method": engine.method,
            "methods": list(METHOD_NAMES),
            "class_names": list(engine.class_names),
            "topk": engine.topk,
            "input_size": list(engine.input_size),  # (height, width): the page sends frames no smaller
            "alpha": config.opacity,
            "alpha_step": ALPHA_STEP,  # the page's [ and ] keys step as the window's
            "blend": config.blend,
            "smooth": config.smooth,
            "colormap": config.colormap,
            "colormaps": colormap_tables(),
            "source": feed.description if feed is not None else None,
            "max_message_bytes": protocol.MAX_MESSAGE_BYTES,
        }
    )


def colormap_tables() -> dict[str, str]:
    """Every OpenCV colormap as base64 of 256 RGB triples: the page paints maps with the renderer's own tables."""
    ramp = np.arange(256, dtype=np.uint8)[:, None]
    return {name: base64.b64encode(cv2.applyColorMap(ramp, cmap)[:, 0, ::-1].tobytes()).decode("ascii") for name, cmap in COLORMAPS.items()}


# ---------------------------------------------------------------------- the WebSocket


@dataclass
class _Frame:
    seq: int
    data: bytes
    received_s: float
    method: str
    class_id: int | None


class _Connection:
    """One WebSocket client: its own method and class lock, one waiting frame, one frame in the engine."""

    def __init__(self, app: web.Application, ws: web.WebSocketResponse) -> None:
        self.app = app
        self.ws = ws
        engine, config = app[_engine_key], app[_config_key]
        # The same state and controller as the window's: this adapter only turns messages into actions.
        self.state = ViewerState(method=engine.method, alpha=config.opacity, colormap=config.colormap)
        self.controller = Controller(self.state, class_names=engine.class_names)
        self.seq = 0
        self.inbox: Mailbox[_Frame] = Mailbox()
        self.frame_waiting = asyncio.Event()
        self.pull_wanted = asyncio.Event()

    def on_frame(self, data: bytes) -> None:
        self.seq += 1
        replaced = self.inbox.put(_Frame(self.seq, data, time.perf_counter(), self.state.method, self.state.class_id))
        if replaced is not None:
            self.app[_metrics_key].dropped()
        self.frame_waiting.set()

    async def on_text(self, text: str) -> None:
        # Settings go with each frame when it arrives: they apply to the frames after this message.
        # A message is applied whole or not at all, and a refused one is answered, never fatal.
        try:
            controls = protocol.parse_controls(text)
            self.controller.apply_all(_commands(controls))
        except UserError as exc:
            await self.send(protocol.control_error_message(str(exc)))
            return
        except Exception as exc:  # a check missed: this message is refused, the connection goes on
            print(f"livecam: a controls message failed: {type(exc).__name__}: {first_line(exc)}", file=sys.stderr, flush=True)
            await self.send(protocol.control_error_message(f"The controls could not be applied ({type(exc).__name__})."))
            return
        if "pull" in controls:
            self.pull_wanted.set()

    async def answer_frames(self) -> None:
        """Takes the newest waiting frame, explains it, answers; repeats."""
        app, metrics = self.app, self.app[_metrics_key]
        while True:
            await self.frame_waiting.wait()
            self.frame_waiting.clear()
            frame = self.inbox.get(timeout_s=0)
            if frame is None:
                continue
            try:
                row, engine_ms = await _explain(app, frame.data, frame.class_id, frame.method, stream=(self, "frames"))
            except UserError as exc:
                metrics.error()
                await self.send(protocol.error_message(frame.seq, str(exc)))
                continue
            except WorkerClosed:
                return
            except Exception as exc:  # an engine fault: this frame is answered, the connection goes on
                metrics.error()
                print(f"livecam: the engine failed on a frame: {type(exc).__name__}: {first_line(exc)}", file=sys.stderr, flush=True)
                await self.send(protocol.error_message(frame.seq, f"The engine failed on this frame ({type(exc).__name__}: {first_line(exc)})."))
                continue
            server_ms = (time.perf_counter() - frame.received_s) * 1000
            message = protocol.result_message(row, app[_engine_key].class_names, seq=frame.seq, engine_ms=engine_ms, server_ms=server_ms)
            await self.send(message)
            metrics.answered("ws", server_ms / 1000)

    async def answer_pulls(self) -> None:
        """Sends the server source's next frame, explained with this connection's settings, once per pull."""
        app = self.app
        feed: SourceFeed | None = app[_feed_key]
        loop = asyncio.get_running_loop()
        number = 0
        while True:
            await self.pull_wanted.wait()
            self.pull_wanted.clear()
            if feed is None:
                await self.send(protocol.control_error_message("This server has no source of its own; start it with --source."))
                continue
            frame = await feed.next_after(number)
            if frame is None:
                await self.send({"type": "notice", "message": "The server's source has ended."})
                continue
            number = frame.number
            t0 = time.perf_counter()
            try:
                row, engine_ms = await _explain(app, frame.image_bgr, self.state.class_id, self.state.method, stream=(self, "pulls"))
            except WorkerClosed:
                return
            jpeg = await loop.run_in_executor(None, feed.jpeg, frame)
            server_ms = (time.perf_counter() - t0) * 1000
            message = protocol.result_message(row, app[_engine_key].class_names, seq=number, engine_ms=engine_ms, server_ms=server_ms)
            message.update(type="source_result", frame=message.pop("seq"), image=base64.b64encode(jpeg).decode("ascii"))
            await self.send(message)
            app[_metrics_key].answered("source", server_ms / 1000)

    async def send(self, message: dict[str, Any]) -> None:
        if not self.ws.closed:
            try:
                await self.ws.send_str(json.dumps(message))
            except ConnectionError:  # the client went away meanwhile: its receive loop ends too
                pass


def _commands(controls: dict[str, Any]) -> list[Command]:
    """A controls message as the viewer's commands (``{"class_id": null}`` unlocks)."""
    commands = []
    if "method" in controls:
        commands.append(Command(Action.SET_METHOD, controls["method"]))
    if "class_id" in controls:
        commands.append(Command(Action.LOCK_CLASS, controls["class_id"]))
    return commands


async def _websocket(request: web.Request) -> web.StreamResponse:
    if not _origin_ok(request):
        return web.Response(status=403, text="livecam: the WebSocket must be opened from a page of this server (Origin does not match).\n")
    # aiohttp refuses a frame of max_msg_size bytes itself, but a deflated message only over it:
    # "over 4 MiB", as for POST, is max_msg_size one more, and the check below for the deflated.
    ws = web.WebSocketResponse(max_msg_size=protocol.MAX_MESSAGE_BYTES + 1, timeout=CLOSE_TIMEOUT_S, heartbeat=20.0)
    await ws.prepare(request)
    app = request.app
    connection = _Connection(app, ws)
    app[_sockets_key].add(ws)
    app[_metrics_key].clients("ws", +1)
    tasks = [asyncio.create_task(connection.answer_frames()), asyncio.create_task(connection.answer_pulls())]
    try:
        async for message in ws:
            if message.type is WSMsgType.BINARY and len(message.data) > protocol.MAX_MESSAGE_BYTES:
                await ws.close(code=WSCloseCode.MESSAGE_TOO_BIG, message=b"message over 4 MiB")
            elif message.type is WSMsgType.BINARY:
                connection.on_frame(message.data)
            elif message.type is WSMsgType.TEXT:
                await connection.on_text(message.data)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        connection.inbox.close()
        app[_sockets_key].discard(ws)
        app[_metrics_key].clients("ws", -1)
    return ws


# ---------------------------------------------------------------------- HTTP API


async def _explain_http(request: web.Request) -> web.Response:
    app = request.app
    received_s = time.perf_counter()
    if request.content_type not in ("image/jpeg", "image/png", "image/webp"):
        return _error(415, f"Expected Content-Type image/jpeg, image/png or image/webp. Received: {request.content_type or 'none'}.")
    loop = asyncio.get_running_loop()
    try:
        method, class_id = _query_settings(request, app[_engine_key])
        data = await request.read()
        _, width, height = protocol.image_size(data) if data else ("", 0, 0)  # (decode_image says what is wrong with no data)
        # The decoded picture is held until the answer is made: the budget bounds the memory of many at once.
        async with app[_pixels_key].hold(width * height):
            image = await loop.run_in_executor(None, protocol.decode_image, data)
            row, engine_ms = await _explain(app, image, class_id, method)
            server_ms = (time.perf_counter() - received_s) * 1000
            app[_metrics_key].answered("api", server_ms / 1000)
            if request.query.get("overlay", "0") not in ("0", "", "false"):
                png = await loop.run_in_executor(None, _overlay_png, app, image, row)
                return web.Response(body=png, content_type="image/png")
    except UserError as exc:
        app[_metrics_key].error()
        return _error(400, str(exc))
    except asyncio.TimeoutError:  # (TimeoutError itself from Python 3.11)
        response = _error(503, f"The server is decoding as many pictures as it can hold; try again in a few seconds (waited {EXPLAIN_WAIT_S:g} s).")
        response.headers["Retry-After"] = "5"
        return response
    return web.json_response(protocol.result_message(row, app[_engine_key].class_names, seq=1, engine_ms=engine_ms, server_ms=server_ms))


def _query_settings(request: web.Request, engine: Any) -> tuple[str, int | None]:
    """``method=`` and ``class_id=`` of a request, checked by a viewer controller like the WebSocket's controls."""
    controls: dict[str, Any] = {}
    if "method" in request.query:
        controls["method"] = request.query["method"]
    if "class_id" in request.query:
        text = request.query["class_id"]
        controls["class_id"] = None if text in ("", "null") else text  # an id or a name, as for --class
    config = request.app[_config_key]
    state = ViewerState(method=engine.method, alpha=config.opacity, colormap=config.colormap)
    controller = Controller(state, class_names=engine.class_names)
    for command in _commands(controls):
        controller.apply(command.action, command.arg)
    return state.method, state.class_id


def _overlay_png(app: web.Application, image: np.ndarray, row: Any) -> bytes:
    config = app[_config_key]
    hud = hud_info(row, app[_engine_key].class_names, locked=False)
    overlay = _renderer(config, smooth=0.0).render(image, row.cam[0] if row.finite[0] else None, hud, view="file", box=row.box)
    ok, data = cv2.imencode(".png", overlay)
    if not ok:
        raise RuntimeError("OpenCV could not encode a PNG.")
    return data.tobytes()


def _renderer(config: ServeConfig, *, smooth: float) -> Renderer:
    """The renderer of the stream and overlays: pictures drawn like the files of a viewer (view "file"), at ``config.hud``."""
    return Renderer(colormap=config.colormap, alpha=config.alpha, blend=config.blend, smooth=smooth, hud=config.hud, file_hud=config.hud)


def _error(status: int, message: str) -> web.Response:
    return web.json_response(protocol.error_message(1, message), status=status)


async def _mjpeg(request: web.Request) -> web.StreamResponse:
    stream: MjpegStream | None = request.app[_mjpeg_key]
    if stream is None:
        return web.Response(status=404, text="livecam: this server has no source of its own; start it with --source to get /stream.mjpg.\n")
    response = web.StreamResponse(headers={"Content-Type": "multipart/x-mixed-replace; boundary=frame", "Cache-Control": "no-store"})
    await response.prepare(request)
    metrics = request.app[_metrics_key]
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


async def _metrics(request: web.Request) -> web.Response:
    body, content_type = request.app[_metrics_key].exposition()
    return web.Response(body=body, headers={"Content-Type": content_type})


# ---------------------------------------------------------------------- running it


def ssl_context(certfile: str | None, keyfile: str | None) -> ssl.SSLContext | None:
    """An HTTPS context from a certificate and its key, or None for plain HTTP."""
    if certfile is None and keyfile is None:
        return None
    if certfile is None or keyfile is None:
        raise UserError("HTTPS needs both --certfile and --keyfile; give both, or neither for plain HTTP.")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise UserError(f"The certificate {certfile!r} and key {keyfile!r} could not be loaded ({first_line(exc)}); check both paths and that the key belongs to the certificate.") from exc
    return context


def needs_token(host: str) -> bool:
    """Whether a bind address is reachable from other machines (then a token is required)."""
    return not _is_loopback_name(host)


def new_token() -> str:
    return secrets.token_urlsafe(18)


def page_url(host: str, port: int, token: str | None, *, https: bool) -> str:
    """The address to open: the machine's name for a wildcard bind, the bind address otherwise."""
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    elif ":" in host:
        host = f"[{host}]"
    return f"{'https' if https else 'http'}://{host}:{port}/" + token_query(token)


def token_query(token: str | None) -> str:
    """``?token=...`` with the token percent-encoded (any character may be in it), or "" for none."""
    return f"?token={urllib.parse.quote(token, safe='')}" if token else ""


def run(app: web.Application, host: str, port: int, *, ssl_ctx: ssl.SSLContext | None, on_ready: Callable[[int], None]) -> None:
    """Serves until SIGINT or SIGTERM, then stops within about a second, whatever the clients do."""
    asyncio.run(_serve(app, host, port, ssl_ctx, on_ready))


async def _serve(app: web.Application, host: str, port: int, ssl_ctx: ssl.SSLContext | None, on_ready: Callable[[int], None]) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    # The keep-alive timer also runs before a connection's first request: it is the header timeout.
    runner = web.AppRunner(
        app, handle_signals=False, access_log=None, keepalive_timeout=limits.HEADER_TIMEOUT_S, shutdown_timeout=SHUTDOWN_TIMEOUT_S
    )
    await runner.setup()
    limits.raise_open_file_limit()  # room for many clients; the guard keeps waiting ones to a share of it
    connections = app[_connections_key]
    loop.set_exception_handler(connections.exception_handler(runner.server))
    sweeper = asyncio.create_task(connections.keep(runner.server))
    try:
        site = web.TCPSite(runner, host, port, ssl_context=ssl_ctx)
        try:
            await site.start()
        except OSError as exc:
            raise bind_error(exc, host, port) from exc
        on_ready(runner.addresses[0][1])
        await stop.wait()
    finally:
        sweeper.cancel()
        await runner.cleanup()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def bind_error(exc: OSError, host: str, port: int) -> UserError:
    """The sentence for a listening socket that could not be opened: the flag to fix depends on the cause."""
    fix_host = "fix --host (127.0.0.1: this machine only; 0.0.0.0: every network)"
    if isinstance(exc, socket.gaierror):
        return UserError(f"Cannot listen on --host {host}: the name cannot be resolved ({first_line(exc)}); {fix_host}.")
    if exc.errno == errno.EADDRNOTAVAIL:
        return UserError(f"Cannot listen on --host {host}: it is not an address of this machine; {fix_host}.")
    if exc.errno in (errno.EACCES, errno.EPERM) and 0 < port < 1024:
        return UserError(f"Cannot listen on port {port}: ports under 1024 need privilege; pick a --port above 1023 (the default is {DEFAULT_PORT}), or run with privilege.")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return UserError(f"Cannot listen on {host}:{port} (permission denied); pick another --port, or run with the permission to use this one.")
    if exc.errno == errno.EADDRINUSE:
        return UserError(f"Cannot listen on {host}:{port}: the port is in use; pick another --port, or stop what uses it.")
    return UserError(f"Cannot listen on {host}:{port} ({first_line(exc)}); pick another --host or --port.")
