"""The contract every runtime keeps: a ``Step``, what it was given to run, and what it says about itself."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

RuntimeName = Literal["tensorflow", "openvino"]
HeadKind = Literal["tensorflow", "numpy"]


@dataclass(frozen=True)
class RuntimeInfo:
    """What runs the engine's step, and why: read by the console line, ``--stats-json`` and the tests.

    Attributes:
        runtime: ``"tensorflow"`` (the whole step in one ``tf.function``) or ``"openvino"`` (the
            network's body in OpenVINO, then the head).
        reason: why this runtime, in words (``"asked for"``, or why not OpenVINO).
        head: what computes the head's gradients: ``"tensorflow"`` (autodiff), or ``"numpy"`` (a
            pooling + Dense head, exactly and without autodiff).
        traces: how many times a ``tf.function`` of the step was traced (1 once it has run; 0 for
            the NumPy head, which traces nothing).
    """

    runtime: RuntimeName
    reason: str
    head: HeadKind
    traces: int


@dataclass(frozen=True)
class Network:
    """What a runtime is given to run: the model and where to explain it.

    Attributes:
        model: the ``keras.Model``.
        name: the model's name (a zoo name, ``"demo"``, or the model file's stem).
        target: the target layer, whose activations the maps are made of.
        output: the model's ``OutputActivation`` (``livecam.engine.split``).
        input_size: (height, width) the network is fed at.
        preprocess: float32 RGB 0..255 tensors -> the model's input.
        topk: how many top classes each result carries.
        key: the cache key of a model named by the zoo, the demo or a file (``livecam.engine.warm``);
            None: the OpenVINO runtime keys the body by the model's architecture and weights.
        meta: what a warm start needs besides the body, kept in the cache entry with it (with ``key``).
    """

    model: Any
    name: str
    target: Any
    output: Any
    input_size: tuple[int, int]
    preprocess: Callable[[Any], Any]
    topk: int
    key: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


StepOutputs = tuple[Any, Any, Any, Any, Any, Any, Any]  # probs, class_ids, cam, topk_probs, topk_ids, finite, cam_max


class Step(Protocol):
    """One engine step: prepared frames in, the arrays of a result out.

    ``step(frames_bgr, class_ids, method_index, contrast_ids=None)``: uint8 BGR frames (N, H, W,
    3) at the input size, int32 class ids (N,) with -1 for each frame's top class (-2 its second,
    ... ``scoring.MAX_RANK``), the int32 index of the method in ``METHOD_NAMES``, and int32
    contrast class ids (N,): where one is >= 0 the row explains z_A - z_B of the pre-softmax
    scores, A its class and B the contrast (-1 or None: z_A alone). Returns (probs, class_ids,
    cam, topk_probs, topk_ids, finite, cam_max), as tensors or NumPy arrays (``np.asarray`` takes
    either); ``cam_max`` is each map's raw maximum before the map was scaled to 1.
    """

    @property
    def info(self) -> RuntimeInfo: ...

    def __call__(
        self, frames_bgr: np.ndarray, class_ids: np.ndarray, method_index: Any, contrast_ids: np.ndarray | None = None
    ) -> StepOutputs: ...
