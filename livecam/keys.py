"""Keyboard handling as pure functions: a key code in, an action out.

The viewer reads keys with ``cv2.waitKey`` or ``cv2.waitKeyEx`` and hands the code to
``action_for_key``; what an action does (pausing, recording, ...) is the pipeline's business.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

ALPHA_STEP = 0.1

_ESC = 27
# GTK's waitKeyEx returns X keysyms for special keys: 0xFF00..0xFFFF, Esc is 0xFF1B, keypad
# digits 0xFFB0..0xFFB9. Their low byte must not be read as a character (Left is 0xFF51,
# whose low byte is "Q"), which is also why letters are matched in lower case only:
# plain waitKey masks Left/Up/Right to "Q"/"R"/"S".
_KEYSYM_BASE = 0xFF00
_KEYSYM_ESC = 0xFF1B
_KEYSYM_KP_0 = 0xFFB0


class Action(str, Enum):
    """What a key asks the viewer to do."""

    QUIT = "quit"
    PAUSE = "pause"
    SNAPSHOT = "snapshot"
    RECORD = "record"
    LOCK_CLASS = "lock_class"
    UNLOCK = "unlock"
    NEXT_METHOD = "next_method"
    ALPHA_DOWN = "alpha_down"
    ALPHA_UP = "alpha_up"
    HELP = "help"
    NONE = "none"


@dataclass(frozen=True)
class KeyAction:
    """An action and, for ``LOCK_CLASS``, which of the top classes (1 = the most probable)."""

    action: Action
    rank: int | None = None


_NO_ACTION = KeyAction(Action.NONE)

_CHAR_ACTIONS: dict[str, KeyAction] = {
    "q": KeyAction(Action.QUIT),
    " ": KeyAction(Action.PAUSE),
    "s": KeyAction(Action.SNAPSHOT),
    "r": KeyAction(Action.RECORD),
    "0": KeyAction(Action.UNLOCK),
    **{str(k): KeyAction(Action.LOCK_CLASS, rank=k) for k in range(1, 6)},
    "m": KeyAction(Action.NEXT_METHOD),
    "[": KeyAction(Action.ALPHA_DOWN),
    "]": KeyAction(Action.ALPHA_UP),
    "h": KeyAction(Action.HELP),
}

KEY_HELP: tuple[tuple[str, str], ...] = (
    ("q / Esc", "quit"),
    ("space", "pause / resume; 0-5, m, [ ] still redraw the paused frame"),
    ("s", "snapshot: frame, overlay, map (.npy), JSON record"),
    ("r", "start / stop recording"),
    ("1-5", "lock the map to the k-th top class"),
    ("0", "unlock (explain the top class again)"),
    ("m", "next CAM method"),
    ("[ / ]", f"heat-map opacity down / up (step {ALPHA_STEP:g})"),
    ("h", "show / hide this help"),
)


def action_for_key(key: int) -> KeyAction:
    """Maps a key code from ``cv2.waitKey`` or ``cv2.waitKeyEx`` to an action.

    Modifier bits above the low 16 (NumLock on some GTK builds adds 0x100000) are ignored.
    Letters count in lower case only; see the note on keysyms above.

    Args:
        key: the code; -1 (no key pressed) and any other negative code mean no action.

    Returns:
        The action; ``Action.NONE`` for keys that do nothing.
    """
    if key < 0:
        return _NO_ACTION
    code = key & 0xFFFF
    if code >= _KEYSYM_BASE:
        if code == _KEYSYM_ESC:
            return KeyAction(Action.QUIT)
        if _KEYSYM_KP_0 <= code <= _KEYSYM_KP_0 + 9:
            return _CHAR_ACTIONS.get(str(code - _KEYSYM_KP_0), _NO_ACTION)
        return _NO_ACTION
    code &= 0xFF
    if code == _ESC:
        return KeyAction(Action.QUIT)
    return _CHAR_ACTIONS.get(chr(code), _NO_ACTION)


def apply_alpha(alpha: float, action: KeyAction) -> float:
    """The heat-map opacity after an alpha key, one ``ALPHA_STEP`` per press, kept in [0, 1].

    Other actions return ``alpha`` unchanged (still clamped to [0, 1]).
    """
    if action.action is Action.ALPHA_UP:
        alpha += ALPHA_STEP
    elif action.action is Action.ALPHA_DOWN:
        alpha -= ALPHA_STEP
    # Rounding keeps repeated presses on the 0.1 grid (0.1 + 0.2 != 0.3 in floating point).
    return min(1.0, max(0.0, round(alpha, 6)))
