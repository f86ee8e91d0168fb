"""Live faithfulness: does hiding what the map calls important change the network's mind?

Every N-th explained frame (``--faithfulness N``), two copies of it ride in a later engine call:
one with the hottest 20 % of its area hidden, one with the coldest 20 % hidden (the control).
Hiding means a strong blur of the frame, not black, so the copies stay pictures the network
has seen the like of. The readout is the explained class's probability in the three cases; a
map that shows what the network used loses much more with its heat hidden than with the cold.
Offline (``--faithfulness 1`` on files), the deletion and insertion curves ride along too
(``livecam.trust.curves``).

Everything works on the frame as the network sees it (fitted and resized to the input size,
which the map covers exactly): with ``--fit squash`` its area shares are the frame's. NumPy and
OpenCV only, so the OpenVINO path imports no TensorFlow for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from livecam.errors import UserError
from livecam.trust import curves as curves_mod
from livecam.trust.hiding import hot_first, strong_blur

DEFAULT_EVERY = 10
HIDDEN_SHARE = 0.2  # the share of the area hidden: the hottest, and the coldest for the control
FIELDS = (
    "faith_shown",
    "faith_hot_hidden",
    "faith_cold_hidden",
    "faith_frame",
    "faith_deletion_auc",
    "faith_insertion_auc",
    "faith_drop",
    "faith_increase",
)


def check_every(every: int) -> int:
    """``--faithfulness N``: 0 (off) or a positive int."""
    if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 0:
        raise UserError(f"Expected --faithfulness to be 0 (off) or a positive number of frames. Received: {every!r}")
    return int(every)


def hidden_pair(image_bgr: np.ndarray, cam: np.ndarray, share: float = HIDDEN_SHARE) -> np.ndarray:
    """(2, H, W, 3): the picture with its hottest ``share`` of the area blurred away, then with its coldest."""
    height, width = image_bgr.shape[:2]
    count = round(share * width * height)
    order = hot_first(cam, (width, height), [count, width * height - count])
    blurred = strong_blur(image_bgr).reshape(-1, 3)
    pair = np.repeat(image_bgr.reshape(1, -1, 3), 2, axis=0)
    pair[0, order[:count]] = blurred[order[:count]]
    pair[1, order[order.size - count :]] = blurred[order[order.size - count :]]
    return pair.reshape(2, height, width, 3)


@dataclass(frozen=True)
class Faithfulness:
    """A frame's readout: the explained class's probability shown whole, with its heat hidden, with its cold hidden.

    Attributes:
        frame: the index of the frame the numbers belong to.
        class_id: the class they are about (the frame's explained class).
        shown, hot_hidden, cold_hidden: its probabilities.
        curves: the deletion and insertion scores, where they were computed (offline).
    """

    frame: int
    class_id: int
    shown: float
    hot_hidden: float
    cold_hidden: float
    curves: curves_mod.CurveScores | None = None

    @property
    def text(self) -> str:
        """The HUD's line: the change in percentage points, e.g. "hide the heat: -89 % (control -2 %)"."""
        hot, cold = (round(100 * (p - self.shown)) for p in (self.hot_hidden, self.cold_hidden))
        return f"hide the heat: {_signed(hot)} % (control {_signed(cold)} %)"


def faith_fields(readout: Faithfulness | None) -> dict[str, Any]:
    """The result fields (``FIELDS``) of a frame: the readout that came with it, or all None. The one place they are made."""
    fields: dict[str, Any] = dict.fromkeys(FIELDS)
    if readout is None:
        return fields
    fields.update(
        faith_shown=round(readout.shown, 6),
        faith_hot_hidden=round(readout.hot_hidden, 6),
        faith_cold_hidden=round(readout.cold_hidden, 6),
        faith_frame=int(readout.frame),
    )
    if readout.curves is not None:
        fields.update(readout.curves.fields())
    return fields


@dataclass(frozen=True)
class Probe:
    """The images that ride in an engine call to test a frame's map, and what their answers make.

    Attributes:
        images: (n, H, W, 3) uint8 BGR at the network's input size: the hidden pair, then the curves' images.
        class_id: the class to read (the frame's explained class): each image is explained for it.
        frame: the frame's index.
        shown: the class's probability on the frame itself.
        steps: the curves' steps; 0 where no curves ride along.
    """

    images: np.ndarray
    class_id: int
    frame: int
    shown: float
    steps: int = 0

    def readout(self, probs: np.ndarray) -> Faithfulness:
        """The readout from the class's probability on each of ``images``, in order."""
        probs = np.asarray(probs, np.float64)
        scores = curves_mod.curve_scores(self.shown, probs[2:], self.steps) if self.steps else None
        return Faithfulness(self.frame, self.class_id, self.shown, float(probs[0]), float(probs[1]), scores)


def probe(image_bgr: np.ndarray, row: Any, frame: int, *, steps: int = 0) -> Probe | None:
    """The probe of a frame explained in ``row`` (a one-row ``CamResult``); None where its map is not finite.

    Args:
        image_bgr: the frame as the network saw it (``CamEngine.prepare``).
        row: its result.
        frame: its index.
        steps: add the deletion and insertion curves in this many steps (0: the live pair only).
    """
    if not row.finite[0]:
        return None
    class_id = int(row.class_ids[0])
    cam = row.cam[0]
    images = hidden_pair(image_bgr, cam)
    if steps:
        images = np.concatenate([images, curves_mod.curve_images(image_bgr, cam, steps)])
    return Probe(images, class_id, int(frame), float(row.probs[0, class_id]), steps)


def answered(probe: Probe, rows: list[Any]) -> Faithfulness:
    """The readout from the probe's engine rows (one per image, each explained for ``probe.class_id``)."""
    return probe.readout(np.array([row.probs[0, probe.class_id] for row in rows]))


class Schedule:
    """Which explained frames get a probe: every ``every``-th (0: none), counted per viewer or connection.

    Args:
        every: ``--faithfulness N``.
        steps: curves in this many steps with each probe (offline); 0: the live pair only.

    Attributes:
        on: whether probes are made (a page's toggle); ``every`` 0 is always off.
        riding: live, the probe that waits to ride with the stream's next frame.
    """

    def __init__(self, every: int = DEFAULT_EVERY, *, steps: int = 0) -> None:
        self.every = check_every(every)
        self.steps = steps
        self.on = True
        self.riding: Probe | None = None
        self._explained = 0

    def after(self, image_bgr: np.ndarray, row: Any, frame: int) -> Probe | None:
        """Counts one explained frame; its probe when it is due (None otherwise, or when off)."""
        self._explained += 1
        if not self.every or not self.on or (self._explained - 1) % self.every:
            return None
        return probe(image_bgr, row, frame, steps=self.steps)


def _signed(points: int) -> str:
    return f"{points:+d}" if points else "0"


class Means:
    """The run's means of every readout field (``--stats-json``): ``add`` each readout, read ``summary``."""

    def __init__(self) -> None:
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    def add(self, readout: Faithfulness) -> None:
        for name, value in faith_fields(readout).items():
            if value is not None and name != "faith_frame":
                self._sums[name] = self._sums.get(name, 0.0) + float(value)
                self._counts[name] = self._counts.get(name, 0) + 1

    def summary(self) -> dict[str, Any]:
        """``{"readouts": n, "faith_shown": mean, ...}``; empty before the first readout.

        The mean of ``faith_drop`` is the "average drop" and that of ``faith_increase`` the "increase in confidence".
        """
        if not self._counts:
            return {}
        means = {name: round(self._sums[name] / count, 6) for name, count in self._counts.items()}
        return {"readouts": self._counts["faith_shown"], **means}
