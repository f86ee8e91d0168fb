"""Every output says how it was made: livecam's version, the model and a digest of its weights,
the layer, the method, the scale, the input size and the runtime (``made_with``).

Snapshots' JSON, ``--stats-json`` and a CSV's sidecar ``.meta.json`` carry it under
``"made_with"``; ``--results`` JSON Lines start with a header line ``{"made_with": {...}}``.
Pictures and videos carry ``stamp_text``, the stamp as one line of JSON: PNG overlays in a
``tEXt`` chunk named ``livecam`` (``png_with_text``), JPEG pictures in a comment segment
(``jpeg_with_comment``), recordings in the video's ``comment`` tag (``livecam.viewer.encoders``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import struct
import zlib
from typing import Any

import numpy as np

PNG_KEYWORD = "livecam"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def made_with(engine: Any, *, method: str | None = None, normalize: str = "frame") -> dict[str, Any]:
    """How an output was made, as JSON-ready values.

    Args:
        engine: the ``CamEngine``.
        method: the CAM method of the output (a run's method at its start, a snapshot's own); None: the engine's.
        normalize: the scale the maps were drawn on (``livecam.trust.scale``).
    """
    from livecam import __version__

    height, width = engine.input_size
    return {
        "livecam": __version__,
        "model": engine.model_name,
        "weights_sha256": engine.weights_sha256,
        "layer": engine.layer_name,
        "method": method or engine.method,
        "normalize": normalize,
        "input_size": [int(width), int(height)],
        "runtime": engine.runtime_info.runtime,
    }


@functools.lru_cache(maxsize=4)
def weights_digest(model: Any) -> str:
    """SHA-256 of the model's weights (each one's path, dtype, shape and bytes, in order): the same weights, the same digest."""
    digest = hashlib.sha256()
    for weight in model.weights:
        value = np.ascontiguousarray(weight.numpy())
        digest.update(f"{weight.path}:{value.dtype}:{value.shape}".encode())
        digest.update(value.data)
    return digest.hexdigest()


def stamp_text(stamp: dict[str, Any]) -> str:
    """The stamp as pictures and videos carry it: one line of JSON, ASCII only (PNG text is
    Latin-1, a JPEG comment and a video tag plain bytes: JSON's \\u escapes keep any other character)."""
    return json.dumps(stamp, ensure_ascii=True)


def png_with_text(png: bytes, stamp: dict[str, Any], keyword: str = PNG_KEYWORD) -> bytes:
    """The PNG with ``stamp_text`` in a ``tEXt`` chunk right after the header (OpenCV writes none)."""
    if not png.startswith(_PNG_SIGNATURE):
        raise ValueError("Expected PNG bytes.")
    body = keyword.encode("latin-1") + b"\0" + stamp_text(stamp).encode("ascii")
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body))
    header_end = len(_PNG_SIGNATURE) + 8 + 13 + 4  # signature, then IHDR: length, type, 13 bytes, CRC
    return png[:header_end] + chunk + png[header_end:]


def jpeg_with_comment(jpeg: bytes, stamp: dict[str, Any]) -> bytes:
    """The JPEG with ``stamp_text`` in a comment (COM) segment right after its start (OpenCV writes none)."""
    if not jpeg.startswith(b"\xff\xd8"):
        raise ValueError("Expected JPEG bytes.")
    body = stamp_text(stamp).encode("ascii")
    if len(body) > 65_533:  # a segment's length is 16 bits and counts itself
        raise ValueError("The stamp is too long for a JPEG comment.")
    return jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(body) + 2) + body + jpeg[2:]


def picture_with_stamp(data: bytes, suffix: str, stamp: dict[str, Any]) -> bytes:
    """An encoded picture with its stamp where its format keeps text: PNG and JPEG; other formats as they are."""
    suffix = suffix.lower()
    if suffix == ".png":
        return png_with_text(data, stamp)
    if suffix in (".jpg", ".jpeg", ".jpe"):
        return jpeg_with_comment(data, stamp)
    return data


def png_text(png: bytes) -> dict[str, str]:
    """The ``tEXt`` chunks of a PNG, keyword -> text (to read a stamp back)."""
    texts, position = {}, len(_PNG_SIGNATURE)
    while position + 8 <= len(png):
        length, kind = struct.unpack(">I4s", png[position : position + 8])
        if kind == b"tEXt":
            keyword, _, text = png[position + 8 : position + 8 + length].partition(b"\0")
            texts[keyword.decode("latin-1")] = text.decode("latin-1")
        position += 12 + length
    return texts
