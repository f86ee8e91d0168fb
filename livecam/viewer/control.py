"""What a viewer's user steers, and the one way to steer it.

Each viewer (the OpenCV window, each browser connection) has a ``ViewerState`` and a
``Controller``. Front-ends only translate: the keyboard turns key codes into a ``Command``
(``livecam.viewer.keys``), the browser turns JSON messages into the same commands, and both hand them
to ``Controller.apply``. The controller changes the state and says what the front-end must do
next (explain the frame again, draw it again, take a snapshot, start or stop recording, quit);
it does no I/O itself, since a snapshot in the window is a file and in the browser a download.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from livecam.engine.compare import check_compare
from livecam.engine.methods import METHOD_NAMES, check_method
from livecam.errors import UserError
from livecam.models import class_index
from livecam.render import colormap_id
from livecam.trust.region import RegionBox, parse_box
from livecam.trust.scale import check_normalize

ALPHA_STEP = 0.1
ALPHA_DECIMALS = 6  # step_alpha rounds to this many decimals (the page reads it from /api/config)
MESSAGE_S = 3.0  # how long a message stays on screen


class Action(str, Enum):
    """What a user can ask a viewer to do. The value is the name a browser sends."""

    QUIT = "quit"
    PAUSE = "pause"  # toggle
    SET_PAUSED = "set_paused"  # arg: bool
    SNAPSHOT = "snapshot"
    RECORD = "record"  # toggle
    LOCK_RANK = "lock_rank"  # arg: 1 = the most probable class of the frame on screen
    LOCK_CLASS = "lock_class"  # arg: a class id, or a name as --class takes it ("ring", "3")
    UNLOCK = "unlock"
    SET_CONTRAST = "set_contrast"  # arg: a class id or name ("why the explained class and not this one"), or None
    SET_COMPARE = "set_compare"  # arg: "classes", "methods", or None (off)
    NEXT_METHOD = "next_method"
    SET_METHOD = "set_method"  # arg: a method name
    ALPHA_DOWN = "alpha_down"
    ALPHA_UP = "alpha_up"
    SET_ALPHA = "set_alpha"  # arg: opacity in [0, 1]
    SET_COLORMAP = "set_colormap"  # arg: a colormap name such as "jet"
    SET_BOX = "set_box"  # arg: [x, y, w, h] in frame pixels or fractions (``livecam.trust.region``), or None
    CLEAR_BOX = "clear_box"
    SET_NORMALIZE = "set_normalize"  # arg: "frame" or "session" (``livecam.trust.scale``)
    HELP = "help"  # toggle
    FULLSCREEN = "fullscreen"  # toggle
    NEXT_IMAGE = "next_image"  # image folders in a window: the next picture
    PREV_IMAGE = "prev_image"  # ... and the one before
    NONE = "none"


@dataclass(frozen=True)
class Command:
    """An action and its argument, as an adapter (keys, browser messages) produces it."""

    action: Action
    arg: Any = None


@dataclass
class ViewerState:
    """Everything one viewer's user steers; changed only through ``Controller.apply``.

    The stage threads read it on every frame (each field is read whole, so no lock is needed).

    Attributes:
        method: the CAM method the next frames are explained with.
        class_id: the locked class, or None to explain each frame's top class.
        contrast_id: a class B: each map explains "why the class and not B" (z_A - z_B); None: none.
        compare: "classes" (the top 3 side by side), "methods" (each method side by side) or None.
        paused: the picture is frozen.
        alpha: heat-map opacity in [0, 1].
        colormap: the heat map's colormap name.
        help_shown: the key list is drawn.
        fullscreen: the window fills the screen.
        recording: a recording is running (set by the front-end that records).
        box: the region whose share of the heat is read out (``livecam.trust.region``), or None.
        normalize: the maps' scale, "frame" (each its own maximum) or "session" (``livecam.trust.scale``).
        message: a transient message, shown until ``message_until_s`` (on the controller's clock).
    """

    method: str
    alpha: float
    colormap: str
    class_id: int | None = None
    contrast_id: int | None = None
    compare: str | None = None
    paused: bool = False
    help_shown: bool = False
    fullscreen: bool = False
    recording: bool = False
    box: RegionBox | None = None
    normalize: str = "frame"
    message: str = ""
    message_until_s: float = 0.0


@dataclass(frozen=True)
class Outcome:
    """What applying a command did, and what the front-end has to do about it.

    Attributes:
        action: the action applied.
        changed: the state changed.
        reexplain: the method, the locked class, the contrast or the comparison changed: a frozen
            frame must be explained again.
        redraw: the picture changed (opacity, colormap, help, a message, ...): draw it again.
        effect: ``SNAPSHOT``, ``RECORD``, ``QUIT``, ``NEXT_IMAGE`` or ``PREV_IMAGE`` for the
            front-end to carry out; else None.
    """

    action: Action
    changed: bool = False
    reexplain: bool = False
    redraw: bool = False
    effect: Action | None = None


_EFFECTS = {Action.SNAPSHOT, Action.RECORD, Action.QUIT, Action.NEXT_IMAGE, Action.PREV_IMAGE}


class Controller:
    """Applies commands to one viewer's state.

    Args:
        state: the viewer's state.
        class_names: the model's class names (for ids, and for messages such as "locked to ...").
        clock: seconds, for how long messages last; ``time.monotonic`` by default.
    """

    def __init__(self, state: ViewerState, *, class_names: Sequence[str], clock: Callable[[], float] = time.monotonic) -> None:
        self.state = state
        self.class_names = tuple(class_names)
        self._clock = clock

    def apply(self, action: Action | str, arg: Any = None, *, topk_ids: Sequence[int] = ()) -> Outcome:
        """Applies one action.

        Args:
            action: an ``Action`` or its value (e.g. "set_method").
            arg: the action's argument (see ``Action``); ignored by actions that take none.
            topk_ids: the top classes of the frame on screen, most probable first (for ``LOCK_RANK``).

        Returns:
            What happened. A rank beyond ``topk_ids`` does nothing.

        Raises:
            UserError: an unknown action or a bad argument (a browser's typo; keys send none).
        """
        action = _check_action(action)
        s = self.state
        if action in _EFFECTS:
            return Outcome(action, redraw=action in (Action.SNAPSHOT, Action.RECORD), effect=action)
        if action is Action.PAUSE:
            return self._set(action, "paused", not s.paused, redraw=True)
        if action is Action.SET_PAUSED:
            return self._set(action, "paused", _check_bool("paused", arg), redraw=True)
        if action is Action.HELP:
            return self._set(action, "help_shown", not s.help_shown, redraw=True)
        if action is Action.FULLSCREEN:
            return self._set(action, "fullscreen", not s.fullscreen)
        if action is Action.ALPHA_UP:
            return self._set(action, "alpha", step_alpha(s.alpha, +1), redraw=True)
        if action is Action.ALPHA_DOWN:
            return self._set(action, "alpha", step_alpha(s.alpha, -1), redraw=True)
        if action is Action.SET_ALPHA:
            return self._set(action, "alpha", _check_alpha(arg), redraw=True)
        if action is Action.SET_COLORMAP:
            return self._set(action, "colormap", _check_colormap(arg), redraw=True)
        if action is Action.SET_BOX:
            return self._set(action, "box", parse_box(arg), redraw=True)
        if action is Action.CLEAR_BOX:
            return self._set(action, "box", None, redraw=True)
        if action is Action.SET_NORMALIZE:
            outcome = self._set(action, "normalize", check_normalize(arg), redraw=True)
            if outcome.changed:
                self.say(f"scale: {s.normalize}")
            return outcome
        if action is Action.NEXT_METHOD:
            return self._set_method(action, METHOD_NAMES[(METHOD_NAMES.index(s.method) + 1) % len(METHOD_NAMES)])
        if action is Action.SET_METHOD:
            return self._set_method(action, check_method(arg))
        if action is Action.LOCK_RANK:
            rank = _check_int("rank", arg)
            if not 1 <= rank <= len(topk_ids):
                return Outcome(action)
            return self._lock(action, int(topk_ids[rank - 1]))
        if action is Action.LOCK_CLASS:
            if arg is None:
                return self._lock(action, None)
            return self._lock(action, self._class_arg("class_id", arg))
        if action is Action.UNLOCK:
            return self._lock(action, None)
        if action is Action.SET_CONTRAST:
            return self._set_contrast(action, None if arg is None else self._class_arg("contrast", arg))
        if action is Action.SET_COMPARE:
            outcome = self._set(action, "compare", check_compare(arg), reexplain=True)
            if outcome.changed:
                self.say(f"side by side: {s.compare}" if s.compare else "side by side: off")
            return outcome
        return Outcome(action)  # Action.NONE

    def apply_all(self, commands: Sequence[Command]) -> list[Outcome]:
        """Applies every command, or none when one of them is refused (one message, one change).

        The commands are tried first on a copy of the state, so a refused one leaves the state
        as it was, and the stage threads that read it never see half of a change.

        Raises:
            UserError: the first command refused.
        """
        trial = Controller(dataclasses.replace(self.state), class_names=self.class_names, clock=self._clock)
        for command in commands:
            trial.apply(command.action, command.arg)
        return [self.apply(command.action, command.arg) for command in commands]

    def say(self, text: str, seconds: float = MESSAGE_S) -> None:
        """Shows ``text`` for ``seconds``."""
        self.state.message = text
        self.state.message_until_s = self._clock() + seconds

    def message(self) -> str:
        """The message to show now ("" once it has expired)."""
        return self.state.message if self._clock() < self.state.message_until_s else ""

    # ------------------------------------------------------------------ helpers

    def _set(self, action: Action, name: str, value: Any, *, redraw: bool = False, reexplain: bool = False) -> Outcome:
        if getattr(self.state, name) == value:
            return Outcome(action)
        setattr(self.state, name, value)
        return Outcome(action, changed=True, reexplain=reexplain, redraw=redraw or reexplain)

    def _set_method(self, action: Action, method: str) -> Outcome:
        outcome = self._set(action, "method", method, reexplain=True)
        if outcome.changed:
            self.say(f"method: {method}")
        return outcome

    def _class_arg(self, name: str, arg: Any) -> int:
        """A class id from an id, or a name or id as --class reads it (close matches for typos)."""
        if isinstance(arg, str):
            return class_index(self.class_names, arg)
        class_id = _check_int(name, arg, expected="a class id (an integer), a class name, or null")
        if not 0 <= class_id < len(self.class_names):
            raise UserError(f"Expected {name} in [0, {len(self.class_names) - 1}] or null. Received: {name}={arg!r}")
        return class_id

    def _set_contrast(self, action: Action, class_id: int | None) -> Outcome:
        outcome = self._set(action, "contrast_id", class_id, reexplain=True)
        if outcome.changed:
            self.say(f"contrast: not {self.class_names[class_id]}" if class_id is not None else "contrast: off")
        return outcome

    def _lock(self, action: Action, class_id: int | None) -> Outcome:
        outcome = self._set(action, "class_id", class_id, reexplain=True)
        if outcome.changed:
            self.say(f"locked to {self.class_names[class_id]}" if class_id is not None else "unlocked: the top class")
        return outcome


def step_alpha(alpha: float, steps: int) -> float:
    """The opacity ``steps`` presses of ``ALPHA_STEP`` away, kept in [0, 1] and on the 0.1 grid."""
    # Rounding keeps repeated presses on the grid (0.1 + 0.2 != 0.3 in floating point).
    return min(1.0, max(0.0, round(alpha + steps * ALPHA_STEP, ALPHA_DECIMALS)))


def _check_action(action: Action | str) -> Action:
    try:
        return Action(action)
    except ValueError:
        names = ", ".join(a.value for a in Action if a is not Action.NONE)
        raise UserError(f"Unknown action {action!r}. Expected one of: {names}.") from None


def _check_int(name: str, value: Any, expected: str = "an integer") -> int:
    try:
        if isinstance(value, bool):
            raise TypeError
        return operator.index(value)  # ints, numpy ints; not floats
    except TypeError:
        raise UserError(f"Expected {name} to be {expected}. Received: {name}={value!r}") from None


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise UserError(f"Expected {name} to be true or false. Received: {name}={value!r}")
    return value


def _check_alpha(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 <= value <= 1:
        raise UserError(f"Expected alpha in [0, 1]. Received: alpha={value!r}")
    return float(value)


def _check_colormap(value: Any) -> str:
    if not isinstance(value, str):
        raise UserError(f"Expected colormap to be a name such as 'jet'. Received: colormap={value!r}")
    colormap_id(value)  # raises a UserError naming the choices
    return value.strip().lower().removeprefix("colormap_")
