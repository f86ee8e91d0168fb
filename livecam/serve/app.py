"""``livecam serve``: the live viewer in a browser, many viewers on one engine.

An aiohttp application whose handlers only translate messages: bytes in, frames to the one
``EngineWorker`` (which batches frames from every connection), JSON out. Routes:

    GET  /             the page (livecam/serve/web/) and its files (``http.STATIC_FILES``); nothing else is served
    GET  /api/config   what the page needs: model, methods, class names, colormap tables, defaults, the viewer's rules
    GET  /ws           the WebSocket API (see the README): frames in, one result per answered frame
    POST /api/explain  one image in, one result (JSON) or the overlay (PNG, ?overlay=1) out
    GET  /stream.mjpg  the server source's annotated stream (with --source)
    GET  /metrics      Prometheus text format

The parts: ``context`` (settings, the app's keys, explaining a frame), ``security`` (token,
Host, Origin, HTTPS), ``connection`` (one WebSocket client), ``http`` (the other routes),
``feed`` (the server's own source and its MJPEG stream), ``protocol`` (the wire format),
``limits`` and ``metrics``. This module builds the application and runs it.
"""

from __future__ import annotations

import asyncio
import errno
import signal
import socket
import ssl
from collections.abc import Callable
from typing import Any

from aiohttp import WSCloseCode, web

from livecam.engine.worker import EngineWorker
from livecam.errors import UserError, first_line
from livecam.meters import RateMeter
from livecam.serve import http, limits, protocol
from livecam.serve.connection import CLOSE_TIMEOUT_S, websocket
from livecam.serve.context import (
    ENGINE_RATE_WINDOW,
    ServeConfig,
    config_key,
    connections_key,
    engine_key,
    engine_rate_key,
    explain,
    feed_key,
    metrics_key,
    mjpeg_key,
    page_key,
    pixels_key,
    renderer,
    sockets_key,
    worker_key,
)
from livecam.serve.feed import MjpegStream, SourceFeed
from livecam.serve.metrics import ServerMetrics
from livecam.serve.security import guard, needs_token, new_token, origin_ok, page_url, ssl_context, token_query

# What the CLI and scripts use from here.
__all__ = [
    "DEFAULT_PORT",
    "ServeConfig",
    "bind_error",
    "create_app",
    "needs_token",
    "new_token",
    "origin_ok",
    "page_url",
    "run",
    "ssl_context",
    "token_query",
]

DEFAULT_PORT = 8765
SHUTDOWN_TIMEOUT_S = 0.5  # after the WebSockets, how long open requests (streams) get before they are cancelled
# POST /api/explain decodes at most two of the largest images at once (a 4096x4096 16-bit PNG is
# 128 MB decoded, and a small file); a request waits http.EXPLAIN_WAIT_S for its turn, then gets 503.
EXPLAIN_PIXELS = 2 * protocol.MAX_PIXELS


def create_app(engine: Any, worker: EngineWorker, config: ServeConfig = ServeConfig(), *, source: Any = None) -> web.Application:  # noqa: B008 (frozen)
    """The aiohttp application.

    Args:
        engine: the ``CamEngine`` (for its class names, layer and default method).
        worker: the ``EngineWorker`` that runs that engine; every request goes through it.
        config: token and rendering settings.
        source: an open ``FrameSource`` to serve as the server's own view (a file plays at its
            frame rate); the app closes it.
    """
    connections = limits.ConnectionGuard()
    app = web.Application(middlewares=[connections.middleware, guard], client_max_size=protocol.MAX_MESSAGE_BYTES)
    app[connections_key] = connections
    app[pixels_key] = limits.PixelBudget(EXPLAIN_PIXELS, http.EXPLAIN_WAIT_S)
    app[engine_key] = engine
    app[worker_key] = worker
    app[engine_rate_key] = RateMeter(ENGINE_RATE_WINDOW)
    app[config_key] = config
    app[metrics_key] = ServerMetrics(worker)
    app[sockets_key] = set()
    app[page_key] = http.load_page()
    app[feed_key] = None
    app[mjpeg_key] = None
    app.router.add_get("/", http.index)
    for name in http.STATIC_FILES:
        app.router.add_get("/" + name, http.asset)
    app.router.add_get("/api/config", http.config)
    app.router.add_get("/ws", websocket)
    app.router.add_post("/api/explain", http.explain_http)
    app.router.add_get("/stream.mjpg", http.mjpeg)
    app.router.add_get("/metrics", http.metrics)
    if source is not None:
        app.on_startup.append(_start_feed(source))
    app.on_shutdown.append(_shutdown)
    return app


def _start_feed(source: Any) -> Callable:
    async def start(app: web.Application) -> None:
        feed = SourceFeed(source, asyncio.get_running_loop())
        config = app[config_key]
        app[feed_key] = feed
        app[mjpeg_key] = MjpegStream(
            feed,
            lambda frame: explain(app, frame, config.class_id, None, stream="mjpeg"),
            renderer(config, smooth=config.smooth),
            app[engine_key].class_names,
            locked=config.class_id is not None,
            engine_rate=app[engine_rate_key],
        )

    return start


async def _shutdown(app: web.Application) -> None:
    """Closes every WebSocket (without waiting long for clients that never answer) and the streams."""
    sockets = list(app[sockets_key])
    if sockets:
        closing = [ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down") for ws in sockets]
        await asyncio.wait([asyncio.ensure_future(c) for c in closing], timeout=CLOSE_TIMEOUT_S + 0.2)
    if app[mjpeg_key] is not None:
        await app[mjpeg_key].close()
    if app[feed_key] is not None:
        await asyncio.get_running_loop().run_in_executor(None, app[feed_key].close)


# ---------------------------------------------------------------------- running it


def run(app: web.Application, host: str, port: int, *, ssl_ctx: ssl.SSLContext | None, on_ready: Callable[[int], None]) -> None:
    """Serves until SIGINT or SIGTERM, then stops within about a second, whatever the clients do."""
    asyncio.run(_serve(app, host, port, ssl_ctx, on_ready))


async def _serve(
    app: web.Application, host: str, port: int, ssl_ctx: ssl.SSLContext | None, on_ready: Callable[[int], None]
) -> None:
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
    connections = app[connections_key]
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
        return UserError(
            f"Cannot listen on port {port}: ports under 1024 need privilege; pick a --port above 1023 (the default is {DEFAULT_PORT}), or run with privilege."
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return UserError(
            f"Cannot listen on {host}:{port} (permission denied); pick another --port, or run with the permission to use this one."
        )
    if exc.errno == errno.EADDRINUSE:
        return UserError(f"Cannot listen on {host}:{port}: the port is in use; pick another --port, or stop what uses it.")
    return UserError(f"Cannot listen on {host}:{port} ({first_line(exc)}); pick another --host or --port.")
