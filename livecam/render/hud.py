"""The HUD: what it says about a frame (``HudInfo``, built by ``hud_info`` for every caller) and how it is drawn.

Top left, the explained class with its probability (a padlock when the user locked it) and the
top-k bars; bottom left, the method, layer and rates; bottom right, the colour bar; in the
window only, the REC badge, messages and the key help, whose rows the window front-end hands in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from livecam.errors import UserError
from livecam.render.heat import check_choice, colour_bar
from livecam.render.text import (
    Colour,
    Font,
    ascii_text,
    darken,
    fit,
    font,
    font_for_height,
    label_font,
    panel,
    put_text,
    short_name,
    text_w,
)
from livecam.trust.scale import SCALE_LABELS

HUD_LEVELS = ("full", "label", "none")
NO_MAP = "no map (non-finite output)"
# One rounding for every probability shown, here and on the page (``page_constants``): steps of
# 0.1 %, and what rounds to 100 % or 0 % without being it says so.
PERCENT = {"decimals": 1, "unknown": "--%", "one": "100%", "almost_one": ">99.9%", "almost_zero": "<0.1%"}

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


def check_hud(level: str | bool) -> str:
    """A HUD level from ``HUD_LEVELS``; True and False (the old on/off switch) mean "full" and "none"."""
    if level is True or level is False:
        return "full" if level else "none"
    return check_choice("hud", level, HUD_LEVELS)


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
        contrast: the class B of a contrast map ("why label and not B"), shown after the label; "" for none.
        scale: which scale the map is drawn on, "frame" or "session" (the colour bar says it).
        faithfulness: the last faithfulness readout's line (``livecam.trust``), e.g. "hide the
            heat: -89 % (control -2 %)"; "" when there is none.
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
    contrast: str = ""
    scale: str = "frame"
    faithfulness: str = ""


def hud_info(
    result: Any,
    class_names: Sequence[str] | None,
    *,
    locked: bool,
    index: int = 0,
    status: str = "",
    engine_fps: float | None = None,
    display_fps: float | None = None,
    latency_ms: float | None = None,
    dropped: int = 0,
    recording: bool = False,
    message: str = "",
    scale: str = "frame",
    faith: Any = None,
) -> HudInfo:
    """What the HUD says about one row of an engine result: the one place a ``HudInfo`` is made from a result.

    Args:
        result: a ``CamResult`` (one or more rows).
        class_names: names for the class ids (``engine.class_names``); None: "class 207".
        locked: whether the row's map was made for a class the user chose: the lock the frame
            was explained with, which a frame in flight or a reused map keeps when the lock
            changes.
        index: which row of ``result``.
        status: the viewer's status, e.g. "paused" or "reconnecting"; a row without a finite
            map says ``NO_MAP`` instead, since that is why no heat is drawn.
        engine_fps, display_fps, latency_ms, dropped, recording, message, scale: as in ``HudInfo``.
        faith: the faithfulness readout held on screen (``livecam.trust.faithfulness.Faithfulness``), or None.

    Returns:
        The ``HudInfo`` of that row.
    """
    rows = len(result.class_ids)
    if not -rows <= index < rows:
        raise UserError(f"Expected index in [0, {rows - 1}] for a result with {rows} rows. Received: index={index}")

    def name(class_id: int) -> str:
        return str(class_names[class_id]) if class_names is not None else f"class {class_id}"

    class_id = int(result.class_ids[index])
    contrast_ids = getattr(result, "contrast_ids", None)
    contrast = -1 if contrast_ids is None else int(contrast_ids[index])
    return HudInfo(
        label=name(class_id),
        prob=float(result.probs[index, class_id]),
        locked=bool(locked),
        topk=tuple((name(int(i)), float(p)) for i, p in zip(result.topk_ids[index], result.topk_probs[index])),
        method=result.method,
        layer=result.layer,
        engine_fps=engine_fps,
        display_fps=display_fps,
        latency_ms=latency_ms,
        dropped=dropped,
        status=status if result.finite[index] else NO_MAP,
        recording=recording,
        message=message,
        contrast=name(contrast) if contrast >= 0 else "",
        scale=scale,
        faithfulness=faith.text if faith is not None else "",
    )


def format_percent(prob: float | None) -> str:
    """One rounding for every probability on the HUD (``PERCENT``): 0.1 %, never "100.0%" or "0.0%" for what is not."""
    if prob is None or not math.isfinite(prob):
        return PERCENT["unknown"]
    if prob >= 1.0:
        return PERCENT["one"]
    text = f"{prob:.{PERCENT['decimals']}%}"
    if text == f"{1:.{PERCENT['decimals']}%}":
        return PERCENT["almost_one"]
    if text == f"{0:.{PERCENT['decimals']}%}" and prob > 0.0:
        return PERCENT["almost_zero"]
    return text


def draw_hud(
    img: np.ndarray, hud: HudInfo, cmap_id: int | None, level: str, *, in_window: bool, help_shown: bool = False
) -> None:
    """Draws a HUD level ("full" or "label") in place; ``in_window`` adds the viewer's own items."""
    small = font_for_height(img.shape[0])
    margin = small.pad
    legend_w = _legend(img, cmap_id, small, margin, SCALE_LABELS.get(hud.scale, "high")) if cmap_id is not None else 0
    _label_panel(img, hud, small, margin, full=level == "full", ranks=in_window)
    if in_window and hud.recording:
        _rec_badge(img, small, margin)
    bottom_lines: list[tuple[str, Colour]] = []
    if in_window and hud.message:
        bottom_lines.append((hud.message, _GREEN))
    if level == "full" and hud.faithfulness:  # with the diagnostics: a recording at "label" keeps the label and legend only
        bottom_lines.append((hud.faithfulness, _WHITE))
    if level == "full":
        bottom_lines.extend((line, _GREY) for line in _diagnostics(hud, key_hint=in_window and not help_shown))
    if bottom_lines:
        tiny = font(round(max(0.3, small.scale * 0.85), 2))
        max_w = img.shape[1] - legend_w - 3 * margin - 2 * tiny.pad
        if max_w > 0:
            panel(
                img,
                [(fit(t, max_w, tiny), c) for t, c in bottom_lines],
                tiny,
                (margin, img.shape[0] - margin),
                anchor="bl",
                keep=_DIAG_KEEP,
            )


def _label_panel(img: np.ndarray, hud: HudInfo, small: Font, margin: int, *, full: bool, ranks: bool) -> None:
    """Top left: the status, the explained class big with its probability (a padlock when locked), then the top-k bars."""
    big = label_font(small)
    max_w = img.shape[1] - 2 * margin - 2 * big.pad
    status = fit(hud.status.upper(), max_w, small) if hud.status else ""
    prob = format_percent(hud.prob)
    lock_w = big.ascent + big.pad if hud.locked else 0
    shown_label = f"{short_name(hud.label)} not {short_name(hud.contrast)}" if hud.contrast else short_name(hud.label)
    label = fit(shown_label, max_w - lock_w - text_w("  " + prob, big), big)
    label_w = lock_w + text_w(f"{label}  {prob}", big)

    rows = hud.topk if full else ()
    bar_w = 4 * small.line_h
    rank_w = text_w("5 ", small) if ranks else 0
    pct_w = text_w(PERCENT["almost_one"], small)  # the widest a percent is drawn
    row_x_name = rank_w + bar_w + small.pad + pct_w + small.pad
    names = [fit(short_name(n), max(0, max_w - row_x_name), small) for n, _ in rows]
    rows_w = max((row_x_name + text_w(n, small) for n in names), default=0)

    panel_w = max(label_w, rows_w, text_w(status, small) if status else 0) + 2 * big.pad
    panel_h = 2 * big.pad + big.line_h + len(rows) * small.line_h + (small.line_h if status else 0)
    x0, y0 = margin, margin
    darken(img, x0, y0, x0 + panel_w, y0 + panel_h, _PANEL_KEEP)
    x, y = x0 + big.pad, y0 + big.pad
    if status:
        put_text(img, status, (x, y + small.ascent), small, _ORANGE)
        y += small.line_h
    colour = _YELLOW if hud.locked else _WHITE
    if hud.locked:
        _padlock(img, (x, y + big.ascent), big.ascent, colour)
    put_text(img, label, (x + lock_w, y + big.ascent), big, colour)
    put_text(img, prob, (x + lock_w + text_w(label + "  ", big), y + big.ascent), big, colour)
    y += big.line_h
    bar_h = max(3, small.ascent * 2 // 3)
    for rank, ((name, p), shown) in enumerate(zip(rows, names), start=1):
        explained = name == hud.label
        colour = (_YELLOW if hud.locked else _WHITE) if explained else _GREY
        base_y = y + small.ascent
        if ranks:  # the number to press (keys 1-5) to lock this class
            put_text(img, str(rank), (x, base_y), small, _GREY)
        bx = x + rank_w
        by = base_y - bar_h
        cv2.rectangle(img, (bx, by), (bx + bar_w - 1, base_y - 1), _BAR_BACK, -1)
        filled = round(bar_w * min(1.0, max(0.0, p))) if p is not None and math.isfinite(p) else 0
        if filled:
            cv2.rectangle(img, (bx, by), (bx + filled - 1, base_y - 1), colour, -1)
        put_text(img, format_percent(p), (bx + bar_w + small.pad, base_y), small, colour)
        put_text(img, shown, (x + row_x_name, base_y), small, colour)
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


def _padlock(img: np.ndarray, bottom_left: tuple[int, int], size: int, colour: Colour) -> None:
    """A small padlock, ``size`` pixels high, standing on the text baseline."""
    x, y = bottom_left
    body_h = max(3, size * 11 // 20)
    body_w = max(4, size * 3 // 4)
    cv2.rectangle(img, (x, y - body_h), (x + body_w, y), colour, -1)
    radius = max(2, body_w * 3 // 10)
    cx = x + body_w // 2
    cv2.ellipse(img, (cx, y - body_h), (radius, max(2, size - body_h)), 0, 180, 360, colour, max(1, size // 8), cv2.LINE_AA)


def draw_help(img: np.ndarray, rows: Sequence[tuple[str, str]]) -> None:
    """The key list in the middle of the picture, in place: a "keys" title over (keys, what they do) rows."""
    height, width = img.shape[:2]
    rows = [(ascii_text(k), ascii_text(v)) for k, v in rows]

    def size(f: Font) -> Colour:
        key_w = max(text_w(k, f) for k, _ in rows)
        what_w = max(text_w(v, f) for _, v in rows)
        gap = 2 * f.pad
        return key_w, key_w + gap + what_w + 2 * f.pad, (len(rows) + 1) * f.line_h + 2 * f.pad

    f = font_for_height(height)
    key_w, panel_w, panel_h = size(f)
    shrink = min(1.0, 0.95 * width / panel_w, 0.9 * height / panel_h)
    if shrink < 1.0:
        f = font(round(max(0.2, f.scale * shrink), 2))
        key_w, panel_w, panel_h = size(f)
    x0, y0 = max(0, (width - panel_w) // 2), max(0, (height - panel_h) // 2)
    darken(img, x0, y0, x0 + panel_w, y0 + panel_h, _HELP_KEEP)
    y = y0 + f.pad + f.ascent
    put_text(img, "keys", (x0 + f.pad, y), f, _YELLOW)
    for key, what in rows:
        y += f.line_h
        put_text(img, key, (x0 + f.pad, y), f, _YELLOW)
        put_text(img, what, (x0 + f.pad + key_w + 2 * f.pad, y), f, _WHITE)


def _rec_badge(img: np.ndarray, font: Font, margin: int) -> None:
    radius = max(3, font.line_h // 3)
    rec_w = text_w("REC", font)
    panel_w = 3 * font.pad + 2 * radius + rec_w
    panel_h = font.line_h + 2 * font.pad
    x1, y0 = img.shape[1] - margin, margin
    x0 = x1 - panel_w
    darken(img, x0, y0, x1, y0 + panel_h, _PANEL_KEEP)
    center = (x0 + font.pad + radius, y0 + panel_h // 2)
    cv2.circle(img, center, radius, _RED, -1, cv2.LINE_AA)
    put_text(img, "REC", (x0 + 2 * font.pad + 2 * radius, y0 + font.pad + font.ascent), font, _WHITE)


def _legend(img: np.ndarray, cmap_id: int, font: Font, margin: int, high: str = "high") -> int:
    """Draws the 0..``high`` colour bar in the bottom-right corner (``high`` says which scale); returns its width."""
    height, width = img.shape[:2]
    bar_w = max(40, min(width // 5, 12 * font.line_h), text_w(f"0  {high}", font))
    bar_h = max(4, font.line_h // 2)
    panel_w = bar_w + 2 * font.pad
    panel_h = font.line_h + bar_h + 2 * font.pad
    x1, y1 = width - margin, height - margin
    x0, y0 = x1 - panel_w, y1 - panel_h
    if x0 < 0 or y0 < 0:
        return 0
    darken(img, x0, y0, x1, y1, _PANEL_KEEP)
    text_y = y0 + font.pad + font.ascent
    put_text(img, "0", (x0 + font.pad, text_y), font, _WHITE)
    put_text(img, high, (x1 - font.pad - text_w(high, font), text_y), font, _WHITE)
    bar_y = y0 + font.pad + font.line_h
    img[bar_y : bar_y + bar_h, x0 + font.pad : x0 + font.pad + bar_w] = colour_bar(cmap_id, bar_w, bar_h)
    return panel_w


def draw_region(img: np.ndarray, xywh: Sequence[int], text: str) -> None:
    """The user's box (``livecam.trust.region``) and its readout, in place: drawn whatever the HUD level, since it was asked for."""
    x, y, w, h = (int(v) for v in xywh)
    if w <= 0 or h <= 0:
        return
    f = font_for_height(img.shape[0])
    cv2.rectangle(img, (x, y), (x + w - 1, y + h - 1), (0, 0, 0), max(1, f.thickness) + 2, cv2.LINE_AA)
    cv2.rectangle(img, (x, y), (x + w - 1, y + h - 1), _WHITE, max(1, f.thickness), cv2.LINE_AA)
    shown = fit(text, img.shape[1] - 2 * f.pad, f)
    text_x = min(max(0, x), max(0, img.shape[1] - text_w(shown, f) - 2 * f.pad))
    above = y - f.line_h - f.pad >= 0  # the readout above the box, else inside its top edge
    top = y - f.line_h - f.pad if above else y + f.pad
    darken(img, text_x, top, text_x + text_w(shown, f) + 2 * f.pad, top + f.line_h, _PANEL_KEEP)
    put_text(img, shown, (text_x + f.pad, top + f.ascent + (f.line_h - f.ascent) // 2), f, _WHITE)
