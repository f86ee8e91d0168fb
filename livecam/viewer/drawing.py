"""Drawing a processed frame: its pictures and its HUD, with the viewer's state as it is now.

The run's loop (``livecam.viewer.pipeline``) draws each frame once on its render thread; the
window front-end draws a frame again while paused, reconnecting or after a key changed the look.
Both go through one ``Drawer``, which copies the state into the renderer, assembles the HUD
(``livecam.render.hud_info``: the rates, latency, drops and message of this run) and keeps the
renderer, which holds smoothing state, to one drawing at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace

from livecam.engine.core import CamResult
from livecam.meters import RateMeter, StageTimes
from livecam.render import HudInfo, Renderer, hud_info
from livecam.render.grid import draw_grid, panel_titles
from livecam.sources import FrameSource
from livecam.trust.faithfulness import Faithfulness
from livecam.trust.region import RegionScore, region_text, result_region
from livecam.trust.scale import SessionScale, scale_key, scaled_cam
from livecam.viewer.control import Controller, ViewerState
from livecam.viewer.sinks import Processed

__all__ = ["Drawer"]


class Drawer:
    """Draws frames for one viewer: the pictures from its renderer, the HUD from its run's meters.

    Args:
        renderer: the viewer's renderer (it holds the smoothing).
        state: what the user steers (opacity, colormap, help, pause, recording).
        controller: the viewer's controller (the HUD shows its message).
        source: the run's source (live or not, its status, the frames it dropped).
        class_names: the model's class names, for the HUD.
        times: the run's stage times (the HUD's latency).
        engine_rate: maps the engine delivered (the HUD's engine fps).
        display_rate: frames shown (the HUD's display fps).
    """

    def __init__(
        self,
        renderer: Renderer,
        state: ViewerState,
        controller: Controller,
        source: FrameSource,
        class_names: Sequence[str],
        *,
        times: StageTimes,
        engine_rate: RateMeter,
        display_rate: RateMeter,
    ) -> None:
        self.renderer, self.state, self.controller, self.source = renderer, state, controller, source
        self.class_names = class_names
        self.times, self.engine_rate, self.display_rate = times, engine_rate, display_rate
        self._lock = threading.Lock()
        self._dropped_before = 0
        self._scale = SessionScale()
        self._faith: tuple[int, Faithfulness] | None = None  # (scene, readout): held on screen until the next

    def start(self) -> None:
        """The run begins: frames the source dropped before now (while the model loaded) do not count."""
        self._dropped_before = self.source.dropped

    def drawn(self, processed: Processed, *, window: bool = True, file: bool = True) -> Processed:
        """The frame with the window's picture and the files' picture (either can be left out) and its HUD."""
        # The render thread and, while paused or reconnecting, the display thread both draw; the
        # renderer holds smoothing state, so one draws at a time.
        with self._lock:
            renderer, state = self.renderer, self.state
            renderer.alpha, renderer.colormap, renderer.show_help = state.alpha, state.colormap, state.help_shown
            result = processed.result
            cam = result.cam[0] if result is not None and result.finite[0] else None
            if cam is not None and state.normalize == "session":
                time_s = processed.source_time_s if processed.source_time_s is not None else processed.frame.timestamp_s
                cam = scaled_cam(cam, self._scale.factor(float(result.cam_max[0]), scale_key(result), time_s))
            region = self.region(processed)
            if processed.faith is not None:
                self._faith = (processed.scene, processed.faith)
            hud = self.hud(result, processed.class_lock, scene=processed.scene)
            box = result.box if result is not None else None
            if processed.panels:  # side by side: the grid, each panel labelled, for the window and the files alike
                grid = draw_grid(
                    processed.frame.image_bgr,
                    processed.panels,
                    self.class_names,
                    titles=panel_titles(processed.panels),
                    colormap=state.colormap,
                    alpha=state.alpha,
                    blend=renderer.blend,
                )
                return replace(
                    processed, picture=grid if file else processed.picture, window_picture=grid if window else None, hud=hud
                )
            views = renderer.views(
                processed.frame.image_bgr,
                cam,
                hud,
                window=window,
                file=file,
                explains=processed.explains,
                map_id=processed.map_id,
                box=box,
                region=None if region is None else (region.box_xywh, region_text(region)),
            )
        picture = views.file if views.file is not None else processed.picture
        return replace(processed, picture=picture, window_picture=views.window, hud=hud, region=region)

    def region(self, processed: Processed) -> RegionScore | None:
        """The frame's map scored against the user's box (the frame's own map, unsmoothed, on its own scale)."""
        return result_region(processed.result, processed.frame.image_bgr.shape[1::-1], self.state.box)

    def hud(self, result: CamResult | None, class_lock: int | None, *, scene: int = 0) -> HudInfo | None:
        """What the HUD says about a map made for ``class_lock`` (the frame's own lock, not the lock now).

        The last faithfulness readout is held until the next one, or until another picture (``scene``).
        """
        if result is None:
            return None
        faith = self._faith[1] if self._faith is not None and self._faith[0] == scene else None
        status = "reconnecting" if self.source.status == "reconnecting" else ""
        if self.state.paused:
            status = "paused"
        return hud_info(
            result,
            self.class_names,
            locked=class_lock is not None,
            status=status,
            engine_fps=self.engine_fps(),
            display_fps=self.display_rate.fps,
            # Files are read ahead and kept in order: their "latency" is time spent queued, not a delay anyone sees.
            latency_ms=self.times.last_latency_ms if self.source.live else None,
            dropped=self.dropped(),
            recording=self.state.recording,
            message=self.controller.message(),
            scale=self.state.normalize,
            faith=faith,
        )

    def engine_fps(self) -> float | None:
        """Maps per second. Files come in batches, whose rows are done together, so a rate over the
        last few rows would be a burst (tens of thousands per second): files get the mean over
        every map since the first instead, once maps have come for half a second."""
        rate = self.engine_rate.snapshot()
        if self.source.live:
            return rate.fps
        return rate.mean_fps if rate.span_s >= 0.5 else None

    def dropped(self) -> int:
        """Live frames dropped since the run began (not those that went by while the model loaded)."""
        return self.source.dropped - self._dropped_before
