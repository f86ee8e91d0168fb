"""The OpenVINO runtime's head when it is global average pooling + Dense: exact, in NumPy, no autodiff.

For the zoo models and most transfer-learning models, everything after the target layer is
``GlobalAveragePooling2D -> [Dropout] -> Dense -> [softmax or sigmoid]``. Then the class score is
linear in the activations, z_c = mean_ij(A_ij) . W[:, c] + b_c, and its gradient is known
without differentiating: dz_c/dA_ij = W[:, c] / (h * w) at every location. Computing that in
NumPy takes a fraction of a millisecond, where a TensorFlow call for the same head costs several
(its dispatch, and its threads competing with OpenVINO's). The maps come from the same formulas
(``livecam.engine.methods``) as in the TensorFlow step, and the probabilities follow the same rules
(``CamEngine._scores``), so both runtimes agree; the tests compare them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from livecam.engine import methods as methods_module

_PASS_THROUGH = ("Dropout", "SpatialDropout1D", "GaussianDropout", "GaussianNoise", "AlphaDropout", "ActivityRegularization")


class DenseHead:
    """Scores, gradients and maps for a pooling + Dense head, from the body's activations.

    Use ``DenseHead.match(chain, output, topk)``: it returns None for any other head, and the
    engine then differentiates the head in TensorFlow.
    """

    def __init__(self, kernel: np.ndarray, bias: np.ndarray, kind: str, topk: int) -> None:
        self.kernel = np.ascontiguousarray(kernel, np.float32)  # (C, units)
        self.bias = np.asarray(bias, np.float32)
        self.kind = kind  # "softmax", "sigmoid" or "linear", as CamEngine._scores reads it
        self.units = self.kernel.shape[1]
        self.topk = topk
        self._methods = tuple(methods_module.METHODS.values())  # indexed as METHOD_NAMES
        self._ones = np.ones(self.units, np.float32)

    @classmethod
    def match(cls, chain: list[Any] | None, output: Any, topk: int) -> "DenseHead | None":
        """A DenseHead for ``chain`` (the head's layers in order) if it is pooling + Dense, else None.

        ``output`` is the model's ``OutputActivation``; the one activation in the chain must be it.
        """
        import keras

        if not chain or not isinstance(chain[0], keras.layers.GlobalAveragePooling2D):
            return None
        pool, rest = chain[0], chain[1:]
        if getattr(pool, "data_format", "channels_last") != "channels_last" or getattr(pool, "keepdims", False):
            return None
        rest = [layer for layer in rest if type(layer).__name__ not in _PASS_THROUGH]
        if not rest or not isinstance(rest[0], keras.layers.Dense) or _dtype(rest[0]) != "float32":
            return None
        dense, after = rest[0], rest[1:]
        if not all(isinstance(layer, (keras.layers.Softmax, keras.layers.Activation)) for layer in after):
            return None
        activations = [_activation_name(dense)] + [_activation_name(layer) for layer in after]
        if None in activations or dense.kernel.shape[1] != output.units:
            return None
        applied = [name for name in activations if name != "linear"]
        if applied != ([] if output.kind == "linear" else [output.kind]):
            return None
        bias = dense.bias.numpy() if dense.use_bias else np.zeros(dense.kernel.shape[1], np.float32)
        return cls(dense.kernel.numpy(), bias, output.kind, topk)

    def __call__(self, activations: np.ndarray, z: np.ndarray, class_ids: np.ndarray, method_index: int) -> tuple[np.ndarray, ...]:
        """(probs, class_ids, cam, topk_probs, topk_ids, finite), as the compiled step returns them.

        ``z`` are the Dense layer's outputs before its activation, mean_ij(A_ij) . W + b, which
        the OpenVINO body computes alongside the activations.
        """
        A = np.asarray(activations, np.float32)
        z = np.asarray(z, np.float32)
        n, h, w, _ = A.shape
        with np.errstate(all="ignore"):  # non-finite activations are flagged below, not warned about
            probs, logits, direction = self._scores(z)
            top = np.argmax(probs, axis=-1).astype(np.int32)
            chosen = np.where(class_ids >= 0, class_ids, top).astype(np.int32)
            # d logit_c / dA_ij = W[:, c] / (h w) at every location; for one unit, class 0 is -z.
            column = np.minimum(chosen, self.units - 1)
            g = (self.kernel[:, column].T * direction[chosen][:, None]) / np.float32(h * w)
            G = np.broadcast_to(g[:, None, None, :], A.shape)
            method = self._methods[int(method_index)]
            cam = methods_module.normalize(method(A, G, np), np).astype(np.float32)
            finite_logits = np.isfinite(logits).all(axis=-1)
            finite = finite_logits & np.isfinite(cam).all(axis=(1, 2))
        cam = np.where(finite[:, None, None], cam, np.float32(0))
        probs = np.where(finite_logits[:, None], probs, np.float32(0)).astype(np.float32)
        order = np.argsort(-probs, axis=-1, kind="stable")[:, : self.topk].astype(np.int32)
        return probs, chosen, cam, np.take_along_axis(probs, order, axis=-1), order, finite

    def _scores(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(probs, logits, the sign of each class's logit in z), by CamEngine._scores' rules."""
        if self.units == 1:
            return np.concatenate([_sigmoid(-z), _sigmoid(z)], axis=-1), np.concatenate([-z, z], axis=-1), np.float32([-1, 1])
        if self.kind == "sigmoid":
            return _sigmoid(z), z, self._ones
        shifted = z - z.max(axis=-1, keepdims=True)
        e = np.exp(shifted)
        return e / e.sum(axis=-1, keepdims=True), z, self._ones


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return (0.5 * (1.0 + np.tanh(0.5 * z))).astype(np.float32)  # no overflow for large |z|


def _activation_name(layer: Any) -> str | None:
    """The activation a layer applies ("linear" for none), or None when it is not one we can follow."""
    import keras

    if isinstance(layer, keras.layers.Softmax):
        return "softmax" if layer.axis in (-1, [-1], (-1,)) else None
    if isinstance(layer, (keras.layers.Dense, keras.layers.Activation)):
        name = getattr(layer.activation, "__name__", None)
        return name if name in ("linear", "softmax", "sigmoid") else None
    return None


def _dtype(layer: Any) -> str:
    policy = getattr(layer, "dtype_policy", None)
    return getattr(policy, "compute_dtype", None) or str(getattr(layer, "dtype", "float32"))
