"""The TensorFlow runtime: the whole step in one ``tf.function`` that traces exactly once.

Its input signature takes any batch size and frame size, any class ids and any method, so it
traces once. The target layer's activations and the pre-activation class scores are captured by
hooks that exist only while the step is traced (``livecam.engine.split``), so they work for any
model, nested backbones included. ``TensorFlowHead`` is the same step from the target layer's
activations on, for an OpenVINO body whose head is not pooling + Dense.

``model_input`` turns uint8 BGR frames into the model's input (BGR -> RGB, the only place in
livecam that swaps channels; resizing if needed; preprocessing), for this runtime and for the
OpenVINO body alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow.experimental.numpy as tnp

from livecam.engine import methods, scoring, targets
from livecam.engine.runtimes.step import Network, RuntimeInfo, StepOutputs

# The contrast classes are a tensor like the class ids, so a contrast asked for or dropped never retraces.
_STEP_ARGS = (
    tf.TensorSpec([None], tf.int32, name="class_ids"),
    tf.TensorSpec([], tf.int32, name="method_index"),
    tf.TensorSpec([None], tf.int32, name="contrast_ids"),
)


def no_contrast(class_ids: Any) -> Any:
    """The contrast ids of a call that asks for none: -1 for each row."""
    return np.full(len(class_ids), -1, np.int32)


def model_input(frames_bgr: tf.Tensor, network: Network, *, antialias: bool = True) -> tf.Tensor:
    """uint8 BGR frames -> the model's input: RGB, at the input size, preprocessed."""
    h, w = network.input_size
    # BGR -> RGB, once, here. A gather rather than tf.reverse: OpenVINO fuses it into the first
    # layer, where a reverse costs 1.7 ms a frame (mobilenet_v2 on 2 cores, 10.1 against 8.4 ms).
    # Not for a vision transformer: OpenVINO 2026.4 then computes wrong tokens (off by ~150 in a
    # test) when the convolution it fused the gather into has its shape read, as KerasHub's
    # patching layer does; a reverse is a small cost beside the transformer's blocks.
    x = tf.cast(frames_bgr, tf.float32)
    x = tf.reverse(x, [-1]) if targets.is_tokens(network.target) else tf.gather(x, [2, 1, 0], axis=-1)
    if tuple(frames_bgr.shape[1:3]) != (h, w):  # not known to be at the input size when traced
        same_size = tf.reduce_all(tf.equal(tf.shape(x)[1:3], [h, w]))
        x = tf.cond(same_size, lambda: x, lambda: tf.image.resize(x, (h, w), antialias=antialias))
    x = tf.ensure_shape(x, [None, h, w, 3])
    return network.preprocess(x)


class TensorFlowStep:
    """The whole model, once per step, with hooks at the target layer and the output (a ``Step``).

    Args:
        network: the model and its target layer.
        reason: why this runtime (``RuntimeInfo.reason``).
        xla: compile the step with XLA (``jit_compile``).

    Attributes:
        function: the ``tf.function`` itself, for serving and export; it also takes frames of
            other sizes and resizes them (squashed) in the graph.
    """

    def __init__(self, network: Network, *, reason: str, xla: bool = False) -> None:
        self._network = network
        self._reason = reason
        self._xla = xla
        self._traces = 0
        frames = tf.TensorSpec([None, None, None, 3], tf.uint8, name="frames_bgr")
        # No Python control flow on tensors (the method is a tf.switch_case): AutoGraph's source
        # conversion would be pure start-up cost (about 0.5 s of CPU for the demo).
        self.function = tf.function(self._graph, input_signature=[frames, *_STEP_ARGS], jit_compile=xla, autograph=False)

    @property
    def info(self) -> RuntimeInfo:
        return RuntimeInfo(runtime="tensorflow", reason=self._reason, head="tensorflow", traces=self._traces)

    def __call__(self, frames_bgr: Any, class_ids: Any, method_index: Any, contrast_ids: Any = None) -> StepOutputs:
        contrast_ids = no_contrast(class_ids) if contrast_ids is None else contrast_ids
        return self.function(frames_bgr, class_ids, method_index, contrast_ids)

    def _graph(
        self, frames_bgr: tf.Tensor, class_ids: tf.Tensor, method_index: tf.Tensor, contrast_ids: tf.Tensor
    ) -> StepOutputs:
        self._traces += 1
        network = self._network
        # XLA has no kernel for the antialiased resize; callers of CamEngine.__call__ never get
        # there anyway, since frames are resized on the CPU first (CamEngine.prepare).
        x = model_input(frames_bgr, network, antialias=not self._xla)
        captured: dict[str, tf.Tensor] = {}
        with tf.GradientTape() as tape:
            with targets.capture(network.target, captured, "activations", tape), network.output.hook(captured):
                output = network.model(x, training=False)
            probs, logits, chosen, score = _scores(output, captured, network, class_ids, contrast_ids)
        grads = tape.gradient(score, captured["activations"])
        activations, grads = (targets.to_grid(network.target, t) for t in (captured["activations"], grads))
        return explain(activations, grads, probs, logits, chosen, method_index, network.topk)


class TensorFlowHead:
    """The model after the target layer, differentiated in a ``tf.function``: activations -> the result.

    The OpenVINO runtime's head when it is not pooling + Dense. ``head`` is the split model's
    second half (``livecam.engine.split``).
    """

    def __init__(self, network: Network, head: Any) -> None:
        self._network = network
        self._head = head
        self.traces = 0
        activations = tf.TensorSpec([None, *targets.activation_shape(network.target)], tf.float32, name="activations")
        self.function = tf.function(self._graph, input_signature=[activations, *_STEP_ARGS], autograph=False)

    def __call__(self, activations: Any, class_ids: Any, method_index: Any, contrast_ids: Any = None) -> StepOutputs:
        contrast_ids = no_contrast(class_ids) if contrast_ids is None else contrast_ids
        return self.function(activations, class_ids, method_index, contrast_ids)

    def _graph(
        self, activations: tf.Tensor, class_ids: tf.Tensor, method_index: tf.Tensor, contrast_ids: tf.Tensor
    ) -> StepOutputs:
        self.traces += 1
        network = self._network
        captured: dict[str, tf.Tensor] = {}
        with tf.GradientTape() as tape:
            with targets.capture_head(network.target, activations, captured, "activations", tape), network.output.hook(captured):
                output = self._head(activations, training=False)
            probs, logits, chosen, score = _scores(output, captured, network, class_ids, contrast_ids)
        grads = tape.gradient(score, captured["activations"])
        activations, grads = (targets.to_grid(network.target, t) for t in (captured["activations"], grads))
        return explain(activations, grads, probs, logits, chosen, method_index, network.topk)


def _scores(
    output: tf.Tensor, captured: dict, network: Network, class_ids: tf.Tensor, contrast_ids: tf.Tensor
) -> tuple[Any, Any, Any, Any]:
    """(probs, logits, the explained classes, the summed score to differentiate), by ``scoring``'s rules."""
    kind, units = network.output.kind, network.output.units
    output = tf.cast(output, tf.float32)
    z = output if kind == "linear" else tf.cast(captured["logits"], tf.float32)
    logits = scoring.class_logits(z, units, tnp)
    probs = scoring.probabilities(logits, kind, units, tnp, output=output)
    chosen = scoring.explained_classes(probs, class_ids, tnp)
    return probs, logits, chosen, tf.reduce_sum(scoring.explained_scores(logits, chosen, contrast_ids, tnp))


def explain(activations, grads, probs, logits, chosen, method_index, topk: int) -> StepOutputs:
    """The maps and the result tensors, from activations (batch, h, w, channels), gradients and scores."""
    activations = tf.cast(activations, tf.float32)
    grads = tf.cast(grads, tf.float32)
    branches = [lambda fn=fn: fn(activations, grads, tnp) for fn in methods.METHODS.values()]
    cam, cam_max = methods.normalize(tf.switch_case(method_index, branches), tnp)
    probs, cam, topk_probs, topk_ids, finite = scoring.finish(probs, logits, cam, topk, tnp)
    return probs, chosen, cam, topk_probs, topk_ids, finite, cam_max
