"""Tests for livecam.errors: what a message may show of a URL."""

from __future__ import annotations

from livecam.errors import redact


def test_redact():
    assert redact("rtsp://admin:p@ss@host:554/s") == "rtsp://***@host:554/s"
    assert redact("rtsp://admin:pa/ss@host/stream") == "rtsp://***@host/stream"
    assert (
        redact("see http://h/v.mp4?token=abc&w=2&X-Amz-Signature=f0 now")
        == "see http://h/v.mp4?token=***&w=2&X-Amz-Signature=*** now"
    )
    assert redact("rtsp://cam.local/live?channel=1") == "rtsp://cam.local/live?channel=1"
    assert redact("rtsp://admin:pa?ss@host:554/s?token=1") == "rtsp://***@host:554/s?token=***"
    assert redact("rtsp://admin:pa#ss@host") == "rtsp://***@host"
    assert redact("http://host/p?email=a@b.com") == "http://host/p?email=a@b.com"
