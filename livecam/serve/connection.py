"""One WebSocket client of ``livecam serve`` (``GET /ws``): frames in, one answer per answered frame.

Each connection has the viewer's own ``ViewerState`` and ``Controller``: every controls message
becomes commands for ``Controller.apply_all`` (all of it applies, or none), so the method, the
class lock, the pause, the opacity and the colormap a page steers obey the window's rules. The
state is authoritative for what the server computes for this connection: the method and class
each frame is explained with, and what a pull of the server's source answers (while paused,
the frame it last sent, explained again with the current settings).

A connection keeps at most one frame waiting (a ``Mailbox``: a newer frame replaces it, and the
replaced one is never answered) and at most one in the engine.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from aiohttp import WSCloseCode, WSMsgType, web

from livecam.engine.worker import WorkerClosed
from livecam.errors import UserError, first_line
from livecam.mailbox import Mailbox
from livecam.serve import protocol
from livecam.serve.context import config_key, engine_key, explain_probed, feed_key, metrics_key, sockets_key
from livecam.serve.feed import FeedFrame, SourceFeed
from livecam.serve.security import origin_ok
from livecam.trust.faithfulness import Schedule
from livecam.trust.region import RegionBox, result_region
from livecam.trust.scale import SessionScale, scale_key
from livecam.viewer.control import Controller, ViewerState

CLOSE_TIMEOUT_S = 0.5  # how long a closing WebSocket waits for the client's half of the handshake


@dataclass
class _Frame:
    seq: int
    data: bytes
    received_s: float
    method: str
    class_id: int | None
    contrast_id: int | None
    box: RegionBox | None
    compare: str | None


class Connection:
    """One WebSocket client: its own viewer state, one waiting frame, one frame in the engine."""

    def __init__(self, app: web.Application, ws: web.WebSocketResponse) -> None:
        self.app = app
        self.ws = ws
        engine, config = app[engine_key], app[config_key]
        # The same state and controller as the window's: this adapter only turns messages into commands.
        self.state = ViewerState(method=engine.method, alpha=config.opacity, colormap=config.colormap)
        self.controller = Controller(self.state, class_names=engine.class_names)
        self.seq = 0
        self.inbox: Mailbox[_Frame] = Mailbox()
        self.frame_waiting = asyncio.Event()
        self.pull_wanted = asyncio.Event()
        self.scale = SessionScale()  # --normalize session: this client's running maximum
        # Each kind of frame is its own run of frames: a probe rides with the next of its kind.
        self.faith = {kind: Schedule(config.faithfulness) for kind in ("frames", "pulls")}

    def on_frame(self, data: bytes) -> None:
        self.seq += 1
        state = self.state
        replaced = self.inbox.put(
            _Frame(self.seq, data, time.perf_counter(), state.method, state.class_id, state.contrast_id, state.box, state.compare)
        )
        if replaced is not None:
            self.app[metrics_key].dropped()
        self.frame_waiting.set()

    async def on_text(self, text: str) -> None:
        # Settings go with each frame when it arrives: they apply to the frames after this message.
        # A message is applied whole or not at all, and a refused one is answered, never fatal.
        try:
            controls = protocol.parse_controls(text)
            self.controller.apply_all(protocol.commands(controls))
        except UserError as exc:
            await self.send(protocol.control_error_message(str(exc)))
            return
        except Exception as exc:  # a check missed: this message is refused, the connection goes on
            print(f"livecam: a controls message failed: {type(exc).__name__}: {first_line(exc)}", file=sys.stderr, flush=True)
            await self.send(protocol.control_error_message(f"The controls could not be applied ({type(exc).__name__})."))
            return
        if "pull" in controls:
            self.pull_wanted.set()
        if "faithfulness" in controls:
            for schedule in self.faith.values():
                schedule.on = controls["faithfulness"]
                schedule.riding = None

    async def answer_frames(self) -> None:
        """Takes the newest waiting frame, explains it, answers; repeats."""
        app = self.app
        while True:
            await self.frame_waiting.wait()
            self.frame_waiting.clear()
            frame = self.inbox.get(timeout_s=0)
            if frame is None:
                continue
            answer = await self._explain(
                frame.data,
                frame.class_id,
                frame.method,
                "frames",
                lambda text, seq=frame.seq: protocol.error_message(seq, text),
                number=frame.seq,
                contrast=frame.contrast_id,
                compare=frame.compare,
            )
            if answer is None:
                continue
            row, engine_ms, panels, faith = answer
            server_ms = (time.perf_counter() - frame.received_s) * 1000
            _, width, height = protocol.image_size(frame.data)
            message = protocol.result_message(
                row,
                app[engine_key].class_names,
                seq=frame.seq,
                engine_ms=engine_ms,
                server_ms=server_ms,
                panels=panels,
                faith=faith,
                **self.readouts(row, (width, height), frame.box),
            )
            await self.send(message)
            app[metrics_key].answered("ws", server_ms / 1000)

    async def answer_pulls(self) -> None:
        """Sends the server source's next frame, explained with this connection's settings, once per pull.

        While paused, a pull is answered with the frame sent last (the one on the page's
        screen), explained again: a new method or class shows on the frozen picture.
        """
        app = self.app
        feed: SourceFeed | None = app[feed_key]
        loop = asyncio.get_running_loop()
        held: FeedFrame | None = None
        while True:
            await self.pull_wanted.wait()
            self.pull_wanted.clear()
            if feed is None:
                await self.send(protocol.control_error_message("This server has no source of its own; start it with --source."))
                continue
            if held is None or not self.state.paused:
                frame = await feed.next_after(held.number if held is not None else 0)
                if frame is None:
                    await self.send({"type": "notice", "message": "The server's source has ended."})
                    continue
                held = frame
            t0 = time.perf_counter()
            number = held.number
            answer = await self._explain(
                held.image_bgr,
                self.state.class_id,
                self.state.method,
                "pulls",
                lambda text, number=number: protocol.source_error_message(number, text),
                number=number,
                contrast=self.state.contrast_id,
                compare=self.state.compare,
            )
            if answer is None:
                continue
            row, engine_ms, panels, faith = answer
            jpeg = await loop.run_in_executor(None, feed.jpeg, held)
            server_ms = (time.perf_counter() - t0) * 1000
            message = protocol.result_message(
                row,
                app[engine_key].class_names,
                seq=number,
                engine_ms=engine_ms,
                server_ms=server_ms,
                panels=panels,
                faith=faith,
                **self.readouts(row, held.image_bgr.shape[1::-1], self.state.box),
            )
            message.update(type="source_result", frame=message.pop("seq"), image=base64.b64encode(jpeg).decode("ascii"))
            await self.send(message)
            app[metrics_key].answered("source", server_ms / 1000)

    def readouts(self, row: Any, frame_wh: tuple[int, int], box: RegionBox | None) -> dict[str, Any]:
        """The trust readouts of one answer (``result_message``'s arguments): the region score in
        the client's box, and the map's scale (this connection's running maximum under "session")."""
        region = result_region(row, frame_wh, box)
        normalize, cam_scale = self.state.normalize, 1.0
        if normalize == "session" and row.finite[0]:
            cam_scale = self.scale.factor(float(row.cam_max[0]), scale_key(row), time.monotonic())
        return {"region": region, "normalize": normalize, "cam_scale": cam_scale}

    async def _explain(
        self,
        image: np.ndarray | bytes,
        class_id: int | None,
        method: str,
        kind: str,
        error: Callable[[str], dict[str, Any]],
        *,
        number: int,
        contrast: int | None = None,
        compare: str | None = None,
    ) -> tuple[Any, float, tuple[Any, ...], Any] | None:
        """The frame explained: (its row, the engine's ms, the panels side by side under
        ``compare``, the faithfulness readout that came with it); None when it could not be,
        after sending ``error(sentence)``: the connection goes on.

        Raises:
            WorkerClosed: the server is shutting down.
        """
        try:
            return await explain_probed(
                self.app,
                image,
                class_id,
                method,
                stream=(self, kind),
                schedule=self.faith[kind],
                number=number,
                contrast=contrast,
                compare=compare,
            )
        except WorkerClosed:
            raise
        except UserError as exc:
            self.app[metrics_key].error()
            await self.send(error(str(exc)))
        except Exception as exc:  # an engine fault: this frame is answered, the connection goes on
            self.app[metrics_key].error()
            print(f"livecam: the engine failed on a frame: {type(exc).__name__}: {first_line(exc)}", file=sys.stderr, flush=True)
            await self.send(error(f"The engine failed on this frame ({type(exc).__name__}: {first_line(exc)})."))
        return None

    async def send(self, message: dict[str, Any]) -> None:
        if not self.ws.closed:
            try:
                await self.ws.send_str(json.dumps(message))
            except ConnectionError:  # the client went away meanwhile: its receive loop ends too
                pass


async def _until_closed(answering: Any) -> None:
    with contextlib.suppress(WorkerClosed):
        await answering


async def websocket(request: web.Request) -> web.StreamResponse:
    """``GET /ws``: serves one connection until the client leaves or the server stops."""
    if not origin_ok(request):
        return web.Response(
            status=403, text="livecam: the WebSocket must be opened from a page of this server (Origin does not match).\n"
        )
    # aiohttp refuses a frame of max_msg_size bytes itself, but a deflated message only over it:
    # "over 4 MiB", as for POST, is max_msg_size one more, and the check below for the deflated.
    ws = web.WebSocketResponse(max_msg_size=protocol.MAX_MESSAGE_BYTES + 1, timeout=CLOSE_TIMEOUT_S, heartbeat=20.0)
    await ws.prepare(request)
    app = request.app
    connection = Connection(app, ws)
    app[sockets_key].add(ws)
    app[metrics_key].clients("ws", +1)
    # Each task ends only when cancelled, or quietly when the worker closes (the server stops).
    tasks = [
        asyncio.create_task(_until_closed(connection.answer_frames())),
        asyncio.create_task(_until_closed(connection.answer_pulls())),
    ]
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
        app[sockets_key].discard(ws)
        app[metrics_key].clients("ws", -1)
    return ws
