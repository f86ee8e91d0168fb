"""The scoring rules both runtimes share, written once over an array namespace.

Like the CAM formulas (``livecam.engine.methods``), every function takes the array namespace
``xp`` its arrays belong to: NumPy in the OpenVINO runtime's analytic head, and
``tensorflow.experimental.numpy`` inside a compiled TensorFlow step. So the two runtimes cannot
drift apart on what a probability is, which class a map explains, or when a result is flagged.

- ``class_logits`` / ``probabilities``: the scores whose gradients make the maps, and the
  probabilities shown. Softmax: the model's probabilities and its pre-softmax logits. Sigmoid
  with several units (multi-label): each class's own probability, never renormalised, and its
  pre-sigmoid logit. One unit (a binary classifier, sigmoid or a bare logit z): two classes,
  probabilities [1 - p, p], explained by -z and z. A model that outputs logits: their softmax.
- ``explained_classes`` / ``explained_scores`` / ``logit_column``: the class each row explains (the
  class lock, else the row's own top class, or its second or third: -1, -2, -3) and the score
  that is differentiated: its logit, or with a contrast class B, z_A - z_B ("why A and not B").
- ``finish``: the finite, zero and top-k rules of a result.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Nothing here imports TensorFlow at import time. Two primitives are spelled differently in NumPy
# and TensorFlow (a row-wise gather, top-k); they import it inside a compiled step.


def class_logits(z: Any, units: int, xp: Any) -> Any:
    """Each class's logit from the model's pre-activation scores ``z`` (N, units).

    A one-unit (binary) model has two classes, explained by -z (class 0) and z (class 1).
    """
    return xp.concatenate([-z, z], axis=-1) if units == 1 else z


def probabilities(logits: Any, kind: str, units: int, xp: Any, output: Any = None) -> Any:
    """The probabilities shown, from the class logits (``class_logits``).

    ``output`` is the model's own output where there is one (the TensorFlow runtime): a softmax
    or multi-label sigmoid model's probabilities are taken as the model computed them.
    """
    if units == 1:
        return sigmoid(logits, xp)  # [sigmoid(-z), sigmoid(z)] = [1 - p, p]
    if kind == "linear":
        return softmax(logits, xp)
    if output is not None:
        return output
    return sigmoid(logits, xp) if kind == "sigmoid" else softmax(logits, xp)


def sigmoid(z: Any, xp: Any) -> Any:
    """The logistic function in its tanh form, which does not overflow for large |z|."""
    return 0.5 * (1.0 + xp.tanh(0.5 * z))


def softmax(z: Any, xp: Any) -> Any:
    """Softmax over the last axis, shifted by the maximum so that exp cannot overflow."""
    e = xp.exp(z - xp.max(z, axis=-1, keepdims=True))
    return e / xp.sum(e, axis=-1, keepdims=True)


# Class ids below 0 are ranks: -1 the row's top class, -2 its second, ... down to -MAX_RANK.
MAX_RANK = 5


def explained_classes(probs: Any, class_ids: Any, xp: Any) -> Any:
    """(N,) int32: the class each row explains, ``class_ids`` where >= 0, else the row's class of
    rank -class_id (-1 its top class, -2 its second, ...; past ``MAX_RANK`` or the number of
    classes, the last of those)."""
    k = min(MAX_RANK, int(probs.shape[-1]))
    rank = xp.clip(-class_ids - 1, 0, k - 1)
    if xp is np:
        ranked = np.take_along_axis(top_k(probs, k, np)[1], rank[:, None], axis=1)[:, 0]
    else:
        import tensorflow as tf  # in a compiled step, as in ``explained_logits``

        ranked = tf.gather(tf.math.top_k(probs, k=k).indices, rank, axis=1, batch_dims=1)
    return xp.where(class_ids >= 0, class_ids, xp.asarray(ranked, dtype=xp.int32))


def explained_logits(logits: Any, chosen: Any, xp: Any) -> Any:
    """(N,) the logit of each row's explained class."""
    if xp is np:
        return np.take_along_axis(logits, chosen[:, None], axis=1)[:, 0]
    import tensorflow as tf  # in a compiled step: tnp's take_along_axis broadcasts shapes XLA must know

    return tf.gather(logits, chosen, axis=1, batch_dims=1)


def explained_scores(logits: Any, chosen: Any, contrast_ids: Any, xp: Any) -> Any:
    """(N,) the score whose gradient makes each row's map: the explained class's logit z_A, or,
    where the row has a contrast class B (``contrast_ids`` >= 0), z_A - z_B: what makes the
    network say A rather than B (B = A gives a zero score, an all-zero map)."""
    has_contrast = contrast_ids >= 0
    other = explained_logits(logits, xp.where(has_contrast, contrast_ids, chosen), xp)
    return explained_logits(logits, chosen, xp) - xp.where(has_contrast, other, xp.zeros_like(other))


def logit_column(chosen: Any, units: int, xp: Any) -> tuple[Any, Any]:
    """(column, sign): the explained class's logit is ``sign * z[:, column]`` (``class_logits``' rule).

    What the analytic head needs to write the gradient without differentiating.
    """
    if units == 1:
        return xp.zeros_like(chosen), xp.asarray(xp.where(chosen == 0, -1.0, 1.0), dtype=xp.float32)
    return chosen, xp.ones(chosen.shape, dtype=xp.float32)


def finish(probs: Any, logits: Any, cam: Any, k: int, xp: Any) -> tuple[Any, Any, Any, Any, Any]:
    """(probs, cam, topk_probs, topk_ids, finite), the rules every result follows.

    A row whose logits or map are not finite (the model produced NaN or inf) is flagged and gets
    an all-zero map; where its logits are not finite, its probabilities are zero too. The top k
    are taken after that, most probable first.
    """
    finite_logits = xp.all(xp.isfinite(logits), axis=-1)
    finite = xp.logical_and(finite_logits, xp.all(xp.isfinite(cam), axis=(1, 2)))
    zero = xp.zeros((), dtype=cam.dtype)  # a scalar: no frame-sized array of zeros
    cam = xp.where(finite[:, None, None], cam, zero)
    probs = xp.where(finite_logits[:, None], probs, zero)
    topk_probs, topk_ids = top_k(probs, k, xp)
    return probs, cam, topk_probs, topk_ids, finite


def top_k(probs: Any, k: int, xp: Any) -> tuple[Any, Any]:
    """(values, int32 ids) of the k largest per row, largest first; of equal ones, the lower id first."""
    if xp is np:
        ids = np.argsort(-probs, axis=-1, kind="stable")[:, :k].astype(np.int32)
        return np.take_along_axis(probs, ids, axis=-1), ids
    import tensorflow as tf  # in a compiled step: TensorFlow's top_k sorts only the k it keeps

    top = tf.math.top_k(probs, k=k)
    return top.values, top.indices
