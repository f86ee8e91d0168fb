"""Pure overlay functions and the HUD: map -> heat image -> blend -> text.

This runs on every displayed frame on a small CPU, so it is whole-image OpenCV calls only; the
font metrics and the colour-bar legend are computed once per size, and the heat image is
computed once per new map, not once per displayed frame.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Hashable, Sequence

import cv2
import numpy as np

from livecam.errors import UserError, check_bgr_image, close_matches
from livecam.viewer.keys import KEY_HELP

HUD_LEVELS = ("full", "label", "none")
BLENDS = ("heat", "uniform")
DEFAULT_BLEND = "heat"
# Heat-map opacity by blend: uniform, everywhere; heat, where the map is 1 (it falls with the map).
DEFAULT_ALPHA = {"uniform": 0.4, "heat": 0.6}
# Weight of the running average per new map. At 30 maps/s, 0.5 is a time constant of
# -1/ln(0.5) = 1.4 frames (48 ms) and 90 % of a step within 3.3 frames (110 ms): frame-to-frame
# flicker is damped (white-noise amplitude x0.58) while a moving object's map does not trail
# visibly. Smoothing is per map, so at a slower engine the lag in seconds grows with its period.
DEFAULT_SMOOTH = 0.5

COLORMAPS: dict[str, int] = {
    name.removeprefix("COLORMAP_").lower(): getattr(cv2, name) for name in sorted(dir(cv2)) if name.startswith("COLORMAP_")
}
_COLORMAP_NAMES = {cmap_id: name for name, cmap_id in COLORMAPS.items()}

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_WHITE = (235, 235, 235)
_GREY = (185, 185, 185)
_YELLOW = (0, 215, 255)
_ORANGE = (0, 150, 255)
_GREEN = (150, 245, 150)
_RED = (0, 0, 235)
_BAR_BACK = (90, 90, 90)
_PANEL_KEEP = 0.35  # a panel keeps this much of the picture beneath it: dark enough for light text
_DIAG_KEEP = 0.5  # the diagnostics are small grey text, meant to be looked through
_HELP_KEEP = 0.2
_MAX_NAME_CHARS = 40
_CUBIC_STEP = 16


# ---------------------------------------------------------------- pure functions


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
    big = _to_size(_cubic_step(_finite01(cam), (width, height)), (width, height))
    return np.clip(big, 0.0, 1.0, out=big)  # bicubic overshoots a little next to sharp peaks


def _cubic_step(cam01: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """A map bicubic-upsampled towards ``size_wh`` by at most ``_CUBIC_STEP`` samples per cell (not clipped).

    OpenCV's float bicubic is slow at frame size (7 ms for 1080p), so maps go bicubic to at most
    _CUBIC_STEP samples per map cell, then bilinear (``_to_size``): both steps use half-pixel
    centres, so the geometry is the same, and on a random 7x7 map the result stays within 0.007
    (2/255) of a one-step bicubic; real maps are smoother. 1080p then takes about 1 ms.
    """
    width, height = size_wh
    h, w = cam01.shape
    mid_wh = (min(width, _CUBIC_STEP * w), min(height, _CUBIC_STEP * h))
    return cam01 if mid_wh == (w, h) else cv2.resize(cam01, mid_wh, interpolation=cv2.INTER_CUBIC)


def _to_size(image: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
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
    cmap = _resolve_colormap(colormap)
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
    alpha = _check_unit("alpha", alpha, upper_open=False)
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
    alpha = _check_unit("alpha", alpha, upper_open=False)
    frame = check_bgr_image(frame_bgr, "frame_bgr")
    heat = check_bgr_image(heat_bgr, "heat_bgr")
    if heat.shape != frame.shape:
        raise UserError(f"Expected heat_bgr to have the frame's shape {frame.shape}. Received: heat_bgr.shape={heat.shape}")
    cam01 = np.asarray(cam01, np.float32)
    if cam01.shape != frame.shape[:2]:
        raise UserError(f"Expected cam01 to have the frame's size {frame.shape[:2]}. Received: cam01.shape={cam01.shape}")
    return _blend_layers(frame, *_heat_layers(heat, cam01, alpha))


def _heat_layers(heat: np.ndarray, cam01: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """What ``blend_heat`` needs per map, computed once per map: (255 - w, w * heat) as uint8, w in 0..255."""
    weight = cv2.convertScaleAbs(np.nan_to_num(cam01), alpha=255.0 * alpha)  # rounds and saturates
    weight3 = cv2.merge([weight, weight, weight])
    return cv2.bitwise_not(weight3), cv2.multiply(heat, weight3, scale=1 / 255)


def _blend_layers(frame: np.ndarray, keep: np.ndarray, premultiplied: np.ndarray) -> np.ndarray:
    # Whole-image uint8 arithmetic: about 1 ms per 640x480 frame, a third of a float blend.
    return cv2.add(cv2.multiply(frame, keep, scale=1 / 255), premultiplied)


def check_hud(level: str | bool) -> str:
    """A HUD level from ``HUD_LEVELS``; True and False (the old on/off switch) mean "full" and "none"."""
    if level is True or level is False:
        return "full" if level else "none"
    return check_choice("hud", level, HUD_LEVELS)


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    key = str(value).strip().lower() if isinstance(value, str) else value
    if key not in choices:
        raise UserError(f"Expected {name} to be one of {', '.join(choices)}. Received: {name}={value!r}")
    return key


# ---------------------------------------------------------------- temporal smoothing


class CamSmoother:
    """Exponential moving average of successive maps, to remove frame-to-frame flicker.

    ``out = smooth * previous_out + (1 - smooth) * cam``. The average restarts when the map's
    shape changes, and should be restarted with ``reset`` when the explained class or the
    method changes (the old map says nothing about the new question).

    Args:
        smooth: weight of the past in [0, 1); 0 turns smoothing off. See ``DEFAULT_SMOOTH``.
    """

    def __init__(self, smooth: float = DEFAULT_SMOOTH) -> None:
        self._smooth = _check_unit("smooth", smooth, upper_open=True)
        self._state: np.ndarray | None = None

    @property
    def smooth(self) -> float:
        return self._smooth

    def update(self, cam: np.ndarray) -> np.ndarray:
        """Folds one new map into the average.

        Args:
            cam: (h, w) map in [0, 1]; non-finite values count as 0 (NaN, -inf) or 1 (+inf) so
                that one bad map cannot poison the average.

        Returns:
            A new float32 array: the smoothed map.
        """
        cam01 = _finite01(cam)
        if self._smooth == 0.0 or self._state is None or self._state.shape != cam01.shape:
            self._state = cam01
        else:
            self._state = cv2.addWeighted(self._state, self._smooth, cam01, 1.0 - self._smooth, 0.0)
        return self._state.copy()

    def reset(self) -> None:
        """Forgets the past maps; the next map is taken as it is."""
        self._state = None


# ---------------------------------------------------------------- the renderer


@dataclass(frozen=True)
class HudInfo:
    """What the HUD shows about the current frame.

    Attributes:
        label: name of the explained class.
        prob: its probability in [0, 1].
        locked: True when the user chose the class (keys 1-5) rather than the top-1.
        topk: the top classes as (name, probability), most probable first.
        method: CAM method name.
        layer: target layer name.
        engine_fps: maps per second the engine delivers; None when unknown.
        display_fps: frames per second shown; None when unknown.
        latency_ms: capture-to-display delay of the map; None when unknown.
        dropped: frames dropped so far.
        status: "" when all is well, else e.g. "paused", "reconnecting", "no map (non-finite output)".
        recording: True while a video is being recorded (a red REC badge, in the window only).
        message: transient message such as "snapshot saved: ..." (in the window only).
    """

    label: str
    prob: float
    locked: bool
    topk: tuple[tuple[str, float], ...]
    method: str
    layer: str
    engine_fps: float | None = None
    display_fps: float | None = None
    latency_ms: float | None = None
    dropped: int = 0
    status: str = ""
    recording: bool = False
    message: str = ""


@dataclass(frozen=True)
class Views:
    """The two pictures of one frame: for the window, and for files (recordings, snapshots).

    Either is None when it was not asked for; both are the same array when they would be equal.
    """

    window: np.ndarray | None
    file: np.ndarray | None


class Renderer:
    """Turns a frame and a map into the pictures the viewer shows and records.

    smoothing (at the map's resolution) -> upsample -> colorize -> blend, once per frame; then
    the HUD, drawn once for the window and once for files when both are asked for (``views``):
    the window gets ``hud`` plus what only a viewer needs (REC badge, messages, key hint, help);
    recordings and snapshots get ``file_hud``.

    One renderer per viewer: it owns that viewer's smoothing. The caller says, with explicit
    values, which question a map answers (``explains``, e.g. the method and the locked class:
    a new question restarts the smoothing) and which map it is (``map_id``: a map drawn again,
    on a redraw or for several frames, is folded into the smoothing once and its coloured
    heat image is reused).

    Args:
        colormap: a name or ``cv2.COLORMAP_*`` value; may be changed later.
        alpha: heat-map opacity in [0, 1] (with ``blend="heat"``, the opacity where the map is 1);
            None takes the blend's default (``DEFAULT_ALPHA``); may be changed later (keys [ and ]).
        smooth: temporal smoothing in [0, 1), see ``CamSmoother``; 0 turns it off.
        blend: "heat" (the overlay's opacity follows the map, so cold regions show the picture
            as it is) or "uniform" (the same opacity everywhere).
        hud: the window's HUD: "full" (label, top-k bars, diagnostics, legend), "label" (the
            label and the legend), or "none"; True and False mean "full" and "none".
        file_hud: the HUD of recordings and snapshots; None means "label" when ``hud`` is
            "full", else the same as ``hud``.
        side_by_side: output the raw frame and the overlay side by side (width 2W); the text
            panel then covers the raw half and the overlay keeps only the legend.
        show_help: draw the key list (key h) in the window; drawn even with ``hud="none"``,
            since it is asked for.
    """

    def __init__(
        self,
        *,
        colormap: int | str = "jet",
        alpha: float | None = None,
        smooth: float = DEFAULT_SMOOTH,
        blend: str = DEFAULT_BLEND,
        hud: str | bool = "full",
        file_hud: str | None = None,
        side_by_side: bool = False,
        show_help: bool = False,
    ) -> None:
        self._blend = check_choice("blend", blend, BLENDS)
        self.alpha = DEFAULT_ALPHA[self._blend] if alpha is None else alpha
        self.colormap = colormap
        self._smoother = CamSmoother(smooth)
        self.hud = hud
        self.file_hud = file_hud if file_hud is not None else ("label" if self.hud == "full" else self.hud)
        self.side_by_side = bool(side_by_side)
        self.show_help = bool(show_help)
        self._explains: Hashable = None
        self._map_id: Hashable = None
        self._smoothed: np.ndarray | None = None
        self._heat: np.ndarray | None = None
        self._heat_key: tuple | None = None
        self._layers: tuple[np.ndarray, np.ndarray] | None = None
        self._layers_key: tuple | None = None

    @property
    def alpha(self) -> float:
        return self._alpha

    @alpha.setter
    def alpha(self, value: float) -> None:
        self._alpha = _check_unit("alpha", value, upper_open=False)

    @property
    def blend(self) -> str:
        """"heat" or "uniform" (see the class docstring)."""
        return self._blend

    @property
    def hud(self) -> str:
        """The window's HUD level: "full", "label" or "none"."""
        return self._hud

    @hud.setter
    def hud(self, value: str | bool) -> None:
        self._hud = check_hud(value)

    @property
    def file_hud(self) -> str:
        """The HUD level of recordings and snapshots: "full", "label" or "none"."""
        return self._file_hud

    @file_hud.setter
    def file_hud(self, value: str | bool) -> None:
        self._file_hud = check_hud(value)

    @property
    def colormap(self) -> str:
        """The colormap's name, e.g. "jet"; set it with a name or a ``cv2.COLORMAP_*`` value."""
        return _COLORMAP_NAMES[self._cmap_id]

    @colormap.setter
    def colormap(self, value: int | str) -> None:
        self._cmap_id = _resolve_colormap(value)

    @property
    def smooth(self) -> float:
        return self._smoother.smooth

    def reset(self) -> None:
        """Restarts the smoothing (``render`` and ``views`` do it by themselves when ``explains`` changes)."""
        self._smoother.reset()
        self._map_id = None
        self._smoothed = None
        self._heat = None
        self._heat_key = None
        self._layers = None
        self._layers_key = None

    def render(
        self,
        frame_bgr: np.ndarray,
        cam: np.ndarray | None,
        hud: HudInfo | None,
        *,
        view: str = "window",
        explains: Hashable = None,
        map_id: Hashable = None,
        box: Sequence[float] | None = None,
    ) -> np.ndarray:
        """Draws one output picture.

        Args:
            frame_bgr: uint8 (H, W, 3) picture; not modified.
            cam: (h, w) map in [0, 1] at any resolution, or None to show the frame without a map.
            hud: what the HUD says, or None for no HUD on this frame.
            view: "window" (``hud`` level, REC badge, messages, help) or "file" (``file_hud``).
            explains: what the map answers, e.g. ``(method, locked class id or None)``; when it
                differs from the last call's, the smoothing starts afresh.
            map_id: names the map, e.g. a sequence number; the same ``map_id`` as the last call's
                is the same map, not folded in again. None: a new map on every call.
            box: where the map lies on the frame, (x0, y0, x1, y1) in fractions of its width and
                height (``CamResult.box``); the frame outside it gets no heat, and the part of the
                map outside the frame is not drawn. None: the whole frame.

        Returns:
            A new uint8 image, (H, W, 3), or (H, 2W, 3) side by side.
        """
        if view not in ("window", "file"):
            raise UserError(f"Expected view to be 'window' or 'file'. Received: view={view!r}")
        views = self.views(frame_bgr, cam, hud, window=view == "window", file=view == "file", explains=explains, map_id=map_id, box=box)
        return views.window if view == "window" else views.file

    def views(
        self,
        frame_bgr: np.ndarray,
        cam: np.ndarray | None,
        hud: HudInfo | None,
        *,
        window: bool = True,
        file: bool = True,
        explains: Hashable = None,
        map_id: Hashable = None,
        box: Sequence[float] | None = None,
    ) -> Views:
        """Draws the window's picture and the files' picture of one frame from one blend.

        The blend is made once; the HUD is drawn on a copy only when both pictures are asked
        for and differ. Arguments as in ``render``.
        """
        frame = check_bgr_image(frame_bgr, "frame_bgr")
        height, width = frame.shape[:2]
        if explains != self._explains:
            self.reset()
            self._explains = explains
        region, place = _region(box, width, height)
        if cam is None:
            overlay = frame.copy()
        else:
            x0, y0, x1, y1 = region
            part = frame[y0:y1, x0:x1]  # the heat goes here only (crop: the frame outside has none)
            if self._blend == "uniform":
                part = blend(part, self._heat_for(cam, map_id, (x1 - x0, y1 - y0), place), self._alpha)
            else:
                part = self._heat_blend(part, cam, map_id, place)
            if region == (0, 0, width, height):
                overlay = part
            else:
                overlay = frame.copy()
                overlay[y0:y1, x0:x1] = part
        if self.side_by_side:
            base = np.empty((height, 2 * width, 3), np.uint8)
            base[:, :width] = frame
            base[:, width:] = overlay
        else:
            base = overlay
        cmap_id = self._cmap_id if cam is not None else None
        window_plain = (self._hud == "none" or hud is None) and not self.show_help
        file_plain = self._file_hud == "none" or hud is None
        window_img = file_img = None
        if window and file and window_plain and file_plain:
            return Views(base, base)
        if file:
            file_img = base.copy() if window else base
            if not file_plain:
                _draw_hud(file_img, hud, cmap_id, self._file_hud, in_window=False)
        if window:
            window_img = base
            if self._hud != "none" and hud is not None:
                _draw_hud(window_img, hud, cmap_id, self._hud, in_window=True, help_shown=self.show_help)
            if self.show_help:
                _draw_help(window_img)
        return Views(window_img, file_img)

    def _fold(self, cam: np.ndarray, map_id: Hashable) -> None:
        """Folds a new map into the smoothing (a map already folded in under ``map_id`` is not)."""
        if map_id is None or self._smoothed is None or map_id != self._map_id:
            self._smoothed = self._smoother.update(cam)
            self._map_id = map_id
            self._heat_key = None
            self._layers_key = None

    # The coloured layers are made at the bicubic step's resolution (at most _CUBIC_STEP pixels
    # per map cell) and then resized bilinearly to the frame, rather than colouring the map at the
    # frame's size: the colours between two samples are then mixed rather than looked up, a
    # difference of a few levels where the colormap changes fastest (jet, a random 7x7 map:
    # at most 10, on average 0.4 of 255), for half the time (640x480: about 2.7 against 5.0 ms a
    # frame with a new map, the label drawn, on 2 cores).

    def _heat_for(self, cam: np.ndarray, map_id: Hashable, size_wh: tuple[int, int], place: tuple[float, ...]) -> np.ndarray:
        self._fold(cam, map_id)
        key = (size_wh, place, self._cmap_id)
        if self._heat_key != key:
            self._heat = _place(colorize(_cubic_step(self._smoothed, _extent_wh(place)), self._cmap_id), place, size_wh)
            self._heat_key = key
        return self._heat

    def _heat_blend(self, frame: np.ndarray, cam: np.ndarray, map_id: Hashable, place: tuple[float, ...]) -> np.ndarray:
        size_wh = frame.shape[1::-1]
        self._fold(cam, map_id)
        key = (size_wh, place, self._cmap_id, self._alpha)
        if self._layers_key != key:
            cam01 = np.clip(_cubic_step(self._smoothed, _extent_wh(place)), 0.0, 1.0)
            self._layers = tuple(_place(layer, place, size_wh) for layer in _heat_layers(colorize(cam01, self._cmap_id), cam01, self._alpha))
            self._layers_key = key
        return _blend_layers(frame, *self._layers)


def _region(box: Sequence[float] | None, width: int, height: int) -> tuple[tuple[int, int, int, int], tuple[float, float, float, float]]:
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


def _extent_wh(place: tuple[float, ...]) -> tuple[int, int]:
    """The map's whole extent in pixels, (width, height), for the bicubic step's resolution."""
    return max(1, round(place[2] - place[0])), max(1, round(place[3] - place[1]))


def _place(image: np.ndarray, place: tuple[float, ...], size_wh: tuple[int, int]) -> np.ndarray:
    """``image`` (the whole map's extent, at any resolution) stretched onto ``place`` = (x0, y0,
    x1, y1) in the pixels of a ``size_wh`` picture, and seen through that picture.

    Where the map covers the picture exactly, a plain resize (``_to_size``); otherwise one affine
    warp with the same half-pixel centres, so that the part over the picture is exactly the part
    a resize of the whole extent would put there.
    """
    x0, y0, x1, y1 = place
    width, height = size_wh
    if (x0, y0, x1, y1) == (0.0, 0.0, float(width), float(height)):
        return _to_size(image, size_wh)
    scale_x, scale_y = image.shape[1] / (x1 - x0), image.shape[0] / (y1 - y0)
    # A picture pixel's centre x + 0.5 lies at (x + 0.5 - x0) * scale in the image, whose pixel u has its centre at u + 0.5.
    to_image = np.float64([[scale_x, 0.0, (0.5 - x0) * scale_x - 0.5], [0.0, scale_y, (0.5 - y0) * scale_y - 0.5]])
    return cv2.warpAffine(image, to_image, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)


def overlay(
    frame_bgr: np.ndarray,
    result: Any,
    *,
    index: int = 0,
    class_names: Sequence[str] | None = None,
    colormap: int | str = "jet",
    alpha: float | None = None,
    blend: str = DEFAULT_BLEND,
    hud: str | bool = "label",
) -> np.ndarray:
    """Draws one engine result over its frame: the heat map, and the label with the legend.

    For notebooks and scripts: ``livecam.overlay(frame, engine(frame), class_names=engine.class_names)``.

    Args:
        frame_bgr: the uint8 BGR frame (H, W, 3) the result was computed from; not modified.
        result: a ``CamResult`` (one or more rows).
        index: which row of ``result`` to draw.
        class_names: names for the class ids (``engine.class_names``); without them the HUD
            says "class 207".
        colormap: a colormap name or ``cv2.COLORMAP_*`` value.
        alpha: heat-map opacity in [0, 1]; None takes the blend's default.
        blend: "heat" (opacity follows the map) or "uniform".
        hud: "label" (label, probability, legend), "full" (adds the top-k bars, method and
            layer) or "none".

    Returns:
        A new uint8 BGR image of the frame's size.
    """
    rows = len(result.class_ids)
    if not -rows <= index < rows:
        raise UserError(f"Expected index in [0, {rows - 1}] for a result with {rows} rows. Received: index={index}")

    def name(class_id: int) -> str:
        return str(class_names[class_id]) if class_names is not None else f"class {class_id}"

    class_id = int(result.class_ids[index])
    finite = bool(result.finite[index])
    info = HudInfo(
        label=name(class_id),
        prob=float(result.probs[index, class_id]),
        locked=False,
        topk=tuple((name(int(i)), float(p)) for i, p in zip(result.topk_ids[index], result.topk_probs[index])),
        method=result.method,
        layer=result.layer,
        status="" if finite else "no map (non-finite output)",
    )
    renderer = Renderer(colormap=colormap, alpha=alpha, smooth=0.0, blend=blend, hud=hud, file_hud=hud)
    return renderer.render(frame_bgr, result.cam[index] if finite else None, info, view="file", box=getattr(result, "box", None))


# ---------------------------------------------------------------- HUD drawing


@dataclass(frozen=True)
class _Font:
    scale: float
    thickness: int
    ascent: int  # baseline offset from the top of a line
    line_h: int
    pad: int


@functools.lru_cache(maxsize=32)
def _font(scale: float, bold: bool = False) -> _Font:
    thickness = max(1, round(scale * (2.2 if bold else 1.6)))
    (_, text_h), baseline = cv2.getTextSize("Hg", _FONT, scale, thickness)
    line_h = math.ceil((text_h + baseline) * 1.3)
    return _Font(scale, thickness, ascent=text_h + (line_h - text_h - baseline) // 2, line_h=line_h, pad=max(2, line_h // 3))


def _font_for_height(height: int) -> _Font:
    # Text height is about 2 % of the frame height (480p: scale 0.44, ~10 px capitals;
    # 1080p: scale 0.98), with a floor that keeps small frames legible.
    return _font(round(min(3.0, max(0.35, height / 1100)), 2))


def _label_font(small: _Font) -> _Font:
    return _font(round(small.scale * 1.75, 2), bold=True)


def _draw_hud(img: np.ndarray, hud: HudInfo, cmap_id: int | None, level: str, *, in_window: bool, help_shown: bool = False) -> None:
    """Draws a HUD level ("full" or "label") in place; ``in_window`` adds the viewer's own items."""
    small = _font_for_height(img.shape[0])
    margin = small.pad
    legend_w = _legend(img, cmap_id, small, margin) if cmap_id is not None else 0
    _label_panel(img, hud, small, margin, full=level == "full", ranks=in_window)
    if in_window and hud.recording:
        _rec_badge(img, small, margin)
    bottom_lines: list[tuple[str, tuple[int, int, int]]] = []
    if in_window and hud.message:
        bottom_lines.append((hud.message, _GREEN))
    if level == "full":
        bottom_lines.extend((line, _GREY) for line in _diagnostics(hud, key_hint=in_window and not help_shown))
    if bottom_lines:
        tiny = _font(round(max(0.3, small.scale * 0.85), 2))
        max_w = img.shape[1] - legend_w - 3 * margin - 2 * tiny.pad
        if max_w > 0:
            _panel(img, [(_fit(t, max_w, tiny), c) for t, c in bottom_lines], tiny, (margin, img.shape[0] - margin), anchor="bl", keep=_DIAG_KEEP)


def _label_panel(img: np.ndarray, hud: HudInfo, small: _Font, margin: int, *, full: bool, ranks: bool) -> None:
    """Top left: the status, the explained class big with its probability (a padlock when locked), then the top-k bars."""
    big = _label_font(small)
    max_w = img.shape[1] - 2 * margin - 2 * big.pad
    status = _fit(hud.status.upper(), max_w, small) if hud.status else ""
    prob = format_percent(hud.prob)
    lock_w = big.ascent + big.pad if hud.locked else 0
    label = _fit(_name(hud.label), max_w - lock_w - _text_w("  " + prob, big), big)
    label_w = lock_w + _text_w(f"{label}  {prob}", big)

    rows = hud.topk if full else ()
    bar_w = 4 * small.line_h
    rank_w = _text_w("5 ", small) if ranks else 0
    pct_w = _text_w(">99.9%", small)
    row_x_name = rank_w + bar_w + small.pad + pct_w + small.pad
    names = [_fit(_name(n), max(0, max_w - row_x_name), small) for n, _ in rows]
    rows_w = max((row_x_name + _text_w(n, small) for n in names), default=0)

    panel_w = max(label_w, rows_w, _text_w(status, small) if status else 0) + 2 * big.pad
    panel_h = 2 * big.pad + big.line_h + len(rows) * small.line_h + (small.line_h if status else 0)
    x0, y0 = margin, margin
    _darken(img, x0, y0, x0 + panel_w, y0 + panel_h, _PANEL_KEEP)
    x, y = x0 + big.pad, y0 + big.pad
    if status:
        _text(img, status, (x, y + small.ascent), small, _ORANGE)
        y += small.line_h
    colour = _YELLOW if hud.locked else _WHITE
    if hud.locked:
        _padlock(img, (x, y + big.ascent), big.ascent, colour)
    _text(img, label, (x + lock_w, y + big.ascent), big, colour)
    _text(img, prob, (x + lock_w + _text_w(label + "  ", big), y + big.ascent), big, colour)
    y += big.line_h
    bar_h = max(3, small.ascent * 2 // 3)
    for rank, ((name, p), shown) in enumerate(zip(rows, names), start=1):
        explained = name == hud.label
        colour = (_YELLOW if hud.locked else _WHITE) if explained else _GREY
        base_y = y + small.ascent
        if ranks:  # the number to press (keys 1-5) to lock this class
            _text(img, str(rank), (x, base_y), small, _GREY)
        bx = x + rank_w
        by = base_y - bar_h
        cv2.rectangle(img, (bx, by), (bx + bar_w - 1, base_y - 1), _BAR_BACK, -1)
        filled = round(bar_w * min(1.0, max(0.0, p))) if p is not None and math.isfinite(p) else 0
        if filled:
            cv2.rectangle(img, (bx, by), (bx + filled - 1, base_y - 1), colour, -1)
        _text(img, format_percent(p), (bx + bar_w + small.pad, base_y), small, colour)
        _text(img, shown, (x + row_x_name, base_y), small, colour)
        y += small.line_h


def _diagnostics(hud: HudInfo, *, key_hint: bool) -> list[str]:
    rates = []
    if hud.engine_fps is not None and math.isfinite(hud.engine_fps):
        rates.append(f"engine {hud.engine_fps:.0f} fps")
    if hud.display_fps is not None and math.isfinite(hud.display_fps):
        rates.append(f"shown {hud.display_fps:.0f} fps")
    if hud.latency_ms is not None and math.isfinite(hud.latency_ms):
        rates.append(f"latency {hud.latency_ms:.0f} ms")
    if hud.dropped:
        rates.append(f"dropped {hud.dropped}")
    first = f"{hud.method} @ {hud.layer}" + ("   h: keys" if key_hint else "")
    return [first, "   ".join(rates)] if rates else [first]


def _padlock(img: np.ndarray, bottom_left: tuple[int, int], size: int, colour: tuple[int, int, int]) -> None:
    """A small padlock, ``size`` pixels high, standing on the text baseline."""
    x, y = bottom_left
    body_h = max(3, size * 11 // 20)
    body_w = max(4, size * 3 // 4)
    cv2.rectangle(img, (x, y - body_h), (x + body_w, y), colour, -1)
    radius = max(2, body_w * 3 // 10)
    cx = x + body_w // 2
    cv2.ellipse(img, (cx, y - body_h), (radius, max(2, size - body_h)), 0, 180, 360, colour, max(1, size // 8), cv2.LINE_AA)


def _draw_help(img: np.ndarray) -> None:
    height, width = img.shape[:2]
    font = _font_for_height(height)
    title = "keys"
    rows = [(_ascii(k), _ascii(v)) for k, v in KEY_HELP]

    def size(f: _Font) -> tuple[int, int, int]:
        key_w = max(_text_w(k, f) for k, _ in rows)
        text_w = max(_text_w(v, f) for _, v in rows)
        gap = 2 * f.pad
        return key_w, key_w + gap + text_w + 2 * f.pad, (len(rows) + 1) * f.line_h + 2 * f.pad

    key_w, panel_w, panel_h = size(font)
    shrink = min(1.0, 0.95 * width / panel_w, 0.9 * height / panel_h)
    if shrink < 1.0:
        font = _font(round(max(0.2, font.scale * shrink), 2))
        key_w, panel_w, panel_h = size(font)
    x0, y0 = max(0, (width - panel_w) // 2), max(0, (height - panel_h) // 2)
    _darken(img, x0, y0, x0 + panel_w, y0 + panel_h, _HELP_KEEP)
    y = y0 + font.pad + font.ascent
    _text(img, title, (x0 + font.pad, y), font, _YELLOW)
    for key, what in rows:
        y += font.line_h
        _text(img, key, (x0 + font.pad, y), font, _YELLOW)
        _text(img, what, (x0 + font.pad + key_w + 2 * font.pad, y), font, _WHITE)


def _panel(
    img: np.ndarray, lines: list[tuple[str, tuple[int, int, int]]], font: _Font, corner: tuple[int, int], anchor: str, keep: float = 0.35
) -> None:
    """A darkened box with lines of text; ``corner`` is its top-left ("tl") or bottom-left ("bl") corner."""
    panel_w = max(_text_w(t, font) for t, _ in lines) + 2 * font.pad
    panel_h = len(lines) * font.line_h + 2 * font.pad
    x0, y0 = corner
    if anchor == "bl":
        y0 -= panel_h
    _darken(img, x0, y0, x0 + panel_w, y0 + panel_h, keep)
    for i, (text, color) in enumerate(lines):
        _text(img, text, (x0 + font.pad, y0 + font.pad + i * font.line_h + font.ascent), font, color)


def _rec_badge(img: np.ndarray, font: _Font, margin: int) -> None:
    radius = max(3, font.line_h // 3)
    text_w = _text_w("REC", font)
    panel_w = 3 * font.pad + 2 * radius + text_w
    panel_h = font.line_h + 2 * font.pad
    x1, y0 = img.shape[1] - margin, margin
    x0 = x1 - panel_w
    _darken(img, x0, y0, x1, y0 + panel_h, _PANEL_KEEP)
    center = (x0 + font.pad + radius, y0 + panel_h // 2)
    cv2.circle(img, center, radius, _RED, -1, cv2.LINE_AA)
    _text(img, "REC", (x0 + 2 * font.pad + 2 * radius, y0 + font.pad + font.ascent), font, _WHITE)


def _legend(img: np.ndarray, cmap_id: int, font: _Font, margin: int) -> int:
    """Draws the low..high colour bar in the bottom-right corner; returns its width."""
    height, width = img.shape[:2]
    bar_w = max(40, min(width // 5, 12 * font.line_h))
    bar_h = max(4, font.line_h // 2)
    panel_w = bar_w + 2 * font.pad
    panel_h = font.line_h + bar_h + 2 * font.pad
    x1, y1 = width - margin, height - margin
    x0, y0 = x1 - panel_w, y1 - panel_h
    if x0 < 0 or y0 < 0:
        return 0
    _darken(img, x0, y0, x1, y1, _PANEL_KEEP)
    text_y = y0 + font.pad + font.ascent
    _text(img, "low", (x0 + font.pad, text_y), font, _WHITE)
    _text(img, "high", (x1 - font.pad - _text_w("high", font), text_y), font, _WHITE)
    bar_y = y0 + font.pad + font.line_h
    img[bar_y : bar_y + bar_h, x0 + font.pad : x0 + font.pad + bar_w] = _colour_bar(cmap_id, bar_w, bar_h)
    return panel_w


@functools.lru_cache(maxsize=16)
def _colour_bar(cmap_id: int, width: int, height: int) -> np.ndarray:
    ramp = np.linspace(0, 255, width).round().astype(np.uint8)
    bar = cv2.applyColorMap(np.repeat(ramp[None, :], height, axis=0), cmap_id)
    bar.flags.writeable = False  # shared by every frame
    return bar


def _darken(img: np.ndarray, x0: int, y0: int, x1: int, y1: int, keep: float) -> None:
    x0, y0 = max(0, x0), max(0, y0)
    x1, y1 = min(img.shape[1], x1), min(img.shape[0], y1)
    if x1 > x0 and y1 > y0:
        roi = img[y0:y1, x0:x1]
        cv2.convertScaleAbs(roi, dst=roi, alpha=keep)  # in place: a view with whole rows contiguous


def _text(img: np.ndarray, text: str, origin: tuple[int, int], font: _Font, color: tuple[int, int, int]) -> None:
    cv2.putText(img, text, origin, _FONT, font.scale, color, font.thickness, cv2.LINE_AA)


def _text_w(text: str, font: _Font) -> int:
    return cv2.getTextSize(text, _FONT, font.scale, font.thickness)[0][0]


def _fit(text: str, max_w: int, font: _Font) -> str:
    """ASCII text, cut with "..." to fit ``max_w`` pixels (Hershey fonts draw only ASCII)."""
    text = _ascii(text)
    width = _text_w(text, font)
    if width <= max_w:
        return text
    keep = max(0, int(len(text) * max_w / width) - 3)
    while keep > 0 and _text_w(text[:keep] + "...", font) > max_w:
        keep -= 1
    return text[:keep] + "..."


def _ascii(text: str) -> str:
    return str(text).encode("ascii", "replace").decode("ascii")


def _name(name: str) -> str:
    name = str(name)
    return name if len(name) <= _MAX_NAME_CHARS else name[: _MAX_NAME_CHARS - 3] + "..."


def format_percent(prob: float | None) -> str:
    """One rounding for every probability on the HUD: 0.1 %, never "100.0%" or "0.0%" for what is not."""
    if prob is None or not math.isfinite(prob):
        return "--%"
    text = f"{prob:.1%}"
    if text == "100.0%" and prob < 1.0:
        return ">99.9%"
    if text == "0.0%" and prob > 0.0:
        return "<0.1%"
    return "100%" if prob >= 1.0 else text


# ---------------------------------------------------------------- validation


def _check_unit(name: str, value: float, *, upper_open: bool) -> float:
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


def _finite01(cam: np.ndarray) -> np.ndarray:
    """A new float32 copy of a 2-D map with NaN -> 0, +inf -> 1, clipped to [0, 1]."""
    arr = np.asarray(cam, dtype=np.float32)
    if arr.ndim != 2 or arr.size == 0:
        raise UserError(f"Expected cam to be a non-empty 2-D (height, width) map. Received: cam.shape={arr.shape}")
    if not np.isfinite(arr).all():
        arr = np.nan_to_num(arr, nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(arr, 0.0, 1.0)


def _resolve_colormap(colormap: int | str) -> int:
    if isinstance(colormap, str):
        return colormap_id(colormap)
    if isinstance(colormap, (int, np.integer)) and not isinstance(colormap, bool) and int(colormap) in _COLORMAP_NAMES:
        return int(colormap)
    raise UserError(f"Expected colormap to be a name ({', '.join(COLORMAPS)}) or a cv2.COLORMAP_* value. Received: colormap={colormap!r}")
