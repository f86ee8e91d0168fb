"""CamEngine: frames in, predictions and class-activation maps out, in one compiled pass.

Two runtimes give the same maps:

- ``tensorflow``: one ``tf.function`` with an input signature that takes any batch size and
  frame size, any class ids and any method, so it traces exactly once. The target layer's
  activations and the pre-activation class scores are captured by hooks that exist only while
  the step is traced (``livecam.engine.split``), so they work for any model, nested backbones included.
- ``openvino`` (the default on a CPU): the model is cut at the target layer. The body (input ->
  activations) needs no gradients and runs in OpenVINO (``livecam.engine.runtimes.openvino``); the head
  (activations -> class scores) is computed exactly in NumPy when it is pooling + Dense
  (``livecam.engine.runtimes.head``), else in a small ``tf.function`` under a GradientTape.

Either way, ``_model_input`` turns uint8 BGR frames into the model's input: BGR -> RGB (the only
place in livecam that swaps channels), resizing if needed, preprocessing. ``_explain`` turns
activations, gradients and scores into the result, for both runtimes.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import cv2
import numpy as np
import tensorflow as tf
import tensorflow.experimental.numpy as tnp

from livecam.engine import methods as methods_module
from livecam.errors import UserError, first_line
from livecam.engine.fit import FULL_BOX, apply_fit, check_fit, fit_geometry
from livecam.engine.methods import METHOD_NAMES, check_method
from livecam.models import LoadedModel, find_target_layer, load_model, preprocess_fn, spatial_layers
from livecam.engine.runtimes.head import DenseHead
from livecam.engine.split import SplitError, capture_output, head_chain, output_activation, split_at

Runtime = Literal["auto", "tensorflow", "openvino"]
RUNTIMES: tuple[str, ...] = ("auto", "tensorflow", "openvino")
_STEP_ARGS = (tf.TensorSpec([None], tf.int32, name="class_ids"), tf.TensorSpec([], tf.int32, name="method_index"))


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
        box: (x0, y0, x1, y1), where each map lies on its frame, in fractions of the frame's width
            and height (see ``livecam.engine.fit``): (0, 0, 1, 1), the whole frame, unless the engine
            crops or pads (``fit``); then the map covers the central crop, or reaches past the
            frame over the padding.
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
            and why are in ``runtime`` and ``runtime_reason``.
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
        with _dtype_policy("mixed_float16" if mixed_precision else None):
            loaded = load_model(model, weights=weights, labels=labels, unsafe=unsafe_model_load)
        if input_size is not None:
            loaded = _resize_input(loaded, input_size)
        if preprocess is not None:
            loaded = replace(loaded, preprocess=preprocess if callable(preprocess) else preprocess_fn(preprocess))
        self._loaded = loaded
        self.model = loaded.model
        self.model_name: str = loaded.name  # the zoo name, "demo", or the model file's stem
        self.class_names: tuple[str, ...] = loaded.class_names
        self.input_size: tuple[int, int] = loaded.input_size
        self.num_classes = len(self.class_names)
        topk = min(5, self.num_classes) if topk is None else topk
        if not 1 <= topk <= self.num_classes:
            raise UserError(f"Expected topk in [1, {self.num_classes}]. Received: topk={topk}")
        self.topk = topk
        self._target = find_target_layer(self.model, layer if layer is not None else loaded.default_layer)
        self.layer_name: str = self._target.name
        self._output = output_activation(self.model)
        self.trace_count = 0
        self._xla = xla
        self.runtime: str = "tensorflow"  # the runtime in use, and why (for the console and the stats)
        self.runtime_reason: str = "asked for"
        self.head: str = "tensorflow"  # what computes the head's gradients: "tensorflow", or "numpy" (pooling + Dense)
        if runtime != "tensorflow":
            self.runtime, self.runtime_reason = self._try_openvino(runtime, xla=xla, mixed_precision=mixed_precision, log=log)
        self._step = self._openvino_step() if self.runtime == "openvino" else self._tensorflow_step()
        # Trace and run once now, on one thread: the first run also optimises the graph (most of a
        # second for mobilenet_v2), which would otherwise stall the first frame of a stream.
        h, w = self.input_size
        self._step(np.zeros((1, h, w, 3), np.uint8), np.full(1, -1, np.int32), np.int32(0))

    # ------------------------------------------------------------------ public API

    @property
    def method(self) -> str:
        return self._method

    @method.setter
    def method(self, name: str) -> None:
        self._method = check_method(name)

    @property
    def step(self) -> Any:
        """The compiled step itself, for serving and export (``__call__`` is the friendly form).

        ``step(frames_bgr, class_ids, method_index)``: uint8 BGR frames (N, H, W, 3) at the input
        size (the TensorFlow runtime also resizes other sizes in the graph, squashed whatever ``fit``
        says: ``prepare`` fits them), int32 class ids (N,) with -1 for each
        frame's top class, and the int32 index of the method in ``METHOD_NAMES``. Returns the
        arrays (probs, class_ids, cam, topk_probs, topk_ids, finite), as tensors or NumPy arrays.
        """
        return self._step

    @property
    def layer_candidates(self) -> list[str]:
        """Names of the layers a map can be taken from, in order."""
        return [layer.name for layer in spatial_layers(self.model)]

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
    ) -> CamResult:
        """Explain frames.

        Args:
            frames: uint8 BGR, (H, W, 3) or (N, H, W, 3), any size.
            class_id: ``None`` explains each frame's top class; an int explains that class for
                every frame; a sequence gives one class per frame (negative = top class).
            method: use this method for this call only.

        Returns:
            A ``CamResult`` with N rows.
        """
        frames = _check_frames(frames)
        batch = frames if frames.ndim == 4 else frames[None]
        box = self.map_box(batch.shape[2:0:-1])
        if batch.shape[1:3] != self.input_size:
            batch = self.prepare(batch)
        ids = self._class_ids(class_id, len(batch))
        name = self._method if method is None else check_method(method)
        outputs = self._step(batch, ids, np.int32(METHOD_NAMES.index(name)))
        probs, class_ids, cam, topk_probs, topk_ids, finite = (np.asarray(t) for t in outputs)
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
        )

    # ------------------------------------------------------------------ the runtime

    def _tensorflow_step(self) -> Callable:
        """The whole step in one tf.function: (uint8 BGR frames of any size, class ids, method index)."""
        frames = tf.TensorSpec([None, None, None, 3], tf.uint8, name="frames_bgr")
        # No Python control flow on tensors (the method is a tf.switch_case): AutoGraph's source
        # conversion would be pure start-up cost (about 0.5 s of CPU for the demo).
        return tf.function(self._graph_step, input_signature=[frames, *_STEP_ARGS], jit_compile=self._xla, autograph=False)

    def _openvino_step(self) -> Callable:
        """The same signature (frames at the input size): the body in OpenVINO, then the head.

        A pooling + Dense head is computed exactly in NumPy (``livecam.engine.runtimes.head``); any other head is
        differentiated in a small tf.function.
        """
        dense = self._dense
        if dense is not None:
            self.head = "numpy"
            return lambda frames_bgr, class_ids, method_index: dense(*self._body(frames_bgr), np.asarray(class_ids), method_index)
        self.head = "tensorflow"
        activations = tf.TensorSpec(self._body_output_shape, tf.float32, name="activations")
        head = tf.function(self._head_step, input_signature=[activations, *_STEP_ARGS], autograph=False)
        return lambda frames_bgr, class_ids, method_index: head(self._body(frames_bgr)[0], class_ids, method_index)

    def _try_openvino(self, runtime: str, *, xla: bool, mixed_precision: bool, log: Callable[[str], None]) -> tuple[str, str]:
        """("openvino", why) once the body is compiled in OpenVINO, else ("tensorflow", why not).

        A runtime the caller forced that cannot work is a UserError, not a silent fallback.
        """
        from livecam.engine.runtimes import openvino as runtime_openvino

        forced = runtime == "openvino"

        def fall_back(reason: str) -> tuple[str, str]:
            if forced:
                raise UserError(
                    f"The OpenVINO runtime cannot run model {self.model_name!r}: {reason}; "
                    f"use --runtime tensorflow (runtime='tensorflow') or auto."
                )
            return "tensorflow", reason

        if xla or mixed_precision:
            return fall_back("XLA and mixed precision are TensorFlow options")
        reason = runtime_openvino.unavailable_reason()
        if reason is not None:
            return fall_back(reason)
        if not forced and tf.config.list_physical_devices("GPU"):
            return "tensorflow", "a GPU is visible, and TensorFlow runs the whole step on it"
        try:
            self._split = split_at(self.model, self._target)
        except SplitError as exc:
            return fall_back(f"the model cannot be cut at layer {self.layer_name!r}: {exc}")
        except Exception as exc:  # a graph Keras cannot take apart: TensorFlow runs it whole
            return fall_back(f"the model cannot be cut at layer {self.layer_name!r} ({first_line(exc)})")
        h, w = self.input_size
        self._body_output_shape = [None, *tuple(self._target.output.shape)[1:]]
        # A pooling + Dense head: its scores are computed in OpenVINO too, as a second output of
        # the body (two threads, fused), and only their gradients and the map in NumPy.
        self._dense = DenseHead.match(head_chain(self.model, self._target), self._output, self.topk)
        dense = self._dense

        def make_body() -> Any:
            def body(frames_bgr: tf.Tensor) -> Any:
                activations = tf.cast(self._split.body(self._model_input(frames_bgr), training=False), tf.float32)
                if dense is None:
                    return activations
                return activations, tf.matmul(tf.reduce_mean(activations, axis=(1, 2)), dense.kernel) + dense.bias

            return tf.function(body, input_signature=[tf.TensorSpec([None, h, w, 3], tf.uint8, name="frames_bgr")], autograph=False)

        key = runtime_openvino.fingerprint(
            self.model,
            layer=self.layer_name,
            input_size=self.input_size,
            preprocess=runtime_openvino.describe_callable(self._loaded.preprocess),
            scores=dense is not None,
        )
        try:
            self._body = runtime_openvino.OpenVinoBody(
                make_body,
                label=f"{self.model_name}-{self.layer_name}-{h}x{w}",
                key=key,
                log=log,
                input_shape=(None, h, w, 3),
                output_shapes=(self._body_output_shape,) if dense is None else (self._body_output_shape, (None, dense.units)),
            )
        except Exception as exc:  # the converter refuses a layer, or the CPU plugin an op
            return fall_back(f"OpenVINO could not convert its body ({first_line(exc)})")
        return "openvino", "asked for" if forced else f"no GPU, and the model splits cleanly at layer {self.layer_name!r}"

    # ------------------------------------------------------------------ the compiled steps

    def _model_input(self, frames_bgr: tf.Tensor) -> tf.Tensor:
        """uint8 BGR frames -> the model's input: RGB, at the input size, preprocessed."""
        h, w = self.input_size
        # BGR -> RGB, once, here. A gather rather than tf.reverse: OpenVINO fuses it into the first
        # layer, where a reverse costs 1.7 ms a frame (mobilenet_v2 on 2 cores, 10.1 against 8.4 ms).
        x = tf.gather(tf.cast(frames_bgr, tf.float32), [2, 1, 0], axis=-1)
        if tuple(frames_bgr.shape[1:3]) != (h, w):  # not known to be at the input size when traced
            same_size = tf.reduce_all(tf.equal(tf.shape(x)[1:3], [h, w]))
            # XLA has no kernel for the antialiased resize; callers of __call__ never get here anyway,
            # since frames are resized on the CPU first (prepare).
            antialias = not self._xla
            x = tf.cond(same_size, lambda: x, lambda: tf.image.resize(x, (h, w), antialias=antialias))
        x = tf.ensure_shape(x, [None, h, w, 3])
        return self._loaded.preprocess(x)

    def _graph_step(self, frames_bgr: tf.Tensor, class_ids: tf.Tensor, method_index: tf.Tensor):
        """The TensorFlow runtime: the whole model, once, with hooks at the target layer and the output."""
        self.trace_count += 1
        x = self._model_input(frames_bgr)
        captured: dict[str, tf.Tensor] = {}
        with tf.GradientTape() as tape:
            with capture_output(self._target, captured, "activations", tape), self._output.hook(captured):
                output = self.model(x, training=False)
            probs, logits = self._scores(output, captured)
            chosen, score = _chosen_score(probs, logits, class_ids)
        grads = tape.gradient(score, captured["activations"])
        return self._explain(captured["activations"], grads, probs, logits, chosen, method_index)

    def _head_step(self, activations: tf.Tensor, class_ids: tf.Tensor, method_index: tf.Tensor):
        """The OpenVINO runtime's second half: the head alone, from the body's activations."""
        self.trace_count += 1
        captured: dict[str, tf.Tensor] = {}
        with tf.GradientTape() as tape:
            tape.watch(activations)
            with self._output.hook(captured):
                output = self._split.head(activations, training=False)
            probs, logits = self._scores(output, captured)
            chosen, score = _chosen_score(probs, logits, class_ids)
        grads = tape.gradient(score, activations)
        return self._explain(activations, grads, probs, logits, chosen, method_index)

    def _scores(self, output: tf.Tensor, captured: dict) -> tuple[tf.Tensor, tf.Tensor]:
        """(probs, logits): the probabilities shown, and the scores whose gradients make the maps.

        Softmax: the model's probabilities and the pre-softmax logits. Sigmoid with several units
        (multi-label): each class's own probability, never renormalised, and its pre-sigmoid logit.
        One unit (a binary classifier, sigmoid or a bare logit z): two classes, probabilities
        [1 - p, p], explained by -z and z. A model that outputs logits: their softmax.
        """
        output = tf.cast(output, tf.float32)
        logits = output if self._output.kind == "linear" else tf.cast(captured["logits"], tf.float32)
        if self._output.units == 1:
            z = logits[:, :1]
            return tf.concat([tf.sigmoid(-z), tf.sigmoid(z)], axis=-1), tf.concat([-z, z], axis=-1)
        if self._output.kind == "linear":
            return tf.nn.softmax(logits), logits
        return output, logits

    def _explain(self, activations, grads, probs, logits, chosen, method_index):
        """The maps and the result tensors, from activations, gradients and scores (both runtimes)."""
        activations = tf.cast(activations, tf.float32)
        grads = tf.cast(grads, tf.float32)
        branches = [lambda fn=fn: fn(activations, grads, tnp) for fn in methods_module.METHODS.values()]
        cam = methods_module.normalize(tf.switch_case(method_index, branches), tnp)

        finite_logits = tf.reduce_all(tf.math.is_finite(logits), axis=-1)
        finite = tf.logical_and(finite_logits, tf.reduce_all(tf.math.is_finite(cam), axis=(1, 2)))
        cam = tf.where(finite[:, None, None], cam, tf.zeros_like(cam))
        probs = tf.where(finite_logits[:, None], probs, tf.zeros_like(probs))
        topk = tf.math.top_k(probs, k=self.topk)
        return probs, chosen, cam, topk.values, topk.indices, finite

    def _class_ids(self, class_id: int | Sequence[int] | None, n: int) -> np.ndarray:
        if class_id is None:
            return np.full(n, -1, np.int32)
        ids = np.broadcast_to(np.asarray(class_id), (n,)) if np.ndim(class_id) == 0 else np.asarray(class_id)
        if ids.shape != (n,) or not np.issubdtype(ids.dtype, np.integer):
            raise UserError(f"Expected class_id to be None, an int or {n} ints. Received: class_id={class_id!r}")
        if np.any(ids >= self.num_classes):
            raise UserError(f"Expected class_id in [0, {self.num_classes - 1}]. Received: class_id={class_id!r}")
        return ids.astype(np.int32)


# ---------------------------------------------------------------------- helpers


def _chosen_score(probs: tf.Tensor, logits: tf.Tensor, class_ids: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The class each row explains (its own top class where class_ids < 0) and the summed score."""
    top = tf.argmax(probs, axis=-1, output_type=tf.int32)
    chosen = tf.where(class_ids >= 0, class_ids, top)
    return chosen, tf.reduce_sum(tf.gather(logits, chosen, axis=1, batch_dims=1))


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
