"""The renderer: one per viewer, it turns frames and maps into the pictures that viewer shows and records.

It owns the viewer's smoothing and the per-map caches (``_MapHeat``), decides when to restart
them from explicit values the caller passes (what the map answers, which map it is), and draws
the HUD over the blend (``livecam.render.hud``). ``overlay`` draws one engine result, for
notebooks and scripts.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from livecam.errors import UserError, check_bgr_image
from livecam.render.heat import (
    BLENDS,
    COLORMAP_NAMES,
    DEFAULT_ALPHA,
    DEFAULT_BLEND,
    blend,
    blend_layers,
    check_choice,
    check_unit,
    colorize,
    cubic_step,
    extent_wh,
    heat_layers,
    map_region,
    place_map,
    resolve_colormap,
)
from livecam.render.hud import HudInfo, check_hud, draw_help, draw_hud, draw_region, hud_info
from livecam.render.smoothing import DEFAULT_SMOOTH, CamSmoother


@dataclass(frozen=True)
class Views:
    """The two pictures of one frame: for the window, and for files (recordings, snapshots).

    Either is None when it was not asked for; both are the same array when they would be equal.
    """

    window: np.ndarray | None
    file: np.ndarray | None


class _MapHeat:
    """One viewer's smoothed map and the coloured layers made from it, each made once per map.

    The coloured layers are made at the bicubic step's resolution (at most 16 pixels per map
    cell, ``cubic_step``) and then resized bilinearly to the frame, rather than colouring the map
    at the frame's size: the colours between two samples are then mixed rather than looked up, a
    difference of a few levels where the colormap changes fastest (jet, a random 7x7 map: at
    most 10, on average 0.4 of 255), for half the time (640x480: about 2.7 against 5.0 ms a frame
    with a new map, the label drawn, on 2 cores).
    """

    def __init__(self, smooth: float) -> None:
        self.smoother = CamSmoother(smooth)
        self.reset()

    def reset(self) -> None:
        self.smoother.reset()
        self._map_id: Hashable = None
        self._smoothed: np.ndarray | None = None
        self._heat: np.ndarray | None = None
        self._heat_key: tuple | None = None
        self._layers: tuple[np.ndarray, np.ndarray] | None = None
        self._layers_key: tuple | None = None

    def heat(
        self, cam: np.ndarray, map_id: Hashable, size_wh: tuple[int, int], place: tuple[float, ...], cmap_id: int
    ) -> np.ndarray:
        """The coloured smoothed map over a ``size_wh`` picture (for the uniform blend)."""
        self._fold(cam, map_id)
        key = (size_wh, place, cmap_id)
        if self._heat_key != key:
            self._heat = place_map(colorize(cubic_step(self._smoothed, extent_wh(place)), cmap_id), place, size_wh)
            self._heat_key = key
        return self._heat

    def heat_blend(
        self, frame: np.ndarray, cam: np.ndarray, map_id: Hashable, place: tuple[float, ...], cmap_id: int, alpha: float
    ) -> np.ndarray:
        """``frame`` with the smoothed map blended over it, its opacity following the map (``blend_heat``)."""
        size_wh = frame.shape[1::-1]
        self._fold(cam, map_id)
        key = (size_wh, place, cmap_id, alpha)
        if self._layers_key != key:
            cam01 = np.clip(cubic_step(self._smoothed, extent_wh(place)), 0.0, 1.0)
            self._layers = tuple(
                place_map(layer, place, size_wh) for layer in heat_layers(colorize(cam01, cmap_id), cam01, alpha)
            )
            self._layers_key = key
        return blend_layers(frame, *self._layers)

    def _fold(self, cam: np.ndarray, map_id: Hashable) -> None:
        """Folds a new map into the smoothing (a map already folded in under ``map_id`` is not)."""
        if map_id is None or self._smoothed is None or map_id != self._map_id:
            self._smoothed = self.smoother.update(cam)
            self._map_id = map_id
            self._heat_key = None
            self._layers_key = None


class Renderer:
    """Turns a frame and a map into the pictures the viewer shows and records.

    smoothing (at the map's resolution) -> upsample -> colorize -> blend, once per frame; then
    the HUD, drawn once for the window and once for files when both are asked for (``views``):
    the window gets ``hud`` plus what only a viewer needs (REC badge, messages, key hint, help);
    recordings and snapshots get ``file_hud``.

    One renderer per viewer: it owns that viewer's smoothing. The caller says, with explicit
    values, which question a map answers (``explains``, e.g. the method, the locked class and
    the scene: a new question restarts the smoothing) and which map it is (``map_id``: a map
    drawn again, on a redraw or for several frames, is folded into the smoothing once and its
    coloured heat image is reused). Object identities are never compared.

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
        help_rows: that key list, (keys, what they do) rows, handed in by the window front-end
            that reads the keys; without rows there is no help to draw.
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
        help_rows: Sequence[tuple[str, str]] = (),
    ) -> None:
        self._blend = check_choice("blend", blend, BLENDS)
        self.alpha = DEFAULT_ALPHA[self._blend] if alpha is None else alpha
        self.colormap = colormap
        self._map_heat = _MapHeat(smooth)
        self.hud = hud
        self.file_hud = file_hud if file_hud is not None else ("label" if self.hud == "full" else self.hud)
        self.side_by_side = bool(side_by_side)
        self.show_help = bool(show_help)
        self.help_rows = help_rows
        self._explains: Hashable = None

    @property
    def alpha(self) -> float:
        return self._alpha

    @alpha.setter
    def alpha(self, value: float) -> None:
        self._alpha = check_unit("alpha", value, upper_open=False)

    @property
    def blend(self) -> str:
        """ "heat" or "uniform" (see the class docstring)."""
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
        return COLORMAP_NAMES[self._cmap_id]

    @colormap.setter
    def colormap(self, value: int | str) -> None:
        self._cmap_id = resolve_colormap(value)

    @property
    def help_rows(self) -> tuple[tuple[str, str], ...]:
        """The key list drawn while ``show_help`` is on: (keys, what they do) rows."""
        return self._help_rows

    @help_rows.setter
    def help_rows(self, rows: Sequence[tuple[str, str]]) -> None:
        self._help_rows = tuple((str(keys), str(what)) for keys, what in rows)

    @property
    def smooth(self) -> float:
        return self._map_heat.smoother.smooth

    def reset(self) -> None:
        """Restarts the smoothing (``render`` and ``views`` do it by themselves when ``explains`` changes)."""
        self._map_heat.reset()

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
            hud: what the HUD says (``hud_info``), or None for no HUD on this frame.
            view: "window" (``hud`` level, REC badge, messages, help) or "file" (``file_hud``).
            explains: what the map answers, e.g. ``(method, locked class id or None, scene)``;
                when it differs from the last call's, the smoothing starts afresh.
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
        views = self.views(
            frame_bgr, cam, hud, window=view == "window", file=view == "file", explains=explains, map_id=map_id, box=box
        )
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
        region: tuple[Sequence[int], str] | None = None,
    ) -> Views:
        """Draws the window's picture and the files' picture of one frame from one blend.

        The blend is made once; the HUD is drawn on a copy only when both pictures are asked
        for and differ. Arguments as in ``render``; ``region``: the user's box (x, y, w, h) in
        frame pixels and its readout (``livecam.trust.region``), drawn on the overlay.
        """
        frame = check_bgr_image(frame_bgr, "frame_bgr")
        if explains != self._explains:
            self.reset()
            self._explains = explains
        base = self._blended(frame, cam, map_id, box, region)
        cmap_id = self._cmap_id if cam is not None else None
        help_shown = self.show_help and bool(self._help_rows)
        window_plain = (self._hud == "none" or hud is None) and not help_shown
        file_plain = self._file_hud == "none" or hud is None
        window_img = file_img = None
        if window and file and window_plain and file_plain:
            return Views(base, base)
        if file:
            file_img = base.copy() if window else base
            if not file_plain:
                draw_hud(file_img, hud, cmap_id, self._file_hud, in_window=False)
        if window:
            window_img = base
            if self._hud != "none" and hud is not None:
                draw_hud(window_img, hud, cmap_id, self._hud, in_window=True, help_shown=help_shown)
            if help_shown:
                draw_help(window_img, self._help_rows)
        return Views(window_img, file_img)

    def _blended(
        self,
        frame: np.ndarray,
        cam: np.ndarray | None,
        map_id: Hashable,
        box: Sequence[float] | None,
        user_region: tuple[Sequence[int], str] | None = None,
    ) -> np.ndarray:
        """A new picture: the frame with the heat over the map's region (beside the raw frame when side by side)."""
        height, width = frame.shape[:2]
        region, place = map_region(box, width, height)
        if cam is None:
            overlay = frame.copy()
        else:
            x0, y0, x1, y1 = region
            part = frame[y0:y1, x0:x1]  # the heat goes here only (crop: the frame outside has none)
            if self._blend == "uniform":
                part = blend(part, self._map_heat.heat(cam, map_id, (x1 - x0, y1 - y0), place, self._cmap_id), self._alpha)
            else:
                part = self._map_heat.heat_blend(part, cam, map_id, place, self._cmap_id, self._alpha)
            if region == (0, 0, width, height):
                overlay = part
            else:
                overlay = frame.copy()
                overlay[y0:y1, x0:x1] = part
        if user_region is not None:
            draw_region(overlay, *user_region)
        if not self.side_by_side:
            return overlay
        both = np.empty((height, 2 * width, 3), np.uint8)
        both[:, :width] = frame
        both[:, width:] = overlay
        return both


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
    info = hud_info(result, class_names, locked=False, index=index)
    finite = bool(result.finite[index])
    renderer = Renderer(colormap=colormap, alpha=alpha, smooth=0.0, blend=blend, hud=hud, file_hud=hud)
    return renderer.render(frame_bgr, result.cam[index] if finite else None, info, view="file", box=getattr(result, "box", None))
