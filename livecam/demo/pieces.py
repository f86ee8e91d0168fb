"""What the demo's scenes are drawn from: the six shapes, the backgrounds and the clutter.

Everything is drawn with OpenCV and numpy from a ``numpy.random.Generator``, so what is drawn
depends only on the generator's state. The backgrounds are built to make the classifier earn its
answer: gradients, smooth colour blobs, stripes, sensor grain, random lines and small irregular
distractors in the same vivid colours as the objects. Only the shape says which class a scene is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

CLASS_NAMES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "ring")

SHIFT = 4  # fixed-point bits for sub-pixel drawing
ONE = 1 << SHIFT


@dataclass(frozen=True)
class Shape:
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


def random_shape(
    rng: np.random.Generator, class_id: int, center: tuple[float, float], radius: float, background: np.ndarray
) -> Shape:
    """An object of class ``class_id`` at ``center``, in a colour that stands out from ``background`` there."""
    name = CLASS_NAMES[class_id]
    detail = rng.uniform(*_DETAIL_RANGE.get(name, (0.0, 1.0)))
    angle = rng.uniform(0, 2 * np.pi)
    # A fill that stands out from the background where the object sits: redraw the colour a few
    # times if it is too close to the local mean, so no scene is unreadable by construction.
    height, width = background.shape[:2]
    x, y = int(np.clip(center[0], 0, width - 1)), int(np.clip(center[1], 0, height - 1))
    r = max(2, int(radius))
    local_mean = background[max(0, y - r) : y + r, max(0, x - r) : x + r].reshape(-1, 3).mean(axis=0)
    fill = vivid_colour(rng)
    for _ in range(8):
        if np.abs(np.array(fill) - local_mean).sum() > 150:
            break
        fill = vivid_colour(rng)
    outline = None
    if rng.random() < 0.5:
        dark = rng.random() < 0.7
        outline = tuple(float(v) for v in (rng.uniform(0, 50, 3) if dark else rng.uniform(200, 255, 3)))
    return Shape(class_id, center, radius, angle, fill, outline, detail)


def draw_shape(frame_bgr: np.ndarray, shape: Shape) -> None:
    """Draw ``shape`` into ``frame_bgr`` (anti-aliased, sub-pixel)."""
    name = CLASS_NAMES[shape.class_id]
    thickness = max(1, round(shape.radius / 12))
    if name in ("circle", "ring"):
        center = (round(shape.center_xy[0] * ONE), round(shape.center_xy[1] * ONE))
        if name == "circle":
            cv2.circle(frame_bgr, center, round(shape.radius * ONE), shape.fill_bgr, -1, cv2.LINE_AA, SHIFT)
            if shape.outline_bgr is not None:
                cv2.circle(
                    frame_bgr,
                    center,
                    round((shape.radius - thickness / 2) * ONE),
                    shape.outline_bgr,
                    thickness,
                    cv2.LINE_AA,
                    SHIFT,
                )
            return
        band = max(2, round(shape.radius * (1 - shape.detail)))
        mid = shape.radius - band / 2
        cv2.circle(frame_bgr, center, round(mid * ONE), shape.fill_bgr, band, cv2.LINE_AA, SHIFT)
        if shape.outline_bgr is not None:
            for edge in (shape.radius - thickness / 2, shape.radius - band + thickness / 2):
                cv2.circle(frame_bgr, center, round(edge * ONE), shape.outline_bgr, thickness, cv2.LINE_AA, SHIFT)
        return
    pts = np.round(shape.outline() * ONE).astype(np.int32)
    cv2.fillPoly(frame_bgr, [pts], shape.fill_bgr, cv2.LINE_AA, SHIFT)
    if shape.outline_bgr is not None:
        cv2.polylines(frame_bgr, [pts], True, shape.outline_bgr, thickness, cv2.LINE_AA, SHIFT)


def new_background(rng: np.random.Generator, width: int, height: int, grain: bool = True) -> np.ndarray:
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


def add_clutter(rng: np.random.Generator, frame_bgr: np.ndarray, count: int) -> None:
    """Small things that are no class: thin lines, short scribbles and irregular blobs."""
    height, width = frame_bgr.shape[:2]
    scale = min(width, height) / 224
    for kind in rng.integers(0, 3, size=count):
        colour = vivid_colour(rng) if rng.random() < 0.6 else _muted_colour(rng).tolist()
        if kind == 0:  # a thin line, often across much of the frame
            p = np.round(rng.uniform(0, 1, size=(2, 2)) * (width, height) * ONE).astype(np.int32)
            cv2.line(frame_bgr, tuple(p[0].tolist()), tuple(p[1].tolist()), colour, int(rng.integers(1, 3)), cv2.LINE_AA, SHIFT)
        elif kind == 1:  # a scribble
            start = rng.uniform(0, 1, size=2) * (width, height)
            steps = rng.normal(0, 6 * scale, size=(int(rng.integers(3, 7)), 2))
            pts = np.round((start + np.cumsum(steps, axis=0)) * ONE).astype(np.int32)
            cv2.polylines(frame_bgr, [pts], False, colour, int(rng.integers(1, 3)), cv2.LINE_AA, SHIFT)
        else:  # an irregular blob, sometimes cut by the frame edge
            center = rng.uniform(-0.05, 1.05, size=2) * (width, height)
            pts = np.round((blob_polygon(rng, rng.uniform(3, 11) * scale) + center) * ONE).astype(np.int32)
            cv2.fillPoly(frame_bgr, [pts], colour, cv2.LINE_AA, SHIFT)


def blob_polygon(rng: np.random.Generator, radius: float) -> np.ndarray:
    """An irregular polygon (n, 2) around the origin, its corners up to ``radius`` from it."""
    n = int(rng.integers(5, 9))
    t = np.sort(rng.uniform(0, 2 * np.pi, n))
    r = radius * rng.uniform(0.35, 1.0, n)
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def vivid_colour(rng: np.random.Generator) -> tuple[float, float, float]:
    """A saturated BGR colour, as the objects and the distractors have."""
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(120, 255), rng.uniform(110, 255)]]], dtype=np.float32)
    hsv = hsv.astype(np.uint8)
    return tuple(float(v) for v in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def _muted_colour(rng: np.random.Generator) -> np.ndarray:
    grey = rng.uniform(40, 215)
    return np.clip(grey + rng.uniform(-35, 35, size=3), 0, 255).astype(np.float32)
