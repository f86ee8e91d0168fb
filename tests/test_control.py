"""Tests for livecam.viewer.control: one state per viewer, changed only through Controller.apply."""

from __future__ import annotations

import numpy as np
import pytest

from livecam.engine.methods import METHOD_NAMES
from livecam.errors import UserError
from livecam.viewer.control import ALPHA_STEP, Action, Command, Controller, Outcome, ViewerState, step_alpha
from livecam.viewer.keys import action_for_key

NAMES = ("cat", "dog", "fox", "owl")


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def controller(clock) -> Controller:
    return Controller(ViewerState(method="gradcam", alpha=0.4, colormap="jet"), class_names=NAMES, clock=clock)


def test_next_method_cycles_through_every_method_and_asks_for_a_new_map(controller):
    seen = [controller.state.method]
    for _ in METHOD_NAMES:
        outcome = controller.apply(Action.NEXT_METHOD)
        assert outcome.changed and outcome.reexplain and outcome.redraw and outcome.effect is None
        seen.append(controller.state.method)
    assert seen[:-1] == list(METHOD_NAMES) and seen[-1] == seen[0]
    assert controller.message() == f"method: {seen[-1]}"


def test_set_method_by_name_and_the_same_method_again_changes_nothing(controller):
    assert controller.apply("set_method", "gradcam++").reexplain
    assert controller.state.method == "gradcam++"
    assert controller.apply(Action.SET_METHOD, "gradcam++") == Outcome(Action.SET_METHOD)
    with pytest.raises(UserError, match=r"Expected method in .*Received: method='gradcm'"):
        controller.apply(Action.SET_METHOD, "gradcm")
    assert controller.state.method == "gradcam++"  # a refused command leaves the state alone


def test_lock_rank_takes_the_class_from_the_frame_on_screen(controller):
    topk = np.array([2, 0, 3])
    outcome = controller.apply(Action.LOCK_RANK, 2, topk_ids=topk)
    assert outcome.reexplain and controller.state.class_id == 0
    assert controller.message() == "locked to cat"
    assert not controller.apply(Action.LOCK_RANK, 4, topk_ids=topk).changed  # beyond the top-k: nothing
    assert not controller.apply(Action.LOCK_RANK, 1).changed  # no frame on screen: nothing
    assert controller.state.class_id == 0
    outcome = controller.apply(Action.UNLOCK)
    assert outcome.reexplain and controller.state.class_id is None
    assert controller.message() == "unlocked: the top class"
    assert not controller.apply(Action.UNLOCK).changed


def test_lock_class_by_id_and_null_unlocks(controller):
    assert controller.apply(Action.LOCK_CLASS, np.int64(3)).reexplain
    assert controller.state.class_id == 3 and controller.message() == "locked to owl"
    assert controller.apply(Action.LOCK_CLASS, None).changed
    assert controller.state.class_id is None
    for bad in (4, -1):
        with pytest.raises(UserError, match=rf"Expected class_id in \[0, 3\] or null\. Received: class_id={bad}"):
            controller.apply(Action.LOCK_CLASS, bad)
    for bad in (1.0, True, [1], {"id": 1}, float("nan")):
        with pytest.raises(UserError, match=r"Expected class_id to be a class id \(an integer\), a class name, or null"):
            controller.apply(Action.LOCK_CLASS, bad)
    with pytest.raises(UserError, match=r"in \[0, 3\]"):
        controller.apply(Action.LOCK_CLASS, 10**30)
    assert controller.state.class_id is None


def test_lock_class_by_name_or_id_text_as_the_class_option_takes_it(controller):
    controller.apply(Action.LOCK_CLASS, "Fox")
    assert controller.state.class_id == 2 and controller.message() == "locked to fox"
    controller.apply(Action.LOCK_CLASS, "1")
    assert controller.state.class_id == 1
    with pytest.raises(UserError, match=r"Unknown class 'owk': did you mean 'owl' \(3\)\?"):
        controller.apply(Action.LOCK_CLASS, "owk")
    assert controller.state.class_id == 1


@pytest.mark.parametrize("bad", [None, 3, ["gradcam"], {"a": 1}, True])
def test_set_method_refuses_what_is_not_a_name(controller, bad):
    with pytest.raises(UserError, match=r"Expected method to be a name, one of gradcam"):
        controller.apply(Action.SET_METHOD, bad)
    assert controller.state.method == "gradcam"


def test_apply_all_applies_every_command_or_none(controller, clock):
    with pytest.raises(UserError, match=r"class_id"):
        controller.apply_all([Command(Action.SET_METHOD, "layercam"), Command(Action.LOCK_CLASS, 9)])
    assert (controller.state.method, controller.state.class_id, controller.message()) == ("gradcam", None, "")
    outcomes = controller.apply_all([Command(Action.SET_METHOD, "layercam"), Command(Action.LOCK_CLASS, "dog")])
    assert [o.changed for o in outcomes] == [True, True]
    assert (controller.state.method, controller.state.class_id) == ("layercam", 1)


@pytest.mark.parametrize(
    "alpha, steps, expected",
    [(0.4, 1, 0.5), (0.4, -1, 0.3), (1.0, 1, 1.0), (0.95, 1, 1.0), (0.0, -1, 0.0), (0.05, -1, 0.0)],
)
def test_step_alpha_steps_and_clamps(alpha, steps, expected):
    assert step_alpha(alpha, steps) == pytest.approx(expected, abs=1e-9)


def test_alpha_presses_stay_on_the_grid(controller):
    controller.apply(Action.SET_ALPHA, 0)
    for _ in range(round(1 / ALPHA_STEP)):
        assert controller.apply(Action.ALPHA_UP).redraw
    assert controller.state.alpha == 1.0
    assert not controller.apply(Action.ALPHA_UP).changed  # clamped: nothing to redraw
    for _ in range(3):
        controller.apply(Action.ALPHA_DOWN)
    assert controller.state.alpha == 0.7


@pytest.mark.parametrize("bad", [1.7, -0.1, float("nan"), "0.5", None, True])
def test_set_alpha_refuses_what_is_not_an_opacity(controller, bad):
    with pytest.raises(UserError, match=r"Expected alpha in \[0, 1\]\. Received: alpha="):
        controller.apply(Action.SET_ALPHA, bad)
    assert controller.state.alpha == 0.4


def test_set_colormap_validates_and_normalises_the_name(controller):
    outcome = controller.apply(Action.SET_COLORMAP, " Turbo ")
    assert outcome.redraw and not outcome.reexplain and controller.state.colormap == "turbo"
    with pytest.raises(UserError, match=r"Unknown colormap 'jte'\. Did you mean 'jet'"):
        controller.apply(Action.SET_COLORMAP, "jte")
    with pytest.raises(UserError, match=r"Expected colormap to be a name"):
        controller.apply(Action.SET_COLORMAP, 2)


def test_toggles_and_set_paused(controller):
    assert controller.apply(Action.PAUSE).changed and controller.state.paused
    assert not controller.apply(Action.SET_PAUSED, True).changed
    assert controller.apply(Action.SET_PAUSED, False).changed and not controller.state.paused
    with pytest.raises(UserError, match=r"Expected paused to be true or false"):
        controller.apply(Action.SET_PAUSED, "yes")
    assert controller.apply(Action.HELP).redraw and controller.state.help_shown
    assert controller.apply(Action.HELP).changed and not controller.state.help_shown


def test_fullscreen_toggles(controller):
    assert not controller.state.fullscreen
    assert controller.apply(Action.FULLSCREEN).changed and controller.state.fullscreen
    assert controller.apply(Action.FULLSCREEN).changed and not controller.state.fullscreen


@pytest.mark.parametrize("action", [Action.SNAPSHOT, Action.RECORD, Action.QUIT, Action.NEXT_IMAGE, Action.PREV_IMAGE])
def test_effects_are_left_to_the_front_end(controller, action):
    before = ViewerState(**vars(controller.state))
    outcome = controller.apply(action)
    assert outcome.effect is action and not outcome.changed
    assert controller.state == before  # recording is set by whoever records, once it really does


def test_unknown_actions_are_refused_with_the_choices(controller):
    with pytest.raises(UserError, match=r"Unknown action 'explode'\. Expected one of: quit, pause, "):
        controller.apply("explode")
    assert controller.apply(Action.NONE) == Outcome(Action.NONE)


def test_messages_expire_on_the_controllers_clock(controller, clock):
    controller.say("snapshot saved: a.png", seconds=2)
    assert controller.message() == "snapshot saved: a.png"
    clock.t += 1.9
    assert controller.message() == "snapshot saved: a.png"
    clock.t += 0.2
    assert controller.message() == ""


def test_keys_drive_the_same_controller(controller):
    """The keyboard is only an adapter: the key's command, applied, is the whole behaviour."""
    topk = [1, 2, 0]
    for key in " m2]h":
        command = action_for_key(ord(key))
        controller.apply(command.action, command.arg, topk_ids=topk)
    state = controller.state
    assert (state.paused, state.method, state.class_id, state.alpha, state.help_shown) == (True, "gradcam++", 2, 0.5, True)
