"""Tests for livecam.models: the zoo, the target layer, model files, labels, offline weights, and what the command says of models and labels it cannot use."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from helpers import assert_user_error, run
from livecam import CamEngine
from livecam.cli import main
from livecam.models import (
    EXPLAINABLE,
    ZOO,
    find_target_layer,
    imagenet_class_names,
    load_labels,
    load_model,
    spatial_layers,
    step_bytes_per_frame,
)
from tiny_models import conv_features

# The automatic rule (last layer with a spatial 4-D output) on each zoo model.
AUTO_LAYER = {
    "mobilenet_v2": "out_relu",
    "resnet50": "conv5_block3_out",
    "vgg16": "block5_pool",
    "efficientnet_b0": "top_activation",
    "inception_v3": "mixed10",
    "densenet121": "relu",
    "convnext_tiny": "convnext_tiny_stage_3_block_2_identity",
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_model_builds_offline_and_its_layers_are_right(name):
    entry = ZOO[name]
    model = getattr(keras.applications, entry.builder)(weights=None, input_shape=(*entry.input_size, 3))
    auto = find_target_layer(model)
    assert len(auto.output.shape) == 4 and auto.output.shape[1] * auto.output.shape[2] > 1
    if name == "mobilenet_v3_large":  # auto-numbered names: not the 1x1 logits conv
        assert auto.name.startswith("activation") and tuple(auto.output.shape[1:3]) == (7, 7)
    else:
        assert auto.name == AUTO_LAYER[name]
    default = find_target_layer(model, entry.default_layer)
    assert default.output.shape[1] >= 7
    keras.backend.clear_session()


def test_imagenet_class_names_are_shipped():
    names = imagenet_class_names()
    assert len(names) == 1000
    assert names[0] == "tench" and names[207] == "Golden Retriever"


@pytest.mark.slow
def test_nested_transfer_learning_model_picks_the_backbone_layer():
    base = keras.applications.MobileNetV2(weights=None, include_top=False, input_shape=(96, 96, 3))
    inputs = keras.Input((96, 96, 3))
    x = keras.layers.GlobalAveragePooling2D()(base(inputs, training=False))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    engine = CamEngine(model, preprocess="mobilenet_v2")
    assert engine.layer_name == "out_relu"
    result = engine(np.random.default_rng(0).integers(0, 256, (2, 120, 160, 3), dtype=np.uint8))
    assert result.cam.shape == (2, 3, 3) and np.all(np.isfinite(result.cam))


@pytest.mark.slow
def test_offline_imagenet_download_fails_with_one_clear_sentence(monkeypatch, capsys):
    from keras.src.utils import file_utils

    url = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5"

    def offline(*args, **kwargs):
        raise Exception(f"URL fetch failure on {url}: None -- [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(ValueError) as info:
        load_model("mobilenet_v2", weights="imagenet")
    message = str(info.value)
    assert "Could not download the ImageNet weights for mobilenet_v2" in message
    assert url in message and "~/.keras/models/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5" in message
    # In the caller's words: Python's keyword here, the command line's flag from the CLI.
    assert "pass weights='file.weights.h5' (or weights=None for random weights)" in message and "--weights" not in message
    assert "\n" not in message
    from livecam.cli import main

    assert main(["--source", "synth:", "--model", "mobilenet_v2", "--no-display", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("livecam: error: Could not download the ImageNet weights for mobilenet_v2")
    assert "pass --weights PATH (or 'none' for random weights)" in err and "weights=" not in err


@pytest.mark.slow
def test_weights_file_for_another_architecture_is_refused(tmp_path):
    other = keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3), include_top=False)
    path = tmp_path / "other.weights.h5"
    other.save_weights(path)
    with pytest.raises(ValueError, match=r"does not fit efficientnet_b0.*same architecture"):
        load_model("efficientnet_b0", weights=str(path))
    with pytest.raises(ValueError, match=r"Weights file .*missing.h5' does not exist"):
        load_model("mobilenet_v2", weights=str(tmp_path / "missing.h5"))


@pytest.mark.slow
def test_weights_file_round_trip(tmp_path):
    first = load_model("mobilenet_v2", weights=None).model
    path = tmp_path / "mine.weights.h5"
    first.save_weights(path)
    second = load_model("mobilenet_v2", weights=str(path)).model
    np.testing.assert_array_equal(first.get_weights()[0], second.get_weights()[0])


def _user_model():
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="feat")(inputs)
    out = keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, out)


def test_user_model_file_with_labels(tmp_path):
    path = tmp_path / "mine.keras"
    _user_model().save(path)
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\n\nbird\n")
    loaded = load_model(str(path), labels=labels)
    assert loaded.class_names == ("cat", "dog", "bird")
    assert loaded.input_size == (32, 32)
    engine = CamEngine(str(path), labels=str(labels))
    assert engine.layer_name == "feat" and engine.class_names[2] == "bird"


def test_labels_files_in_every_format(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(["x", "y"]))
    (tmp_path / "b.json").write_text(json.dumps({"1": ["n2", "y"], "0": ["n1", "x"]}))
    (tmp_path / "c.json").write_text("{nope")
    assert load_labels(tmp_path / "a.json") == ("x", "y")
    assert load_labels(tmp_path / "b.json") == ("x", "y")
    with pytest.raises(ValueError, match="is not valid JSON"):
        load_labels(tmp_path / "c.json")
    with pytest.raises(ValueError, match="does not exist"):
        load_labels(tmp_path / "nope.txt")


def test_labels_that_are_no_text_file_say_what_they_are(tmp_path, monkeypatch):
    import os

    import livecam.models

    with pytest.raises(ValueError, match=r"^Labels file '.*' is a folder; give a text file with one class name per line\.$"):
        load_labels(tmp_path)
    with pytest.raises(ValueError, match=r"^Labels file '/dev/zero' is a character device; give a text file"):
        load_labels("/dev/zero")  # endless: it must not be read at all
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(ValueError, match=r"is a named pipe \(FIFO\); give a text file"):
        load_labels(tmp_path / "fifo")  # opening it would wait for a writer forever
    monkeypatch.setattr(livecam.models.labels, "MAX_LABELS_BYTES", 10)
    (tmp_path / "long.txt").write_text("abcdef\nghijkl\n")
    with pytest.raises(ValueError, match=r"is larger than .* far more than class names take"):
        load_labels(tmp_path / "long.txt")


def test_labels_that_do_not_match_the_model_are_refused(tmp_path):
    path = tmp_path / "mine.keras"
    _user_model().save(path)
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\n")
    with pytest.raises(ValueError, match=r"has 2 names but the model has 3 classes"):
        load_model(str(path), labels=labels)


def test_model_with_lambda_layer_needs_the_unsafe_opt_in(tmp_path):
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    x = keras.layers.Conv2D(4, 3, name="feat")(x)
    out = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, out).save(path)
    with pytest.raises(ValueError, match=r"contains a Lambda layer.*--unsafe-model-load"):
        load_model(str(path))
    assert load_model(str(path), unsafe=True).model.output.shape[-1] == 2


def test_missing_or_broken_model_files(tmp_path):
    with pytest.raises(ValueError, match=r"Model file .*nope.keras' does not exist"):
        load_model(str(tmp_path / "nope.keras"))
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"Could not load model file .*broken.keras"):
        load_model(str(broken))


def test_random_weights_are_the_same_on_every_build_and_leave_the_callers_random_state_alone():
    """--weights none: one set of random weights, so one OpenVINO cache entry serves every run."""
    import random

    from livecam.engine.runtimes import openvino as runtime_openvino

    def build():
        keras.backend.clear_session()  # a new process's layer names, as on the next run
        model = load_model("mobilenet_v2", weights="none").model
        return model, runtime_openvino.fingerprint(model, layer="out_relu")

    random.seed(7)
    expected_draws = [random.random() for _ in range(3)]
    random.seed(7)
    first, first_key = build()
    assert [random.random() for _ in range(3)] == expected_draws  # the caller's numbers go on as if nothing was built
    second, second_key = build()  # from another state of the caller's random: the same weights
    for a, b in zip(first.weights, second.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    assert first_key == second_key


# ---------------------------------------------------------------------- what the command says of labels files and models it cannot use


@pytest.fixture
def clip(tmp_path, make_video):
    return make_video(tmp_path / "clip.avi", 4, size=(64, 48))


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
    sigmoid = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(conv_features(inputs)))
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


def _lambda_model(path):
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Lambda(lambda t: t / 255.0)(inputs)
    x = keras.layers.Conv2D(4, 3, name="feat")(x)
    out = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    keras.Model(inputs, out).save(path)
    return path


@pytest.mark.slow
def test_model_file_with_lambda_needs_unsafe_model_load(tmp_path, make_video, capsys):
    model = _lambda_model(tmp_path / "lambda.keras")
    clip = make_video(tmp_path / "clip.avi", 6)
    args = ["--source", str(clip), "--model", str(model), "--no-display", "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Lambda layer" in err and "--unsafe-model-load" in err
    assert main([*args, "--unsafe-model-load", "--max-frames", "3"]) == 0


@pytest.mark.slow
def test_weights_for_another_architecture_exit_2(tmp_path, make_video, capsys):
    other = keras.applications.MobileNetV2(weights=None, include_top=False, input_shape=(96, 96, 3))
    weights = tmp_path / "other.weights.h5"
    other.save_weights(weights)
    clip = make_video(tmp_path / "clip.avi", 4)
    code = main(["--source", str(clip), "--model", "efficientnet_b0", "--weights", str(weights), "--no-display", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("livecam: error: Weights file") and "does not fit efficientnet_b0" in err
    assert err.count("\n") == 1


@pytest.mark.slow
def test_labels_file_that_is_not_utf8_is_a_user_error(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_bytes("caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"is not UTF-8 text"):
        load_labels(path)


# ---------------------------------------------------------------------- memory a step needs


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
