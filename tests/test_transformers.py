"""Vision transformers and KerasHub classifiers: the maps equal an independent reference, in both runtimes.

The models are tiny KerasHub ViT and ResNet classifiers with random weights, built here (no download).
"""

from __future__ import annotations

import socket
import sys
from importlib import resources

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import assert_user_error, run
from livecam import CamEngine
from livecam.cli import main
from livecam.engine.core import METHOD_NAMES
from livecam.errors import UserError
from livecam.models import find_target_layer, imagenet_class_names, load_model
from livecam.models.hub import HUB_PRESETS
from test_demo import HELD_OUT_START, N_HELD_OUT, TOLERANCE_PX
from test_engine import reference_cam

keras_hub = pytest.importorskip("keras_hub", reason="the hub extra: pip install 'livecam[hub]'")

SIZE, PATCH, N_CLASSES = 32, 8, 5
GRID = SIZE // PATCH


def tiny_vit(seed: int = 0, num_classes: int = N_CLASSES, pooling: str = "token") -> keras.Model:
    """A two-block ViT on 32 px pictures and 8 px patches (a 4x4 grid and a class token), fed by its own
    preprocessor: pixels / 255."""
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.ViTBackbone(
        image_shape=(SIZE, SIZE, 3), patch_size=PATCH, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32
    )
    converter = keras_hub.layers.ViTImageConverter(image_size=(SIZE, SIZE), scale=1 / 255.0)
    preprocessor = keras_hub.models.ViTImageClassifierPreprocessor(image_converter=converter)
    return keras_hub.models.ViTImageClassifier(
        backbone=backbone, num_classes=num_classes, preprocessor=preprocessor, pooling=pooling
    )


def tiny_resnet(seed: int = 0) -> keras.Model:
    """A two-stage KerasHub ResNet classifier (pooling + Dense), fed by its own preprocessor: pixels / 255."""
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 16],  # KerasHub's ResNet insists on 64 first
        stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2],
        block_type="basic_block",
        image_shape=(SIZE, SIZE, 3),
    )
    converter = keras_hub.layers.ResNetImageConverter(image_size=(SIZE, SIZE), scale=1 / 255.0)
    preprocessor = keras_hub.models.ResNetImageClassifierPreprocessor(image_converter=converter)
    return keras_hub.models.ResNetImageClassifier(backbone=backbone, num_classes=N_CLASSES, preprocessor=preprocessor)


def frames(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)


def vit_reference(model: keras.Model, frames_bgr: np.ndarray, class_id: int | None, block: int):
    """Eager GradientTape, the ViT run by hand from its sublayers: the normalised tokens entering
    ``block``, their gradient, the prefix dropped and the patches reshaped to the grid."""
    x = frames_bgr[..., ::-1].astype(np.float32) / 255.0
    patching = model.backbone.get_layer("vit_patching_and_embedding")
    encoder = model.backbone.get_layer("vit_encoder")
    blocks = encoder.encoder_layers
    dense = model.get_layer("predictions")
    tokens = patching(x)
    for layer in blocks[:block]:
        tokens = layer(tokens)
    target = blocks[block]
    with tf.GradientTape() as tape:
        normed = target.layer_norm_1(tokens)
        tape.watch(normed)
        h = target.mha(normed, normed) + tokens
        h = h + target.mlp(target.layer_norm_2(h))
        for layer in blocks[block + 1 :]:
            h = layer(h)
        logits = dense(encoder.layer_norm(h)[:, 0])
        chosen = np.argmax(logits.numpy(), axis=1) if class_id is None else np.full(len(x), class_id)
        score = tf.reduce_sum(tf.gather(logits, chosen, axis=1, batch_dims=1))
    grads = tape.gradient(score, normed).numpy()
    grid = lambda t: np.asarray(t)[:, 1:].reshape(len(x), GRID, GRID, -1)  # noqa: E731
    return grid(normed), grid(grads), logits.numpy(), chosen


@pytest.mark.slow
@pytest.mark.parametrize("block", [1, 0])
@pytest.mark.parametrize("class_id", [None, 3])
def test_vit_maps_equal_the_reference_for_every_method(block, class_id):
    model = tiny_vit()
    engine = CamEngine(model, runtime="tensorflow", layer=None if block == 1 else "transformer_block_1")
    assert engine.layer_name == f"transformer_block_{block + 1}"
    batch = frames(3)
    A, G, logits, chosen = vit_reference(model, batch, class_id, block)
    maps_with_heat = 0
    for method in METHOD_NAMES:
        result = engine(batch, class_id=class_id, method=method)
        np.testing.assert_array_equal(result.class_ids, chosen)
        expected = reference_cam(method, A, G)
        assert result.cam.shape == (3, GRID, GRID)
        np.testing.assert_allclose(result.cam, expected, atol=1e-4, err_msg=method)
        maps_with_heat += int(expected.max() > 0)
    assert maps_with_heat >= 2, "a random tiny ViT may leave a map or two empty, not most of them"
    # The preprocessor (pixels / 255) runs inside the step: without it the probabilities differ.
    np.testing.assert_allclose(result.probs, tf.nn.softmax(logits).numpy(), atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("class_id", [None, 3])
def test_keras_hub_cnn_maps_equal_the_reference_for_every_method(class_id):
    model = tiny_resnet()
    engine = CamEngine(model, runtime="tensorflow")
    target = next(layer for layer in model.backbone.layers if layer.name == engine.layer_name)
    batch = frames(3)
    dense = model.get_layer("predictions")
    with tf.GradientTape() as tape:
        A = keras.Model(model.backbone.inputs, target.output)(batch[..., ::-1].astype(np.float32) / 255.0)
        tape.watch(A)
        logits = dense(tf.reduce_mean(A, axis=(1, 2)))
        chosen = np.argmax(logits.numpy(), axis=1) if class_id is None else np.full(3, class_id)
        score = tf.reduce_sum(tf.gather(logits, chosen, axis=1, batch_dims=1))
    G = tape.gradient(score, A).numpy()
    for method in METHOD_NAMES:
        result = engine(batch, class_id=class_id, method=method)
        np.testing.assert_array_equal(result.class_ids, chosen)
        np.testing.assert_allclose(result.cam, reference_cam(method, A.numpy(), G), atol=1e-4, err_msg=method)


@pytest.mark.parametrize("make", [tiny_vit, pytest.param(tiny_resnet, marks=pytest.mark.slow)])
def test_openvino_maps_equal_tensorflow_for_keras_hub_models(make, tmp_path, monkeypatch):
    monkeypatch.setenv("LIVECAM_CACHE_DIR", str(tmp_path))
    model = make()
    tf_engine = CamEngine(model, runtime="tensorflow")
    ov_engine = CamEngine(model, runtime="openvino")
    assert ov_engine.runtime_info.runtime == "openvino" and ov_engine.layer_name == tf_engine.layer_name
    if make is tiny_vit:  # the head: the last block, the norm, the class token and the Dense, differentiated
        assert ov_engine.runtime_info.head == "tensorflow"
    batch = frames(4, seed=2)
    for method in METHOD_NAMES:
        for class_id in (None, 3):
            expected = tf_engine(batch, class_id=class_id, method=method)
            got = ov_engine(batch, class_id=class_id, method=method)
            np.testing.assert_array_equal(got.class_ids, expected.class_ids)
            np.testing.assert_allclose(got.cam, expected.cam, atol=1e-4, err_msg=f"{method} {class_id}")
            np.testing.assert_allclose(got.probs, expected.probs, atol=1e-5)


@pytest.mark.slow
def test_a_vit_that_pools_its_tokens_gets_maps_in_both_runtimes(tmp_path, monkeypatch):
    """Average pooling reads every token's residual stream too (the body's output feeds the head twice)."""
    monkeypatch.setenv("LIVECAM_CACHE_DIR", str(tmp_path))
    model = tiny_vit(pooling="gap")
    batch = frames(2)
    expected = CamEngine(model, runtime="tensorflow")(batch, method="hirescam")
    got = CamEngine(model, runtime="openvino")(batch, method="hirescam")
    assert expected.cam.max() > 0
    np.testing.assert_allclose(got.cam, expected.cam, atol=1e-4)


def test_layers_lists_the_block_boundaries_of_a_vit(capsys, tmp_path):
    path = tmp_path / "vit.keras"
    tiny_vit().save(path)
    code = main(["layers", str(path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    rows = [line.split() for line in out.splitlines()]
    assert [row[:2] for row in rows] == [["transformer_block_1", "4x4x16"], ["transformer_block_2", "4x4x16"]]
    assert "default" in out.splitlines()[1] and "default" not in out.splitlines()[0]
    assert "tokens entering" in out


def test_a_saved_keras_hub_model_loads_with_its_preprocessor(tmp_path):
    path = tmp_path / "vit.keras"
    tiny_vit().save(path)
    loaded = load_model(str(path))
    assert loaded.input_size == (SIZE, SIZE) and loaded.class_names == tuple(f"class {i}" for i in range(N_CLASSES))
    x = tf.constant(np.full((1, SIZE, SIZE, 3), 255.0, np.float32))
    np.testing.assert_allclose(loaded.preprocess(x).numpy(), 1.0)


@pytest.mark.slow
def test_a_preset_folder_loads_with_imagenet_names_and_its_preprocessor(tmp_path):
    """hub:PATH, a preset saved with save_to_preset: what from_preset downloads, offline."""
    tiny_vit(num_classes=1000).save_to_preset(str(tmp_path / "preset"))
    engine = CamEngine(f"hub:{tmp_path / 'preset'}", runtime="tensorflow")
    assert engine.class_names == imagenet_class_names() and engine.layer_name == "transformer_block_2"
    assert engine.model_name == "preset"
    engine_random = CamEngine(f"hub:{tmp_path / 'preset'}", weights="none", runtime="tensorflow")
    batch = frames(1)
    assert not np.allclose(engine(batch).probs, engine_random(batch).probs)


def test_an_offline_preset_names_itself_and_the_cache(capsys, monkeypatch):
    import requests

    def offline(*args, **kwargs):
        raise requests.exceptions.ConnectionError("Failed to resolve 'api.kaggle.com' ([Errno -2] Name or service not known)")

    monkeypatch.setattr(keras_hub.models.ImageClassifier, "from_preset", offline)
    code, err = run(capsys, "layers", "hub:vit_base_patch16_224_imagenet")
    assert_user_error(code, err, "'vit_base_patch16_224_imagenet'", "no internet", "kagglehub")


@pytest.mark.parametrize(
    ("preset", "weights", "fragment"),
    [
        ("no_such_preset_anywhere", "imagenet", "Unknown KerasHub preset 'no_such_preset_anywhere'"),
        ("vit_bse_patch16_224_imagenet", "imagenet", "did you mean 'vit_base_patch16_224_imagenet'"),
        ("vit_base_patch16_224_imagenet", "w.weights.h5", "brings its own weights"),
    ],
)
def test_hub_mistakes_are_one_sentence(preset, weights, fragment):
    with pytest.raises(UserError, match=fragment):
        load_model(f"hub:{preset}", weights=weights)


def test_models_lists_the_keras_hub_presets(capsys):
    code = main(["models"])
    out = capsys.readouterr().out
    assert code == 0
    rows = [line.split()[0] for line in out.split("KerasHub presets")[1].splitlines()[2:-1]]
    assert rows == [f"hub:{preset}" for preset in HUB_PRESETS]
    assert "kagglehub" in out


# ---------------------------------------------------------------- the shipped demo ViT


def test_demo_vit_loads_offline_and_is_explained_at_its_last_block(monkeypatch):
    from livecam.demo import CLASS_NAMES
    from livecam.engine.targets import token_targets

    def no_network(*args, **kwargs):
        raise OSError("the demo must load without a network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    loaded = load_model("demo-vit")
    assert loaded.name == "demo-vit" and loaded.class_names == CLASS_NAMES and loaded.input_size == (64, 64)
    blocks = token_targets(loaded.model)
    assert blocks and blocks[-1].grid == (8, 8)
    assert find_target_layer(loaded.model, loaded.default_layer) == blocks[-1]  # the engine's choice without --layer
    size_bytes = resources.files("livecam.demo").joinpath("vit.keras").stat().st_size
    assert size_bytes <= 4 * 1024 * 1024


def test_demo_vit_without_keras_hub_is_one_sentence(monkeypatch):
    monkeypatch.setitem(sys.modules, "keras_hub", None)  # import keras_hub now fails
    with pytest.raises(UserError, match=r"--model demo-vit needs KerasHub.*livecam\[hub\]"):
        load_model("demo-vit")


@pytest.mark.slow
def test_demo_vit_points_at_the_object_on_held_out_scenes_in_both_runtimes(tmp_path, monkeypatch):
    from livecam.demo import make_scene
    from livecam.render import upsample_cam

    monkeypatch.setenv("LIVECAM_CACHE_DIR", str(tmp_path))
    scenes = [make_scene(seed) for seed in range(HELD_OUT_START, HELD_OUT_START + N_HELD_OUT)]
    frames_bgr = np.stack([frame for frame, _, _ in scenes])
    class_ids = np.array([class_id for _, class_id, _ in scenes])
    engine = CamEngine("demo-vit", runtime="tensorflow")
    # HiResCAM and LayerCAM weigh each token by its own gradient; Grad-CAM's one weight per channel
    # reads every normalised token alike and points at the object far less often (docs/models.md).
    for method in ("hirescam", "layercam"):
        result = engine(frames_bgr, class_id=class_ids, method=method)  # the true class, as eval_localization.py
        hits = 0
        for cam, (_, _, (x0, y0, x1, y1)) in zip(result.cam, scenes):
            y, x = np.unravel_index(np.argmax(upsample_cam(cam, (224, 224))), (224, 224))
            hits += x0 - TOLERANCE_PX <= x <= x1 + TOLERANCE_PX and y0 - TOLERANCE_PX <= y <= y1 + TOLERANCE_PX
        assert hits / N_HELD_OUT >= 0.8, f"{method} pointing game {hits / N_HELD_OUT:.1%} on {N_HELD_OUT} held-out scenes"
    assert np.mean(np.argmax(result.probs, axis=1) == class_ids) >= 0.9

    ov_engine = CamEngine("demo-vit", runtime="openvino")
    assert ov_engine.runtime_info.runtime == "openvino" and ov_engine.runtime_info.head == "tensorflow"
    batch = frames_bgr[:8]
    for method in METHOD_NAMES:
        expected = engine(batch, method=method)
        got = ov_engine(batch, method=method)
        np.testing.assert_array_equal(got.class_ids, expected.class_ids)
        np.testing.assert_allclose(got.cam, expected.cam, atol=1e-4, err_msg=method)
        np.testing.assert_allclose(got.probs, expected.probs, atol=1e-5)
