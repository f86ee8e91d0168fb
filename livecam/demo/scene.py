"""Synthetic scenes: one shape of a known class on a cluttered, textured background.

Everything is drawn with OpenCV and numpy from a seed, so a scene is a pure function of its
seed (and, for the animation, of the frame index). Sizes are (width, height), as in OpenCV.

The backgrounds are built to make the classifier earn its answer: gradients, smooth colour
blobs, stripes, sensor grain, random lines and small irregular distractors in the same vivid
colours as the objects. Only the shape says which class a scene is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

CLASS_NAMES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "ring")

# Object circumradius as a share of min(width, height): 22..56 px in a 224 x 224 scene.
_RADIUS_SHARE = (22 / 224, 56 / 224)
_SHIFT = 4  # fixed-point bits for sub-pixel drawing
_ONE = 1 << _SHIFT


@dataclass(frozen=True)
class _Shape:
    """One object: what it is, where, and how it looks."""

    class_id: int
    center_xy: tuple[float, float]
    radius: float  # circumradius in pixels
    angle: float  # radians
    fill_bgr: tuple[float, float, float]
    outline_bgr: tuple[float, float, float] | None
    detail: float  # inner-radius ratio (star), arm width (cross), hole size (ring)

    def outline(self) -> np.ndarray:
        """The polygon (n, 2) float64 of a polygonal class; a 64-gon for the round ones."""
        cx, cy = self.center_xy
        name = CLASS_NAMES[self.class_id]
        if name in ("circle", "ring"):
            t = np.linspace(0.0, 2 * np.pi, 64, endpoint=False)
            return np.stack([cx + self.radius * np.cos(t), cy + self.radius * np.sin(t)], axis=1)
        unit = _UNIT_POLYGONS[name](self.detail)
        c, s = math.cos(self.angle), math.sin(self.angle)
        xy = unit @ np.array([[c, s], [-s, c]]) * self.radius
        return xy + (cx, cy)

    def box(self, width: int, height: int) -> tuple[int, int, int, int] | None:
        """Tight (x0, y0, x1, y1) box in pixels, clipped to the frame; None if it is outside."""
        xy = self.outline()
        x0, y0 = np.floor(xy.min(axis=0)).astype(int)
        x1, y1 = np.ceil(xy.max(axis=0)).astype(int)
        x0, y0 = max(int(x0), 0), max(int(y0), 0)
        x1, y1 = min(int(x1), width - 1), min(int(y1), height - 1)
        if x0 >= x1 or y0 >= y1:
            return None
        return (x0, y0, x1, y1)


def _star(inner: float) -> np.ndarray:
    t = np.arange(10) * (np.pi / 5) - np.pi / 2
    r = np.where(np.arange(10) % 2 == 0, 1.0, inner)
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def _cross(arm: float) -> np.ndarray:
    # arm = half-width of an arm as a share of the half-length; scaled so the circumradius is 1
    a, tip = arm, 1.0
    pts = [
        (a, tip),
        (a, a),
        (tip, a),
        (tip, -a),
        (a, -a),
        (a, -tip),
        (-a, -tip),
        (-a, -a),
        (-tip, -a),
        (-tip, a),
        (-a, a),
        (-a, tip),
    ]
    return np.array(pts) / math.hypot(a, tip)


def _regular(n: int) -> np.ndarray:
    t = np.arange(n) * (2 * np.pi / n) - np.pi / 2
    return np.stack([np.cos(t), np.sin(t)], axis=1)


_UNIT_POLYGONS = {
    "square": lambda detail: _regular(4),
    "triangle": lambda detail: _regular(3),
    "star": _star,
    "cross": _cross,
}
_DETAIL_RANGE = {"star": (0.38, 0.52), "cross": (0.24, 0.36), "ring": (0.45, 0.65)}


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
    frame_bgr = _background(rng, width, height)
    _clutter(rng, frame_bgr, count=int(rng.integers(6, 16)))
    radius = rng.uniform(*_RADIUS_SHARE) * min(width, height)
    center = (rng.uniform(radius + 1, width - radius - 1), rng.uniform(radius + 1, height - radius - 1))
    shape = _random_shape(rng, int(rng.integers(len(CLASS_NAMES))), center, radius, frame_bgr)
    _draw_shape(frame_bgr, shape)
    _clutter(rng, frame_bgr, count=int(rng.integers(0, 4)))  # a few in front: mild occlusion
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
        _draw_shape(frame_bgr, episode.shape_at(t))
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
        self.background = _background(rng, width, height, grain=False)
        _clutter(rng, self.background, count=int(rng.integers(8, 20)) * max(1, width * height // (224 * 224) // 2))
        amplitude = int(rng.integers(4, 14))
        m = self._GRAIN_MARGIN
        self.grain = rng.integers(0, 2 * amplitude + 1, size=(height + m, width + m, 1), dtype=np.uint8)
        self.grain = np.repeat(self.grain, 3, axis=2)
        self.grain_offset = (amplitude, amplitude, amplitude, 0)
        self._grain_seed = int(rng.integers(1 << 30))

        # the upper part of the still scenes' size range: readable on screen, and what the model knows
        radius = rng.uniform(0.14, _RADIUS_SHARE[1]) * min(width, height)
        self._radius = (radius, radius * rng.uniform(0.85, 1.15))
        shape = _random_shape(rng, class_id, (width / 2, height / 2), radius, self.background)
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

    def shape_at(self, t: float) -> _Shape:
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
        return _Shape(look.class_id, center, radius, look.angle + self._spin * t, look.fill_bgr, look.outline_bgr, look.detail)


class _Drifter:
    """A small distractor that crosses the frame in a straight line, wrapping at the edges."""

    def __init__(self, rng: np.random.Generator, width: int, height: int):
        self.size = (width, height)
        self.start = (rng.uniform(0, width), rng.uniform(0, height))
        speed = rng.uniform(0.5, 3.0) * min(width, height) / 224
        heading = rng.uniform(0, 2 * np.pi)
        self.velocity = (speed * math.cos(heading), speed * math.sin(heading))
        scale = min(width, height) / 224
        self.points = _blob_polygon(rng, rng.uniform(3, 10) * scale)
        self.colour = _vivid_colour(rng)

    def draw(self, frame_bgr: np.ndarray, index: int) -> None:
        width, height = self.size
        x = (self.start[0] + self.velocity[0] * index) % (width + 40) - 20
        y = (self.start[1] + self.velocity[1] * index) % (height + 40) - 20
        pts = np.round((self.points + (x, y)) * _ONE).astype(np.int32)
        cv2.fillPoly(frame_bgr, [pts], self.colour, cv2.LINE_AA, _SHIFT)


# ---------------------------------------------------------------- drawing


def _random_shape(
    rng: np.random.Generator, class_id: int, center: tuple[float, float], radius: float, background: np.ndarray
) -> _Shape:
    name = CLASS_NAMES[class_id]
    detail = rng.uniform(*_DETAIL_RANGE.get(name, (0.0, 1.0)))
    angle = rng.uniform(0, 2 * np.pi)
    # A fill that stands out from the background where the object sits: redraw the colour a few
    # times if it is too close to the local mean, so no scene is unreadable by construction.
    height, width = background.shape[:2]
    x, y = int(np.clip(center[0], 0, width - 1)), int(np.clip(center[1], 0, height - 1))
    r = max(2, int(radius))
    local_mean = background[max(0, y - r) : y + r, max(0, x - r) : x + r].reshape(-1, 3).mean(axis=0)
    fill = _vivid_colour(rng)
    for _ in range(8):
        if np.abs(np.array(fill) - local_mean).sum() > 150:
            break
        fill = _vivid_colour(rng)
    outline = None
    if rng.random() < 0.5:
        dark = rng.random() < 0.7
        outline = tuple(float(v) for v in (rng.uniform(0, 50, 3) if dark else rng.uniform(200, 255, 3)))
    return _Shape(class_id, center, radius, angle, fill, outline, detail)


def _draw_shape(frame_bgr: np.ndarray, shape: _Shape) -> None:
    name = CLASS_NAMES[shape.class_id]
    thickness = max(1, round(shape.radius / 12))
    if name in ("circle", "ring"):
        center = (round(shape.center_xy[0] * _ONE), round(shape.center_xy[1] * _ONE))
        if name == "circle":
            cv2.circle(frame_bgr, center, round(shape.radius * _ONE), shape.fill_bgr, -1, cv2.LINE_AA, _SHIFT)
            if shape.outline_bgr is not None:
                cv2.circle(
                    frame_bgr,
                    center,
                    round((shape.radius - thickness / 2) * _ONE),
                    shape.outline_bgr,
                    thickness,
                    cv2.LINE_AA,
                    _SHIFT,
                )
            return
        band = max(2, round(shape.radius * (1 - shape.detail)))
        mid = shape.radius - band / 2
        cv2.circle(frame_bgr, center, round(mid * _ONE), shape.fill_bgr, band, cv2.LINE_AA, _SHIFT)
        if shape.outline_bgr is not None:
            for edge in (shape.radius - thickness / 2, shape.radius - band + thickness / 2):
                cv2.circle(frame_bgr, center, round(edge * _ONE), shape.outline_bgr, thickness, cv2.LINE_AA, _SHIFT)
        return
    pts = np.round(shape.outline() * _ONE).astype(np.int32)
    cv2.fillPoly(frame_bgr, [pts], shape.fill_bgr, cv2.LINE_AA, _SHIFT)
    if shape.outline_bgr is not None:
        cv2.polylines(frame_bgr, [pts], True, shape.outline_bgr, thickness, cv2.LINE_AA, _SHIFT)


def _background(rng: np.random.Generator, width: int, height: int, grain: bool = True) -> np.ndarray:
    """A muted, textured background: a gradient plus smooth colour blobs or stripes, and grain."""
    # Two scalar fields (ramp, stripes) are mixed into colour by one affine matrix. The third
    # channel stays zero: cv2.transform is several times faster on 3 channels than on 2.
    fields = np.zeros((height, width, 3), dtype=np.float32)
    c0, c1 = _muted_colour(rng), _muted_colour(rng)
    angle = rng.uniform(0, 2 * np.pi)
    reach = np.float32(1.0 / max(width, height))
    xs = (np.arange(width, dtype=np.float32) - width / 2) * (reach * math.cos(angle))
    ys = (np.arange(height, dtype=np.float32) - height / 2) * (reach * math.sin(angle))
    fields[:, :, 0] = xs[None, :] + ys[:, None] + 0.5
    mix = np.zeros((3, 4), dtype=np.float32)
    mix[:, 0] = c1 - c0
    mix[:, 3] = c0
    kind = rng.random()
    blobs = None
    if kind < 0.45:  # smooth colour blobs
        cells = rng.uniform(-45, 45, size=(int(rng.integers(3, 8)), int(rng.integers(3, 8)), 3)).astype(np.float32)
        # cubic up to a small size, then linear: smooth, and far cheaper than cubic to full size
        small = cv2.resize(cells, (max(8, width // 8), max(8, height // 8)), interpolation=cv2.INTER_CUBIC)
        blobs = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    elif kind < 0.8:  # stripes: sin(a + b) = sin a cos b + cos a sin b, from 1-D tables
        theta = rng.uniform(0, np.pi)
        period = rng.uniform(6, 30) * min(width, height) / 224
        k = 2 * np.pi / period
        a = np.arange(width, dtype=np.float32) * np.float32(k * math.cos(theta)) + np.float32(rng.uniform(0, 2 * np.pi))
        b = np.arange(height, dtype=np.float32) * np.float32(k * math.sin(theta))
        fields[:, :, 1] = np.sin(a)[None, :] * np.cos(b)[:, None] + np.cos(a)[None, :] * np.sin(b)[:, None]
        mix[:, 1] = rng.uniform(-40, 40, size=3)
    canvas = cv2.transform(fields, mix)
    if blobs is not None:
        canvas += blobs
    frame_bgr = np.clip(canvas, 0, 255, out=canvas).astype(np.uint8)
    if grain:  # saturating uint8 adds: sensor grain of +-amplitude, the same in all channels
        amplitude = int(rng.integers(3, 15))
        noise = rng.integers(0, 2 * amplitude + 1, size=(height, width), dtype=np.uint8)
        noise = cv2.merge([noise, noise, noise])
        cv2.add(frame_bgr, noise, dst=frame_bgr)
        cv2.subtract(frame_bgr, (amplitude, amplitude, amplitude, 0), dst=frame_bgr)
    return frame_bgr


def _clutter(rng: np.random.Generator, frame_bgr: np.ndarray, count: int) -> None:
    """Small things that are no class: thin lines, short scribbles and irregular blobs."""
    height, width = frame_bgr.shape[:2]
    scale = min(width, height) / 224
    for kind in rng.integers(0, 3, size=count):
        colour = _vivid_colour(rng) if rng.random() < 0.6 else _muted_colour(rng).tolist()
        if kind == 0:  # a thin line, often across much of the frame
            p = np.round(rng.uniform(0, 1, size=(2, 2)) * (width, height) * _ONE).astype(np.int32)
            cv2.line(frame_bgr, tuple(p[0].tolist()), tuple(p[1].tolist()), colour, int(rng.integers(1, 3)), cv2.LINE_AA, _SHIFT)
        elif kind == 1:  # a scribble
            start = rng.uniform(0, 1, size=2) * (width, height)
            steps = rng.normal(0, 6 * scale, size=(int(rng.integers(3, 7)), 2))
            pts = np.round((start + np.cumsum(steps, axis=0)) * _ONE).astype(np.int32)
            cv2.polylines(frame_bgr, [pts], False, colour, int(rng.integers(1, 3)), cv2.LINE_AA, _SHIFT)
        else:  # an irregular blob, sometimes cut by the frame edge
            center = rng.uniform(-0.05, 1.05, size=2) * (width, height)
            pts = np.round((_blob_polygon(rng, rng.uniform(3, 11) * scale) + center) * _ONE).astype(np.int32)
            cv2.fillPoly(frame_bgr, [pts], colour, cv2.LINE_AA, _SHIFT)


def _blob_polygon(rng: np.random.Generator, radius: float) -> np.ndarray:
    n = int(rng.integers(5, 9))
    t = np.sort(rng.uniform(0, 2 * np.pi, n))
    r = radius * rng.uniform(0.35, 1.0, n)
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def _vivid_colour(rng: np.random.Generator) -> tuple[float, float, float]:
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(120, 255), rng.uniform(110, 255)]]], dtype=np.float32)
    hsv = hsv.astype(np.uint8)
    return tuple(float(v) for v in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def _muted_colour(rng: np.random.Generator) -> np.ndarray:
    grey = rng.uniform(40, 215)
    return np.clip(grey + rng.uniform(-35, 35, size=3), 0, 255).astype(np.float32)


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
