from __future__ import annotations

import pytest

from livecam.viewer.control import Action, Command
from livecam.viewer.keys import KEY_HELP, action_for_key


@pytest.mark.parametrize(
    "key, expected",
    [
        (ord("q"), Command(Action.QUIT)),
        (27, Command(Action.QUIT)),
        (ord(" "), Command(Action.PAUSE)),
        (ord("s"), Command(Action.SNAPSHOT)),
        (ord("r"), Command(Action.RECORD)),
        (ord("0"), Command(Action.UNLOCK)),
        (ord("m"), Command(Action.NEXT_METHOD)),
        (ord("["), Command(Action.ALPHA_DOWN)),
        (ord("]"), Command(Action.ALPHA_UP)),
        (ord("h"), Command(Action.HELP)),
    ],
)
def test_each_key_maps_to_its_action(key, expected):
    assert action_for_key(key) == expected


@pytest.mark.parametrize("rank", [1, 2, 3, 4, 5])
def test_digits_lock_the_kth_class(rank):
    assert action_for_key(ord(str(rank))) == Command(Action.LOCK_RANK, rank)


@pytest.mark.parametrize("rank", [1, 5])
def test_keypad_digits_lock_too(rank):
    assert action_for_key(0xFFB0 + rank) == Command(Action.LOCK_RANK, rank)  # GTK KP_1..KP_5


@pytest.mark.parametrize("modifiers", [0x100000, 0x10000, 0x200000])  # NumLock / Shift bits from GTK
def test_modifier_bits_are_ignored(modifiers):
    assert action_for_key(modifiers | ord("q")).action is Action.QUIT
    assert action_for_key(modifiers | ord("3")) == Command(Action.LOCK_RANK, 3)


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
        0xFF52,  # GTK Up arrow from waitKeyEx
        0x260000,  # Windows Up arrow from waitKeyEx
        0,
    ],
)
def test_other_keys_do_nothing(key):
    assert action_for_key(key) == Command(Action.NONE)


@pytest.mark.parametrize(
    "key, action",
    [
        (ord("n"), Action.NEXT_IMAGE),
        (ord("p"), Action.PREV_IMAGE),
        (0xFF53, Action.NEXT_IMAGE),  # GTK Right, waitKeyEx
        (0xFF51, Action.PREV_IMAGE),  # GTK Left
        (0x01000014, Action.NEXT_IMAGE),  # Qt Right, waitKeyEx
        (0x14, Action.NEXT_IMAGE),  # ... and what waitKey keeps of it
        (0x01000012, Action.PREV_IMAGE),  # Qt Left
        (0x12, Action.PREV_IMAGE),
        (0x270000, Action.NEXT_IMAGE),  # Windows Right
        (0x250000, Action.PREV_IMAGE),  # Windows Left
        (0x100000 | 0xFF53, Action.NEXT_IMAGE),  # with NumLock's modifier bit
        (ord("f"), Action.FULLSCREEN),
    ],
)
def test_arrows_and_letters_step_through_images_and_f_is_fullscreen(key, action):
    assert action_for_key(key) == Command(action)


def test_only_lock_has_an_argument():
    for key in b"qsrm[]h 0":
        assert action_for_key(key).arg is None


def test_key_help_lists_every_key_and_nothing_else():
    names = {name for keys, _ in KEY_HELP if keys != "right-drag" for name in keys.split(" / ")}  # the mouse's row
    assert names == {"q", "Esc", "space", "s", "r", "1-5", "0", "m", "[", "]", "h", "c", "f", "n", "p"}
    codes = {"Esc": [27], "space": [ord(" ")], "1-5": [ord(str(k)) for k in range(1, 6)]}
    for name in names:
        for code in codes[name] if name in codes else [ord(name)]:
            assert action_for_key(code).action is not Action.NONE, name
    assert all(what for _, what in KEY_HELP)
