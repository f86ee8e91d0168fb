"""The synthetic source (``synth``, ``synth:320x240,seed=3,fps=15``): the demo scene as a live camera."""

from __future__ import annotations

import re
import time

import numpy as np

from livecam.errors import UserError
from livecam.sources.live import LiveSource

__all__ = ["SYNTH_DEFAULT_SIZE", "SYNTH_MAX_SIZE", "open_synth"]

SYNTH_DEFAULT_SIZE = (640, 480)
SYNTH_MAX_SIZE = (7680, 4320)  # as --resolution: 8K; a 20000x20000 scene needs gigabytes per frame


def open_synth(text: str, resolution: tuple[int, int] | None, fps: float | None) -> LiveSource:
    """The demo scene for ``synth[:WxH][,seed=N][,fps=F]``; its options override ``resolution`` and ``fps``."""
    size, seed = resolution or SYNTH_DEFAULT_SIZE, 0
    fps = fps or 30.0
    options = text.partition(":")[2]
    for item in filter(None, (s.strip() for s in options.split(","))):
        if m := re.fullmatch(r"([0-9]+)x([0-9]+)", item):
            size = (int(m.group(1)), int(m.group(2)))
        elif m := re.fullmatch(r"seed=([0-9]+)", item):
            seed = int(m.group(1))
        elif (m := re.fullmatch(r"fps=([0-9]*\.?[0-9]+)", item)) and 0 < float(m.group(1)) <= 1000:
            fps = float(m.group(1))
        else:
            raise UserError(
                f"Unknown synth option {item!r}; expected synth:[WxH][,seed=N][,fps=F] with F in (0, 1000], "
                f"for example synth:640x480,seed=3."
            )
    if min(size) < 32:
        raise UserError(f"Expected a synth size of at least 32x32. Received: {size[0]}x{size[1]}")
    if size[0] > SYNTH_MAX_SIZE[0] or size[1] > SYNTH_MAX_SIZE[1]:
        raise UserError(
            f"Expected a synth size of at most {SYNTH_MAX_SIZE[0]}x{SYNTH_MAX_SIZE[1]}, as for --resolution. "
            f"Received: {size[0]}x{size[1]}"
        )
    capture = _SynthCapture(size, fps, seed)
    return LiveSource(
        lambda: capture,
        capture=capture,
        description=f"synthetic scene {size[0]}x{size[1]} at {fps:g} fps (seed {seed})",
        fps=fps,
        size=size,
    )


class _SynthCapture:
    """A CaptureLike over ``AnimatedScene``, paced at ``fps`` by the wall clock."""

    def __init__(self, size: tuple[int, int], fps: float, seed: int):
        from livecam.demo import AnimatedScene  # lazy: keeps `import livecam.sources` light

        self._scene = AnimatedScene(size=size, fps=fps, seed=seed)
        self._period_s = 1.0 / fps
        self._start_s: float | None = None
        self._next = 0

    def isOpened(self) -> bool:
        return True

    def read(self) -> tuple[bool, np.ndarray]:
        now = time.monotonic()
        if self._start_s is None:
            self._start_s = now
        due = self._start_s + self._next * self._period_s
        if due > now:
            time.sleep(due - now)
        else:  # running late: jump to the frame due now, so the scene keeps real time
            self._next = max(self._next, int((now - self._start_s) / self._period_s))
        image = self._scene.frame(self._next)
        self._next += 1
        return True, image

    def release(self) -> None:
        pass
