"""The keyboard adapter: a key code in, a ``Command`` out.

The window reads keys with ``cv2.waitKey`` or ``cv2.waitKeyEx``; ``action_for_key`` turns the
code into a command for ``livecam.viewer.control.Controller.apply``, which holds all control logic.
"""

from __future__ import annotations

from livecam.viewer.control import ALPHA_STEP, Action, Command

_ESC = 27
# GTK's waitKeyEx returns X keysyms for special keys: 0xFF00..0xFFFF, Esc is 0xFF1B, keypad
# digits 0xFFB0..0xFFB9. Their low byte must not be read as a character (Left is 0xFF51,
# whose low byte is "Q"), which is also why letters are matched in lower case only:
# plain waitKey masks Left/Up/Right to "Q"/"R"/"S".
_KEYSYM_BASE = 0xFF00
_KEYSYM_ESC = 0xFF1B
_KEYSYM_KP_0 = 0xFFB0
# Arrow keys: GTK keysyms (waitKeyEx), Qt key codes (waitKeyEx; waitKey keeps their low byte,
# 0x12-0x15, control codes no one types) and Windows' virtual-key codes shifted left 16 bits.
_LEFT = {0xFF51, 0x01000012, 0x12, 0x250000}
_RIGHT = {0xFF53, 0x01000014, 0x14, 0x270000}


_NO_ACTION = Command(Action.NONE)

_CHAR_COMMANDS: dict[str, Command] = {
    "q": Command(Action.QUIT),
    " ": Command(Action.PAUSE),
    "s": Command(Action.SNAPSHOT),
    "r": Command(Action.RECORD),
    "0": Command(Action.UNLOCK),
    **{str(k): Command(Action.LOCK_RANK, k) for k in range(1, 6)},
    "m": Command(Action.NEXT_METHOD),
    "[": Command(Action.ALPHA_DOWN),
    "]": Command(Action.ALPHA_UP),
    "h": Command(Action.HELP),
    "c": Command(Action.CLEAR_BOX),
    "f": Command(Action.FULLSCREEN),
    "n": Command(Action.NEXT_IMAGE),
    "p": Command(Action.PREV_IMAGE),
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
    ("right-drag", "draw a box: how much of the heat is in it (or drag with Shift or Ctrl)"),
    ("c", "clear the box"),
    ("f", "fullscreen on / off"),
    ("n / p", "image folders: next / previous picture (or the arrow keys)"),
    ("h", "show / hide this help"),
)


def action_for_key(key: int) -> Command:
    """Maps a key code from ``cv2.waitKey`` or ``cv2.waitKeyEx`` to a command.

    Modifier bits above the low 16 (NumLock on some GTK builds adds 0x100000) are ignored.
    Letters count in lower case only; see the note on keysyms above.

    Args:
        key: the code; -1 (no key pressed) and any other negative code mean no action.

    Returns:
        The command (digits 1-5 lock a rank: ``Command(Action.LOCK_RANK, k)``); ``Action.NONE``
        for keys that do nothing.
    """
    if key < 0:
        return _NO_ACTION
    if key in _LEFT or (key & 0xFFFF) == 0xFF51:
        return Command(Action.PREV_IMAGE)
    if key in _RIGHT or (key & 0xFFFF) == 0xFF53:
        return Command(Action.NEXT_IMAGE)
    code = key & 0xFFFF
    if code >= _KEYSYM_BASE:
        if code == _KEYSYM_ESC:
            return Command(Action.QUIT)
        if _KEYSYM_KP_0 <= code <= _KEYSYM_KP_0 + 9:
            return _CHAR_COMMANDS.get(str(code - _KEYSYM_KP_0), _NO_ACTION)
        return _NO_ACTION
    code &= 0xFF
    if code == _ESC:
        return Command(Action.QUIT)
    return _CHAR_COMMANDS.get(chr(code), _NO_ACTION)
