"""Synthetic scenes: one shape of a known class on a cluttered, textured background.

A scene is a pure function of its seed (and, for the animation, of the frame index). Sizes are
(width, height), as in OpenCV. The shapes, backgrounds and clutter are drawn by
``livecam.demo.pieces``; this module places them: one still scene, or objects that enter,
wander and leave an animated one.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from livecam.demo.pieces import (
    CLASS_NAMES,
    ONE,
    SHIFT,
    Shape,
    add_clutter,
    blob_polygon,
    draw_shape,
    new_background,
    random_shape,
    vivid_colour,
)

__all__ = ["CLASS_NAMES", "AnimatedScene", "make_scene"]

# Object circumradius as a share of min(width, height): 22..56 px in a 224 x 224 scene.
_RADIUS_SHARE = (22 / 224, 56 / 224)


def make_scene(seed: int, size: tuple[int, int] = (224, 224)) -> tuple[np.ndarray, int, tuple[int, int, int, int]]:
    """One still scene: a single object of a known class on a cluttered background.

    Args:
        seed: any non-negative int; the same seed always gives the same scene. By convention
            seeds below 500,000 train the demo model and seeds from 500,000 up evaluate it.
        size: (width, height) in pixels, OpenCV order.

    Returns:
        frame_bgr: uint8 array (height, width, 3), BGR.
        class_id: index into ``CLASS_NAMES``.
        box_xyxy: the object's tight box (x0, y0, x1, y1), inclusive pixel coordinates,
            wholly inside the frame.
    """
    width, height = _check_size(size)
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"Expected seed to be a non-negative int. Received: seed={seed!r}")
    rng = np.random.default_rng(int(seed))
    frame_bgr = new_background(rng, width, height)
    add_clutter(rng, frame_bgr, count=int(rng.integers(6, 16)))
    radius = rng.uniform(*_RADIUS_SHARE) * min(width, height)
    center = (rng.uniform(radius + 1, width - radius - 1), rng.uniform(radius + 1, height - radius - 1))
    shape = random_shape(rng, int(rng.integers(len(CLASS_NAMES))), center, radius, frame_bgr)
    draw_shape(frame_bgr, shape)
    add_clutter(rng, frame_bgr, count=int(rng.integers(0, 4)))  # a few in front: mild occlusion
    box = shape.box(width, height)
    assert box is not None  # the centre keeps the whole object inside the frame
    return frame_bgr, shape.class_id, box


class AnimatedScene:
    """An endless synthetic video: objects enter, wander and leave; the class changes each time.

    Each ``period_s`` seconds a new object of a different class slides in from one edge,
    drifts and turns, and slides out over another edge, over a background that is fixed for
    that period and shimmers with sensor grain. Every frame is a pure function of
    (seed, index), so any frame can be drawn in any order.

    Args:
        size: (width, height) in pixels, OpenCV order.
        fps: frames per second the timeline is laid out for.
        seed: picks the sequence of objects and backgrounds.
        period_s: seconds each object is on stage.
    """

    def __init__(self, size: tuple[int, int] = (640, 480), fps: float = 30, seed: int = 0, period_s: float = 4.0):
        self.size = _check_size(size)
        if not fps > 0:
            raise ValueError(f"Expected fps > 0. Received: fps={fps!r}")
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"Expected seed to be a non-negative int. Received: seed={seed!r}")
        if not period_s > 0:
            raise ValueError(f"Expected period_s > 0. Received: period_s={period_s!r}")
        self.fps = float(fps)
        self.seed = int(seed)
        self.frames_per_period = max(2, round(period_s * fps))
        self._cached: tuple[int, _Episode] | None = None

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` (0, 1, ...) as a fresh uint8 BGR array (height, width, 3)."""
        episode, t = self._locate(index)
        frame_bgr = episode.background.copy()
        width, height = self.size
        shift = episode.grain_shift(index)
        grain = episode.grain[shift[1] : shift[1] + height, shift[0] : shift[0] + width]
        cv2.add(frame_bgr, grain, dst=frame_bgr)
        cv2.subtract(frame_bgr, episode.grain_offset, dst=frame_bgr)
        for drifter in episode.drifters:
            drifter.draw(frame_bgr, index)
        draw_shape(frame_bgr, episode.shape_at(t))
        return frame_bgr

    def truth(self, index: int) -> tuple[int, tuple[int, int, int, int]] | None:
        """(class_id, box_xyxy) of the object in frame ``index``; None while it is off screen."""
        episode, t = self._locate(index)
        shape = episode.shape_at(t)
        box = shape.box(*self.size)
        return None if box is None else (shape.class_id, box)

    def _locate(self, index: int) -> tuple[_Episode, float]:
        if not isinstance(index, (int, np.integer)) or isinstance(index, bool) or index < 0:
            raise ValueError(f"Expected index to be a non-negative int. Received: index={index!r}")
        number, step = divmod(int(index), self.frames_per_period)
        cached = self._cached  # one read: another thread may swap the cache meanwhile
        if cached is None or cached[0] != number:
            cached = (number, _Episode(self.seed, number, self.size, self._class_of(number)))
            self._cached = cached
        return cached[1], step / (self.frames_per_period - 1)

    def _class_of(self, number: int) -> int:
        # Each run of len(CLASS_NAMES) episodes shows every class once, in a seeded order, and
        # never the same class twice in a row across the joins.
        n = len(CLASS_NAMES)
        cycle, place = divmod(number, n)
        order = self._cycle_order(cycle)
        return int(order[place])

    def _cycle_order(self, cycle: int) -> np.ndarray:
        order = self._shuffled(cycle)
        # The fix-up swaps the first two places only, never the last, so the previous cycle's
        # last class is that of its plain shuffle: no recursion back to cycle 0.
        if cycle > 0 and order[0] == self._shuffled(cycle - 1)[-1]:
            order[[0, 1]] = order[[1, 0]]
        return order

    def _shuffled(self, cycle: int) -> np.ndarray:
        return np.random.default_rng([self.seed, cycle, 1]).permutation(len(CLASS_NAMES))


class _Episode:
    """The fixed parts of one object's time on stage: background, path, look, drifting clutter."""

    _GRAIN_MARGIN = 32

    def __init__(self, seed: int, number: int, size: tuple[int, int], class_id: int):
        rng = np.random.default_rng([seed, number, 0])
        width, height = size
        self.background = new_background(rng, width, height, grain=False)
        add_clutter(rng, self.background, count=int(rng.integers(8, 20)) * max(1, width * height // (224 * 224) // 2))
        amplitude = int(rng.integers(4, 14))
        m = self._GRAIN_MARGIN
        self.grain = rng.integers(0, 2 * amplitude + 1, size=(height + m, width + m, 1), dtype=np.uint8)
        self.grain = np.repeat(self.grain, 3, axis=2)
        self.grain_offset = (amplitude, amplitude, amplitude, 0)
        self._grain_seed = int(rng.integers(1 << 30))

        # the upper part of the still scenes' size range: readable on screen, and what the model knows
        radius = rng.uniform(0.14, _RADIUS_SHARE[1]) * min(width, height)
        self._radius = (radius, radius * rng.uniform(0.85, 1.15))
        shape = random_shape(rng, class_id, (width / 2, height / 2), radius, self.background)
        self._look = shape
        self._spin = rng.uniform(-1.5, 1.5)  # radians per period
        entry_side, exit_side = rng.choice(4, size=2, replace=False)
        outside = 1.2 * max(self._radius)
        self._path = (
            _edge_point(rng, int(entry_side), width, height, outside),
            _inner_point(rng, width, height, max(self._radius)),
            _inner_point(rng, width, height, max(self._radius)),
            _edge_point(rng, int(exit_side), width, height, outside),
        )
        n_drifters = int(rng.integers(3, 7))
        self.drifters = [_Drifter(rng, width, height) for _ in range(n_drifters)]

    def grain_shift(self, index: int) -> tuple[int, int]:
        mixed = (index * 2654435761 + self._grain_seed) & 0xFFFFFFFF
        return (mixed % self._GRAIN_MARGIN, (mixed >> 8) % self._GRAIN_MARGIN)

    def shape_at(self, t: float) -> Shape:
        """The object at time t in [0, 1] of the episode: in over the first quarter, out over the last."""
        p0, p1, p2, p3 = self._path
        if t < 0.25:
            center = _lerp(p0, p1, _smoothstep(t / 0.25))
        elif t < 0.75:
            center = _lerp(p1, p2, _smoothstep((t - 0.25) / 0.5))
        else:
            center = _lerp(p2, p3, _smoothstep((t - 0.75) / 0.25))
        radius = self._radius[0] + (self._radius[1] - self._radius[0]) * t
        look = self._look
        return Shape(look.class_id, center, radius, look.angle + self._spin * t, look.fill_bgr, look.outline_bgr, look.detail)


class _Drifter:
    """A small distractor that crosses the frame in a straight line, wrapping at the edges."""

    def __init__(self, rng: np.random.Generator, width: int, height: int):
        self.size = (width, height)
        self.start = (rng.uniform(0, width), rng.uniform(0, height))
        speed = rng.uniform(0.5, 3.0) * min(width, height) / 224
        heading = rng.uniform(0, 2 * np.pi)
        self.velocity = (speed * math.cos(heading), speed * math.sin(heading))
        scale = min(width, height) / 224
        self.points = blob_polygon(rng, rng.uniform(3, 10) * scale)
        self.colour = vivid_colour(rng)

    def draw(self, frame_bgr: np.ndarray, index: int) -> None:
        width, height = self.size
        x = (self.start[0] + self.velocity[0] * index) % (width + 40) - 20
        y = (self.start[1] + self.velocity[1] * index) % (height + 40) - 20
        pts = np.round((self.points + (x, y)) * ONE).astype(np.int32)
        cv2.fillPoly(frame_bgr, [pts], self.colour, cv2.LINE_AA, SHIFT)


def _edge_point(rng: np.random.Generator, side: int, width: int, height: int, outside: float) -> tuple[float, float]:
    along = rng.uniform(0.2, 0.8)
    return [
        (along * width, -outside),
        (width + outside, along * height),
        (along * width, height + outside),
        (-outside, along * height),
    ][side]


def _inner_point(rng: np.random.Generator, width: int, height: int, radius: float) -> tuple[float, float]:
    mx, my = min(radius, width / 2 - 1), min(radius, height / 2 - 1)
    return (rng.uniform(mx, width - mx), rng.uniform(my, height - my))


def _lerp(a: tuple[float, float], b: tuple[float, float], s: float) -> tuple[float, float]:
    return (a[0] + (b[0] - a[0]) * s, a[1] + (b[1] - a[1]) * s)


def _smoothstep(s: float) -> float:
    return s * s * (3 - 2 * s)


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in size)
        ok = (width, height) == tuple(size)
    except (TypeError, ValueError):
        ok = False
    if not ok or width < 32 or height < 32:
        raise ValueError(f"Expected size as (width, height) ints, each >= 32. Received: size={size!r}")
    return width, height
