from __future__ import annotations

import pytest

from livecam.keys import ALPHA_STEP, KEY_HELP, Action, KeyAction, action_for_key, apply_alpha


@pytest.mark.parametrize(
    "key, expected",
    [
        (ord("q"), KeyAction(Action.QUIT)),
        (27, KeyAction(Action.QUIT)),
        (ord(" "), KeyAction(Action.PAUSE)),
        (ord("s"), KeyAction(Action.SNAPSHOT)),
        (ord("r"), KeyAction(Action.RECORD)),
        (ord("0"), KeyAction(Action.UNLOCK)),
        (ord("m"), KeyAction(Action.NEXT_METHOD)),
        (ord("["), KeyAction(Action.ALPHA_DOWN)),
        (ord("]"), KeyAction(Action.ALPHA_UP)),
        (ord("h"), KeyAction(Action.HELP)),
    ],
)
def test_each_key_maps_to_its_action(key, expected):
    assert action_for_key(key) == expected


@pytest.mark.parametrize("rank", [1, 2, 3, 4, 5])
def test_digits_lock_the_kth_class(rank):
    assert action_for_key(ord(str(rank))) == KeyAction(Action.LOCK_CLASS, rank=rank)


@pytest.mark.parametrize("rank", [1, 5])
def test_keypad_digits_lock_too(rank):
    assert action_for_key(0xFFB0 + rank) == KeyAction(Action.LOCK_CLASS, rank=rank)  # GTK KP_1..KP_5


@pytest.mark.parametrize("modifiers", [0x100000, 0x10000, 0x200000])  # NumLock / Shift bits from GTK
def test_modifier_bits_are_ignored(modifiers):
    assert action_for_key(modifiers | ord("q")).action is Action.QUIT
    assert action_for_key(modifiers | ord("3")) == KeyAction(Action.LOCK_CLASS, rank=3)


def test_gtk_escape_keysym_quits():
    assert action_for_key(0xFF1B).action is Action.QUIT


@pytest.mark.parametrize(
    "key",
    [
        -1,
        -2,
        ord("x"),
        ord("6"),
        ord("Q"),  # what waitKey makes of GTK's Left arrow (0xFF51 & 0xFF)
        ord("R"),  # ... Up
        ord("S"),  # ... Right
        0xFF51,  # GTK Left arrow from waitKeyEx
        0xFF53,
        0x250000,  # Windows Left arrow from waitKeyEx
        0,
    ],
)
def test_other_keys_do_nothing(key):
    assert action_for_key(key) == KeyAction(Action.NONE)


def test_only_lock_has_a_rank():
    for key in b"qsrm[]h 0":
        assert action_for_key(key).rank is None


def test_key_help_lists_every_key_and_nothing_else():
    names = {name for keys, _ in KEY_HELP for name in keys.split(" / ")}
    assert names == {"q", "Esc", "space", "s", "r", "1-5", "0", "m", "[", "]", "h"}
    codes = {"Esc": [27], "space": [ord(" ")], "1-5": [ord(str(k)) for k in range(1, 6)]}
    for name in names:
        for code in codes[name] if name in codes else [ord(name)]:
            assert action_for_key(code).action is not Action.NONE, name
    assert all(what for _, what in KEY_HELP)


@pytest.mark.parametrize(
    "alpha, action, expected",
    [
        (0.4, Action.ALPHA_UP, 0.5),
        (0.4, Action.ALPHA_DOWN, 0.3),
        (1.0, Action.ALPHA_UP, 1.0),
        (0.95, Action.ALPHA_UP, 1.0),
        (0.0, Action.ALPHA_DOWN, 0.0),
        (0.05, Action.ALPHA_DOWN, 0.0),
        (0.4, Action.NONE, 0.4),
        (0.4, Action.PAUSE, 0.4),
        (1.5, Action.NONE, 1.0),
    ],
)
def test_apply_alpha_steps_and_clamps(alpha, action, expected):
    assert apply_alpha(alpha, KeyAction(action)) == pytest.approx(expected, abs=1e-9)


def test_alpha_presses_stay_on_the_grid():
    alpha = 0.0
    for _ in range(round(1 / ALPHA_STEP)):
        alpha = apply_alpha(alpha, KeyAction(Action.ALPHA_UP))
    assert alpha == 1.0
    for _ in range(3):
        alpha = apply_alpha(alpha, KeyAction(Action.ALPHA_DOWN))
    assert alpha == 0.7
