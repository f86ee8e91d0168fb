"""The OpenVINO runtime's step: the body (input -> target activations) in OpenVINO, then the head.

The body needs no gradients; it is converted and cached by ``livecam.engine.runtimes.openvino``.
The head (activations -> class scores and their gradients) is computed exactly in NumPy when it
is pooling + Dense (``livecam.engine.runtimes.head``; its scores then come out of the body as a
second output, fused), else differentiated in a small ``tf.function``
(``livecam.engine.runtimes.tensorflow.TensorFlowHead``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from livecam.engine import targets
from livecam.engine.runtimes import openvino as runtime_openvino
from livecam.engine.runtimes.head import DenseHead
from livecam.engine.runtimes.step import Network, RuntimeInfo, StepOutputs
from livecam.engine.split import SplitError, head_chain
from livecam.errors import first_line


class OpenVinoStep:
    """The body in OpenVINO, then the head (a ``Step``). Made by ``open_openvino_step``.

    Attributes:
        body: the ``OpenVinoBody`` (its ``cache_path``, whether this start ``converted`` it and
            ``saved`` it, its ``threads``).
    """

    def __init__(self, body: runtime_openvino.OpenVinoBody, head: Any, *, reason: str) -> None:
        self.body = body
        self._head = head
        self._reason = reason
        if isinstance(head, DenseHead):
            self._run = lambda frames_bgr, *args: head(*body(frames_bgr), np.asarray(args[0]), *args[1:])
        else:
            self._run = lambda frames_bgr, *args: head(body(frames_bgr)[0], *args)

    @property
    def info(self) -> RuntimeInfo:
        dense = isinstance(self._head, DenseHead)
        return RuntimeInfo(
            runtime="openvino",
            reason=self._reason,
            head="numpy" if dense else "tensorflow",
            traces=0 if dense else self._head.traces,
        )

    def __call__(self, frames_bgr: np.ndarray, class_ids: Any, method_index: Any, contrast_ids: Any = None) -> StepOutputs:
        """The same signature as the TensorFlow step, for frames at the input size."""
        return self._run(frames_bgr, class_ids, method_index, contrast_ids)


def open_openvino_step(network: Network, *, reason: str, log: Callable[[str], None]) -> OpenVinoStep | str:
    """The OpenVINO step for ``network``, or why it cannot be made (a clause, for ``RuntimeInfo.reason``).

    Cuts the model at the target layer and converts the body (or reads it from the cache).
    """
    import tensorflow as tf

    from livecam.engine.runtimes.tensorflow import TensorFlowHead, model_input

    why_not = runtime_openvino.unavailable_reason()
    if why_not is not None:
        return why_not
    layer = network.target.name
    try:
        split = targets.split(network.model, network.target)
    except SplitError as exc:
        return f"the model cannot be cut at layer {layer!r}: {exc}"
    except Exception as exc:  # a graph Keras cannot take apart: TensorFlow runs it whole
        return f"the model cannot be cut at layer {layer!r} ({first_line(exc)})"
    h, w = network.input_size
    activations_shape = (None, *targets.activation_shape(network.target))
    # A pooling + Dense head: its scores are computed in OpenVINO too, as a second output of
    # the body (two threads, fused), and only their gradients and the map in NumPy.
    chain = None if targets.is_tokens(network.target) else head_chain(network.model, network.target)
    dense = DenseHead.match(chain, network.output, network.topk)

    def make_body() -> Any:
        def body(frames_bgr: tf.Tensor) -> Any:
            activations = tf.cast(split.body(model_input(frames_bgr, network), training=False), tf.float32)
            if dense is None:
                return activations
            return activations, tf.matmul(tf.reduce_mean(activations, axis=(1, 2)), dense.kernel) + dense.bias

        return tf.function(body, input_signature=[tf.TensorSpec([None, h, w, 3], tf.uint8, name="frames_bgr")], autograph=False)

    key = network.key or runtime_openvino.fingerprint(
        network.model,
        layer=layer,
        input_size=network.input_size,
        preprocess=runtime_openvino.describe_callable(network.preprocess),
        scores=dense is not None,
    )
    # A model named by its key (not a keras.Model) keeps what a warm start needs: with a NumPy
    # head, its weights, and the next start runs without TensorFlow (``livecam.engine.warm``).
    meta = {**network.meta, "head": {"kind": dense.kind} if dense is not None else None} if network.key else None
    arrays = {"kernel": dense.kernel, "bias": dense.bias} if network.key and dense is not None else None
    try:
        body = runtime_openvino.OpenVinoBody(
            make_body,
            label=f"{network.name}-{layer}-{h}x{w}",
            key=key,
            log=log,
            input_shape=(None, h, w, 3),
            output_shapes=(activations_shape,) if dense is None else (activations_shape, (None, dense.units)),
            meta=meta,
            arrays=arrays,
        )
    except Exception as exc:  # the converter refuses a layer, or the CPU plugin an op
        return f"OpenVINO could not convert its body ({first_line(exc)})"
    return OpenVinoStep(body, dense if dense is not None else TensorFlowHead(network, split.head), reason=reason)
