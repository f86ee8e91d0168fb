"""livecam.demo: the synthetic scenes, and the shipped model's accuracy and heatmap quality."""

from __future__ import annotations

import socket
import subprocess
import sys
from importlib import resources

import numpy as np
import pytest

from livecam.demo import CLASS_NAMES, AnimatedScene, make_scene

HELD_OUT_START = 500_000  # the training script only uses seeds below this
N_HELD_OUT = 200
TOLERANCE_PX = 15  # pointing game, as in scripts/eval_localization.py


# ---------------------------------------------------------------- still scenes


@pytest.mark.parametrize("size", [(224, 224), (320, 240), (200, 300)])
def test_make_scene_returns_frame_class_and_box_inside_the_frame(size):
    width, height = size
    for seed in range(20):
        frame_bgr, class_id, box = make_scene(seed, size)
        assert frame_bgr.dtype == np.uint8 and frame_bgr.shape == (height, width, 3)
        assert type(class_id) is int and 0 <= class_id < len(CLASS_NAMES)
        assert isinstance(box, tuple) and len(box) == 4 and all(type(v) is int for v in box)
        x0, y0, x1, y1 = box
        assert 0 <= x0 < x1 < width and 0 <= y0 < y1 < height


def test_make_scene_is_deterministic_in_seed():
    first, again, other = make_scene(123), make_scene(123), make_scene(124)
    np.testing.assert_array_equal(first[0], again[0])
    assert first[1:] == again[1:]
    assert not np.array_equal(first[0], other[0])


def test_make_scene_object_is_in_its_box():
    # The object is drawn last but for a little clutter, so the box holds more edges than a
    # same-sized patch elsewhere, on average over scenes.
    inside, outside = [], []
    for seed in range(40):
        frame_bgr, _, (x0, y0, x1, y1) = make_scene(seed)
        edges = np.abs(np.diff(frame_bgr.astype(np.int16), axis=1)).sum(axis=2) > 60
        inside.append(edges[y0:y1, x0:x1].mean())
        outside.append(np.delete(edges, np.s_[y0:y1], axis=0).mean())
    assert np.mean(inside) > 2 * np.mean(outside)


@pytest.mark.slow
def test_every_class_appears_in_a_few_hundred_seeds():
    counts = np.bincount([make_scene(seed)[1] for seed in range(300)], minlength=len(CLASS_NAMES))
    assert len(counts) == len(CLASS_NAMES) >= 6
    assert counts.min() >= 300 / len(CLASS_NAMES) / 2, counts


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"seed": 1, "size": (16, 16)}, "size"),
        ({"seed": 1, "size": (224,)}, "size"),
    ],
)
def test_make_scene_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_scene(**kwargs)


@pytest.mark.subprocess
def test_importing_the_scenes_does_not_import_tensorflow():
    code = "import sys, livecam.demo; livecam.demo.make_scene(0); print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# ---------------------------------------------------------------- animation


def test_animated_frames_are_deterministic_in_any_order():
    scene = AnimatedScene(seed=5)
    later, early = scene.frame(400), scene.frame(3)  # out of order, across episodes
    fresh = AnimatedScene(seed=5)
    np.testing.assert_array_equal(early, fresh.frame(3))
    np.testing.assert_array_equal(later, fresh.frame(400))
    assert early.dtype == np.uint8 and early.shape == (480, 640, 3)
    assert not np.array_equal(early, AnimatedScene(seed=6).frame(3))
    assert fresh.frame(10**7).shape == (480, 640, 3)  # hours in: no drift, no deep recursion


def test_animated_frame_is_a_fresh_array():
    scene = AnimatedScene(size=(160, 120))
    frame = scene.frame(10)
    frame[:] = 0
    assert scene.frame(10).any()
    assert scene.frame(10).shape == (120, 160, 3)


def test_animated_objects_move_enter_leave_and_change_class():
    fps, period_s = 10, 2.0
    scene = AnimatedScene(size=(320, 240), fps=fps, seed=1, period_s=period_s)
    per_episode = round(fps * period_s)
    n_episodes = 2 * len(CLASS_NAMES)
    truths = [scene.truth(i) for i in range(per_episode * n_episodes)]
    assert truths[0] is None  # each object starts off screen ...
    assert truths[per_episode - 1] is None  # ... and leaves
    middle = [truths[e * per_episode + per_episode // 2] for e in range(n_episodes)]
    assert all(t is not None for t in middle)
    classes = [t[0] for t in middle]
    assert all(a != b for a, b in zip(classes, classes[1:]))
    assert set(classes[: len(CLASS_NAMES)]) == set(range(len(CLASS_NAMES)))
    boxes = [t[1] for t in truths if t is not None]
    assert all(0 <= x0 < x1 < 320 and 0 <= y0 < y1 < 240 for x0, y0, x1, y1 in boxes)
    assert len(set(boxes)) > len(boxes) // 2  # it moves
    assert not np.array_equal(scene.frame(5), scene.frame(6))


# ---------------------------------------------------------------- the shipped model


@pytest.fixture(scope="module")
def engine():
    from livecam import CamEngine

    return CamEngine("demo", method="gradcam")


def test_demo_model_loads_offline_from_package_data(monkeypatch):
    import keras

    from livecam.models.zoo import load_demo_model

    def no_network(*args, **kwargs):
        raise OSError("the demo must load without a network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    loaded = load_demo_model()
    model = loaded.model
    assert loaded.name == "demo" and loaded.class_names == CLASS_NAMES
    assert loaded.input_size == tuple(model.inputs[0].shape[1:3])
    assert model.outputs[0].shape[-1] == len(CLASS_NAMES)
    assert loaded.default_layer in [layer.name for layer in model.layers]
    assert any(isinstance(layer, keras.layers.Rescaling) for layer in model.layers)  # fed 0..255
    size_bytes = resources.files("livecam.demo").joinpath("model.keras").stat().st_size
    assert size_bytes <= 2 * 1024 * 1024


@pytest.mark.slow
def test_demo_model_accuracy_and_gradcam_pointing_game_on_held_out_scenes(engine):
    from livecam.render import upsample_cam

    scenes = [make_scene(seed) for seed in range(HELD_OUT_START, HELD_OUT_START + N_HELD_OUT)]
    frames_bgr = np.stack([frame for frame, _, _ in scenes])
    class_ids = np.array([class_id for _, class_id, _ in scenes])

    result = engine(frames_bgr, class_id=class_ids)  # explain the true class, as Zhang et al.
    accuracy = np.mean(np.argmax(result.probs, axis=1) == class_ids)
    assert np.array_equal(result.class_ids, class_ids)
    hits = 0
    for cam, (frame_bgr, _, (x0, y0, x1, y1)) in zip(result.cam, scenes):
        cam_frame = upsample_cam(cam, (frame_bgr.shape[1], frame_bgr.shape[0]))
        y, x = np.unravel_index(np.argmax(cam_frame), cam_frame.shape)
        hits += x0 - TOLERANCE_PX <= x <= x1 + TOLERANCE_PX and y0 - TOLERANCE_PX <= y <= y1 + TOLERANCE_PX
    assert accuracy >= 0.97, f"top-1 accuracy {accuracy:.1%} on {N_HELD_OUT} held-out scenes"
    assert hits / N_HELD_OUT >= 0.95, f"Grad-CAM pointing game {hits / N_HELD_OUT:.1%} on {N_HELD_OUT} held-out scenes"


@pytest.mark.slow
def test_demo_model_names_the_object_in_the_animated_scene(engine):
    # What `livecam --demo` shows: a 640x480 frame squashed to the model's square input.
    scene = AnimatedScene(seed=0)
    per_episode = scene.frames_per_period
    indices = [e * per_episode + per_episode // 2 for e in range(2 * len(CLASS_NAMES))]
    frames_bgr = np.stack([scene.frame(i) for i in indices])
    truth = np.array([scene.truth(i)[0] for i in indices])
    result = engine(frames_bgr)
    assert np.sum(result.class_ids == truth) >= len(indices) - 1, (result.class_ids, truth)
