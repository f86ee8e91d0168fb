"""CamEngine: frames in, predictions and class-activation maps out, in one compiled pass.

The engine loads the model, checks and prepares frames, and calls its step. Two runtimes run
the step and give the same maps, behind one contract (``livecam.engine.runtimes``):

- ``tensorflow``: one ``tf.function`` that traces exactly once (``runtimes.tensorflow``);
- ``openvino`` (the default on a CPU): the model cut at the target layer, the body in OpenVINO,
  the head exactly in NumPy when it is pooling + Dense, else in a small ``tf.function``
  (``runtimes.openvino_step``).

Which one, and why, is in ``CamEngine.runtime_info``. Both share the CAM formulas
(``livecam.engine.methods``) and the scoring rules (``livecam.engine.scoring``). A model named
by the zoo, the demo or a file whose OpenVINO body and NumPy head are cached opens from the
cache alone, without TensorFlow (``livecam.engine.warm``).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from livecam import logs
from livecam.engine import warm
from livecam.engine.fit import FULL_BOX, apply_fit, check_fit, fit_geometry
from livecam.engine.methods import METHOD_NAMES, check_method
from livecam.engine.runtimes.choose import RUNTIMES, choose_step
from livecam.engine.runtimes.step import Network, RuntimeInfo, Step
from livecam.engine.split import output_activation
from livecam.errors import UserError, first_line
from livecam.models import LoadedModel, find_target_layer, load_model, preprocess_fn, with_labels

Runtime = Literal["auto", "tensorflow", "openvino"]


@dataclass(frozen=True)
class CamResult:
    """What one engine call returns, one row per frame.

    Attributes:
        probs: (N, K) float32 class probabilities.
        class_ids: (N,) int64, the class each map explains.
        cam: (N, h, w) float32 maps in [0, 1] at the target layer's resolution.
        topk_ids: (N, k) int64, the top classes, most probable first.
        topk_probs: (N, k) float32, their probabilities.
        finite: (N,) bool, False where the model produced NaN or inf (that map is all zero).
        layer: the target layer's name.
        method: the CAM method's name.
        cam_max: (N,) float32, each map's raw maximum before it was scaled to 1 (0 where the map
            is all zero or not finite): how strong the map is, which ``cam`` no longer says.
        box: (x0, y0, x1, y1), where each map lies on its frame, in fractions of the frame's width
            and height (see ``livecam.engine.fit``): (0, 0, 1, 1), the whole frame, unless the engine
            crops or pads (``fit``); then the map covers the central crop, or reaches past the
            frame over the padding.
        contrast_ids: (N,) int64, the contrast class of each row's map (it explains z_A - z_B of
            the pre-softmax scores, A its class and B this one), -1 where there is none; None:
            no row has one.
    """

    probs: np.ndarray
    class_ids: np.ndarray
    cam: np.ndarray
    topk_ids: np.ndarray
    topk_probs: np.ndarray
    finite: np.ndarray
    layer: str
    method: str
    box: tuple[float, float, float, float] = FULL_BOX
    contrast_ids: np.ndarray | None = None
    cam_max: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.class_ids)


class CamEngine:
    """Predictions and class-activation maps for BGR frames, from one compiled step.

    Args:
        model: a zoo name (``livecam models`` lists them), ``"demo"``, a path to a .keras/.h5
            file, or a ``keras.Model`` (fed float32 RGB pixels in 0..255 unless ``preprocess``
            says otherwise).
        weights: ``"imagenet"``, ``None`` (random init) or a path to a weights file (zoo only).
        layer: target layer name; ``None`` picks the last layer with a spatial 4-D output.
        method: one of ``METHOD_NAMES``; can be changed later without retracing.
        preprocess: a zoo preprocessing name or a callable on float32 RGB 0..255 tensors;
            ``None`` uses the model's own.
        labels: a labels file for a user's model (one name per line, or JSON).
        topk: how many top classes each result carries (default: 5, or fewer classes).
        input_size: feed the network at this square size instead of its native one (a
            speed/quality trade-off; needs a model without a fixed-size Flatten).
        xla: compile the step with XLA (``jit_compile``).
        mixed_precision: build zoo models with the ``mixed_float16`` policy (for GPUs).
        unsafe_model_load: allow model files with Lambda layers.
        fit: how a frame meets the network's (usually square) input: ``"squash"`` (stretched
            whole), ``"crop"`` (its central part) or ``"pad"`` (letterboxed); see ``livecam.engine.fit``.
        runtime: ``"auto"`` (OpenVINO on a machine without a GPU when the model can be cut at
            the target layer, else TensorFlow), ``"tensorflow"`` or ``"openvino"``. The choice
            and why are in ``runtime_info``.
        log: where to say what takes time at start (converting for OpenVINO); stderr by default.

    Raises:
        UserError: a bad argument, or ``runtime="openvino"`` for a model it cannot run.
    """

    def __init__(
        self,
        model: Any = "mobilenet_v2",
        *,
        weights: str | Path | None = "imagenet",
        layer: str | None = None,
        method: str = "gradcam",
        preprocess: str | Callable[[Any], Any] | None = None,
        labels: str | Path | None = None,
        topk: int | None = None,
        input_size: int | None = None,
        xla: bool = False,
        mixed_precision: bool = False,
        unsafe_model_load: bool = False,
        runtime: Runtime = "auto",
        log: Callable[[str], None] | None = None,
        fit: str = "squash",
    ) -> None:
        self.method = method  # validates
        self.fit = check_fit(fit)
        if runtime not in RUNTIMES:
            raise UserError(f"Expected runtime in {', '.join(RUNTIMES)}. Received: runtime={runtime!r}")
        log = log or (lambda text: print(f"livecam: {text}", file=sys.stderr, flush=True))
        self._model: Any = None
        self._load_args = (model, weights, unsafe_model_load, mixed_precision, input_size)
        # A model named by the zoo, the demo or a file, whose body and NumPy head are cached, opens
        # without TensorFlow (``livecam.engine.warm``); anything else loads the model.
        key = None
        if runtime != "tensorflow" and not (xla or mixed_precision):
            key = warm.start_key(model, weights=weights, layer=layer, input_size=input_size, preprocess=preprocess)
        started = warm.open_warm(key, forced=runtime == "openvino") if key is not None else None
        if started is None:
            loaded = self._load()
            if preprocess is not None:
                loaded = replace(loaded, preprocess=preprocess if callable(preprocess) else preprocess_fn(preprocess))
            target = find_target_layer(self._model, layer if layer is not None else loaded.default_layer)
            facts = warm.facts_of(loaded, target)
        else:
            facts = started.facts
        self._facts = facts
        self.model_name: str = facts.name  # the zoo name, "demo", or the model file's stem
        self.class_names: tuple[str, ...] = with_labels(facts.class_names, labels)
        self.input_size: tuple[int, int] = facts.input_size
        self.layer_name: str = facts.layer
        self.num_classes = len(self.class_names)
        topk = min(5, self.num_classes) if topk is None else topk
        if not 1 <= topk <= self.num_classes:
            raise UserError(f"Expected topk in [1, {self.num_classes}]. Received: topk={topk}")
        self.topk = topk
        if started is not None:
            self._step: Step = started.step(topk, forced=runtime == "openvino")
        else:
            network = Network(
                model=self._model,
                name=self.model_name,
                target=target,
                output=output_activation(self._model),
                input_size=self.input_size,
                preprocess=loaded.preprocess,
                topk=topk,
                key=key,
                meta=warm.entry_meta(facts),
            )
            self._step = choose_step(network, runtime, xla=xla, mixed_precision=mixed_precision, log=log)
        # Trace and run once now, on one thread: the first run also optimises the graph (most of a
        # second for mobilenet_v2), which would otherwise stall the first frame of a stream.
        h, w = self.input_size
        self._step(np.zeros((1, h, w, 3), np.uint8), np.full(1, -1, np.int32), np.int32(0))

    def _load(self) -> LoadedModel:
        """The Keras model (TensorFlow is imported here, without its start-up lines), kept as ``model``."""
        model, weights, unsafe, mixed_precision, input_size = self._load_args
        logs.import_tensorflow()
        with _dtype_policy("mixed_float16" if mixed_precision else None):
            loaded = load_model(model, weights=weights, unsafe=unsafe)
        if input_size is not None:
            loaded = _resize_input(loaded, input_size)
        self._model = loaded.model
        return loaded

    # ------------------------------------------------------------------ public API

    @property
    def method(self) -> str:
        return self._method

    @method.setter
    def method(self, name: str) -> None:
        self._method = check_method(name)

    @property
    def step(self) -> Step:
        """The runtime's step itself (``__call__`` is the friendly form).

        ``step(frames_bgr, class_ids, method_index)``: uint8 BGR frames (N, H, W, 3) at the input
        size (the TensorFlow runtime also resizes other sizes in the graph, squashed whatever ``fit``
        says: ``prepare`` fits them), int32 class ids (N,) with -1 for each
        frame's top class, and the int32 index of the method in ``METHOD_NAMES``. Returns the
        arrays (probs, class_ids, cam, topk_probs, topk_ids, finite, cam_max), as tensors or NumPy arrays.
        The TensorFlow runtime's ``step.function`` is the ``tf.function``, for serving and export;
        the OpenVINO runtime's ``step.body`` is its converted body (``OpenVinoBody``).
        """
        return self._step

    @property
    def runtime_info(self) -> RuntimeInfo:
        """What runs the step and why: the runtime, the reason, the head, and the traces so far."""
        return self._step.info

    # The runtime's facts as they were named before ``runtime_info`` (read it instead).
    runtime = property(lambda self: self._step.info.runtime, doc="``runtime_info.runtime``.")
    runtime_reason = property(lambda self: self._step.info.reason, doc="``runtime_info.reason``.")
    head = property(lambda self: self._step.info.head, doc="``runtime_info.head``.")
    trace_count = property(lambda self: self._step.info.traces, doc="``runtime_info.traces``.")

    @property
    def model(self) -> Any:
        """The ``keras.Model``. After a warm start (no TensorFlow) it is loaded on first use, importing TensorFlow."""
        if self._model is None:
            self._load()
        return self._model

    @property
    def layer_candidates(self) -> list[str]:
        """Names of the layers a map can be taken from, in order."""
        return list(self._facts.layer_candidates)

    @property
    def weights_sha256(self) -> str:
        """SHA-256 of the model's weights, as every output carries it (``livecam.trust.stamp``); a warm start reads it from its entry."""
        return self._facts.weights_sha256

    @property
    def step_bytes_per_frame(self) -> int:
        """About how much memory one frame takes in the step, in bytes (``livecam.models.step_bytes_per_frame``)."""
        return self._facts.step_bytes_per_frame

    def map_box(self, frame_wh: tuple[int, int]) -> tuple[float, float, float, float]:
        """Where the map of a frame of ``frame_wh`` (width, height) lies on it (``CamResult.box``)."""
        return fit_geometry(frame_wh, self.input_size, self.fit).box

    def prepare(self, frame_bgr: np.ndarray) -> np.ndarray:
        """Frames fitted (``fit``: cropped or padded) and resized to the model's input size on the
        CPU, where uint8 resizing is cheap.

        A big frame is first halved with an exact 2x2 box filter (OpenCV's fast integer-factor
        INTER_AREA) as long as it stays at least the input size, then resized bilinearly by the
        remaining factor (under 2x, so without aliasing). For 640x480 -> 224x224 this is 8x
        cheaper than one INTER_AREA resize by a fractional factor, and within 3 grey levels of it
        on average.
        """
        frame_bgr = _check_frames(frame_bgr)
        if frame_bgr.ndim == 4:
            return np.stack([self.prepare(f) for f in frame_bgr])
        h, w = self.input_size
        if self.fit != "squash":
            frame_bgr = apply_fit(frame_bgr, fit_geometry(frame_bgr.shape[1::-1], self.input_size, self.fit))
        while frame_bgr.shape[0] >= 2 * h and frame_bgr.shape[1] >= 2 * w:
            half = (frame_bgr.shape[1] // 2, frame_bgr.shape[0] // 2)
            frame_bgr = cv2.resize(frame_bgr[: 2 * half[1], : 2 * half[0]], half, interpolation=cv2.INTER_AREA)
        if frame_bgr.shape[:2] == (h, w):
            return frame_bgr
        return cv2.resize(frame_bgr, (w, h), interpolation=cv2.INTER_LINEAR)

    def __call__(
        self,
        frames: np.ndarray,
        class_id: int | Sequence[int] | None = None,
        *,
        method: str | None = None,
        contrast: int | Sequence[int] | None = None,
    ) -> CamResult:
        """Explain frames.

        Args:
            frames: uint8 BGR, (H, W, 3) or (N, H, W, 3), any size.
            class_id: ``None`` explains each frame's top class; an int explains that class for
                every frame; a sequence gives one class per frame (-1 the frame's top class, -2
                its second, ... down to -5).
            method: use this method for this call only.
            contrast: "why A and not B": ``None`` explains the class's own pre-softmax score z_A;
                a class id B explains z_A - z_B for every frame; a sequence gives one per frame
                (-1: none).

        Returns:
            A ``CamResult`` with N rows.
        """
        frames = _check_frames(frames)
        batch = frames if frames.ndim == 4 else frames[None]
        box = self.map_box(batch.shape[2:0:-1])
        if batch.shape[1:3] != self.input_size:
            batch = self.prepare(batch)
        ids = self._class_ids(class_id, len(batch))
        contrast_ids = self._class_ids(contrast, len(batch), "contrast")
        name = self._method if method is None else check_method(method)
        outputs = self._step(batch, ids, np.int32(METHOD_NAMES.index(name)), contrast_ids)
        probs, class_ids, cam, topk_probs, topk_ids, finite, cam_max = (np.asarray(t) for t in outputs)
        return CamResult(
            probs=probs,
            class_ids=class_ids.astype(np.int64),
            cam=cam,
            topk_ids=topk_ids.astype(np.int64),
            topk_probs=topk_probs,
            finite=finite,
            layer=self.layer_name,
            method=name,
            box=box,
            contrast_ids=None if contrast is None else np.maximum(contrast_ids, -1).astype(np.int64),
            cam_max=np.where(finite, cam_max, 0.0).astype(np.float32),
        )

    def _class_ids(self, class_id: int | Sequence[int] | None, n: int, name: str = "class_id") -> np.ndarray:
        if class_id is None:
            return np.full(n, -1, np.int32)
        ids = np.broadcast_to(np.asarray(class_id), (n,)) if np.ndim(class_id) == 0 else np.asarray(class_id)
        if ids.shape != (n,) or not np.issubdtype(ids.dtype, np.integer):
            raise UserError(f"Expected {name} to be None, an int or {n} ints. Received: {name}={class_id!r}")
        if np.any(ids >= self.num_classes):
            raise UserError(f"Expected {name} in [0, {self.num_classes - 1}]. Received: {name}={class_id!r}")
        return ids.astype(np.int32)


# ---------------------------------------------------------------------- helpers


def _check_frames(frames: Any) -> np.ndarray:
    if not isinstance(frames, np.ndarray):
        raise UserError(f"Expected frames as a numpy array (uint8 BGR, as OpenCV gives). Received: {type(frames).__name__}")
    if frames.dtype != np.uint8:
        raise UserError(f"Expected uint8 BGR frames, as OpenCV gives. Received: dtype={frames.dtype}")
    if frames.ndim not in (3, 4) or frames.shape[-1] != 3:
        raise UserError(f"Expected frames of shape (H, W, 3) or (N, H, W, 3). Received: shape={frames.shape}")
    if 0 in frames.shape:
        raise UserError(f"Expected non-empty frames. Received: shape={frames.shape}")
    return frames


@contextlib.contextmanager
def _dtype_policy(name: str | None):
    if name is None:
        yield
        return
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _resize_input(loaded: LoadedModel, size: int) -> LoadedModel:
    """The same network and weights, fed at ``size`` x ``size``."""
    import keras

    if not 32 <= size <= 1024:
        raise UserError(f"Expected input size in [32, 1024]. Received: input_size={size}")
    if (size, size) == loaded.input_size:
        return loaded
    try:
        model = keras.models.clone_model(loaded.model, input_tensors=keras.Input((size, size, 3)))
        model.set_weights(loaded.model.get_weights())
    except Exception as exc:
        raise UserError(
            f"Model {loaded.name!r} cannot be fed at {size}x{size} ({first_line(exc)}); "
            f"leave --input-size out to use its native {loaded.input_size[0]}x{loaded.input_size[1]}."
        ) from exc
    return replace(loaded, model=model, input_size=(size, size))
