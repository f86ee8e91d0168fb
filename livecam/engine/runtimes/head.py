"""The OpenVINO runtime's head when it is global average pooling + Dense: exact, in NumPy, no autodiff.

For the zoo models and most transfer-learning models, everything after the target layer is
``GlobalAveragePooling2D -> [Dropout] -> Dense -> [softmax or sigmoid]``. Then the class score is
linear in the activations, z_c = mean_ij(A_ij) . W[:, c] + b_c, and its gradient is known
without differentiating: dz_c/dA_ij = W[:, c] / (h * w) at every location. Computing that in
NumPy takes a fraction of a millisecond, where a TensorFlow call for the same head costs several
(its dispatch, and its threads competing with OpenVINO's). The maps come from the same formulas
(``livecam.engine.methods``) as in the TensorFlow step, and the scores follow the same rules
(``livecam.engine.scoring``), so both runtimes agree; the tests compare them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from livecam.engine import methods as methods_module
from livecam.engine import scoring

_PASS_THROUGH = ("Dropout", "SpatialDropout1D", "GaussianDropout", "GaussianNoise", "AlphaDropout", "ActivityRegularization")


class DenseHead:
    """Scores, gradients and maps for a pooling + Dense head, from the body's activations.

    Use ``DenseHead.match(chain, output, topk)``: it returns None for any other head, and the
    engine then differentiates the head in TensorFlow.
    """

    def __init__(self, kernel: np.ndarray, bias: np.ndarray, kind: str, topk: int) -> None:
        self.kernel = np.ascontiguousarray(kernel, np.float32)  # (C, units)
        self.bias = np.asarray(bias, np.float32)
        self.kind = kind  # "softmax", "sigmoid" or "linear", as ``OutputActivation.kind``
        self.units = self.kernel.shape[1]
        self.topk = topk
        self._methods = tuple(methods_module.METHODS.values())  # indexed as METHOD_NAMES

    @classmethod
    def match(cls, chain: list[Any] | None, output: Any, topk: int) -> DenseHead | None:
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

    def __call__(
        self, activations: np.ndarray, z: np.ndarray, class_ids: np.ndarray, method_index: int, contrast_ids: Any = None
    ) -> tuple[np.ndarray, ...]:
        """(probs, class_ids, cam, topk_probs, topk_ids, finite, cam_max), as the compiled step returns them.

        ``z`` are the Dense layer's outputs before its activation, mean_ij(A_ij) . W + b, which
        the OpenVINO body computes alongside the activations. ``contrast_ids`` as in the ``Step``.
        """
        A = np.asarray(activations, np.float32)
        z = np.asarray(z, np.float32)
        n, h, w, _ = A.shape
        with np.errstate(all="ignore"):  # non-finite activations are flagged below, not warned about
            logits = scoring.class_logits(z, self.units, np)
            probs = scoring.probabilities(logits, self.kind, self.units, np)
            chosen = scoring.explained_classes(probs, np.asarray(class_ids), np)
            # d logit_c / dA_ij = sign_c W[:, column_c] / (h w) at every location; a contrast
            # class B subtracts its own: d(z_A - z_B)/dA_ij.
            g = self._logit_gradient(chosen)
            if contrast_ids is not None:
                contrast_ids = np.asarray(contrast_ids)
                has = contrast_ids >= 0
                g = g - self._logit_gradient(np.where(has, contrast_ids, 0)) * has[:, None]
            g = g / np.float32(h * w)
            G = np.broadcast_to(g[:, None, None, :], A.shape)
            method = self._methods[int(method_index)]
            cam, cam_max = methods_module.normalize(method(A, G, np), np)
            probs, cam, topk_probs, topk_ids, finite = scoring.finish(probs, logits, cam.astype(np.float32), self.topk, np)
        return probs, chosen, cam, topk_probs, topk_ids, finite, cam_max.astype(np.float32)

    def _logit_gradient(self, class_ids: np.ndarray) -> np.ndarray:
        """(N, C): each row's class logit's gradient with respect to the pooled activations."""
        column, sign = scoring.logit_column(class_ids, self.units, np)
        return (self.kernel[:, column].T * sign[:, None]).astype(np.float32)


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
