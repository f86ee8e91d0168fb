"""Protocol tests of `livecam serve` without a browser: a real server process, aiohttp clients.

One server (demo model, a synthetic source, a token) serves the module; the shutdown tests
start their own.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import re
import signal
import socket
import struct
import subprocess
import time

import aiohttp
import cv2
import numpy as np
import PIL.Image
import pytest

from livecam.demo import CLASS_NAMES
from livecam.trust.faithfulness import FIELDS
from serve_helpers import ServerProcess, scene

TOKEN = "test-token-1234"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = ServerProcess(
        "--model", "demo", "--source", "synth:320x240,fps=15", "--token", TOKEN, log_dir=tmp_path_factory.mktemp("serve")
    )
    yield proc
    proc.stop()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def ws_connect(session: aiohttp.ClientSession, server: ServerProcess, **kwargs) -> aiohttp.ClientWebSocketResponse:
    return await session.ws_connect(server.path("/ws"), max_msg_size=0, **kwargs)


async def receive_json(ws: aiohttp.ClientWebSocketResponse, timeout_s: float = 60) -> dict:
    message = await ws.receive(timeout=timeout_s)
    assert message.type is aiohttp.WSMsgType.TEXT, message
    return json.loads(message.data)


def cam_of(result: dict) -> np.ndarray:
    cam = result["cam"]
    return np.frombuffer(base64.b64decode(cam["data"]), np.uint8).reshape(cam["height"], cam["width"])


def hottest_xy(cam: np.ndarray, size_wh: tuple[int, int]) -> tuple[float, float]:
    y, x = np.unravel_index(int(np.argmax(cam)), cam.shape)
    return (x + 0.5) * size_wh[0] / cam.shape[1], (y + 0.5) * size_wh[1] / cam.shape[0]


def inside(xy: tuple[float, float], box: tuple[int, int, int, int]) -> bool:
    return box[0] <= xy[0] <= box[2] and box[1] <= xy[1] <= box[3]


# ---------------------------------------------------------------------- results


def test_result_has_the_documented_shape_and_explains_the_object(server):
    shown = scene()

    async def go():
        async with aiohttp.ClientSession() as session, await ws_connect(session, server) as ws:
            await ws.send_bytes(shown.jpeg())
            return await receive_json(ws)

    result = run(go())
    assert set(result) == {
        *("type", "seq", "class_id", "label", "prob", "topk", "cam", "method", "layer", "box", "ms"),
        *("cam_max", "normalize", "box_xywh", "box_energy", "box_peak_inside", "contrast_id", "contrast_name"),
        *("panels", "panel_grid", "faith_text"),
        *FIELDS,
    }
    assert result["panels"] == [] and result["panel_grid"] is None  # side by side only when asked
    assert result["box_xywh"] is None and result["normalize"] == "frame" and result["cam_max"] > 0
    assert all(result[name] is None for name in (*FIELDS, "faith_text"))  # the first frame's readout comes with the second
    assert result["box"] == [0.0, 0.0, 1.0, 1.0]  # --fit squash: the map covers the whole frame
    assert result["type"] == "result" and result["seq"] == 1
    assert result["label"] == shown.label == CLASS_NAMES[result["class_id"]]
    assert result["prob"] > 0.9
    assert result["method"] == "gradcam" and result["layer"] == "features"
    assert [e["prob"] for e in result["topk"]] == sorted((e["prob"] for e in result["topk"]), reverse=True)
    assert result["topk"][0] == {"id": result["class_id"], "label": shown.label, "prob": result["prob"]}
    assert len(result["topk"]) == 5 and all(set(e) == {"id", "label", "prob"} for e in result["topk"])
    cam = cam_of(result)
    assert cam.max() == 255  # maps are normalised: 255 = hottest
    assert inside(hottest_xy(cam, shown.image_bgr.shape[1::-1]), shown.box_xyxy)
    assert set(result["ms"]) == {"engine", "server"} and 0 < result["ms"]["engine"] <= result["ms"]["server"]


def test_a_box_and_the_session_scale_steer_the_readout_over_the_websocket_and_post(server):
    """The client's box on the object holds most of the heat; on the session scale a weaker map of the same class looks weaker."""
    shown = scene()
    x0, y0, x1, y1 = shown.box_xyxy
    w, h = x1 - x0 + 1, y1 - y0 + 1
    box = [max(0, x0 - w // 4), max(0, y0 - h // 4), w * 3 // 2, h * 3 // 2]
    faded = cv2.addWeighted(shown.image_bgr, 0.3, np.full_like(shown.image_bgr, 128), 0.7, 0)  # a weaker picture

    async def go():
        async with aiohttp.ClientSession() as session, await ws_connect(session, server) as ws:
            await ws.send_str(json.dumps({"box": box, "normalize": "session", "class_id": shown.class_id}))
            await ws.send_bytes(shown.jpeg())
            strong = await receive_json(ws)
            await ws.send_bytes(cv2.imencode(".jpg", faded)[1].tobytes())
            weak = await receive_json(ws)
            await ws.send_str(json.dumps({"box": [1, 2, 3]}))
            refused = await receive_json(ws)
            await ws.send_str(json.dumps({"box": None}))
            await ws.send_bytes(shown.jpeg())
            cleared = await receive_json(ws)
            url = server.path("/api/explain", box=",".join(map(str, box)))
            async with session.post(url, data=shown.jpeg(), headers={"Content-Type": "image/jpeg"}) as response:
                posted = await response.json()
            return strong, weak, refused, cleared, posted

    strong, weak, refused, cleared, posted = run(go())
    assert strong["box_xywh"] == box and strong["box_energy"] > 0.5 and strong["box_peak_inside"] is True
    assert strong["normalize"] == "session" and cam_of(strong).max() == 255  # the first map sets the scale
    assert 0 < weak["cam_max"] < strong["cam_max"]
    assert cam_of(weak).max() == round(255 * weak["cam_max"] / strong["cam_max"])  # shown weaker, on the session's scale
    assert refused["type"] == "control_error" and "Expected box" in refused["message"]
    assert cleared["box_xywh"] is None and cleared["box_energy"] is None
    assert posted["box_xywh"] == box and posted["box_energy"] == strong["box_energy"]


def test_faithfulness_comes_with_the_next_frame_and_the_page_turns_it_off(server):
    shown = scene()

    async def go():
        async def two_frames(ws, *, off_between: bool):
            await ws.send_bytes(shown.jpeg())
            first = await receive_json(ws)
            if off_between:
                await ws.send_str(json.dumps({"faithfulness": False}))
            await ws.send_bytes(shown.jpeg())
            return first, await receive_json(ws)

        async with aiohttp.ClientSession() as session:
            async with await ws_connect(session, server) as ws:
                first, second = await two_frames(ws, off_between=False)
            async with await ws_connect(session, server) as ws:
                _, off = await two_frames(ws, off_between=True)
                await ws.send_str(json.dumps({"faithfulness": "yes"}))
                refused = await receive_json(ws)
            headers = {"Content-Type": "image/jpeg"}
            url = server.path("/api/explain", faithfulness="1")
            async with session.post(url, data=shown.jpeg(), headers=headers) as response:
                posted = await response.json()
            return (first, second, off), refused, posted

    (first, second, off), refused, posted = run(go())
    assert first["faith_frame"] is None and second["faith_frame"] == 1  # --faithfulness 10: frames 1, 11, ...
    assert second["faith_shown"] == pytest.approx(first["prob"], abs=1e-6)
    assert second["faith_text"].startswith("hide the heat: ")
    assert second["faith_shown"] - second["faith_hot_hidden"] > 5 * abs(second["faith_shown"] - second["faith_cold_hidden"])
    assert off["faith_frame"] is None
    assert refused["type"] == "control_error" and "faithfulness" in refused["message"]
    assert posted["faith_frame"] == 1 and posted["faith_hot_hidden"] < posted["faith_shown"]


def test_controls_apply_to_this_connection_only(server):
    shown = scene()
    other = (shown.class_id + 1) % len(CLASS_NAMES)

    async def go():
        async with aiohttp.ClientSession() as session:
            async with await ws_connect(session, server) as steered, await ws_connect(session, server) as plain:
                await steered.send_str(json.dumps({"method": "gradcam++", "class_id": other}))
                await steered.send_bytes(shown.jpeg())
                await plain.send_bytes(shown.jpeg())
                locked, free = await receive_json(steered), await receive_json(plain)
                await steered.send_str(json.dumps({"class_id": None}))  # unlock; the method stays
                await steered.send_bytes(shown.jpeg())
                unlocked = await receive_json(steered)
                return locked, free, unlocked

    locked, free, unlocked = run(go())
    assert (locked["class_id"], locked["label"], locked["method"]) == (other, CLASS_NAMES[other], "gradcam++")
    assert locked["prob"] < 0.5  # the probability of the class explained, not of the top one
    assert (free["class_id"], free["method"]) == (shown.class_id, "gradcam")
    assert (unlocked["class_id"], unlocked["method"], unlocked["seq"]) == (shown.class_id, "gradcam++", 2)


def test_flood_is_answered_latest_wins_with_increasing_seq(server):
    frames = [scene(seed).jpeg() for seed in (500_001, 500_002, 500_003, 500_004)]
    n = 120

    async def go():
        async with aiohttp.ClientSession() as session, await ws_connect(session, server) as ws:
            before = await metric(session, server, "livecam_frames_dropped_total")
            for i in range(n):
                await ws.send_bytes(frames[i % len(frames)])
            seqs = []
            while not seqs or seqs[-1] < n:
                result = await receive_json(ws)
                assert result["type"] == "result", result
                seqs.append(result["seq"])
            # Nothing else comes: every frame was answered once or replaced.
            with pytest.raises(asyncio.TimeoutError):
                await ws.receive(timeout=1.0)
            dropped = await metric(session, server, "livecam_frames_dropped_total") - before
            return seqs, dropped

    seqs, dropped = run(go())
    assert seqs == sorted(set(seqs)) and seqs[-1] == n  # increasing, no repeats, the newest always answered
    assert len(seqs) < n  # frames that waited while a newer one came were never answered ...
    assert len(seqs) + dropped == n  # ... and each of them was counted as dropped


def test_undecodable_and_oversized_images_get_an_error_and_the_connection_goes_on(server):
    good = scene()
    truncated = good.jpeg()[:300]
    huge = cv2.imencode(".png", np.zeros((4200, 4200, 3), np.uint8))[1].tobytes()  # 17.6 Mpixel, small as PNG

    async def go():
        async with aiohttp.ClientSession() as session, await ws_connect(session, server) as ws:
            answers = []
            for data in (b"certainly not an image", truncated, huge, good.jpeg()):
                await ws.send_bytes(data)
                answers.append(await receive_json(ws))
            return answers

    garbage, cut, too_big, result = run(go())
    assert garbage["type"] == "error" and garbage["seq"] == 1 and "JPEG, PNG or WebP" in garbage["message"]
    assert cut["type"] == "error" and cut["seq"] == 2
    assert too_big["type"] == "error" and too_big["seq"] == 3 and "4200x4200" in too_big["message"]
    assert result["type"] == "result" and result["seq"] == 4 and result["label"] == good.label


def test_bad_controls_are_answered_with_a_control_error(server):
    async def go():
        async with aiohttp.ClientSession() as session, await ws_connect(session, server) as ws:
            answers = []
            for text in (
                "{",
                json.dumps({"method": "gradcam+++"}),
                json.dumps({"class_id": 99}),
                json.dumps({"colour": 1}),
                json.dumps({"class_id": 2.0}),
            ):
                await ws.send_str(text)
                answers.append(await receive_json(ws))
            return answers

    answers = run(go())
    assert [a["type"] for a in answers] == ["control_error"] * 5
    assert "gradcam++" in answers[1]["message"] and "[0, 5]" in answers[2]["message"] and "colour" in answers[3]["message"]
    assert "integer" in answers[4]["message"]


BAD_CONTROLS = [
    '{"method": null}',
    '{"method": 3}',
    '{"method": ["gradcam"]}',
    '{"method": {"a": 1}}',
    "3",
    '["gradcam"]',
    '"gradcam"',
    "null",
    '{"a": 1}',
    "[" * 100_000,
    "{" * 3000,
    '{"method": ' + "[" * 20,
    '{"class_id": true}',
    '{"class_id": 1.5}',
    '{"class_id": [1]}',
    '{"class_id": 1e999}',
    '{"class_id": -1}',
    '{"class_id": 100000000000000000000000000000}',
    '{"class_id": "no such class"}',
    '{"class_id": "\\ud800"}',
    '{"pull": "source", "class_id": 99}',
    '{"method": "layercam", "class_id": 99}',
    '{"method": "layercam", "colour": 1}',
]


def test_no_controls_message_cuts_the_connection_or_applies_in_part(server):
    """Every bad message is answered with a control_error, and none of it applies (the method stays gradcam)."""
    shown = scene()

    async def go():
        async with aiohttp.ClientSession() as session, await ws_connect(session, server) as ws:
            answers = []
            for text in BAD_CONTROLS:
                await ws.send_str(text)
                answers.append(await receive_json(ws))
            await ws.send_bytes(shown.jpeg())
            return answers, await receive_json(ws)

    answers, result = run(go())
    for text, answer in zip(BAD_CONTROLS, answers):
        assert answer["type"] == "control_error" and answer["message"].startswith(("Expected", "Unknown")), (text[:40], answer)
    assert "at most 4096 characters" in answers[BAD_CONTROLS.index("[" * 100_000)]["message"]
    assert "nested more than 8 deep" in answers[BAD_CONTROLS.index("{" * 3000)]["message"]
    assert (result["type"], result["method"], result["class_id"]) == ("result", "gradcam", shown.class_id)
    assert "Traceback" not in server.stderr()


def test_classes_are_locked_by_name_as_the_class_option_takes_them(server):
    shown = scene()
    other = (shown.class_id + 1) % len(CLASS_NAMES)
    name = CLASS_NAMES[other]

    async def go():
        async with aiohttp.ClientSession() as session:
            async with await ws_connect(session, server) as ws:
                await ws.send_str(json.dumps({"class_id": name.upper()}))
                await ws.send_bytes(shown.jpeg())
                locked = await receive_json(ws)
                await ws.send_str(json.dumps({"class_id": name[:-1] + "x"}))
                typo = await receive_json(ws)
            headers = {"Content-Type": "image/jpeg"}
            async with session.post(server.path("/api/explain", class_id=name), data=shown.jpeg(), headers=headers) as response:
                posted = (response.status, await response.json())
            async with session.post(
                server.path("/api/explain", class_id="nothing-like-it"), data=shown.jpeg(), headers=headers
            ) as response:
                unknown = (response.status, await response.json())
            return locked, typo, posted, unknown

    locked, typo, posted, unknown = run(go())
    assert (locked["type"], locked["class_id"], locked["label"]) == ("result", other, name)
    assert typo["type"] == "control_error" and f"did you mean {name!r} ({other})?" in typo["message"]
    assert posted[0] == 200 and posted[1]["class_id"] == other
    assert unknown[0] == 400 and unknown[1]["message"].startswith("Unknown class 'nothing-like-it'")


def test_message_over_4_mib_closes_with_1009(server):
    # A raw client: the server decides from the frame's header, so the client sends the header
    # and a little of the payload, then reads (a client still sending 4 MiB would have its
    # connection reset by the closing server before it could read the close frame).
    sock = _raw_websocket(server)
    try:
        mask = b"\x01\x02\x03\x04"
        sock.sendall(b"\x82\xff" + struct.pack(">Q", 4 * 1024 * 1024 + 1) + mask + bytes(1024))
        header = _recv_exactly(sock, 2)
        payload = _recv_exactly(sock, header[1] & 0x7F)
    finally:
        sock.close()
    assert header[0] == 0x88  # a close frame
    assert struct.unpack(">H", payload[:2])[0] == 1009


def test_exactly_4_mib_is_taken_and_one_byte_more_refused_over_both_apis(server):
    """4 MiB + 1 sent plain is the test above (a client still sending it is reset); deflated it is a few KiB."""
    limit = 4 * 1024 * 1024

    async def go():
        async with aiohttp.ClientSession() as session:
            async with await ws_connect(session, server) as ws:
                await ws.send_bytes(bytes(limit))
                answered = await receive_json(ws)
            async with await ws_connect(session, server, compress=15) as ws:  # a few KiB deflated, over 4 MiB inflated
                await ws.send_bytes(bytes(limit))
                deflated_answer = await receive_json(ws)
                await ws.send_bytes(bytes(limit + 1))
                deflated_closed = await ws.receive(timeout=60)
            statuses = []
            for size in (limit, limit + 1):
                async with session.post(
                    server.path("/api/explain"), data=bytes(size), headers={"Content-Type": "image/png"}
                ) as response:
                    statuses.append(response.status)
            return answered, deflated_answer, deflated_closed, statuses

    answered, deflated_answer, deflated_closed, statuses = run(go())
    for answer in (answered, deflated_answer):
        assert answer["type"] == "error" and "JPEG, PNG or WebP" in answer["message"]  # read, and found no image
    assert deflated_closed.type is aiohttp.WSMsgType.CLOSE and deflated_closed.data == 1009
    assert statuses == [400, 413]


def _raw_websocket(server: ServerProcess, path: str = "/ws") -> socket.socket:
    """A socket that has done the WebSocket handshake and read the server's answer to it."""
    host, port = server.host_port.split(":")
    sock = socket.create_connection((host, int(port)), timeout=60)
    target = server.path(path).split(server.host_port, 1)[1]
    key = base64.b64encode(bytes(range(16))).decode()
    sock.sendall(
        f"GET {target} HTTP/1.1\r\nHost: {server.host_port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(1)
    assert answer.startswith(b"HTTP/1.1 101"), answer
    return sock


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "the server closed the connection without a close frame"
        data += chunk
    return data


def test_websocket_from_another_origin_is_refused(server):
    async def go(origin: str | None):
        async with aiohttp.ClientSession() as session:
            headers = {"Origin": origin} if origin else {}
            try:
                async with await ws_connect(session, server, headers=headers) as ws:
                    await ws.send_bytes(scene().jpeg())
                    return (await receive_json(ws))["type"]
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status

    assert run(go("http://evil.example")) == 403
    assert run(go(server.origin.replace("127.0.0.1", "localhost"))) == 403  # another name is another origin
    assert run(go(server.origin.replace("http://", "https://"))) == 403  # another scheme: this server is plain HTTP
    port = int(server.host_port.rpartition(":")[2])
    assert run(go(f"http://127.0.0.1:{port + 1}")) == 403  # another port
    assert run(go("null")) == 403  # a sandboxed page
    assert run(go(server.origin)) == "result"
    assert run(go(None)) == "result"  # scripts send no Origin


@pytest.mark.parametrize("path", ["/", "/app.js", "/style.css", "/api/config", "/metrics", "/stream.mjpg", "/ws"])
def test_every_route_needs_the_token(server, path):
    async def go():
        async with aiohttp.ClientSession() as session:
            statuses = []
            for headers, query in (
                ({}, ""),
                ({}, "?token=wrong"),
                ({"Authorization": "Bearer wrong"}, ""),
                ({"Authorization": "Bearer " + TOKEN}, ""),
            ):
                async with session.get(f"{server.origin}{path}{query}", headers=headers) as response:
                    body = await response.content.read(200) if response.status == 401 else b""
                    statuses.append((response.status, body))
            return statuses

    statuses = run(go())
    for status, body in statuses[:3]:
        assert status == 401 and b"token" in body
    assert statuses[3][0] != 401  # with the token, the route answers (the WebSocket wants an upgrade: 400)


def test_only_the_shipped_page_is_served(server):
    async def go():
        async with aiohttp.ClientSession() as session:
            statuses = {}
            for path in ("/../pyproject.toml", "/web/app.js", "/livecam/serve.py", "/%2e%2e/%2e%2e/etc/passwd", "/index.html"):
                async with session.get(server.path(path)) as response:
                    statuses[path] = response.status
            async with session.get(server.path("/")) as response:
                page = await response.text()
            return statuses, page

    statuses, page = run(go())
    assert set(statuses.values()) == {404}
    assert f"app.js?token={TOKEN}" in page and "{{QUERY}}" not in page


# ---------------------------------------------------------------------- HTTP API


def test_side_by_side_over_the_websocket_and_post_explain(server):
    """compare: the top 3 classes of the frame (each its own map, the first the result's own), or each method; null ends it."""
    from livecam.engine.methods import METHOD_NAMES
    from livecam.render.grid import grid_size

    shown = scene()

    async def go():
        async with aiohttp.ClientSession() as session, await ws_connect(session, server) as ws:
            answers = []
            for compare in ("classes", "methods", None):
                await ws.send_str(json.dumps({"compare": compare}))
                await ws.send_bytes(shown.jpeg())
                answers.append(await receive_json(ws))
            await ws.send_str(json.dumps({"compare": "clases"}))
            answers.append(await receive_json(ws))
            url = server.path("/api/explain", compare="classes")
            headers = {"Content-Type": "image/jpeg"}
            async with session.post(url, data=shown.jpeg(), headers=headers) as response:
                answers.append(await response.json())
            async with session.post(
                server.path("/api/explain", compare="methods", overlay="1"), data=shown.jpeg(), headers=headers
            ) as response:
                answers.append(await response.read())
            return answers

    classes, methods, off, refused, posted, png = run(go())
    assert [p["class_id"] for p in classes["panels"]] == [e["id"] for e in classes["topk"][:3]]
    assert [p["title"] for p in classes["panels"]] == ["top 1", "top 2", "top 3"] and classes["panel_grid"] == [3, 1]
    first = classes["panels"][0]
    assert (first["label"], first["prob"], first["method"]) == (classes["label"], classes["prob"], "gradcam")
    assert np.array_equal(cam_of(first), cam_of(classes)) and first["cam_max"] == classes["cam_max"]
    assert all(cam_of(p).max() == 255 and p["contrast_id"] is None for p in classes["panels"])  # each on its own maximum
    assert not np.array_equal(cam_of(classes["panels"][1]), cam_of(first))  # another class, another map
    assert [p["method"] for p in methods["panels"]] == [p["title"] for p in methods["panels"]] == list(METHOD_NAMES)
    assert {p["class_id"] for p in methods["panels"]} == {shown.class_id}
    assert off["panels"] == [] and off["panel_grid"] is None
    assert refused["type"] == "control_error" and "Expected compare in classes, methods" in refused["message"]
    assert [p["label"] for p in posted["panels"]] == [e["label"] for e in posted["topk"][:3]]
    grid = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert grid.shape[1::-1] == grid_size(shown.image_bgr.shape[1::-1], len(METHOD_NAMES))


def test_post_explain_answers_json_and_png(server):
    shown = scene()

    async def go():
        async with aiohttp.ClientSession() as session:
            headers = {"Content-Type": "image/jpeg"}
            async with session.post(server.path("/api/explain"), data=shown.jpeg(), headers=headers) as response:
                result = (response.status, await response.json())
            other = (shown.class_id + 2) % len(CLASS_NAMES)
            url = server.path("/api/explain", method="layercam", class_id=str(other))
            png_body = cv2.imencode(".png", shown.image_bgr)[1].tobytes()
            async with session.post(url, data=png_body, headers={"Content-Type": "image/png"}) as response:
                locked = (response.status, await response.json())
            async with session.post(server.path("/api/explain", overlay="1"), data=shown.jpeg(), headers=headers) as response:
                overlay = (response.status, response.content_type, await response.read())
            async with session.post(
                server.path("/api/explain"), data=b"hello", headers={"Content-Type": "text/plain"}
            ) as response:
                wrong_type = (response.status, await response.json())
            async with session.post(server.path("/api/explain"), data=b"hello", headers=headers) as response:
                garbage = (response.status, await response.json())
            return result, locked, overlay, wrong_type, garbage, other

    result, locked, overlay, wrong_type, garbage, other = run(go())
    assert result[0] == 200 and result[1]["type"] == "result" and result[1]["seq"] == 1 and result[1]["label"] == shown.label
    assert locked[0] == 200 and (locked[1]["class_id"], locked[1]["method"]) == (other, "layercam")
    status, content_type, body = overlay
    assert status == 200 and content_type == "image/png"
    image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == shown.image_bgr.shape
    assert np.abs(image.astype(int) - shown.image_bgr).mean() > 10  # the heat map is drawn over it
    made_with = json.loads(PIL.Image.open(io.BytesIO(body)).text["livecam"])  # read by another decoder
    assert made_with["model"] == "demo" and made_with["method"] == "gradcam" and made_with["layer"] == "features"
    assert wrong_type[0] == 415 and "image/jpeg" in wrong_type[1]["message"]
    assert garbage[0] == 400 and garbage[1]["type"] == "error"


async def mjpeg_images(session: aiohttp.ClientSession, server: ServerProcess, n: int) -> list[np.ndarray]:
    async with session.get(server.path("/stream.mjpg")) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        images, buffer = [], b""
        while len(images) < n:
            chunk = await response.content.readany()
            assert chunk, f"the stream ended after {len(images)} images"
            buffer += chunk
            while match := re.search(rb"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: (\d+)\r\n\r\n", buffer):
                start, size = match.end(), int(match.group(1))
                if len(buffer) < start + size:
                    break
                images.append(cv2.imdecode(np.frombuffer(buffer[start : start + size], np.uint8), cv2.IMREAD_COLOR))
                buffer = buffer[start + size :]
        return images


def test_mjpeg_stream_sends_annotated_jpegs_and_restarts_for_a_later_viewer(server):
    async def go():
        async with aiohttp.ClientSession() as session:
            first = await mjpeg_images(session, server, 3)
            # The last viewer left: the stream stops rendering; a new viewer starts it again.
            while await metric(session, server, "livecam_clients", '{kind="mjpeg"}') > 0:
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
            later = await mjpeg_images(session, server, 3)
            return first, later

    first, later = run(go())
    for images in (first, later):
        assert all(image is not None and image.shape == (240, 320, 3) for image in images)
        assert not np.array_equal(images[0], images[-1])  # a live stream


def test_the_server_source_is_pulled_over_the_websocket(server):
    async def go():
        async with aiohttp.ClientSession() as session, await ws_connect(session, server) as ws:
            frames = []
            for _ in range(3):
                await ws.send_str(json.dumps({"pull": "source"}))
                frames.append(await receive_json(ws))
            return frames

    frames = run(go())
    assert [f["type"] for f in frames] == ["source_result"] * 3
    numbers = [f["frame"] for f in frames]
    assert numbers == sorted(set(numbers))  # always a newer frame
    image = cv2.imdecode(np.frombuffer(base64.b64decode(frames[0]["image"]), np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (240, 320, 3) and frames[0]["label"] in CLASS_NAMES


async def metric(session: aiohttp.ClientSession, server: ServerProcess, name: str, labels: str = "") -> float:
    async with session.get(server.path("/metrics")) as response:
        text = await response.text()
    match = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.M)
    assert match, f"{name}{labels} not in /metrics:\n{text[:3000]}"
    return float(match.group(1))


def test_metrics_count_answers_clients_and_batches(server):
    async def go():
        async with aiohttp.ClientSession() as session, await ws_connect(session, server) as ws:
            before = await metric(session, server, "livecam_frames_answered_total", '{endpoint="ws"}')
            await ws.send_bytes(scene().jpeg())
            await receive_json(ws)
            after = await metric(session, server, "livecam_frames_answered_total", '{endpoint="ws"}')
            clients = await metric(session, server, "livecam_clients", '{kind="ws"}')
            batches = await metric(session, server, "livecam_engine_batch_size_count")
            latency = await metric(session, server, "livecam_server_latency_seconds_count", '{endpoint="ws"}')
            return before, after, clients, batches, latency

    before, after, clients, batches, latency = run(go())
    assert after == before + 1 and clients >= 1 and batches >= 1 and latency >= after


# ---------------------------------------------------------------------- slow and many clients


def _half_sent(host_port: str, n: int) -> list[socket.socket]:
    """Connections that send the start of a request's headers and never the rest (slowloris)."""
    host, port = host_port.split(":")
    sockets = []
    for _ in range(n):
        sock = socket.create_connection((host, int(port)), timeout=60)
        sock.sendall(f"GET / HTTP/1.1\r\nHost: {host_port}\r\nX-Slow: ".encode())
        sockets.append(sock)
    return sockets


def _closed_by_the_server(sock: socket.socket) -> bool:
    """Waits (up to the socket's timeout) for the server to close it."""
    try:
        return sock.recv(4096) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    finally:
        sock.close()


@pytest.mark.slow
@pytest.mark.subprocess
def test_half_sent_requests_are_closed_after_the_header_timeout(server):
    sockets = _half_sent(server.host_port, 3)
    host, port = server.host_port.split(":")
    sockets.append(socket.create_connection((host, int(port)), timeout=60))  # and one that sends nothing at all
    assert all(_closed_by_the_server(sock) for sock in sockets)


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_flood_of_half_sent_requests_leaves_room_for_a_real_client_and_is_said_once(tmp_path):
    import resource

    import psutil

    proc = ServerProcess(
        "--model", "demo", "--token", TOKEN, log_dir=tmp_path, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    )  # fmt: skip
    busy, flood = [], []
    try:
        # Real clients (WebSockets) take all but 32 of the server's 256 descriptors; then 300 half-sent requests arrive.
        busy = [_raw_websocket(proc) for _ in range(256 - 32 - psutil.Process(proc.proc.pid).num_fds())]
        flood = _half_sent(proc.host_port, 300)

        async def real_client():
            async with (
                aiohttp.ClientSession() as session,
                session.get(proc.path("/api/config"), timeout=aiohttp.ClientTimeout(total=60)) as response,
            ):
                return response.status, await response.json()

        status, config = run(real_client())
        closed = [_closed_by_the_server(sock) for sock in flood]
    finally:
        proc.stop()
        for sock in busy + flood:
            sock.close()
    err = proc.stderr()
    assert status == 200 and config["model"] == "demo"
    assert all(closed)
    said = err.count("out of system resources (Too many open files)")
    assert 1 <= said <= 2 and "Traceback" not in err, err[-2000:]  # one line a minute (a slow machine may see a second)


@pytest.mark.slow
@pytest.mark.subprocess
def test_many_posts_of_a_large_png_keep_the_servers_memory_bounded(tmp_path):
    """100 posts at once of a 4096x4096 16-bit RGBA PNG (146 KB, 128 MB decoded): under +1.5 GB; each one answered or told to retry."""
    import threading

    import psutil

    rgba = np.zeros((4096, 4096, 4), np.uint16)
    rgba[..., 3] = 65535
    png = cv2.imencode(".png", rgba)[1].tobytes()
    proc = ServerProcess("--model", "demo", log_dir=tmp_path)
    server_process = psutil.Process(proc.proc.pid)
    peak_rss = [0]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            with contextlib.suppress(psutil.Error):
                peak_rss[0] = max(peak_rss[0], server_process.memory_info().rss)
            done.wait(0.02)

    async def post(session: aiohttp.ClientSession, data: bytes, content_type: str) -> tuple[int, str | None]:
        async with session.post(proc.path("/api/explain"), data=data, headers={"Content-Type": content_type}) as response:
            await response.read()
            return response.status, response.headers.get("Retry-After")

    async def go():
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session:
            assert (await post(session, scene().jpeg(), "image/jpeg"))[0] == 200  # the engine is warm before the baseline
            baseline = server_process.memory_info().rss
            watcher = threading.Thread(target=watch)
            watcher.start()
            try:
                answers = await asyncio.gather(*(post(session, png, "image/png") for _ in range(100)))
            finally:
                done.set()
                watcher.join()
            return baseline, answers

    try:
        baseline, answers = asyncio.run(go())
    finally:
        proc.stop()
    assert peak_rss[0] - baseline < 1.5e9, f"+{(peak_rss[0] - baseline) / 1e9:.2f} GB"
    assert all(status == 200 or (status == 503 and retry is not None) for status, retry in answers), answers
    assert any(status == 200 for status, _ in answers)


# ---------------------------------------------------------------------- shutdown


def _silent_clients(server: ServerProcess, n: int) -> list[socket.socket]:
    """Clients that open a WebSocket or the MJPEG stream and then never read or answer again."""
    sockets = []
    for i in range(n):
        if i % 2 == 0:
            sock = _raw_websocket(server)
        else:
            host, port = server.host_port.split(":")
            sock = socket.create_connection((host, int(port)), timeout=60)
            target = server.path("/stream.mjpg").split(server.host_port, 1)[1]
            sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {server.host_port}\r\n\r\n".encode())
            assert sock.recv(12).startswith(b"HTTP/1.1 200")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sockets.append(sock)
    return sockets


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_stops_within_2_s_with_clients_that_never_answer(tmp_path, signum):
    proc = ServerProcess("--model", "demo", "--source", "synth:320x240,fps=30", log_dir=tmp_path)
    clients = []
    try:
        # Without a token, only loopback names are answered (a rebound DNS name is not).
        for host, expected in (("evil.example", 403), (proc.host_port.replace("127.0.0.1", "localhost"), 200)):
            request = f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
            with socket.create_connection(("127.0.0.1", int(proc.host_port.split(":")[1])), timeout=60) as sock:
                sock.sendall(request)
                assert sock.recv(12) == f"HTTP/1.1 {expected}".encode()
        clients = _silent_clients(proc, 6)
        time.sleep(1.0)  # the streams run and fill the silent clients' buffers
        t0 = time.monotonic()
        proc.proc.send_signal(signum)
        code = proc.proc.wait(timeout=30)
        elapsed_s = time.monotonic() - t0
    finally:
        proc.stop(signal.SIGKILL)
        for sock in clients:
            sock.close()
    assert code == 0, proc.stderr()[-2000:]
    assert "server stopped" in proc.stderr()
    assert elapsed_s < 2.0, f"stopping took {elapsed_s:.2f} s"


# ---------------------------------------------------------------------- the command line


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--certfile", "cert.pem"], "both --certfile and --keyfile"),
        (["--certfile", "missing.pem", "--keyfile", "missing.key"], "could not be loaded"),
        (["--method", "gradcm"], "method"),
        (["--colormap", "nope"], "Unknown colormap"),
        (["--token", " "], "non-empty --token"),
        (["--port", "70000"], "--port"),
        (["--max-wait-ms", "-1"], "--max-wait-ms"),
        (["--hud", "loud"], "--hud"),
        (["--fit", "zoom"], "--fit"),
    ],
)
def test_serve_mistakes_end_in_one_sentence(capsys, args, match):
    from livecam.cli import main

    code = main(["serve", *args])
    err = capsys.readouterr().err
    assert code == 2 and match in err and err.startswith("livecam: error: ") and "Traceback" not in err


def _listen(engine, host: str, port: int) -> str:
    """The sentence that starting a server on host:port ends with."""
    from livecam.engine.worker import EngineWorker
    from livecam.errors import UserError
    from livecam.serve.app import create_app
    from livecam.serve.app import run as serve

    with EngineWorker(engine) as worker, pytest.raises(UserError) as raised:
        serve(create_app(engine, worker), host, port, ssl_ctx=None, on_ready=lambda port: None)
    return str(raised.value)


def test_a_host_that_is_no_address_of_this_machine_says_fix_host(tiny_engine):
    unresolved = _listen(tiny_engine, "no-such-host.invalid", 0)
    assert "cannot be resolved" in unresolved and "fix --host" in unresolved and "--port" not in unresolved
    elsewhere = _listen(tiny_engine, "192.0.2.1", 0)  # TEST-NET-1: never an address of this machine
    assert "not an address of this machine" in elsewhere and "fix --host" in elsewhere and "--port" not in elsewhere


def test_a_port_in_use_and_a_privileged_port_say_what_to_do_about_the_port(tiny_engine, monkeypatch):
    from aiohttp import web

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        in_use = _listen(tiny_engine, "127.0.0.1", taken.getsockname()[1])
    assert "in use" in in_use and "pick another --port" in in_use

    async def denied(site):  # what an unprivileged user gets for a port under 1024 (tests may run as root)
        raise PermissionError(13, "error while attempting to bind on address ('127.0.0.1', 80): permission denied")

    monkeypatch.setattr(web.TCPSite, "start", denied)
    privileged = _listen(tiny_engine, "127.0.0.1", 80)
    assert "ports under 1024 need privilege" in privileged and "above 1023" in privileged and "--host" not in privileged


@pytest.mark.slow
def test_https_serves_the_page_and_the_websocket(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    proc = ServerProcess("--model", "demo", "--certfile", str(cert), "--keyfile", str(key), log_dir=tmp_path)

    async def go():
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as session:
            async with session.get(proc.path("/api/config")) as response:
                config = await response.json()
            async with session.ws_connect(proc.path("/ws")) as ws:
                await ws.send_bytes(scene().jpeg())
                return config, await receive_json(ws)

    try:
        assert proc.url.startswith("https://")
        config, result = run(go())
    finally:
        proc.stop()
    assert config["model"] == "demo" and result["label"] == scene().label


# ---------------------------------------------------------------------- in-process


class FailingEngine:
    """A real engine whose calls fail while ``failing`` is set (a fault deep in TensorFlow, say)."""

    def __init__(self, engine) -> None:
        self._engine = engine
        self.failing = True

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def __call__(self, *args, **kwargs):
        if self.failing:
            raise RuntimeError("simulated engine fault")
        return self._engine(*args, **kwargs)


def test_an_engine_fault_answers_that_frame_with_an_error_and_the_connection_goes_on():
    import keras
    from aiohttp.test_utils import TestClient, TestServer

    from livecam.engine.core import CamEngine
    from livecam.engine.worker import EngineWorker
    from livecam.serve.app import create_app

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="target")(inputs)
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    engine = FailingEngine(CamEngine(keras.Model(inputs, outputs)))
    jpeg = cv2.imencode(".jpg", np.full((48, 64, 3), 120, np.uint8))[1].tobytes()

    async def go():
        with EngineWorker(engine) as worker:
            async with TestClient(TestServer(create_app(engine, worker))) as client:
                ws = await client.ws_connect("/ws")
                await ws.send_bytes(jpeg)
                failed = await receive_json(ws)
                engine.failing = False
                await ws.send_bytes(jpeg)
                answered = await receive_json(ws)
                await ws.close()
                return failed, answered

    failed, answered = run(go())
    assert failed["type"] == "error" and failed["seq"] == 1 and "simulated engine fault" in failed["message"]
    assert answered["type"] == "result" and answered["seq"] == 2 and answered["cam"]["width"] == 32


def _folder_source(tmp_path, n: int = 2):
    from livecam.sources import ImageFolderSource

    paths = []
    for i, image in enumerate(_two_pictures()[:n]):
        paths.append(tmp_path / f"{i}.png")
        cv2.imwrite(str(paths[-1]), image)
    return ImageFolderSource(paths, fps=50, loop=True)


async def _pull(ws) -> dict:
    await ws.send_str(json.dumps({"pull": "source"}))
    return await receive_json(ws, timeout_s=20)


def test_an_engine_fault_on_a_pulled_frame_is_answered_and_the_pulls_go_on(tiny_engine, tmp_path):
    """Bug: the pull task died on an engine fault, and a page watching the server's source waited forever."""
    from livecam.serve.app import ServeConfig

    engine = FailingEngine(tiny_engine)

    async def go():
        worker, client = _serve_in_process(engine, ServeConfig(), _folder_source(tmp_path))
        with worker:
            async with client:
                ws = await client.ws_connect("/ws")
                failed = await _pull(ws)
                engine.failing = False
                answered = await _pull(ws)
                await ws.close()
                return failed, answered

    failed, answered = run(go())
    assert failed["type"] == "source_error" and failed["frame"] >= 1 and "simulated engine fault" in failed["message"]
    assert answered["type"] == "source_result" and answered["frame"] > failed["frame"]


def test_a_paused_connection_is_answered_its_frozen_source_frame_with_its_new_settings(tiny_engine, tmp_path):
    """The pause is the connection's: while paused, a pull explains the frame it sent last again."""
    from livecam.serve.app import ServeConfig

    async def go():
        worker, client = _serve_in_process(tiny_engine, ServeConfig(), _folder_source(tmp_path))
        with worker:
            async with client:
                ws = await client.ws_connect("/ws")
                first = await _pull(ws)
                await ws.send_str(json.dumps({"paused": True, "alpha": 0.4, "colormap": "turbo"}))
                frozen = await _pull(ws)
                await ws.send_str(json.dumps({"method": "gradcam++", "class_id": 2}))
                reexplained = await _pull(ws)
                await ws.send_str(json.dumps({"paused": False}))
                resumed = await _pull(ws)
                await ws.close()
                return first, frozen, reexplained, resumed

    first, frozen, reexplained, resumed = run(go())
    assert [m["type"] for m in (first, frozen, reexplained, resumed)] == ["source_result"] * 4
    assert first["frame"] == frozen["frame"] == reexplained["frame"] and frozen["image"] == first["image"]
    assert (reexplained["method"], reexplained["class_id"]) == ("gradcam++", 2) and frozen["method"] == "gradcam"
    assert resumed["frame"] > first["frame"]


def test_pause_opacity_and_colormap_controls_go_through_the_viewers_controller(tiny_engine):
    """Refused values get the controller's own sentence, and none of the message applies."""
    image = cv2.imencode(".png", _two_pictures()[0])[1].tobytes()

    async def go():
        from livecam.serve.app import ServeConfig

        worker, client = _serve_in_process(tiny_engine, ServeConfig())
        with worker:
            async with client:
                ws = await client.ws_connect("/ws")
                answers = []
                for controls in (
                    {"alpha": 0.4, "colormap": "Turbo", "paused": True},
                    {"method": "gradcam++", "alpha": 1.5},
                    {"colormap": "nope"},
                    {"paused": "yes"},
                ):
                    await ws.send_str(json.dumps(controls))
                    await ws.send_bytes(image)
                    answers.append(await receive_json(ws, timeout_s=20))
                    if answers[-1]["type"] == "control_error":
                        answers.append(await receive_json(ws, timeout_s=20))
                await ws.close()
                return answers

    answers = run(go())
    assert answers[0]["type"] == "result"  # accepted: the frame's answer comes first
    assert answers[1]["type"] == "control_error" and "alpha in [0, 1]" in answers[1]["message"]
    assert answers[2]["type"] == "result" and answers[2]["method"] == "gradcam"  # the method in that message did not apply
    assert answers[3]["type"] == "control_error" and "colormap" in answers[3]["message"]
    assert answers[5]["type"] == "control_error" and "true or false" in answers[5]["message"]


@pytest.mark.slow
def test_a_video_file_as_the_servers_source_plays_once_or_in_a_loop(tmp_path, make_video):
    """--source VIDEO: annotated frames at the video's size; at its end a notice, or with --loop it starts again."""
    clip = make_video(tmp_path / "clip.mp4", 30, size=(320, 240), fps=15)

    async def pull(server, frames: int) -> list[dict]:
        async with aiohttp.ClientSession() as session, await ws_connect(session, server) as ws:
            answers = []
            while len(answers) < frames:
                await ws.send_str(json.dumps({"pull": "source"}))
                answers.append(await receive_json(ws))
                if answers[-1]["type"] != "source_result":
                    break
            images = await mjpeg_images(session, server, 1) if answers[-1]["type"] == "source_result" else []
            return answers, images

    once = ServerProcess("--model", "demo", "--source", str(clip), log_dir=tmp_path)
    try:
        answers, _ = run(pull(once, 100))  # 2 s of video: it ends while the server is pulled
    finally:
        once.stop()
    assert answers[-1] == {"type": "notice", "message": "The server's source has ended."}
    assert all(a["type"] == "source_result" for a in answers[:-1])
    assert "video clip.mp4 (320x240, 15 fps, 30 frames)" in once.stderr()

    looped = ServerProcess("--model", "demo", "--source", str(clip), "--loop", log_dir=tmp_path)
    try:
        time.sleep(3)  # longer than the video
        answers, images = run(pull(looped, 3))
    finally:
        looped.stop()
    assert [a["type"] for a in answers] == ["source_result"] * 3
    assert answers[0]["frame"] > 30  # past the video's last frame: it started again
    assert images[0].shape == (240, 320, 3)


# ---------------------------------------------------------------------- the stream's pictures


def _two_pictures() -> tuple[np.ndarray, np.ndarray]:
    a = np.zeros((96, 128, 3), np.uint8)
    a[8:40, 8:40] = 255
    b = np.full((96, 128, 3), 60, np.uint8)
    b[56:90, 80:120] = (0, 200, 255)
    return a, b


def _stream(engine, **renderer_args):
    from livecam.render import Renderer
    from livecam.serve.feed import MjpegStream

    class Feed:
        status = "ok"

    return MjpegStream(Feed(), None, Renderer(**renderer_args), engine.class_names, locked=False)


def test_the_stream_of_a_folder_starts_each_pictures_smoothing_afresh(tiny_engine):
    from livecam.serve.feed import FeedFrame

    a, b = _two_pictures()
    stream = _stream(tiny_engine, hud="label")
    stream._draw(FeedFrame(1, a, time.monotonic(), unrelated=True), tiny_engine(a), 0.0)
    after_a = stream._draw(FeedFrame(2, b, time.monotonic(), unrelated=True), tiny_engine(b), 0.0)
    alone = _stream(tiny_engine, hud="label")._draw(FeedFrame(1, b, time.monotonic(), unrelated=True), tiny_engine(b), 0.0)
    assert after_a == alone
    # A video's frames follow on from each other: they are smoothed together.
    video = _stream(tiny_engine, hud="label")
    video._draw(FeedFrame(1, a, time.monotonic()), tiny_engine(a), 0.0)
    assert video._draw(FeedFrame(2, b, time.monotonic()), tiny_engine(b), 0.0) != alone


def _serve_in_process(engine, config, source=None):
    from aiohttp.test_utils import TestClient, TestServer

    from livecam.engine.worker import EngineWorker
    from livecam.serve.app import create_app

    worker = EngineWorker(engine)
    return worker, TestClient(TestServer(create_app(engine, worker, config, source=source)))


def _expected_picture(engine, image, *, hud_level, view="file", locked=False):
    from livecam.render import HudInfo, Renderer

    row = engine(image)
    names = engine.class_names
    class_id = int(row.class_ids[0])
    hud = HudInfo(
        label=names[class_id],
        prob=float(row.probs[0, class_id]),
        locked=locked,
        topk=tuple((names[int(i)], float(p)) for i, p in zip(row.topk_ids[0], row.topk_probs[0])),
        method=row.method,
        layer=row.layer,
    )
    renderer = Renderer(hud=hud_level, file_hud=hud_level)
    return renderer.render(image, row.cam[0], hud, view=view)


async def _first_jpeg(response) -> np.ndarray:
    data = b""
    while data.count(b"\xff\xd9") < 1 or b"\xff\xd8" not in data:
        data += await response.content.read(65536)
    start = data.index(b"\xff\xd8")
    return cv2.imdecode(np.frombuffer(data[start : data.index(b"\xff\xd9", start) + 2], np.uint8), cv2.IMREAD_COLOR)


def test_the_stream_and_overlays_show_the_label_hud_by_default_and_the_full_one_when_asked(tiny_engine, tmp_path):
    from livecam.serve.app import ServeConfig
    from livecam.serve.feed import encode_jpeg
    from livecam.sources import ImageFolderSource

    image = _two_pictures()[0]
    cv2.imwrite(str(tmp_path / "a.png"), image)
    png = cv2.imencode(".png", image)[1].tobytes()

    async def go(config, source=None):
        worker, client = _serve_in_process(tiny_engine, config, source)
        with worker:
            async with client:
                response = await client.post("/api/explain?overlay=1", data=png, headers={"Content-Type": "image/png"})
                overlay = cv2.imdecode(np.frombuffer(await response.read(), np.uint8), cv2.IMREAD_COLOR)
                stream = None
                if source is not None:
                    response = await client.get("/stream.mjpg")
                    stream = await _first_jpeg(response)
                    response.close()
                return overlay, stream

    overlay, stream = run(go(ServeConfig(), ImageFolderSource([tmp_path / "a.png"], loop=True)))
    label = _expected_picture(tiny_engine, image, hud_level="label")
    np.testing.assert_array_equal(overlay, label)  # no top-k bars, no diagnostics, no "h: keys"
    expected_jpeg = cv2.imdecode(np.frombuffer(encode_jpeg(label), np.uint8), cv2.IMREAD_COLOR)
    assert np.abs(stream.astype(int) - expected_jpeg).max() <= 2

    full, _ = run(go(ServeConfig(hud="full")))
    np.testing.assert_array_equal(full, _expected_picture(tiny_engine, image, hud_level="full"))  # bars and the method line
    assert np.any(full != label)
    assert np.any(full != _expected_picture(tiny_engine, image, hud_level="full", view="window"))  # ... but no "h: keys"


def test_an_overlay_of_a_class_the_client_chose_is_drawn_locked(tiny_engine):
    """Bug: ?overlay=1 drew every picture unlocked, also with class_id=."""
    from livecam.serve.app import ServeConfig

    image = _two_pictures()[0]
    png = cv2.imencode(".png", image)[1].tobytes()
    top = int(tiny_engine(image).class_ids[0])

    async def go():
        worker, client = _serve_in_process(tiny_engine, ServeConfig())
        with worker:
            async with client:
                response = await client.post(
                    f"/api/explain?overlay=1&class_id={top}", data=png, headers={"Content-Type": "image/png"}
                )
                return cv2.imdecode(np.frombuffer(await response.read(), np.uint8), cv2.IMREAD_COLOR)

    picture = run(go())
    np.testing.assert_array_equal(
        picture, _expected_picture(tiny_engine, image, hud_level="label", locked=True)
    )  # the padlock, in yellow
    assert np.any(picture != _expected_picture(tiny_engine, image, hud_level="label"))


def test_the_streams_hud_shows_the_engines_rate_its_own_rate_and_the_frames_it_skipped(tiny_engine):
    """Bug: the stream's HUD showed one number as engine and display fps, and always 0 dropped."""
    from fakes import SpyRenderer
    from livecam.meters import RateMeter
    from livecam.serve.feed import FeedFrame, MjpegStream

    class Feed:
        status = "ok"

    now = [0.0]
    engine_rate = RateMeter(clock=lambda: now[0])
    renderer = SpyRenderer(hud="full")
    stream = MjpegStream(
        Feed(),
        None,
        renderer,
        tiny_engine.class_names,
        locked=False,
        engine_rate=engine_rate,
        clock=lambda: now[0],
    )
    image = _two_pictures()[0]
    row = tiny_engine(image)
    for number in (1, 2, 5, 6, 10):  # 5 pictures of the source's first 10: 2 + 3 went by unshown
        for _ in range(2):  # the engine makes 2 maps (for all clients) per picture the stream shows
            now[0] += 0.05
            engine_rate.tick()
        stream._draw(FeedFrame(number, image, now[0]), row, 0.0)
    huds = renderer.huds
    assert huds[-1].engine_fps == pytest.approx(20.0) and huds[-1].display_fps == pytest.approx(10.0)
    assert [hud.dropped for hud in huds] == [0, 0, 2, 2, 5]


def test_config_gives_the_page_the_viewers_rules_with_the_servers_constants(tiny_engine):
    """The page smooths, blends, steps the opacity and formats percentages by ``rules``: they are the renderer's."""
    from livecam.render import blend_heat, format_percent
    from livecam.serve.app import ServeConfig
    from livecam.viewer.control import step_alpha

    async def go():
        worker, client = _serve_in_process(tiny_engine, ServeConfig(smooth=0.3, alpha=0.7))
        with worker:
            async with client:
                return await (await client.get("/api/config")).json()

    config = run(go())
    rules = config["rules"]
    assert (rules["smooth"], rules["blend"]) == (0.3, "heat")
    rng = np.random.default_rng(7)
    frame, heat = (rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(2))
    cam = rng.random((64, 64), dtype=np.float32)
    levels, alpha = rules["heat_levels"], config["alpha"]
    weight = np.minimum(levels, np.rint(levels * alpha * cam))[..., None]
    by_rules = np.minimum(255, np.rint(frame * (levels - weight) / levels) + np.rint(heat * weight / levels))
    assert np.abs(by_rules - blend_heat(frame, heat, cam, alpha)).max() <= 1
    for start in (0.0, 0.05, 0.3, 0.95, 1.0):
        for steps in (-1, 1):
            assert min(1.0, max(0.0, round(start + steps * rules["alpha_step"], rules["alpha_decimals"]))) == step_alpha(
                start, steps
            )
    percent = rules["percent"]

    def format_by_rules(p):
        if p is None or not np.isfinite(p):
            return percent["unknown"]
        if p >= 1:
            return percent["one"]
        text = f"{p * 100:.{percent['decimals']}f}%"
        if float(text[:-1]) == 100 and p < 1:
            return percent["almost_one"]
        if float(text[:-1]) == 0 and p > 0:
            return percent["almost_zero"]
        return text

    for p in (0.0, 1e-5, 0.0004, 0.00051, 0.5, 0.12345, 0.9994, 0.99951, 1.0, 1.5, float("nan"), float("inf"), None):
        assert format_by_rules(p) == format_percent(p), p


def test_serve_takes_the_viewers_hud_choices():
    from livecam.cli import _serve_parser

    assert _serve_parser().parse_args([]).hud == "label"
    assert _serve_parser().parse_args(["--hud", "full"]).hud == "full"


def test_a_cropping_server_says_where_each_map_lies_and_draws_it_there(tiny_engine):
    from livecam.engine.core import CamEngine
    from livecam.serve.app import ServeConfig

    crop = CamEngine(tiny_engine.model, fit="crop")
    image = np.random.default_rng(3).integers(0, 256, (48, 80, 3), dtype=np.uint8)
    png = cv2.imencode(".png", image)[1].tobytes()

    async def go():
        worker, client = _serve_in_process(crop, ServeConfig(hud="none"))
        with worker:
            async with client:
                answer = await (await client.post("/api/explain", data=png, headers={"Content-Type": "image/png"})).json()
                ws = await client.ws_connect("/ws")
                await ws.send_bytes(png)
                over_ws = await receive_json(ws)
                await ws.close()
                response = await client.post("/api/explain?overlay=1", data=png, headers={"Content-Type": "image/png"})
                picture = cv2.imdecode(np.frombuffer(await response.read(), np.uint8), cv2.IMREAD_COLOR)
                return answer, over_ws, picture

    answer, over_ws, picture = run(go())
    assert answer["box"] == over_ws["box"] == pytest.approx([0.2, 0.0, 0.8, 1.0])  # the central 48x48 of 80x48
    np.testing.assert_array_equal(picture[:, :16], image[:, :16])  # no heat outside the box
    np.testing.assert_array_equal(picture[:, 64:], image[:, 64:])
    assert np.any(picture[:, 16:64] != image[:, 16:64])


@pytest.mark.parametrize(("args", "fit"), [([], "squash"), (["--fit", "pad"], "pad")])
def test_serve_takes_fit(args, fit):
    from livecam.cli import _serve_parser

    assert _serve_parser().parse_args(args).fit == fit


ODD_TOKEN = 'a&b#c d<"x'  # what a URL (& # space) and HTML (< ") give meaning to


def test_a_token_with_url_and_html_characters_is_encoded_in_the_printed_url():
    from urllib.parse import parse_qs, urlsplit

    from livecam.serve.app import page_url

    url = page_url("127.0.0.1", 8765, ODD_TOKEN, https=False)
    parts = urlsplit(url)
    assert parts.fragment == "" and " " not in url and '"' not in url and "<" not in url
    assert parse_qs(parts.query) == {"token": [ODD_TOKEN]}


def test_a_token_with_url_and_html_characters_reaches_the_assets_and_the_websocket(tiny_engine):
    from html.parser import HTMLParser
    from urllib.parse import quote

    from aiohttp.test_utils import TestClient, TestServer

    from livecam.engine.worker import EngineWorker
    from livecam.serve.app import ServeConfig, create_app

    class Links(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.links: list[str] = []

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag in ("link", "script") and (attrs.get("href") or attrs.get("src") or "").split("?")[0] in (
                "style.css",
                "app.js",
            ):
                self.links.append(attrs.get("href") or attrs["src"])

    query = "?token=" + quote(ODD_TOKEN, safe="")  # what the page's script builds from its own address

    async def go():
        with EngineWorker(tiny_engine) as worker:
            async with TestClient(TestServer(create_app(tiny_engine, worker, ServeConfig(token=ODD_TOKEN)))) as client:
                async with client.get("/" + query) as response:
                    page = await response.text()
                parser = Links()
                parser.feed(page)
                statuses = []
                for link in parser.links:
                    async with client.get("/" + link) as response:
                        statuses.append(response.status)
                ws = await client.ws_connect("/ws" + query)
                await ws.close()
                return page, parser.links, statuses

    page, links, statuses = run(go())
    assert len(links) == 2 and statuses == [200, 200]
    assert ODD_TOKEN not in page and '<"x' not in page  # percent-encoded and escaped, never pasted raw
