"""Tests for livecam.serve.protocol (the wire format of `livecam serve`) and the server's bind rules."""

from __future__ import annotations

import base64
import io
import struct

import cv2
import numpy as np
import pytest
from PIL import Image

from livecam.errors import UserError
from livecam.serve import app as serve
from livecam.serve import protocol


def encoded(kind: str, width: int, height: int, **params) -> bytes:
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    flags = {"webp_lossless": [cv2.IMWRITE_WEBP_QUALITY, 101], "webp": [cv2.IMWRITE_WEBP_QUALITY, 80]}.get(kind, [])
    ok, data = cv2.imencode(".webp" if kind.startswith("webp") else f".{kind}", image, flags)
    assert ok
    return data.tobytes()


@pytest.mark.parametrize("kind", ["jpg", "png", "webp", "webp_lossless"])
@pytest.mark.parametrize("size", [(1, 1), (33, 17), (640, 480), (1000, 3)])
def test_image_size_reads_the_header(kind, size):
    data = encoded(kind, *size)
    name = {"jpg": "jpeg", "webp_lossless": "webp"}.get(kind, kind)
    assert protocol.image_size(data) == (name, *size)


def test_image_size_of_extended_webp():
    # VP8X: a 4-byte flags field, then the canvas size minus one in 24 bits each.
    body = b"\x00\x00\x00\x00" + (4999).to_bytes(3, "little") + (2999).to_bytes(3, "little")
    data = b"RIFF" + (len(body) + 12).to_bytes(4, "little") + b"WEBPVP8X" + len(body).to_bytes(4, "little") + body
    assert protocol.image_size(data) == ("webp", 5000, 3000)


@pytest.mark.parametrize(
    "metadata",
    [
        {"icc_profile": b"\0" * 200_000},  # one ICC profile in four APP2 segments
        {"icc_profile": b"\0" * 2 * 65_519},  # two full 64 KiB APP2 segments
        {"exif": b"Exif\0\0" + bytes(65_000), "xmp": b"<x/>" * 16_000, "icc_profile": b"\0" * 1000},
    ],
)
def test_image_size_finds_a_jpeg_frame_header_after_large_metadata(metadata):
    buffer = io.BytesIO()
    Image.new("RGB", (70, 30), (200, 10, 10)).save(buffer, "JPEG", **metadata)
    data = buffer.getvalue()
    assert data.find(b"\xff\xc0") > 65536  # the frame header is past the first 64 KiB
    assert protocol.image_size(data) == ("jpeg", 70, 30)
    assert protocol.decode_image(data).shape == (30, 70, 3)


def _png(width: int, height: int) -> bytes:
    """A valid PNG (Pillow's: OpenCV does not write sides over libpng's limit)."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (0, 128, 255)).save(buffer, "PNG")
    return buffer.getvalue()


def _jpeg_with_size(width: int, height: int) -> bytes:
    """A valid JPEG whose frame header then claims another size."""
    data = bytearray(encoded("jpg", 8, 8))
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _webp_canvas(width: int, height: int) -> bytes:
    body = b"\x00\x00\x00\x00" + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return b"RIFF" + (len(body) + 12).to_bytes(4, "little") + b"WEBPVP8X" + len(body).to_bytes(4, "little") + body


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (lambda: _png(1_000_001, 1), r"1000001x1; PNG images are decoded up to 1,000,000 pixels a side"),
        (lambda: _png(1, 1_000_001), r"1x1000001; PNG images are decoded up to 1,000,000 pixels a side"),
        (lambda: _jpeg_with_size(65_501, 1), r"65501x1; JPEG images are decoded up to 65,500 pixels a side"),
        (lambda: _webp_canvas(16_384, 1), r"16384x1; WebP images are decoded up to 16,383 pixels a side"),
    ],
)
def test_decode_names_each_formats_limit_per_side(data, match):
    with pytest.raises(UserError, match=match):
        protocol.decode_image(data())


def test_decode_takes_the_largest_side_each_decoder_takes():
    assert protocol.decode_image(_png(1_000_000, 1)).shape == (1, 1_000_000, 3)
    assert protocol.decode_image(encoded("jpg", 65_500, 1)).shape == (1, 65_500, 3)
    assert protocol.decode_image(encoded("webp", 16_383, 2)).shape == (2, 16_383, 3)


def test_decode_refuses_big_images_before_decoding(monkeypatch):
    data = encoded("png", 300, 200)
    monkeypatch.setattr(cv2, "imdecode", lambda *a: pytest.fail("decoded an image over the limit"))
    with pytest.raises(UserError, match=r"300x200 .*limit is 0\.1 Mpixel"):
        protocol.decode_image(data, max_pixels=50_000)


def test_decode_gives_bgr_and_clear_errors():
    image = np.zeros((20, 30, 3), np.uint8)
    image[..., 2] = 255  # red in BGR
    frame = protocol.decode_image(cv2.imencode(".png", image)[1].tobytes())
    assert frame.shape == (20, 30, 3) and (frame[..., 2] == 255).all() and (frame[..., 0] == 0).all()
    with pytest.raises(UserError, match="JPEG, PNG or WebP"):
        protocol.decode_image(b"GIF89a......")
    with pytest.raises(UserError, match="empty"):
        protocol.decode_image(b"")
    with pytest.raises(UserError, match="cut short"):
        protocol.decode_image(encoded("jpg", 64, 64)[:10])
    with pytest.raises(UserError, match="could not be decoded"):
        protocol.decode_image(encoded("png", 64, 64)[:200])


def test_encode_cam_is_row_major_uint8_with_255_hottest():
    cam = np.array([[0.0, 0.5, 1.0], [np.nan, np.inf, -1.0]], np.float32)
    message = protocol.encode_cam(cam)
    assert (message["width"], message["height"]) == (3, 2)
    assert list(base64.b64decode(message["data"])) == [0, 128, 255, 0, 255, 0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"method": "gradcam++"}', {"method": "gradcam++"}),
        ('{"class_id": 3}', {"class_id": 3}),
        ('{"class_id": null}', {"class_id": None}),
        ('{"method": "layercam", "class_id": 0}', {"method": "layercam", "class_id": 0}),
        ('{"pull": "source"}', {"pull": "source"}),
        ('{"paused": true, "alpha": 0.4, "colormap": "jet"}', {"paused": True, "alpha": 0.4, "colormap": "jet"}),
        ('{"class_id": "[[[[[[[[[[\\"{{{{{{{{{{"}', {"class_id": '[[[[[[[[[["{{{{{{{{{{'}),  # brackets inside a string
        ('{"class_id": ' + "[" * 7 + "1" + "]" * 7 + "}", {"class_id": [[[[[[[1]]]]]]]}),  # the controller refuses it
        ("{}", {}),
    ],
)
def test_parse_controls_accepts(text, expected):
    assert protocol.parse_controls(text) == expected


def test_controls_become_the_viewers_commands_applied_all_or_nothing():
    from livecam.viewer.control import Controller, ViewerState

    state = ViewerState(method="gradcam", alpha=0.6, colormap="jet")
    controller = Controller(state, class_names=("a", "b", "c"))
    controls = protocol.parse_controls(
        '{"paused": true, "alpha": 0.4, "colormap": "TURBO", "method": "layercam", "class_id": "b"}'
    )
    controller.apply_all(protocol.commands(controls))
    assert (state.paused, state.alpha, state.colormap, state.method, state.class_id) == (True, 0.4, "turbo", "layercam", 1)
    with pytest.raises(UserError, match="alpha"):
        controller.apply_all(protocol.commands({"paused": False, "alpha": -0.1}))
    assert (state.paused, state.alpha) == (True, 0.4)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[1]", "JSON object"),
        ("not json", "JSON object"),
        ('{"opacity": 0.5}', "Unknown control 'opacity'"),
        ('{"pull": "camera"}', "pull"),
        ("[" * 100_000, "at most 4096 characters"),
        ("[" * 4000, "nested more than 8 deep"),
        ('{"class_id": ' + "[" * 9 + "1" + "]" * 9 + "}", "nested more than 8 deep"),
    ],
)
def test_parse_controls_refuses(text, match):
    with pytest.raises(UserError, match=match):
        protocol.parse_controls(text)


@pytest.mark.parametrize(
    ("host", "needs"),
    [
        ("127.0.0.1", False),
        ("localhost", False),
        ("::1", False),
        ("127.0.0.2", False),
        ("0.0.0.0", True),
        ("::", True),
        ("192.168.1.5", True),
        ("example.org", True),
    ],
)
def test_a_token_is_required_off_loopback(host, needs):
    assert serve.needs_token(host) is needs


def test_page_url_names_the_machine_for_a_wildcard_bind_and_carries_the_token():
    assert serve.page_url("127.0.0.1", 8765, None, https=False) == "http://127.0.0.1:8765/"
    assert serve.page_url("::1", 80, "abc", https=True) == "https://[::1]:80/?token=abc"
    url = serve.page_url("0.0.0.0", 9000, "t0k", https=False)
    assert url.endswith(":9000/?token=t0k") and "0.0.0.0" not in url


@pytest.mark.parametrize(
    ("host", "origin", "https", "ok"),
    [
        ("127.0.0.1:8765", "http://127.0.0.1:8765", False, True),
        ("127.0.0.1:8765", "https://127.0.0.1:8765", False, False),  # another scheme is another origin
        ("127.0.0.1:8765", "https://127.0.0.1:8765", True, True),
        ("127.0.0.1:8765", "http://127.0.0.1:8765", True, False),
        ("127.0.0.1:8765", "http://127.0.0.1:8766", False, False),
        ("localhost:80", "http://LOCALHOST", False, True),  # the default port, said or not
        ("[::1]:9000", "http://[::1]:9000", False, True),
        ("127.0.0.1:8765", "null", False, False),
        ("127.0.0.1:8765", "http://127.0.0.1:8765/page", False, False),
    ],
)
def test_websocket_origin_must_match_scheme_host_and_port(host, origin, https, ok):
    import ssl

    from aiohttp.test_utils import make_mocked_request

    request = make_mocked_request(
        "GET", "/ws", headers={"Host": host, "Origin": origin}, sslcontext=ssl.create_default_context() if https else None
    )
    assert serve.origin_ok(request) is ok
