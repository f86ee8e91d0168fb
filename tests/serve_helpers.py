"""Shared by the server tests: a real `livecam serve` process, and scenes whose class and box are known."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from livecam.demo import CLASS_NAMES, make_scene

# A still demo scene that the shipped model gets right with a clear margin at 640x480 (checked
# in test_serve.py's first test, so a new demo model that disagrees fails there, not mysteriously).
SCENE_SEED = 500_012
SCENE_SIZE = (640, 480)
START_TIMEOUT_S = 120


@dataclass
class Scene:
    image_bgr: np.ndarray
    class_id: int
    box_xyxy: tuple[int, int, int, int]

    @property
    def label(self) -> str:
        return CLASS_NAMES[self.class_id]

    def jpeg(self, quality: int = 90) -> bytes:
        ok, data = cv2.imencode(".jpg", self.image_bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
        assert ok
        return data.tobytes()


def scene(seed: int = SCENE_SEED, size: tuple[int, int] = SCENE_SIZE) -> Scene:
    image, class_id, box = make_scene(seed, size)
    return Scene(image, class_id, box)


class ServerProcess:
    """``livecam serve ... --port 0`` in a subprocess; ``url`` is what it printed (with the token, if any).

    Keyword arguments other than ``log_dir`` go to ``subprocess.Popen`` (``preexec_fn``, ``pass_fds``).
    """

    def __init__(self, *args: str, log_dir: Path, **popen) -> None:
        self.args = args
        self.log = open(log_dir / f"serve-{time.monotonic_ns()}.log", "w+")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "livecam", "serve", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env=env,
            **popen,
        )
        self.url = self._wait_for_url()
        match = re.match(r"(https?)://([^/]+)/", self.url)
        assert match, self.url
        self.origin = f"{match.group(1)}://{match.group(2)}"
        self.host_port = match.group(2)
        self.token = re.search(r"token=([^&\s]+)", self.url).group(1) if "token=" in self.url else None

    def _wait_for_url(self) -> str:
        found: list[str] = []

        def read() -> None:
            for line in self.proc.stdout:
                if line.startswith("livecam: open "):
                    found.append(line.split()[2])
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(START_TIMEOUT_S)
        if not found:
            self.stop()
            raise AssertionError(f"livecam serve printed no URL within {START_TIMEOUT_S} s; its log:\n{self.stderr()[-3000:]}")
        return found[0]

    def path(self, path: str, **query: str) -> str:
        """The URL of ``path`` on this server, with the token when it has one."""
        params = dict(query)
        if self.token:
            params["token"] = self.token
        tail = "&".join(f"{k}={v}" for k, v in params.items())
        return f"{self.origin}{path}" + (f"?{tail}" if tail else "")

    def stderr(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self, signum: int = signal.SIGTERM, timeout_s: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode
