"""CamEngine: frames in, predictions and class-activation maps out, in one compiled pass.

The step is one ``tf.function`` with an input signature that takes any batch size and frame
size, any class ids and any method, so it traces exactly once. Inside it, the frames go
BGR -> RGB (the only place in livecam that swaps channels), are resized if they are not yet at
the model's input size, preprocessed, and run through the model once under a GradientTape.
The target layer's activations and the pre-softmax logits are captured by hooks that exist
only while the step is traced, so they work for any model, nested backbones included.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np
import tensorflow as tf

from livecam import methods as methods_module
from livecam.errors import UserError, first_line
from livecam.methods import METHOD_NAMES, check_method
from livecam.models import LoadedModel, find_target_layer, load_model, preprocess_fn, spatial_layers



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
    """

    probs: np.ndarray
    class_ids: np.ndarray
    cam: np.ndarray
    topk_ids: np.ndarray
    topk_probs: np.ndarray
    finite: np.ndarray
    layer: str
    method: str

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
    ) -> None:
        self.method = method  # validates
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
        self._softmax_hook = _find_softmax(self.model)
        self.trace_count = 0
        self._xla = xla
        self._step = tf.function(
            self._graph_step,
            input_signature=[
                tf.TensorSpec([None, None, None, 3], tf.uint8, name="frames_bgr"),
                tf.TensorSpec([None], tf.int32, name="class_ids"),
                tf.TensorSpec([], tf.int32, name="method_index"),
            ],
            jit_compile=xla,
            # The step has no Python control flow on tensors (the method is a tf.switch_case), so
            # AutoGraph's source conversion is pure start-up cost: about 0.5 s of CPU for the demo.
            autograph=False,
        )
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

        ``step(frames_bgr, class_ids, method_index)``: uint8 BGR frames (N, H, W, 3) of any size
        (resized in the graph when not at the input size), int32 class ids (N,) with -1 for each
        frame's top class, and the int32 index of the method in ``METHOD_NAMES``. Returns the
        tensors (probs, class_ids, cam, topk_probs, topk_ids, finite).
        """
        return self._step

    @property
    def layer_candidates(self) -> list[str]:
        """Names of the layers a map can be taken from, in order."""
        return [layer.name for layer in spatial_layers(self.model)]

    def prepare(self, frame_bgr: np.ndarray) -> np.ndarray:
        """Frames resized to the model's input size on the CPU, where uint8 resizing is cheap.

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
        if batch.shape[1:3] != self.input_size:
            batch = self.prepare(batch)
        ids = self._class_ids(class_id, len(batch))
        name = self._method if method is None else check_method(method)
        outputs = self._step(batch, ids, np.int32(METHOD_NAMES.index(name)))
        probs, class_ids, cam, topk_probs, topk_ids, finite = (t.numpy() for t in outputs)
        return CamResult(
            probs=probs,
            class_ids=class_ids.astype(np.int64),
            cam=cam,
            topk_ids=topk_ids.astype(np.int64),
            topk_probs=topk_probs,
            finite=finite,
            layer=self.layer_name,
            method=name,
        )

    # ------------------------------------------------------------------ the compiled step

    def _graph_step(self, frames_bgr: tf.Tensor, class_ids: tf.Tensor, method_index: tf.Tensor):
        self.trace_count += 1
        h, w = self.input_size
        x = tf.cast(tf.reverse(frames_bgr, axis=[-1]), tf.float32)  # BGR -> RGB, once, here
        same_size = tf.reduce_all(tf.equal(tf.shape(x)[1:3], [h, w]))
        # XLA has no kernel for the antialiased resize; callers of __call__ never get here anyway,
        # since frames are resized on the CPU first (prepare).
        antialias = not self._xla
        x = tf.cond(same_size, lambda: x, lambda: tf.image.resize(x, (h, w), antialias=antialias))
        x = tf.ensure_shape(x, [None, h, w, 3])
        x = self._loaded.preprocess(x)

        captured: dict[str, tf.Tensor] = {}
        with tf.GradientTape() as tape:
            with _capture_output(self._target, captured, "activations", tape), self._softmax_hook(captured):
                output = self.model(x, training=False)
            activations = tf.cast(captured["activations"], tf.float32)
            if "logits" in captured:
                logits = tf.cast(captured["logits"], tf.float32)
                probs = tf.cast(output, tf.float32)
            else:  # the model outputs logits
                logits = tf.cast(output, tf.float32)
                probs = tf.nn.softmax(logits)
            top = tf.argmax(probs, axis=-1, output_type=tf.int32)
            chosen = tf.where(class_ids >= 0, class_ids, top)
            score = tf.reduce_sum(tf.gather(logits, chosen, axis=1, batch_dims=1))
        grads = tf.cast(tape.gradient(score, captured["activations"]), tf.float32)

        branches = [lambda fn=fn: fn(activations, grads) for fn in methods_module.METHODS.values()]
        cam = methods_module.normalize(tf.switch_case(method_index, branches))

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
def _capture_output(layer: Any, captured: dict, key: str, tape: tf.GradientTape):
    """While tracing, record ``layer``'s output and watch it on ``tape``."""
    original = layer.call

    def call(*args, **kwargs):
        out = original(*args, **kwargs)
        tape.watch(out)
        captured[key] = out
        return out

    layer.call = call
    try:
        yield
    finally:
        del layer.call  # back to the class's own method
    if key not in captured:
        raise RuntimeError(f"Layer {layer.name!r} was not called by the model's forward pass.")


def _find_softmax(model: Any) -> Callable[[dict], contextlib.AbstractContextManager]:
    """A hook that records the pre-softmax logits of the model's output layer, if it has a softmax.

    The softmax may be the activation of the last layer (Dense(..., activation="softmax"), or an
    Activation("softmax") layer) or a Softmax layer of its own. Models that output logits need
    no hook.
    """
    import keras

    layer = _output_layer(model)
    while isinstance(layer, keras.Model):
        layer = _output_layer(layer)

    if isinstance(layer, keras.layers.Softmax):

        @contextlib.contextmanager
        def hook_softmax_layer(captured: dict):
            original = layer.call

            def call(inputs, *args, **kwargs):
                captured["logits"] = inputs
                return original(inputs, *args, **kwargs)

            layer.call = call
            try:
                yield
            finally:
                del layer.call

        return hook_softmax_layer

    if getattr(getattr(layer, "activation", None), "__name__", "") == "softmax":

        @contextlib.contextmanager
        def hook_activation(captured: dict):
            original = layer.activation

            def activation(logits, *args, **kwargs):
                captured["logits"] = logits
                return original(logits, *args, **kwargs)

            layer.activation = activation
            try:
                yield
            finally:
                layer.activation = original

        return hook_activation

    return lambda captured: contextlib.nullcontext()


def _output_layer(model: Any) -> Any:
    history = getattr(model.outputs[0], "_keras_history", None)
    return history[0] if history is not None else model.layers[-1]


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
