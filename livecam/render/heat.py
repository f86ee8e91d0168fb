"""Pure image functions of the overlay: map -> upsampled map -> heat image -> blend over the frame.

Each function takes arrays and returns new ones; nothing here keeps state (the smoothing and the
per-map caches are the renderer's). They run on every displayed frame on a small CPU, so they
are whole-image OpenCV calls only.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import cv2
import numpy as np

from livecam.errors import UserError, check_bgr_image, close_matches

BLENDS = ("heat", "uniform")
DEFAULT_BLEND = "heat"
# Heat-map opacity by blend: uniform, everywhere; heat, where the map is 1 (it falls with the map).
DEFAULT_ALPHA = {"uniform": 0.4, "heat": 0.6}

COLORMAPS: dict[str, int] = {
    name.removeprefix("COLORMAP_").lower(): getattr(cv2, name) for name in sorted(dir(cv2)) if name.startswith("COLORMAP_")
}
COLORMAP_NAMES = {cmap_id: name for name, cmap_id in COLORMAPS.items()}
HEAT_LEVELS = 255  # the heat blend keeps its per-pixel opacity, alpha * map, in steps of 1/255 (uint8 layers)
CUBIC_STEP = 16  # the map is upsampled bicubically to at most this many pixels per cell, then bilinearly (cubic_step)


def upsample_cam(cam: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """Resizes a map from the conv layer's grid to the frame with smooth (bicubic) interpolation.

    Args:
        cam: (h, w) map, meant to be in [0, 1]; NaN counts as 0, +inf as 1, and the values are
            clipped to [0, 1].
        size_wh: (width, height) of the frame, in OpenCV's order.

    Returns:
        A new (height, width) float32 map in [0, 1], free of NaN.
    """
    width, height = _check_size_wh(size_wh)
    big = to_size(cubic_step(finite01(cam), (width, height)), (width, height))
    return np.clip(big, 0.0, 1.0, out=big)  # bicubic overshoots a little next to sharp peaks


def cubic_step(cam01: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """A map bicubic-upsampled towards ``size_wh`` by at most ``CUBIC_STEP`` samples per cell (not clipped).

    OpenCV's float bicubic is slow at frame size (7 ms for 1080p), so maps go bicubic to at most
    CUBIC_STEP samples per map cell, then bilinear (``to_size``): both steps use half-pixel
    centres, so the geometry is the same, and on a random 7x7 map the result stays within 0.007
    (2/255) of a one-step bicubic; real maps are smoother. 1080p then takes about 1 ms.
    """
    width, height = size_wh
    h, w = cam01.shape
    mid_wh = (min(width, CUBIC_STEP * w), min(height, CUBIC_STEP * h))
    return cam01 if mid_wh == (w, h) else cv2.resize(cam01, mid_wh, interpolation=cv2.INTER_CUBIC)


def to_size(image: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """``image`` resized bilinearly to ``size_wh`` (itself, when it has that size already)."""
    if image.shape[1::-1] == tuple(size_wh):
        return image
    return cv2.resize(image, size_wh, interpolation=cv2.INTER_LINEAR)


def colormap_id(name: str) -> int:
    """The ``cv2.COLORMAP_*`` value for a colormap name such as "jet", "turbo" or "viridis" (any case)."""
    key = str(name).strip().lower().removeprefix("colormap_")
    if key not in COLORMAPS:
        close = close_matches(key, COLORMAPS)
        did_you_mean = f"Did you mean {close}? " if close else ""
        raise UserError(f"Unknown colormap {name!r}. {did_you_mean}Expected one of: {', '.join(COLORMAPS)}.")
    return COLORMAPS[key]


def colorize(cam01: np.ndarray, colormap: int | str = "jet") -> np.ndarray:
    """Paints a map in [0, 1] with an OpenCV colormap.

    Args:
        cam01: (H, W) float map in [0, 1] (values outside are clipped), or a uint8 map in 0..255.
        colormap: a name (see ``colormap_id``) or a ``cv2.COLORMAP_*`` value.

    Returns:
        A new uint8 BGR image (H, W, 3).
    """
    cmap = resolve_colormap(colormap)
    arr = np.asarray(cam01)
    if arr.ndim != 2 or arr.size == 0:
        raise UserError(f"Expected cam01 to be a non-empty 2-D (height, width) map. Received: cam01.shape={arr.shape}")
    if arr.dtype != np.uint8:
        arr = np.clip(arr.astype(np.float32, copy=False), 0.0, 1.0)
        arr = cv2.convertScaleAbs(arr, alpha=255.0)  # rounds and saturates; NaN becomes 0
    return cv2.applyColorMap(arr, cmap)


def blend(frame_bgr: np.ndarray, heat_bgr: np.ndarray, alpha: float) -> np.ndarray:
    """Mixes the heat image over the frame: ``alpha * heat + (1 - alpha) * frame``.

    Args:
        frame_bgr: uint8 (H, W, 3) picture.
        heat_bgr: uint8 image of the same shape, e.g. from ``colorize``.
        alpha: opacity of the heat image in [0, 1]; 0 gives the frame, 1 the heat image.

    Returns:
        A new uint8 (H, W, 3) image; the inputs are not modified.
    """
    alpha = check_unit("alpha", alpha, upper_open=False)
    frame = check_bgr_image(frame_bgr, "frame_bgr")
    heat = check_bgr_image(heat_bgr, "heat_bgr")
    if heat.shape != frame.shape:
        raise UserError(f"Expected heat_bgr to have the frame's shape {frame.shape}. Received: heat_bgr.shape={heat.shape}")
    if alpha == 0.0:
        return frame.copy()
    if alpha == 1.0:
        return heat.copy()
    return cv2.addWeighted(heat, alpha, frame, 1.0 - alpha, 0.0)


def blend_heat(frame_bgr: np.ndarray, heat_bgr: np.ndarray, cam01: np.ndarray, alpha: float) -> np.ndarray:
    """Mixes the heat image over the frame with an opacity that follows the map.

    ``out = w * heat + (1 - w) * frame`` with ``w = alpha * cam01`` per pixel: where the map is
    cold the picture shows as it is, where it is hot the colour shows at opacity ``alpha``.

    Args:
        frame_bgr: uint8 (H, W, 3) picture.
        heat_bgr: uint8 image of the same shape, e.g. ``colorize(cam01)``.
        cam01: (H, W) float map in [0, 1] at the frame's size, e.g. from ``upsample_cam``.
        alpha: opacity where the map is 1, in [0, 1].

    Returns:
        A new uint8 (H, W, 3) image, within 1.5 of the exact mix (the opacity is kept in steps
        of 1/255); the inputs are not modified.
    """
    alpha = check_unit("alpha", alpha, upper_open=False)
    frame = check_bgr_image(frame_bgr, "frame_bgr")
    heat = check_bgr_image(heat_bgr, "heat_bgr")
    if heat.shape != frame.shape:
        raise UserError(f"Expected heat_bgr to have the frame's shape {frame.shape}. Received: heat_bgr.shape={heat.shape}")
    cam01 = np.asarray(cam01, np.float32)
    if cam01.shape != frame.shape[:2]:
        raise UserError(f"Expected cam01 to have the frame's size {frame.shape[:2]}. Received: cam01.shape={cam01.shape}")
    return blend_layers(frame, *heat_layers(heat, cam01, alpha))


def heat_layers(heat: np.ndarray, cam01: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """What ``blend_heat`` needs per map, computed once per map: (255 - w, w * heat) as uint8, w in 0..255."""
    weight = cv2.convertScaleAbs(np.nan_to_num(cam01), alpha=HEAT_LEVELS * alpha)  # rounds and saturates
    weight3 = cv2.merge([weight, weight, weight])
    return cv2.bitwise_not(weight3), cv2.multiply(heat, weight3, scale=1 / 255)


def blend_layers(frame: np.ndarray, keep: np.ndarray, premultiplied: np.ndarray) -> np.ndarray:
    """``frame * keep / 255 + premultiplied``: the heat blend from the layers of ``heat_layers``."""
    # Whole-image uint8 arithmetic: about 1 ms per 640x480 frame, a third of a float blend.
    return cv2.add(cv2.multiply(frame, keep, scale=1 / 255), premultiplied)


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    """``value`` as one of ``choices`` (case and surrounding spaces ignored), else a ``UserError``."""
    key = str(value).strip().lower() if isinstance(value, str) else value
    if key not in choices:
        raise UserError(f"Expected {name} to be one of {', '.join(choices)}. Received: {name}={value!r}")
    return key


# ---------------------------------------------------------------- where the map lies (CamResult.box)


def map_region(
    box: Sequence[float] | None, width: int, height: int
) -> tuple[tuple[int, int, int, int], tuple[float, float, float, float]]:
    """The frame's pixels the map lies over, (x0, y0, x1, y1), and the map's whole extent in
    pixels of that region (beyond it where the map reaches past the frame: --fit pad)."""
    if box is None:
        return (0, 0, width, height), (0.0, 0.0, float(width), float(height))
    try:
        bx0, by0, bx1, by1 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise UserError(f"Expected box as (x0, y0, x1, y1) in fractions of the frame. Received: box={box!r}") from None
    if not (bx0 < bx1 and by0 < by1 and all(math.isfinite(v) for v in (bx0, by0, bx1, by1))):
        raise UserError(f"Expected box as (x0, y0, x1, y1) with x0 < x1 and y0 < y1. Received: box={box!r}")
    x0, y0 = max(0, round(bx0 * width)), max(0, round(by0 * height))
    x1, y1 = min(width, round(bx1 * width)), min(height, round(by1 * height))
    if x1 <= x0 or y1 <= y0:
        raise UserError(f"Expected box to overlap the frame. Received: box={box!r}")
    place = (bx0 * width - x0, by0 * height - y0, bx1 * width - x0, by1 * height - y0)
    # A box made of whole pixels (a crop) stays exact, so that its map is resized, not warped.
    return (x0, y0, x1, y1), tuple(float(round(v)) if abs(v - round(v)) < 1e-6 else v for v in place)


def extent_wh(place: tuple[float, ...]) -> tuple[int, int]:
    """The map's whole extent in pixels, (width, height), for the bicubic step's resolution."""
    return max(1, round(place[2] - place[0])), max(1, round(place[3] - place[1]))


def place_map(image: np.ndarray, place: tuple[float, ...], size_wh: tuple[int, int]) -> np.ndarray:
    """``image`` (the whole map's extent, at any resolution) stretched onto ``place`` = (x0, y0,
    x1, y1) in the pixels of a ``size_wh`` picture, and seen through that picture.

    Where the map covers the picture exactly, a plain resize (``to_size``); otherwise one affine
    warp with the same half-pixel centres, so that the part over the picture is exactly the part
    a resize of the whole extent would put there.
    """
    x0, y0, x1, y1 = place
    width, height = size_wh
    if (x0, y0, x1, y1) == (0.0, 0.0, float(width), float(height)):
        return to_size(image, size_wh)
    scale_x, scale_y = image.shape[1] / (x1 - x0), image.shape[0] / (y1 - y0)
    # A picture pixel's centre x + 0.5 lies at (x + 0.5 - x0) * scale in the image, whose pixel u has its centre at u + 0.5.
    to_image = np.float64([[scale_x, 0.0, (0.5 - x0) * scale_x - 0.5], [0.0, scale_y, (0.5 - y0) * scale_y - 0.5]])
    return cv2.warpAffine(
        image, to_image, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
    )


@functools.lru_cache(maxsize=16)
def colour_bar(cmap_id: int, width: int, height: int) -> np.ndarray:
    """The colormap's low..high ramp as a read-only (height, width, 3) image: the HUD's legend."""
    ramp = np.linspace(0, 255, width).round().astype(np.uint8)
    bar = cv2.applyColorMap(np.repeat(ramp[None, :], height, axis=0), cmap_id)
    bar.flags.writeable = False  # shared by every frame
    return bar


# ---------------------------------------------------------------- validation


def check_unit(name: str, value: float, *, upper_open: bool) -> float:
    """``value`` as a float in [0, 1] (or [0, 1) with ``upper_open``), else a ``UserError``."""
    interval = "[0, 1)" if upper_open else "[0, 1]"
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"Expected {name} in {interval}. Received: {name}={value!r}") from None
    if not (0.0 <= number < 1.0 if upper_open else 0.0 <= number <= 1.0):
        raise UserError(f"Expected {name} in {interval}. Received: {name}={value!r}")
    return number


def _check_size_wh(size_wh: tuple[int, int]) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in size_wh)
    except (TypeError, ValueError):
        raise UserError(f"Expected size_wh to be (width, height). Received: size_wh={size_wh!r}") from None
    if width < 1 or height < 1:
        raise UserError(f"Expected size_wh to be positive (width, height). Received: size_wh={size_wh!r}")
    return width, height


def finite01(cam: np.ndarray) -> np.ndarray:
    """A new float32 copy of a 2-D map with NaN -> 0, +inf -> 1, clipped to [0, 1]."""
    arr = np.asarray(cam, dtype=np.float32)
    if arr.ndim != 2 or arr.size == 0:
        raise UserError(f"Expected cam to be a non-empty 2-D (height, width) map. Received: cam.shape={arr.shape}")
    if not np.isfinite(arr).all():
        arr = np.nan_to_num(arr, nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(arr, 0.0, 1.0)


def resolve_colormap(colormap: int | str) -> int:
    """The ``cv2.COLORMAP_*`` value of a colormap name or value, else a ``UserError``."""
    if isinstance(colormap, str):
        return colormap_id(colormap)
    if isinstance(colormap, (int, np.integer)) and not isinstance(colormap, bool) and int(colormap) in COLORMAP_NAMES:
        return int(colormap)
    raise UserError(
        f"Expected colormap to be a name ({', '.join(COLORMAPS)}) or a cv2.COLORMAP_* value. Received: colormap={colormap!r}"
    )
