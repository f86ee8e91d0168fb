"""The wire format of ``livecam serve``: images in, JSON results out, JSON controls.

Pure functions, shared by the WebSocket, ``POST /api/explain`` and the tests:

- ``image_size`` reads the width and height from a JPEG, PNG or WebP header without decoding,
  so that an image too big to decode safely is refused before any pixel is allocated;
- ``decode_image`` turns the bytes into a BGR frame, or raises ``UserError`` with the sentence
  the client is sent;
- ``result_message`` is the JSON object for one answered frame (see the README's WebSocket API);
- ``parse_controls`` reads a client's text message, and ``commands`` turns it into the viewer's
  commands (the viewer controller checks their values).
"""

from __future__ import annotations

import base64
import json
import re
import struct
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from livecam.engine.compare import contrast_fields
from livecam.errors import UserError
from livecam.render.grid import grid_layout, panel_titles
from livecam.trust.faithfulness import faith_fields
from livecam.trust.region import RegionScore, region_fields
from livecam.trust.scale import scaled_cam
from livecam.viewer.control import Action, Command

MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # a WebSocket message or request body; larger closes with 1009 / answers 413
MAX_PIXELS = 16 * 1024 * 1024  # 4096 x 4096; a decoded image may not be larger
# Controls are a flat object of a few short values. The depth is checked before parsing, since
# Python's json recurses once per level (a message of 100,000 "[" raised RecursionError).
MAX_CONTROL_CHARS = 4096
MAX_CONTROL_DEPTH = 8
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_JSON_BRACKET = re.compile(r"[\[\]{}]")
# Each control a client may send, as the viewer's action it becomes ("pull" is a request, no action).
_CONTROL_ACTIONS = {
    "method": Action.SET_METHOD,
    "class_id": Action.LOCK_CLASS,  # null unlocks
    "paused": Action.SET_PAUSED,
    "alpha": Action.SET_ALPHA,
    "colormap": Action.SET_COLORMAP,
    "contrast": Action.SET_CONTRAST,  # a class id or name; null: none
    "box": Action.SET_BOX,  # [x, y, w, h] in frame pixels or fractions; null clears it
    "normalize": Action.SET_NORMALIZE,  # "frame" or "session"
    "compare": Action.SET_COMPARE,  # "classes", "methods" or null: side by side
}
CONTROLS = (*_CONTROL_ACTIONS, "pull", "faithfulness")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not.
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_JPEG_NO_LENGTH = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM and RSTn stand alone
# A marker: 0xFF, any fill bytes (0xFF), then its code. Bytes before it, and a stuffed 0xFF00,
# are junk that decoders skip with a warning, and so does this.
_JPEG_MARKER = re.compile(rb"\xff+([\x01-\xfe])")
# The most pixels a side that OpenCV's decoders take: libpng's default user limit, libjpeg's
# JPEG_MAX_DIMENSION, and WebP's 14-bit sizes (a larger WebP header is a damaged file).
MAX_SIDE = {"png": 1_000_000, "jpeg": 65_500, "webp": 16_383}
_FORMAT_NAMES = {"png": "PNG", "jpeg": "JPEG", "webp": "WebP"}


def image_size(data: bytes) -> tuple[str, int, int]:
    """The format ("jpeg", "png" or "webp"), width and height of an encoded image, from its header.

    Raises:
        UserError: the bytes are not a JPEG, PNG or WebP image, or its header is cut short.
    """
    data = bytes(data)
    try:
        if data.startswith(_PNG_SIGNATURE) and data[12:16] == b"IHDR":
            width, height = struct.unpack(">II", data[16:24])
            return "png", width, height
        if data.startswith(b"\xff\xd8"):
            return ("jpeg", *_jpeg_size(data))
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return ("webp", *_webp_size(data))
    except (struct.error, IndexError):
        pass
    else:
        raise UserError("Expected an image encoded as JPEG, PNG or WebP. Received bytes that are none of these.")
    raise UserError("The image's header is cut short or damaged; send the whole JPEG, PNG or WebP file.")


def _jpeg_size(data: bytes) -> tuple[int, int]:
    # The frame header may come after megabytes of ICC, EXIF or XMP segments: walk the segments
    # to it through the whole buffer, as decoders do (the walk jumps from length to length).
    position = 2
    while True:
        marker = _JPEG_MARKER.search(data, position)
        if marker is None:
            raise IndexError("no frame header")
        position = marker.end()
        code = data[position - 1]
        if code in _JPEG_NO_LENGTH:
            continue
        if code in (0xD9, 0xDA):  # the end, or scan data: there was no frame header before it
            raise IndexError("no frame header")
        (length,) = struct.unpack_from(">H", data, position)
        if code in _JPEG_SOF:
            height, width = struct.unpack_from(">HH", data, position + 3)
            return width, height
        if length < 2:
            raise IndexError("bad segment length")
        position += length


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    body = data[20:]
    if chunk == b"VP8 ":  # lossy: a 3-byte frame tag, the start code, then 14-bit sizes
        if body[3:6] != b"\x9d\x01\x2a":
            raise IndexError("bad VP8 start code")
        width, height = struct.unpack("<HH", body[6:10])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":  # lossless: signature 0x2f, then (width - 1) and (height - 1) in 14 bits each
        if body[0] != 0x2F:
            raise IndexError("bad VP8L signature")
        (bits,) = struct.unpack("<I", body[1:5])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":  # extended: the canvas size, (width - 1) and (height - 1) in 24 bits each
        width = int.from_bytes(body[4:7], "little") + 1
        height = int.from_bytes(body[7:10], "little") + 1
        return width, height
    raise IndexError("unknown WebP chunk")


def decode_image(data: bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """An encoded JPEG, PNG or WebP image as a uint8 BGR frame.

    The size is checked from the header first, so an image over ``max_pixels``, or with a side
    longer than its decoder takes (``MAX_SIDE``), is refused without being decoded.

    Raises:
        UserError: what is wrong with the image, in one sentence for the client.
    """
    if not data:
        raise UserError("Expected an image (JPEG, PNG or WebP). Received an empty message.")
    kind, width, height = image_size(data)
    if width * height > max_pixels:
        raise UserError(
            f"The image is {width}x{height} ({width * height / 1e6:.1f} Mpixel); the limit is "
            f"{max_pixels / 1e6:.1f} Mpixel: scale it down before sending."
        )
    if max(width, height) > MAX_SIDE[kind]:
        raise UserError(
            f"The image is {width}x{height}; {_FORMAT_NAMES[kind]} images are decoded up to {MAX_SIDE[kind]:,} pixels a side: "
            "scale it down or crop it before sending."
        )
    frame = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if frame is None or frame.size == 0:
        raise UserError(f"The {_FORMAT_NAMES[kind]} image could not be decoded (damaged or cut short); send a whole image.")
    return frame


def encode_cam(cam: np.ndarray) -> dict[str, Any]:
    """A map in [0, 1] as ``{"width", "height", "data"}``: base64 of uint8 rows, 255 = hottest."""
    values = np.clip(np.nan_to_num(np.asarray(cam, np.float32), nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    pixels = np.rint(values * 255.0).astype(np.uint8)
    return {
        "width": int(pixels.shape[1]),
        "height": int(pixels.shape[0]),
        "data": base64.b64encode(pixels.tobytes()).decode("ascii"),
    }


def result_message(
    row: Any,
    class_names: Sequence[str],
    *,
    seq: int,
    engine_ms: float,
    server_ms: float,
    region: RegionScore | None = None,
    normalize: str = "frame",
    cam_scale: float = 1.0,
    panels: Sequence[Any] = (),
    faith: Any = None,
) -> dict[str, Any]:
    """The JSON object for one answered frame.

    Args:
        row: a one-row ``CamResult``.
        class_names: the engine's class names.
        seq: the frame's number on its connection (1 for ``POST /api/explain``).
        engine_ms: time the engine spent on the batch that held this frame.
        server_ms: time from receiving the frame to answering it.
        region: the map's score in the client's box (``livecam.trust.region``), or None.
        normalize: the scale the map is sent on, "frame" or "session" (``livecam.trust.scale``).
        cam_scale: what the map (scaled to 1) is multiplied by on that scale.
        panels: side by side (``livecam.engine.compare``): each panel's one-row ``CamResult``
            (``row`` is the first); none otherwise.
        faith: the faithfulness readout that came with this frame (``livecam.trust``), or None:
            the ``faith_*`` fields, null where none, and ``faith_text``, the HUD's line (the page shows it).
    """
    class_id = int(row.class_ids[0])
    cam_max = getattr(row, "cam_max", None)
    return {
        "type": "result",
        "seq": int(seq),
        "class_id": class_id,
        "label": class_names[class_id],
        "prob": round(float(row.probs[0, class_id]), 6),
        "topk": [
            {"id": int(i), "label": class_names[int(i)], "prob": round(float(p), 6)}
            for i, p in zip(row.topk_ids[0], row.topk_probs[0])
        ],
        "cam": encode_cam(scaled_cam(row.cam[0], cam_scale)),
        "method": row.method,
        "layer": row.layer,
        "box": [round(float(v), 6) for v in getattr(row, "box", (0.0, 0.0, 1.0, 1.0))],  # where the map lies
        **contrast_fields(row, class_names),
        "cam_max": None if cam_max is None else round(float(cam_max[0]), 6),
        "normalize": normalize,
        **region_fields(region),
        "panels": [panel_fields(panel, class_names, title) for panel, title in zip(panels, panel_titles(panels))],
        "panel_grid": list(grid_layout(len(panels))) if panels else None,
        **faith_fields(faith),
        "faith_text": faith.text if faith is not None else None,
        "ms": {"engine": round(float(engine_ms), 3), "server": round(float(server_ms), 3)},
    }


def panel_fields(row: Any, class_names: Sequence[str], title: str) -> dict[str, Any]:
    """One panel of a side-by-side answer: what it shows (``title``, as the window's grid writes it),
    its class, probability and method, its map on its own maximum (as the window's grid draws it),
    and its contrast."""
    class_id = int(row.class_ids[0])
    cam_max = getattr(row, "cam_max", None)
    return {
        "title": title,
        "class_id": class_id,
        "label": class_names[class_id],
        "prob": round(float(row.probs[0, class_id]), 6),
        "method": row.method,
        "cam": encode_cam(row.cam[0]),
        "cam_max": None if cam_max is None else round(float(cam_max[0]), 6),
        **contrast_fields(row, class_names),
    }


def error_message(seq: int | None, message: str) -> dict[str, Any]:
    """The JSON object that answers a frame that could not be explained."""
    return {"type": "error", "seq": seq, "message": message}


def source_error_message(frame: int, message: str) -> dict[str, Any]:
    """The JSON object that answers a pull whose frame of the server's source could not be explained."""
    return {"type": "source_error", "frame": frame, "message": message}


def control_error_message(message: str) -> dict[str, Any]:
    """The JSON object that answers a controls message that was refused (none of it applied)."""
    return {"type": "control_error", "message": message}


def parse_controls(text: str) -> dict[str, Any]:
    """A client's controls message: a JSON object with any of ``CONTROLS``.

    Only the form is checked here; the values are the viewer controller's to check
    (``livecam.viewer.control``), so that the window and the browser obey one set of rules.
    ``pull`` ("source") asks for the server source's next frame (while ``paused``, the frame it
    last sent, explained again). ``faithfulness`` (true or false) turns the connection's
    faithfulness readout on (every ``--faithfulness`` frames) or off.

    Raises:
        UserError: longer than ``MAX_CONTROL_CHARS``, nested deeper than ``MAX_CONTROL_DEPTH``,
            not a JSON object, an unknown key, or a ``pull`` other than "source".
    """
    if len(text) > MAX_CONTROL_CHARS:
        raise UserError(
            f'Expected controls of at most {MAX_CONTROL_CHARS} characters, e.g. {{"method": "gradcam++"}}. Received {len(text)} characters.'
        )
    if _json_depth(text) > MAX_CONTROL_DEPTH:
        raise UserError(
            f'Expected controls as a flat JSON object, e.g. {{"class_id": 3}}. Received JSON nested more than {MAX_CONTROL_DEPTH} deep.'
        )
    try:
        controls = json.loads(text)
    except ValueError:
        raise UserError(f'Expected controls as a JSON object, e.g. {{"method": "gradcam++"}}. Received: {text[:80]!r}') from None
    if not isinstance(controls, dict):
        raise UserError(f'Expected controls as a JSON object, e.g. {{"class_id": 3}}. Received: {text[:80]!r}')
    unknown = set(controls) - set(CONTROLS)
    if unknown:
        raise UserError(f"Unknown control {sorted(unknown)[0]!r}; expected any of {', '.join(CONTROLS)}.")
    if "pull" in controls and controls["pull"] != "source":
        raise UserError(f'Expected pull to be "source". Received: {controls["pull"]!r}')
    if "faithfulness" in controls and not isinstance(controls["faithfulness"], bool):
        raise UserError(f"Expected faithfulness to be true or false. Received: {controls['faithfulness']!r}")
    return controls


def commands(controls: dict[str, Any]) -> list[Command]:
    """A controls message as the viewer's commands, for ``Controller.apply_all`` (``{"class_id": null}`` unlocks)."""
    return [Command(action, controls[name]) for name, action in _CONTROL_ACTIONS.items() if name in controls]


def _json_depth(text: str) -> int:
    """How deep the brackets outside strings nest, counted without parsing (and so without recursion)."""
    depth = deepest = 0
    for bracket in _JSON_BRACKET.findall(_JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest
