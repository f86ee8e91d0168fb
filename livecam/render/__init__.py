"""Drawing what the engine found: map -> heat image -> blend -> HUD.

- ``heat``: pure image functions (upsample, colormaps, the two blends, the colour bar, where a
  map lies on its frame);
- ``smoothing``: ``CamSmoother``, the running average that removes flicker;
- ``renderer``: ``Renderer``, one per viewer, owning its smoothing; ``overlay`` for one result;
- ``hud``: ``HudInfo``, built from a result by ``hud_info`` for every front-end, and its drawing
  (``text`` holds the font and text-box helpers it draws with).

Nothing here imports the viewer or the server: the window front-end hands in its key help rows.
The page draws the heat itself; ``page_constants`` gives it the rules it must follow too.
"""

from __future__ import annotations

from typing import Any

from livecam.render.heat import (
    BLENDS,
    COLORMAPS,
    CUBIC_STEP,
    DEFAULT_ALPHA,
    DEFAULT_BLEND,
    HEAT_LEVELS,
    blend,
    blend_heat,
    check_choice,
    colorize,
    colormap_id,
    upsample_cam,
)
from livecam.render.hud import HUD_LEVELS, NO_MAP, PERCENT, HudInfo, check_hud, format_percent, hud_info
from livecam.render.renderer import Renderer, Views, overlay
from livecam.render.smoothing import DEFAULT_SMOOTH, CamSmoother

__all__ = [
    "BLENDS",
    "COLORMAPS",
    "DEFAULT_ALPHA",
    "DEFAULT_BLEND",
    "DEFAULT_SMOOTH",
    "HUD_LEVELS",
    "NO_MAP",
    "PERCENT",
    "CamSmoother",
    "HudInfo",
    "Renderer",
    "Views",
    "blend",
    "blend_heat",
    "check_choice",
    "check_hud",
    "colorize",
    "colormap_id",
    "format_percent",
    "hud_info",
    "overlay",
    "page_constants",
    "upsample_cam",
]


def page_constants() -> dict[str, Any]:
    """The viewer's rules the browser page applies itself, as JSON-ready values (for ``/api/config``).

    Returns:
        ``{"smooth": 0.5, "blend": "heat", "blends": ["heat", "uniform"],
        "alpha": {"uniform": 0.4, "heat": 0.6}, "heat_levels": HEAT_LEVELS, "cubic_step": CUBIC_STEP,
        "percent": {"decimals": 1, "unknown": "--%", "one": "100%", "almost_one": ">99.9%",
        "almost_zero": "<0.1%"}}``: the default smoothing weight (``CamSmoother``), the default
        blend and the blends, the default opacity per blend, the steps the heat blend keeps its
        per-pixel opacity in (``alpha * map`` rounded to 1/255), the most pixels per map cell the
        heat is coloured at before it is stretched bilinearly over the frame (``cubic_step``), and
        the percent rule of ``format_percent``. A server's own settings (``--smooth``, ``--blend``, ``--alpha``)
        replace the defaults where it sends them.
    """
    return {
        "smooth": DEFAULT_SMOOTH,
        "blend": DEFAULT_BLEND,
        "blends": list(BLENDS),
        "alpha": dict(DEFAULT_ALPHA),
        "heat_levels": HEAT_LEVELS,
        "cubic_step": CUBIC_STEP,
        "percent": dict(PERCENT),
    }
