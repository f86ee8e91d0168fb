"""Model zoo, target-layer choice, model files, labels and offline weights."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from livecam import CamEngine
from livecam.models import ZOO, find_target_layer, imagenet_class_names, load_labels, load_model

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
