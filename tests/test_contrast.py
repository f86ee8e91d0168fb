"""Contrast ("why A and not B") and ranked classes, against an independent eager GradientTape reference.

Every runtime: the TensorFlow step, and the OpenVINO step with its NumPy head (pooling + Dense)
and with its TensorFlow head (any other head); every method, to 1e-4.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from livecam import CamEngine
from livecam.engine.core import METHOD_NAMES
from test_engine import N_CLASSES, SIZE, _backbone, _frames, reference_cam, tiny_model


def two_dense_model(seed: int = 0) -> keras.Model:
    """A head that is not pooling + Dense: the OpenVINO step differentiates it in TensorFlow."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.GlobalAveragePooling2D()(_backbone(inputs))
    x = keras.layers.Dense(8, activation="relu", name="hidden")(x)
    return keras.Model(inputs, keras.layers.Dense(N_CLASSES, activation="softmax", name="logits")(x))


def reference(model: keras.Model, frames_bgr: np.ndarray, a_ids, b_ids):
    """Activations and the gradient of z_A - z_B, by an eager tape over a head written out by hand."""
    features = keras.Model(model.inputs[0], model.get_layer("target").output)
    dense = model.get_layer("logits")
    kernel, bias = (w.numpy() for w in dense.weights)
    hidden = [layer for layer in model.layers if layer.name == "hidden"]
    with tf.GradientTape() as tape:
        A = features(frames_bgr[..., ::-1].astype(np.float32), training=False)
        tape.watch(A)
        x = tf.reduce_mean(A, axis=(1, 2))
        if hidden:
            w, b = (v.numpy() for v in hidden[0].weights)
            x = tf.nn.relu(x @ w + b)
        z = x @ kernel + bias  # pre-softmax
        a = np.broadcast_to(a_ids, (len(frames_bgr),))
        b = np.broadcast_to(b_ids, (len(frames_bgr),))
        score = tf.reduce_sum(tf.gather(z, a, axis=1, batch_dims=1) - tf.gather(z, b, axis=1, batch_dims=1))
    return A.numpy(), tape.gradient(score, A).numpy(), z.numpy()


CASES = [
    pytest.param("tensorflow", "dense", "tensorflow", id="tensorflow-step"),
    pytest.param("openvino", "dense", "numpy", id="openvino-numpy-head"),
    pytest.param("openvino", "two_dense", "tensorflow", id="openvino-tensorflow-head"),
]


@pytest.mark.slow
@pytest.mark.parametrize("runtime, head, head_kind", CASES)
def test_contrast_maps_match_the_gradient_tape_reference(runtime, head, head_kind):
    model = tiny_model("dense_softmax") if head == "dense" else two_dense_model()
    engine = CamEngine(model, layer="target", runtime=runtime, log=lambda text: None)
    assert engine.runtime_info.head == head_kind
    frames = _frames(3)
    _, _, z = reference(model, frames, 0, 0)
    top, second = np.argsort(-z, axis=1, kind="stable")[:, 0], np.argsort(-z, axis=1, kind="stable")[:, 1]
    for a_ids, b_ids, class_id in [(top, 1, None), (2, 4, 2), (top, second, None)]:
        A, G, _ = reference(model, frames, a_ids, b_ids)
        assert np.abs(G).max() > 0
        for method in METHOD_NAMES:
            result = engine(frames, class_id=class_id, method=method, contrast=b_ids)
            np.testing.assert_array_equal(result.class_ids, np.broadcast_to(a_ids, (3,)))
            np.testing.assert_array_equal(result.contrast_ids, np.broadcast_to(b_ids, (3,)))
            expected = reference_cam(method, A, G)
            np.testing.assert_allclose(result.cam, expected, atol=1e-4, err_msg=f"{method} A={a_ids} B={b_ids}")
    # The contrast differs from the plain map (else the test above proves nothing about it).
    plain = engine(frames, class_id=2)
    assert np.abs(plain.cam - engine(frames, class_id=2, contrast=4).cam).max() > 1e-2
    assert plain.contrast_ids is None


@pytest.mark.parametrize("runtime", ["tensorflow", "openvino"])
def test_a_contrast_per_row_and_none_where_negative_and_the_step_traces_once(runtime):
    model = tiny_model("dense_softmax")
    engine = CamEngine(model, layer="target", runtime=runtime, log=lambda text: None)
    frames = _frames(2)
    mixed = engine(frames, class_id=[1, 1], contrast=[3, -1])
    np.testing.assert_allclose(mixed.cam[0], engine(frames[:1], class_id=1, contrast=3).cam[0], atol=1e-6)
    np.testing.assert_allclose(mixed.cam[1], engine(frames[1:], class_id=1).cam[0], atol=1e-6)
    assert mixed.contrast_ids.tolist() == [3, -1]
    assert not engine(frames, class_id=2, contrast=2).cam.any()  # "why A and not A": nothing
    assert engine.runtime_info.traces == (1 if runtime == "tensorflow" else 0)


def test_negative_class_ids_are_ranks_explained_in_one_call():
    engine = CamEngine(tiny_model("dense_softmax"), layer="target", runtime="tensorflow")
    frame = _frames(1)[0]
    ranked = engine(np.stack([frame] * 3), class_id=[-1, -2, -3])
    order = np.argsort(-ranked.probs[0], kind="stable")[:3]
    assert ranked.class_ids.tolist() == order.tolist()
    for row, class_id in enumerate(order):
        np.testing.assert_allclose(ranked.cam[row], engine(frame, class_id=int(class_id)).cam[0], atol=1e-6)
    assert engine.runtime_info.traces == 1


def test_the_numpy_head_ranks_as_tensorflow_does():
    model = tiny_model("dense_softmax")
    frames = np.stack([_frames(1)[0]] * 3)
    tf_result = CamEngine(model, layer="target", runtime="tensorflow")(frames, class_id=[-1, -2, -3], contrast=4)
    ov_engine = CamEngine(model, layer="target", runtime="openvino", log=lambda text: None)
    ov_result = ov_engine(frames, class_id=[-1, -2, -3], contrast=4)
    assert ov_engine.runtime_info.head == "numpy"
    assert ov_result.class_ids.tolist() == tf_result.class_ids.tolist()
    np.testing.assert_allclose(ov_result.cam, tf_result.cam, atol=1e-4)
