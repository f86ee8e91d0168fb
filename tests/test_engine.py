"""CamEngine against an independent reference: a plain eager GradientTape and NumPy formulas."""

from __future__ import annotations

import dataclasses

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from livecam import CamEngine
from livecam.engine.core import METHOD_NAMES
from livecam.engine.runtimes.step import RuntimeInfo
from livecam.errors import UserError

SIZE = 32
N_CLASSES = 5


def _backbone(inputs):
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    return keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="target")(x)


def tiny_model(head: str, seed: int = 0) -> keras.Model:
    """A small CNN whose softmax sits inside the Dense layer, in a layer of its own, or nowhere."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.GlobalAveragePooling2D()(_backbone(inputs))
    if head == "dense_softmax":
        out = keras.layers.Dense(N_CLASSES, activation="softmax", name="logits")(x)
    elif head == "softmax_layer":
        out = keras.layers.Softmax()(keras.layers.Dense(N_CLASSES, name="logits")(x))
    elif head == "activation_layer":
        out = keras.layers.Activation("softmax")(keras.layers.Dense(N_CLASSES, name="logits")(x))
    else:
        out = keras.layers.Dense(N_CLASSES, name="logits")(x)
    return keras.Model(inputs, out)


def nested_model(seed: int = 0) -> keras.Model:
    """A transfer-learning model: a backbone model nested inside the user's model."""
    keras.utils.set_random_seed(seed)
    inner_in = keras.Input((SIZE, SIZE, 3))
    backbone = keras.Model(inner_in, _backbone(inner_in), name="backbone")
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.GlobalAveragePooling2D()(backbone(inputs))
    x = keras.layers.Dropout(0.2)(x)
    return keras.Model(inputs, keras.layers.Dense(N_CLASSES, activation="softmax", name="logits")(x))


# ------------------------------------------------------------------ the independent reference


def reference_logits_and_grads(model: keras.Model, frames_bgr: np.ndarray, class_ids):
    """Eager GradientTape over the pre-softmax logits, the head computed by hand from its weights."""
    target = next(layer for layer in _all_layers(model) if layer.name == "target")
    dense = next(layer for layer in _all_layers(model) if layer.name == "logits")
    rgb = frames_bgr[..., ::-1].astype(np.float32)
    inner = target
    # The backbone part up to the target layer, rebuilt where the target lives.
    owner = next((layer for layer in model.layers if isinstance(layer, keras.Model)), model)
    features = keras.Model(owner.inputs[0], inner.output)
    kernel, bias = (w.numpy() for w in dense.weights)
    with tf.GradientTape() as tape:
        A = features(rgb, training=False)
        tape.watch(A)
        logits = tf.reduce_mean(A, axis=(1, 2)) @ kernel + bias
        top = np.argmax(logits.numpy(), axis=1)
        chosen = top if class_ids is None else np.broadcast_to(class_ids, top.shape)
        score = tf.reduce_sum(tf.gather(logits, chosen, axis=1, batch_dims=1))
    G = tape.gradient(score, A).numpy()
    return A.numpy(), G, logits.numpy(), chosen


def reference_cam(method: str, A: np.ndarray, G: np.ndarray) -> np.ndarray:
    cam = reference_relu_map(method, A, G)
    peak = cam.max(axis=(1, 2), keepdims=True)
    return np.divide(cam, peak, out=np.zeros_like(cam), where=peak > 0)


def reference_cam_max(method: str, A: np.ndarray, G: np.ndarray) -> np.ndarray:
    """Each map's raw maximum (after the ReLU), before the map is scaled to 1: ``CamResult.cam_max``."""
    return reference_relu_map(method, A, G).max(axis=(1, 2))


def reference_relu_map(method: str, A: np.ndarray, G: np.ndarray) -> np.ndarray:
    A = A.astype(np.float64)
    G = G.astype(np.float64)
    if method == "gradcam":
        raw = (G.mean(axis=(1, 2), keepdims=True) * A).sum(-1)
    elif method == "gradcam++":
        g2, g3 = G**2, G**3
        denom = 2 * g2 + A.sum(axis=(1, 2), keepdims=True) * g3
        alpha = np.divide(g2, denom, out=np.zeros_like(g2), where=denom != 0)
        raw = ((alpha * np.maximum(G, 0)).sum(axis=(1, 2), keepdims=True) * A).sum(-1)
    elif method == "layercam":
        raw = (np.maximum(G, 0) * A).sum(-1)
    elif method == "hirescam":
        raw = (G * A).sum(-1)
    else:
        raise AssertionError(method)
    return np.maximum(raw, 0)


def _all_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)
        yield layer


def _frames(n: int, size: int = SIZE, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)


# ------------------------------------------------------------------ maps against the reference


@pytest.mark.slow
@pytest.mark.parametrize("head", ["dense_softmax", "softmax_layer", "activation_layer", "logits"])
@pytest.mark.parametrize("class_id", [None, 2])
def test_maps_match_reference_for_every_method(head, class_id):
    model = tiny_model(head)
    engine = CamEngine(model, layer="target")
    frames = _frames(3)
    A, G, logits, chosen = reference_logits_and_grads(model, frames, class_id)
    assert np.abs(G).max() > 0, "the reference must have non-zero gradients to test anything"
    for method in METHOD_NAMES:
        result = engine(frames, class_id=class_id, method=method)
        np.testing.assert_array_equal(result.class_ids, chosen)
        expected = reference_cam(method, A, G)
        assert expected.max() > 0
        np.testing.assert_allclose(result.cam, expected, atol=1e-3, err_msg=f"{head} {method}")
        np.testing.assert_allclose(result.cam_max, reference_cam_max(method, A, G), rtol=1e-3, err_msg=f"{head} {method}")
    probs = tf.nn.softmax(logits).numpy()
    np.testing.assert_allclose(result.probs, probs, atol=1e-5)


@pytest.mark.slow
def test_gradients_come_from_the_pre_softmax_score():
    """The post-softmax gradient gives a different map; the engine must give the logit one."""
    model = tiny_model("dense_softmax")
    frames = _frames(2)
    target = model.get_layer("target")
    features = keras.Model(model.inputs[0], [target.output, model.output])
    with tf.GradientTape() as tape:
        A, probs = features(frames[..., ::-1].astype(np.float32))
        score = tf.reduce_sum(probs[:, 1])
    post_softmax = reference_cam("gradcam", A.numpy(), tape.gradient(score, A).numpy())
    A_ref, G_ref, _, _ = reference_logits_and_grads(model, frames, 1)
    pre_softmax = reference_cam("gradcam", A_ref, G_ref)
    assert np.abs(post_softmax - pre_softmax).max() > 1e-2
    result = CamEngine(model, layer="target")(frames, class_id=1)
    np.testing.assert_allclose(result.cam, pre_softmax, atol=1e-3)


@pytest.mark.slow
def test_nested_backbone_auto_layer_and_maps():
    model = nested_model()
    engine = CamEngine(model)
    assert engine.layer_name == "target"
    frames = _frames(2)
    A, G, _, chosen = reference_logits_and_grads(model, frames, None)
    result = engine(frames)
    np.testing.assert_array_equal(result.class_ids, chosen)
    np.testing.assert_allclose(result.cam, reference_cam("gradcam", A, G), atol=1e-3)


@pytest.mark.slow
def test_frames_of_any_size_are_resized_once_on_the_cpu():
    model = tiny_model("dense_softmax")
    engine = CamEngine(model, layer="target")
    big = _frames(2, size=96, seed=5)
    # As documented: exact halvings by 2x2 box filtering while at least twice the input, then bilinear.
    halved = big.reshape(2, 48, 2, 48, 2, 3).astype(np.float32).mean(axis=(2, 4))
    halved = np.floor(halved + 0.5).astype(np.uint8)
    resized = np.stack([cv2.resize(f, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR) for f in halved])
    A, G, _, _ = reference_logits_and_grads(model, resized, None)
    result = engine(big)
    assert result.cam.shape == (2, SIZE // 2, SIZE // 2)
    np.testing.assert_allclose(result.cam, reference_cam("gradcam", A, G), atol=1e-3)


def test_result_shapes_dtypes_ranges_and_input_untouched():
    engine = CamEngine(tiny_model("dense_softmax"), layer="target", topk=3)
    frame = _frames(1)[0]
    before = frame.copy()
    result = engine(frame)
    np.testing.assert_array_equal(frame, before)
    assert result.probs.shape == (1, N_CLASSES) and result.probs.dtype == np.float32
    assert result.cam.shape == (1, SIZE // 2, SIZE // 2) and result.cam.dtype == np.float32
    assert 0.0 <= result.cam.min() and result.cam.max() <= 1.0
    assert result.topk_ids.shape == (1, 3) and result.topk_probs.shape == (1, 3)
    assert result.topk_ids[0, 0] == result.class_ids[0] == np.argmax(result.probs[0])
    assert np.all(np.diff(result.topk_probs[0]) <= 0)
    assert result.finite.tolist() == [True]
    assert result.layer == "target" and result.method == "gradcam"


def test_traces_once_over_varying_sizes_batches_classes_and_methods():
    engine = CamEngine(tiny_model("dense_softmax"), layer="target", runtime="tensorflow")
    rng = np.random.default_rng(0)
    for i in range(50):
        n = int(rng.integers(1, 5))
        h, w = (int(v) for v in rng.integers(16, 90, size=2))
        frames = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
        class_id = None if i % 3 == 0 else int(rng.integers(0, N_CLASSES))
        engine(frames, class_id=class_id, method=METHOD_NAMES[i % len(METHOD_NAMES)])
    assert engine.runtime_info.traces == 1


def test_graph_step_resizes_frames_of_other_sizes_itself():
    """Frames fed straight to the compiled step at any size still work, with no retrace."""
    engine = CamEngine(tiny_model("dense_softmax"), layer="target", runtime="tensorflow")
    for size in (20, 48, 64):
        out = engine.step(_frames(2, size=size), np.full(2, -1, np.int32), np.int32(0))
        assert out[2].shape == (2, SIZE // 2, SIZE // 2)
    assert engine.runtime_info.traces == 1


def test_runtime_info_is_a_frozen_public_record_of_what_runs_the_step():
    engine = CamEngine(tiny_model("dense_softmax"), layer="target", runtime="tensorflow")
    assert engine.runtime_info == RuntimeInfo(runtime="tensorflow", reason="asked for", head="tensorflow", traces=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        engine.runtime_info.traces = 0  # type: ignore[misc]
    assert (engine.runtime, engine.runtime_reason, engine.head, engine.trace_count) == (
        "tensorflow",
        "asked for",
        "tensorflow",
        1,
    )


@pytest.mark.parametrize("kind, units", [("softmax", 4), ("sigmoid", 4), ("linear", 4), ("sigmoid", 1), ("linear", 1)])
def test_scoring_rules_give_the_same_numbers_over_numpy_and_tensorflow(kind, units):
    """Both runtimes share ``scoring``: the same probabilities, explained classes, logits, flags and top-k."""
    import tensorflow.experimental.numpy as tnp

    from livecam.engine import scoring

    z = np.float32([[0.5, 2.0, 2.0, -1.0], [3.0, -2.0, 0.0, 1.0], [np.nan, 0.0, 1.0, 2.0]])[:, :units]
    class_ids = np.int32([-1, 0, -1])
    cam = np.ones((3, 2, 2), np.float32)
    cam[1, 0, 0] = np.inf

    def run(xp, to_array):
        logits = scoring.class_logits(to_array(z), units, xp)
        probs = scoring.probabilities(logits, kind, units, xp)
        chosen = scoring.explained_classes(probs, to_array(class_ids), xp)
        chosen_logits = scoring.explained_logits(logits, chosen, xp)
        return (probs, chosen, chosen_logits, *scoring.finish(probs, logits, to_array(cam), 2, xp))

    with np.errstate(all="ignore"):  # the NaN row
        numpy = run(np, np.asarray)
    tensorflow = run(tnp, tf.constant)
    for i, (a, b) in enumerate(zip(numpy, tensorflow)):
        b = np.asarray(b)
        assert a.dtype == b.dtype
        rows = (
            slice(0, 2) if i in (1, 2) else slice(None)
        )  # NumPy's argmax picks a NaN, TensorFlow's skips it: a flagged row either way
        np.testing.assert_allclose(a[rows], b[rows], rtol=1e-6, atol=1e-7)
    probs, chosen, _, shown, shown_cam, topk_probs, topk_ids, finite = numpy
    assert finite.tolist() == [True, False, False] and not shown[2].any() and not shown_cam[1:].any()
    assert topk_ids[0].tolist() == (
        [1, 2] if units == 4 else [1, 0] if z[0, 0] > 0 else [0, 1]
    )  # of equal ones, the lower id first


@pytest.mark.slow
def test_zero_gradients_give_a_finite_all_zero_map():
    model = tiny_model("dense_softmax")
    dense = model.get_layer("logits")
    dense.set_weights([np.zeros_like(w) for w in dense.get_weights()])
    result = CamEngine(model, layer="target")(_frames(2))
    assert np.all(np.isfinite(result.cam))
    assert np.all(result.cam == 0)
    assert result.finite.all()
    assert result.cam_max.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("runtime", ["tensorflow", "openvino"])
def test_non_finite_model_output_gives_no_map_and_is_flagged(runtime):
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(4, 3, name="target")(inputs)
    dense = keras.layers.Dense(3, activation="softmax")
    model = keras.Model(inputs, dense(keras.layers.GlobalAveragePooling2D()(x)))
    dense.set_weights([np.full_like(w, np.nan) for w in dense.get_weights()])
    result = CamEngine(model, runtime=runtime)(_frames(2))
    assert result.finite.tolist() == [False, False]
    assert np.all(result.cam == 0) and np.all(np.isfinite(result.probs))
    assert result.cam_max.tolist() == [0.0, 0.0]


def test_non_finite_activations_give_no_map_and_are_flagged():
    # OpenVINO folds a NaN constant in the body into finite numbers, so this case is TensorFlow's.
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(float("nan"))(inputs)
    x = keras.layers.Conv2D(4, 3, name="target")(x)
    out = keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    result = CamEngine(keras.Model(inputs, out), runtime="tensorflow")(_frames(2))
    assert result.finite.tolist() == [False, False]
    assert np.all(result.cam == 0) and np.all(np.isfinite(result.probs))


@pytest.mark.slow
def test_xla_agrees_with_float32():
    frames = _frames(2)
    model = tiny_model("dense_softmax")
    expected = CamEngine(model, layer="target")(frames)
    xla = CamEngine(model, layer="target", xla=True)(frames)
    np.testing.assert_allclose(xla.cam, expected.cam, atol=1e-3)
    np.testing.assert_allclose(xla.probs, expected.probs, atol=1e-5)


@pytest.mark.slow
def test_mixed_precision_flag_builds_zoo_models_in_float16():
    engine = CamEngine("mobilenet_v2", weights=None, input_size=96, mixed_precision=True)
    conv, target = engine.model.get_layer("Conv1"), engine.model.get_layer(engine.layer_name)
    assert (conv.dtype_policy.name, conv.compute_dtype, target.compute_dtype) == ("mixed_float16", "float16", "float16")
    assert keras.config.dtype_policy().name == "float32", "the global policy must be restored"
    result = engine(_frames(1, size=64))
    assert result.cam.dtype == np.float32 and result.probs.dtype == np.float32
    assert np.all(np.isfinite(result.cam)) and np.isclose(result.probs.sum(), 1.0, atol=1e-2)


@pytest.mark.slow
@pytest.mark.parametrize("xla", [False, True], ids=["mixed", "mixed+xla"])
def test_float16_model_maps_agree_with_float32(xla):
    # (Random-init MobileNetV2's last activations are about 1e-11, below float16's range, so a
    # small model whose activations are O(1) is what can show whether the float16 maps are right.)
    frames = _frames(2)
    full = tiny_model("dense_softmax")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        half = tiny_model("dense_softmax")
    finally:
        keras.config.set_dtype_policy(previous)
    half.set_weights(full.get_weights())
    assert half.get_layer("target").compute_dtype == "float16"
    a = CamEngine(full, layer="target")(frames)
    b = CamEngine(half, layer="target", xla=xla)(frames)
    assert a.cam.std() > 0.05  # maps with structure, so that agreeing means something
    np.testing.assert_allclose(b.probs, a.probs, atol=2e-3)
    np.testing.assert_array_equal(b.class_ids, a.class_ids)
    # float16 activations and gradients: the maps agree to a percent or two of their range, not 1e-3.
    np.testing.assert_allclose(b.cam, a.cam, atol=0.03)


@pytest.mark.slow
def test_input_size_override_feeds_the_same_weights_at_another_size():
    engine = CamEngine("mobilenet_v2", weights=None, input_size=128)
    assert engine.input_size == (128, 128)
    assert engine(_frames(1, size=200)).cam.shape == (1, 4, 4)


# ------------------------------------------------------------------ bad input


@pytest.fixture(scope="module")
def engine():
    return CamEngine(tiny_model("dense_softmax"), layer="target")


@pytest.mark.parametrize(
    "frames, match",
    [
        (np.zeros((SIZE, SIZE, 3), np.float32), r"Expected uint8 BGR frames.*Received: dtype=float32"),
        (np.zeros((SIZE, SIZE), np.uint8), r"Expected frames of shape \(H, W, 3\).*Received: shape=\(32, 32\)"),
        (np.zeros((SIZE, SIZE, 4), np.uint8), r"Expected frames of shape.*Received: shape=\(32, 32, 4\)"),
        ([[0, 0, 0]], r"Expected frames as a numpy array.*Received: list"),
    ],
)
def test_bad_frames_raise_value_error(engine, frames, match):
    with pytest.raises(ValueError, match=match):
        engine(frames)


def test_bad_class_and_method_raise_value_error(engine):
    with pytest.raises(ValueError, match=r"Expected class_id in \[0, 4\]. Received: class_id=7"):
        engine(_frames(1), class_id=7)
    with pytest.raises(
        ValueError, match=r"Expected method in gradcam, .*Received: method='gradcam\+'.*Did you mean 'gradcam\+\+'"
    ):
        engine(_frames(1), method="gradcam+")
    with pytest.raises(ValueError, match=r"Received: method='scorecam'"):
        CamEngine(tiny_model("dense_softmax"), method="scorecam")


def test_unknown_model_and_layer_raise_value_error():
    with pytest.raises(ValueError, match=r"Unknown model 'mobilenetv2': did you mean 'mobilenet_v2'"):
        CamEngine("mobilenetv2", weights=None)
    with pytest.raises(ValueError, match=r"Unknown layer 'targte': did you mean 'target'.*candidate layers are .*conv1.*target"):
        CamEngine(tiny_model("dense_softmax"), layer="targte")
    with pytest.raises(ValueError, match=r"Layer 'logits' does not output a spatial 4-D feature map"):
        CamEngine(tiny_model("dense_softmax"), layer="logits")


# ------------------------------------------------------------------ sigmoid classifiers


def sigmoid_model(head: str, seed: int = 0) -> keras.Model:
    """One unit (binary) or several (multi-label), the sigmoid in the Dense layer or a layer of its own."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.GlobalAveragePooling2D()(_backbone(inputs))
    units = 1 if head.startswith("binary") else N_CLASSES
    if head.endswith("dense"):
        out = keras.layers.Dense(units, activation="sigmoid", name="logits")(x)
    elif head.endswith("layer"):
        out = keras.layers.Activation("sigmoid")(keras.layers.Dense(units, name="logits")(x))
    else:  # a bare logit
        out = keras.layers.Dense(units, name="logits")(x)
    return keras.Model(inputs, out)


def reference_sigmoid(model: keras.Model, frames_bgr: np.ndarray, class_id):
    """Independent reference: eager tape; the head by hand; probabilities and scores by the rule."""
    target, dense = model.get_layer("target"), model.get_layer("logits")
    features = keras.Model(model.inputs[0], target.output)
    kernel, bias = (w.numpy() for w in dense.weights)
    with tf.GradientTape() as tape:
        A = features(frames_bgr[..., ::-1].astype(np.float32), training=False)
        tape.watch(A)
        z = tf.reduce_mean(A, axis=(1, 2)) @ kernel + bias
        p = 1 / (1 + np.exp(-z.numpy().astype(np.float64)))
        if kernel.shape[1] == 1:
            probs = np.concatenate([1 - p, p], axis=1)
            scores = tf.concat([-z, z], axis=1)
        else:
            probs, scores = p, z
        chosen = np.argmax(probs, axis=1) if class_id is None else np.full(len(frames_bgr), class_id)
        score = tf.reduce_sum(tf.gather(scores, chosen, axis=1, batch_dims=1))
    return A.numpy(), tape.gradient(score, A).numpy(), probs, chosen


@pytest.mark.parametrize("runtime", ["tensorflow", pytest.param("openvino", marks=pytest.mark.slow)])
@pytest.mark.parametrize("head", ["binary_dense", "binary_layer", "binary_logit", "multi_dense", "multi_layer"])
def test_sigmoid_classifiers_match_the_reference(head, runtime):
    model = sigmoid_model(head)
    engine = CamEngine(model, layer="target", runtime=runtime)
    binary = head.startswith("binary")
    assert engine.num_classes == (2 if binary else N_CLASSES)
    assert engine.class_names == (("class 0", "class 1") if binary else tuple(f"class {i}" for i in range(N_CLASSES)))
    frames = _frames(4, seed=3)
    for class_id in (None, 0, 1):
        A, G, probs, chosen = reference_sigmoid(model, frames, class_id)
        for method in METHOD_NAMES:
            result = engine(frames, class_id=class_id, method=method)
            np.testing.assert_array_equal(result.class_ids, chosen)
            np.testing.assert_allclose(result.cam, reference_cam(method, A, G), atol=1e-3, err_msg=f"{head} {class_id} {method}")
        np.testing.assert_allclose(result.probs, probs, atol=1e-5)
    if binary:  # both classes show, and they are not 100% every frame
        np.testing.assert_allclose(result.probs.sum(axis=1), 1.0, atol=1e-6)
        assert result.probs.max() < 0.999
    else:  # never renormalised
        assert not np.allclose(result.probs.sum(axis=1), 1.0, atol=1e-2)


def test_binary_classes_are_explained_by_opposite_scores():
    """Class 0's map is that of -z: where class 1's gradients are positive, class 0's are negative."""
    engine = CamEngine(sigmoid_model("binary_dense"), layer="target", runtime="tensorflow")
    frames = _frames(2, seed=3)
    one = engine(frames, class_id=1, method="hirescam").cam
    zero = engine(frames, class_id=0, method="hirescam").cam
    assert one.max() > 0 and zero.max() > 0
    assert np.all((one == 0) | (zero == 0)), "the two maps are the positive and negative parts of one signed map"


def test_binary_labels_file_names_both_classes(tmp_path):
    path = tmp_path / "model.keras"
    sigmoid_model("binary_dense").save(path)
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\n")
    engine = CamEngine(str(path), labels=str(labels), layer="target")
    assert engine.class_names == ("cat", "dog")
    labels.write_text("dog\n")
    with pytest.raises(ValueError, match=r"has 1 names but the model has 2 classes"):
        CamEngine(str(path), labels=str(labels), layer="target")


# ---------------------------------------------------------------------- --fit: where the network looks


def _scene_64x48() -> np.ndarray:
    """A wide frame with different things in its middle and at its sides."""
    rng = np.random.default_rng(7)
    frame = rng.integers(0, 60, (48, 64, 3), dtype=np.uint8)
    frame[10:30, 20:36] = (40, 220, 250)  # inside the central square
    frame[30:46, 0:8] = 255  # in the left band a crop leaves out
    return frame


@pytest.fixture(scope="module")
def fitted_engines():
    model = tiny_model("dense_softmax")
    return {fit: CamEngine(model, layer="target", fit=fit) for fit in ("squash", "crop", "pad")}


def test_crop_explains_the_central_square_and_says_where_its_map_lies(fitted_engines):
    frame = _scene_64x48()
    cropped = np.ascontiguousarray(frame[:, 8:56])  # 48x48, by hand
    result = fitted_engines["crop"](frame)
    reference = fitted_engines["squash"](cropped)
    np.testing.assert_allclose(result.cam, reference.cam, atol=1e-5)
    np.testing.assert_allclose(result.probs, reference.probs, atol=1e-6)
    assert result.box == pytest.approx((8 / 64, 0.0, 56 / 64, 1.0))
    assert not np.allclose(fitted_engines["squash"](frame).cam, reference.cam, atol=1e-3)  # squash sees another picture


def test_pad_explains_the_letterboxed_frame_and_its_map_reaches_over_the_bands(fitted_engines):
    frame = _scene_64x48()
    padded = np.empty((64, 64, 3), np.uint8)
    padded[:] = (104, 116, 124)  # ImageNet's mean colour, BGR
    padded[8:56] = frame
    result = fitted_engines["pad"](frame)
    reference = fitted_engines["squash"](padded)
    np.testing.assert_allclose(result.cam, reference.cam, atol=1e-5)
    assert result.box == pytest.approx((0.0, -8 / 48, 1.0, 56 / 48))
    # A tall frame gets its bands left and right.
    assert fitted_engines["pad"](np.ascontiguousarray(frame.transpose(1, 0, 2))).box == pytest.approx(
        (-8 / 48, 0.0, 56 / 48, 1.0)
    )


def test_fit_is_the_same_through_the_worker_and_square_frames_are_left_alone(fitted_engines):
    from livecam.engine.worker import EngineWorker

    frame = _scene_64x48()
    with EngineWorker(fitted_engines["crop"]) as worker:
        row = worker.submit(frame).result(timeout=60)
    np.testing.assert_allclose(row.cam, fitted_engines["crop"](frame).cam, atol=1e-6)
    assert row.box == pytest.approx((8 / 64, 0.0, 56 / 64, 1.0))  # on the frame submitted, not the prepared one
    square = frame[:, :48].copy()
    for fit in ("crop", "pad"):
        assert fitted_engines[fit](square).box == (0.0, 0.0, 1.0, 1.0)
        np.testing.assert_array_equal(fitted_engines[fit].prepare(square), fitted_engines["squash"].prepare(square))


def test_an_unknown_fit_is_refused():
    with pytest.raises(UserError, match=r"Expected fit to be one of squash, crop, pad\. Received: fit='zoom'"):
        CamEngine(tiny_model("dense_softmax"), fit="zoom")
