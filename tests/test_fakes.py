"""Every fake in tests/fakes.py has what the protocol it stands for names, with the same call shapes.

A fake that lacks a member the code reads, or whose method takes other arguments than the real
one, would let a test pass against code that fails with the real part (or fail for the fake's
sake); these checks catch that drift when a protocol changes.
"""

from __future__ import annotations

import inspect

import cv2
import numpy as np
import pytest

import fakes
from livecam.render import Renderer
from livecam.sources import CaptureLike, FrameSource
from livecam.viewer.recorder import VideoWriter
from livecam.viewer.recording import Recorder
from livecam.viewer.sinks import FrameSink
from livecam.viewer.window import Window


def protocol_members(protocol: type) -> set[str]:
    """The names a ``typing.Protocol`` declares: its annotated attributes, properties and methods."""
    names = set()
    for klass in protocol.__mro__:
        if klass is object or not getattr(klass, "_is_protocol", False) or klass.__name__ in ("Protocol", "Generic"):
            continue
        names |= set(getattr(klass, "__annotations__", {}))
        names |= {name for name in vars(klass) if not name.startswith("_")}
    return names


def assert_same_call_shape(real, fake, what: str) -> None:
    """``fake`` takes the parameters ``real`` takes, by the same names and kinds, defaults where it has them."""
    real_params = [p for p in inspect.signature(real).parameters.values() if p.name != "self"]
    fake_params = {p.name: p for p in inspect.signature(fake).parameters.values() if p.name != "self"}
    if any(p.kind is p.VAR_KEYWORD for p in fake_params.values()):  # **kwargs: takes every keyword
        real_params = [p for p in real_params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    for param in real_params:
        assert param.name in fake_params, f"{what} lacks the parameter {param.name!r} of {real.__qualname__}"
        mine = fake_params[param.name]
        assert mine.kind == param.kind, f"{what}: {param.name!r} is {mine.kind.description}, not {param.kind.description}"
        if param.default is not param.empty:
            assert mine.default is not mine.empty, f"{what}: {param.name!r} needs a default, as in {real.__qualname__}"


def assert_fakes(protocol: type, fake: object) -> None:
    """``fake`` has every member of ``protocol``; its methods take what the protocol's take."""
    name = type(fake).__name__
    members = protocol_members(protocol)
    assert members, f"no members found in {protocol.__name__}"
    missing = sorted(m for m in members if not hasattr(fake, m))
    assert not missing, f"{name} lacks {missing} of {protocol.__name__}"
    for member in members:
        declared = inspect.getattr_static(protocol, member, None)
        if inspect.isfunction(declared):
            assert callable(getattr(fake, member)), f"{name}.{member} is not a method"
            assert_same_call_shape(declared, getattr(fake, member), f"{name}.{member}")


def frames(n: int = 2) -> list[np.ndarray]:
    return [np.zeros((32, 32, 3), np.uint8) for _ in range(n)]


def device() -> fakes.FakeDevice:
    return fakes.FakeDevice(lambda i, size: np.zeros((size[1], size[0], 3), np.uint8), size=(32, 32))


WINDOWS = {
    "FakeWindow": lambda: fakes.FakeWindow(),
    "CountingWindow": lambda: fakes.CountingWindow(),
    "ScriptedWindow": lambda: fakes.ScriptedWindow("q"),
    "PressesAtOnce": lambda: fakes.PressesAtOnce("q"),
    "PressesOnFirstPicture": lambda: fakes.PressesOnFirstPicture("q"),
    "StepWindow": lambda: fakes.StepWindow("n"),
    "PausingUser": lambda: fakes.PausingUser(fakes.FakeSource(frames()), device(), {}),
}
SOURCES = {
    "FakeSource": lambda: fakes.FakeSource(frames()),
    "SilentCamera": lambda: fakes.SilentCamera(),
}


@pytest.mark.parametrize("make", WINDOWS.values(), ids=WINDOWS.keys())
def test_fake_windows_are_windows(make):
    assert_fakes(Window, make())


@pytest.mark.parametrize("make", SOURCES.values(), ids=SOURCES.keys())
def test_fake_sources_are_frame_sources(make):
    source = make()
    assert_fakes(FrameSource, source)
    source.set_paused(True)
    assert source.paused, "paused says what set_paused set, as the protocol says"


def test_fake_captures_are_captures_and_the_flaky_one_wraps_opencvs():
    assert_fakes(CaptureLike, device().open())
    flaky = fakes.FlakyCapture(cv2.VideoCapture())
    for name in ("grab", "retrieve"):  # what it changes: methods of the real capture it wraps
        assert callable(getattr(cv2.VideoCapture, name)) and callable(getattr(flaky, name))
    assert flaky.isOpened() is False, "the rest is the real capture's"


def test_fake_recorders_are_recorders(tmp_path):
    assert_fakes(Recorder, fakes.ListRecorder(tmp_path / "list.mp4"))
    for fake in (
        fakes.FailsMidRun(VideoWriter(tmp_path / "fails.mp4", fps=10), fail_at=1),
        fakes.DiskFull(VideoWriter(tmp_path / "full.mp4", fps=10), n=1),
        fakes.DiskFillsUp(tmp_path / "fills.mp4", fps=10, full_after=1),
        fakes.AnotherProgramWritesThenDiskFills(tmp_path / "other.mp4", fps=10, full_after=1),
    ):
        assert_fakes(Recorder, fake)
        assert_same_call_shape(VideoWriter.write, fake.write, f"{type(fake).__name__}.write")
        fake.close()  # nothing written: no file, no encoder left behind


def test_the_per_frame_output_is_a_sink():
    assert_fakes(FrameSink, fakes.KeepPictures())


@pytest.mark.parametrize("spy", [fakes.SpyRenderer, fakes.DiskFillsUp], ids=["SpyRenderer", "DiskFillsUp"])
def test_spies_override_only_what_the_real_class_has(spy):
    """An override of a method the real class renamed would never be called: the spy would see nothing."""
    real = next(base for base in spy.__mro__[1:] if base.__module__.startswith("livecam."))
    for name, member in vars(spy).items():
        if inspect.isfunction(member) and not name.startswith("__"):
            assert hasattr(real, name), f"{spy.__name__}.{name} overrides nothing in {real.__name__}"
            assert_same_call_shape(getattr(real, name), member, f"{spy.__name__}.{name}")


def test_the_spy_notes_what_each_frame_was_drawn_with():
    spy = fakes.SpyRenderer(hud="none")
    spy.views(np.zeros((32, 32, 3), np.uint8), None, None, explains=("gradcam", 2, 0), map_id=7)
    spy.render(np.zeros((32, 32, 3), np.uint8), None, None)
    assert spy.huds == [None, None] and spy.statuses == ["", ""]
    assert spy.keys[0] == (("gradcam", 2, 0), 7) and spy.drawn == []
    assert isinstance(spy, Renderer)
