"""Inputs livecam cannot use get one clear sentence, exit code 2 and no traceback (issue 12).

Each case once made livecam print "unexpected error" (or silently do the wrong thing): odd file
names and class names, labels files that shift names onto the wrong class, models that are not
image classifiers, sizes that would not fit in memory, devices and pipes given as input. Most
run the real command in this process (``livecam.cli.main``); two run it as a child process,
where TensorFlow's own start-up lines would show.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import keras
import pytest

from conftest import VideoFactory
from helpers import read_frames
from livecam.cli import main, memory
from livecam.models import EXPLAINABLE, load_labels, load_model, spatial_layers, step_bytes_per_frame

PROCESS_TIMEOUT_S = 120
DEMO = ("--model", "demo", "--no-display", "--quiet")


def run(capsys, *args) -> tuple[int, str]:
    """``livecam ARGS`` in this process: (exit code, stderr)."""
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def assert_user_error(code: int, err: str, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("livecam: error: "), err
    assert "Traceback" not in err and "unexpected error" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# ---------------------------------------------------------------------- tiny models


def _conv_features(inputs):
    return keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, activation="relu", name="feat")(inputs))


def _classifier():
    inputs = keras.Input((32, 32, 3))
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(_conv_features(inputs)))


def _dense_only():
    inputs = keras.Input((32, 32, 3))
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(inputs)))


def _two_outputs():
    inputs = keras.Input((32, 32, 3))
    x = _conv_features(inputs)
    return keras.Model(inputs, [keras.layers.Dense(3, activation="softmax")(x), keras.layers.Dense(4)(x)])


def _two_inputs():
    a, b = keras.Input((32, 32, 3)), keras.Input((32, 32, 3))
    x = keras.layers.Concatenate()([_conv_features(a), keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(b))])
    return keras.Model([a, b], keras.layers.Dense(3)(x))


def _segmentation():
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Conv2D(5, 1, activation="softmax")(x))


def _one_unit_softmax():
    inputs = keras.Input((32, 32, 3))
    return keras.Model(inputs, keras.layers.Dense(1, activation="softmax")(_conv_features(inputs)))


def _with_lambda():
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Lambda(lambda t: t / 255.0)(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(_conv_features(x)))


MODELS = {
    "classifier": _classifier,
    "dense_only": _dense_only,
    "two_outputs": _two_outputs,
    "two_inputs": _two_inputs,
    "segmentation": _segmentation,
    "one_unit_softmax": _one_unit_softmax,
    "lambda": _with_lambda,
}


@pytest.fixture(scope="module")
def model_files(tmp_path_factory) -> dict:
    """Each of MODELS saved as a .keras file: name -> path."""
    folder = tmp_path_factory.mktemp("models")
    paths = {}
    for name, build in MODELS.items():
        paths[name] = folder / f"{name}.keras"
        build().save(paths[name])
    return paths


@pytest.fixture
def clip(tmp_path, make_video):
    return make_video(tmp_path / "clip.avi", 4, size=(64, 48))


# ---------------------------------------------------------------------- names and numbers


def test_folder_with_a_superscript_digit_in_a_name_plays_in_natural_order(capsys, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for index, name in enumerate(["1\u00b22.png", "2.png", "10.png"]):  # the natural order: 1, 2, 10
        cv2.imwrite(str(folder / name), VideoFactory.frame(index, (160, 120)))
    out = tmp_path / "out.mp4"
    code, err = run(capsys, "--source", folder, "--output", out, "--alpha", "0", "--no-hud", *DEMO)
    assert code == 0, err
    assert [VideoFactory.index_of(f) for f in read_frames(out)] == [0, 1, 2]


def test_class_that_is_a_unicode_digit_is_an_unknown_name(capsys, clip):
    code, err = run(capsys, "--source", clip, "--class", "\u00b2", *DEMO)
    assert_user_error(code, err, "Unknown class '\u00b2'")


def test_camera_index_too_big_for_opencv(capsys):
    code, err = run(capsys, "--source", "99999999999999999999", *DEMO)
    assert_user_error(code, err, "Camera index 99999999999999999999 is out of range: expected 0 to 99", "./99999999999999999999")


def test_synth_scene_bigger_than_8k_is_refused(capsys):
    code, err = run(capsys, "--source", "synth:20000x20000", *DEMO)
    assert_user_error(code, err, "Expected a synth size of at most 7680x4320, as for --resolution. Received: 20000x20000")


# ---------------------------------------------------------------------- labels files

LABELS = {
    "a class without a name": ({"0": "a", "1": "b", "5": []}, "gives class 5 no name ([])"),
    "a negative id": ({"-1": "a", "0": "b", "1": "c"}, "has the key '-1'; it must map class ids 0, 1, 2, ... to names"),
    "a gap": ({"0": "a", "1": "b", "3": "c"}, "has class ids up to 3 but none for 2;"),
    "one id twice": ({"0": "a", "1": "b", "01": "c"}, "names class 1 twice"),
    "a number for a name": ({"0": "a", "1": 7, "2": "c"}, "gives class 1 the name 7; names must be text"),
}


@pytest.mark.parametrize("case", list(LABELS))
def test_labels_json_that_would_misname_classes_is_refused(capsys, tmp_path, clip, model_files, case):
    data, expected = LABELS[case]
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps(data))
    code, err = run(capsys, "--source", clip, "--model", model_files["classifier"], "--labels", labels, "--no-display", "--quiet")
    assert_user_error(code, err, f"Labels file {str(labels)!r}", expected)


def test_labels_file_with_a_byte_order_mark(capsys, tmp_path, clip, model_files):
    labels = tmp_path / "labels.txt"
    labels.write_bytes("\ufeffcircle\nsquare\ntriangle\n".encode())
    assert load_labels(labels) == ("circle", "square", "triangle")
    as_json = tmp_path / "labels.json"
    as_json.write_bytes(b"\xef\xbb\xbf" + json.dumps(["circle", "square", "triangle"]).encode())
    assert load_labels(as_json)[0] == "circle"
    args = ["--source", clip, "--model", model_files["classifier"], "--labels", labels, "--class", "circle"]
    code, err = run(capsys, *args, "--no-display", "--quiet")
    assert code == 0, err


@pytest.mark.parametrize("kind", ["folder", "device"])
def test_labels_that_are_no_file_say_what_they_are(capsys, tmp_path, clip, model_files, kind):
    labels, expected = (tmp_path, "is a folder") if kind == "folder" else ("/dev/zero", "is a character device")
    code, err = run(capsys, "--source", clip, "--model", model_files["classifier"], "--labels", labels, "--no-display", "--quiet")
    assert_user_error(code, err, f"Labels file {str(labels)!r} {expected}; give a text file with one class name per line.")


# ---------------------------------------------------------------------- models livecam cannot explain

NOT_EXPLAINABLE = {
    "dense_only": "has no convolutional layer (no spatial feature map) to take a map from",
    "two_outputs": "has 2 outputs",
    "two_inputs": "has 2 inputs",
    "segmentation": "gives a score per pixel (batch, 32, 32, 5), as a segmentation model does, not one score per class",
}


def test_one_unit_softmax_cannot_explain_anything_but_one_sigmoid_unit_can(capsys, clip, model_files):
    """A softmax over one unit is 1.0 for every picture: no class to show, a zero gradient to map."""
    path = model_files["one_unit_softmax"]
    expected = (
        f"Model file {str(path)!r} ends in a softmax over one unit, which is always 1.0 whatever the picture and has no gradient"
    )
    code, err = run(capsys, "--source", clip, "--model", path, "--no-display", "--quiet")
    assert_user_error(
        code, err, expected, "so it cannot explain anything; for a binary classifier use one sigmoid unit or a softmax over two."
    )
    code, err = run(capsys, "layers", path)
    assert_user_error(code, err, expected)
    inputs = keras.Input((32, 32, 3))
    sigmoid = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(_conv_features(inputs)))
    assert load_model(sigmoid).class_names == ("class 0", "class 1")  # a binary classifier, as before


@pytest.mark.parametrize("name", list(NOT_EXPLAINABLE))
def test_model_that_is_not_an_image_classifier_says_why_and_what_is(capsys, clip, model_files, name):
    path = model_files[name]
    code, err = run(capsys, "--source", clip, "--model", path, "--no-display", "--quiet")
    assert_user_error(code, err, f"Model file {str(path)!r} {NOT_EXPLAINABLE[name]}; {EXPLAINABLE}.")
    code, err = run(capsys, "layers", path)
    assert_user_error(code, err, NOT_EXPLAINABLE[name])


def test_input_layer_is_no_target_layer(capsys, clip, model_files):
    path = model_files["classifier"]
    input_name = keras.models.load_model(path).layers[0].name
    code, err = run(capsys, "--source", clip, "--model", path, "--layer", input_name, "--no-display", "--quiet")
    assert_user_error(code, err, f"Layer {input_name!r} is the model's input", "pick a layer inside the network: feat.")
    code = main(["layers", str(path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert [line.split()[0] for line in out.splitlines()] == ["feat"]


def test_spatial_layers_of_a_nested_model_leave_out_every_input_layer():
    base = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3, name="inner_conv")], name="backbone")
    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(base(inputs))))
    assert [layer.name for layer in spatial_layers(model)] == ["inner_conv"]


def test_layers_command_takes_unsafe_model_load(capsys, model_files):
    code, err = run(capsys, "layers", model_files["lambda"])
    assert_user_error(code, err, "Lambda layer", "--unsafe-model-load")
    code = main(["layers", str(model_files["lambda"]), "--unsafe-model-load"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert ["feat", "30x30x4", "<- default target layer (without --layer)"] in [
        line.split(maxsplit=2) for line in out.splitlines()
    ]


@pytest.mark.slow
def test_in_a_real_process_the_answer_is_the_only_line(model_files):
    """TensorFlow's native start-up lines go to the same stderr: there must be none around the answer."""
    for argv, expected in [
        (["layers", model_files["two_outputs"]], "has 2 outputs"),
        (["--source", "synth:", "--model", model_files["segmentation"], "--no-display", "--quiet"], "gives a score per pixel"),
    ]:
        done = subprocess.run(
            [sys.executable, "-m", "livecam", *map(str, argv)], capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S
        )
        assert_user_error(done.returncode, done.stderr, expected)
        assert done.stdout == ""


# ---------------------------------------------------------------------- memory


def test_batch_and_input_size_that_would_not_fit_in_memory(capsys, clip, monkeypatch):
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 2_000_000_000)
    monkeypatch.setattr(memory, "activations_in_host_memory", lambda: True)  # as on a CPU, also where a GPU is
    code, err = run(capsys, "--source", clip, "--batch", "256", "--input-size", "1024", *DEMO)
    assert_user_error(code, err, "A batch of 256 frames at 1024x1024 with demo needs about ", "but only 2.0 GB is available")
    needed_gb = float(err.split("needs about ")[1].split(" GB")[0])
    fits = int(err.split("pass --batch ")[1].split()[0])
    assert needed_gb > 2.0 and 1 <= fits < 256
    assert abs(needed_gb / 256 * fits - 2.0) < needed_gb / 256, "the batch it suggests is the largest that fits"


def _conv_net(size: int | None):
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="early")(inputs)
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu", name="late")(x)
    return keras.Model(inputs, keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(x)))


def test_step_memory_follows_the_input_size_and_the_target_layer():
    model = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))
    # Measured for TensorFlow on a CPU (peak resident memory at batches of 16 and 64): 14.5 MiB a frame.
    assert 10 * 2**20 < step_bytes_per_frame(model, "out_relu", (224, 224)) < 20 * 2**20
    small, big = _conv_net(64), _conv_net(128)
    assert step_bytes_per_frame(big, "late", (128, 128)) == pytest.approx(
        4 * step_bytes_per_frame(small, "late", (64, 64)), rel=0.01
    )
    assert step_bytes_per_frame(small, "early", (64, 64)) > step_bytes_per_frame(small, "late", (64, 64))
    # A model for any input size: the sizes are unknown, so each layer counts at the full input size.
    assert step_bytes_per_frame(_conv_net(None), "late", (64, 64)) > step_bytes_per_frame(small, "late", (64, 64))


def test_available_memory_is_read_from_the_system():
    available = memory.available_memory_bytes()
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert available is not None and 0 < available <= total


# ---------------------------------------------------------------------- special files


def test_character_device_is_named_as_such(capsys):
    code, err = run(capsys, "--source", "/dev/zero", *DEMO)
    assert_user_error(code, err, "The input '/dev/zero' is a character device, not a video or image file")


def test_fifo_is_named_as_such(capsys, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    code, err = run(capsys, "--source", fifo, *DEMO)
    assert_user_error(code, err, f"The input {str(fifo)!r} is a named pipe (FIFO), not a video or image file")


def test_broken_link_names_its_missing_target(capsys, tmp_path):
    link = tmp_path / "clip.mp4"
    link.symlink_to(tmp_path / "gone.mp4")
    code, err = run(capsys, "--source", link, *DEMO)
    assert_user_error(code, err, f"is a link to {str(tmp_path / 'gone.mp4')!r}, which does not exist")
