"""Class-activation-map methods: each one only says how activations and gradients make a map.

Every method takes the target layer's activations ``A`` and the gradients ``G`` of the
pre-softmax class score with respect to them, both (N, h, w, C) float32 arrays, and the array
namespace ``xp`` they belong to, and returns the raw map (N, h, w). ``xp`` is NumPy for the
OpenVINO runtime's analytic head and ``tensorflow.experimental.numpy`` inside the compiled
TensorFlow step, so each formula is written once and both runtimes use it. ``normalize`` then
applies ReLU and divides by max(maximum, epsilon), so the maps land in [0, 1] and a frame whose
gradients are all zero gives an all-zero map; it also returns each map's raw maximum (``cam_max``).

A new method is one function here, one entry in ``METHODS`` and one row in the tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from livecam.errors import UserError, close_matches

# Nothing here imports TensorFlow: naming the methods (the CLI's --help) does not load it.

EPSILON = 1e-20


def spatial_sum(x: Any, xp: Any) -> Any:
    """The sum over the map's h x w cells, (N, 1, 1, C).

    NumPy adds the cells of an axis that is not the last one one at a time, so in float32 its
    error grows with h * w (5e-5 relative on a 60x60 layer); where a map's weighted channels
    nearly cancel, that moved a locked class's map by 1e-3. It accumulates in float64 here
    (the result is small). TensorFlow's reductions are blocked and stay accurate in float32.
    """
    if xp is np:
        return np.sum(x, axis=(1, 2), keepdims=True, dtype=np.float64).astype(np.float32)
    return xp.sum(x, axis=(1, 2), keepdims=True)


def spatial_mean(x: Any, xp: Any) -> Any:
    """The mean over the map's h x w cells, (N, 1, 1, C), accumulated as ``spatial_sum``."""
    if xp is np:
        return np.mean(x, axis=(1, 2), keepdims=True, dtype=np.float64).astype(np.float32)
    return xp.mean(x, axis=(1, 2), keepdims=True)


def gradcam(A: Any, G: Any, xp: Any) -> Any:
    """Grad-CAM (Selvaraju et al. 2017), eqs. 1-2.

    alpha_k = mean_ij dy/dA_ij^k;  L = sum_k alpha_k A^k.
    """
    weights = spatial_mean(G, xp)
    return xp.sum(weights * A, axis=-1)


def gradcam_plus_plus(A: Any, G: Any, xp: Any) -> Any:
    """Grad-CAM++ (Chattopadhay et al. 2018), eq. 19 with the exponential-score closed form.

    With S = exp(y), the paper's eq. 19 reduces the second and third derivatives to powers of
    the first: alpha_ij^k = g^2 / (2 g^2 + sum_ab A_ab^k g^3), with g = dy/dA_ij^k. Then
    w_k = sum_ij alpha_ij^k relu(g_ij^k) and L = sum_k w_k A^k. This is eq. 19 as written (not
    the authors' released variant that renormalises alpha by its spatial sum); alpha is 0
    where the denominator is 0.
    """
    g2 = G * G
    g3 = g2 * G
    sum_A = spatial_sum(A, xp)
    denominator = 2.0 * g2 + sum_A * g3
    nonzero = denominator != 0.0
    safe = xp.where(nonzero, denominator, xp.ones_like(denominator))
    alpha = xp.where(nonzero, g2 / safe, xp.zeros_like(g2))
    weights = spatial_sum(alpha * xp.maximum(G, 0.0), xp)
    return xp.sum(weights * A, axis=-1)


def layercam(A: Any, G: Any, xp: Any) -> Any:
    """LayerCAM (Jiang et al. 2021), eq. 7: L = sum_k relu(g^k) * A^k, weighted per location."""
    return xp.sum(xp.maximum(G, 0.0) * A, axis=-1)


def hirescam(A: Any, G: Any, xp: Any) -> Any:
    """HiResCAM (Draelos & Carin 2020), eq. 4: L = sum_k g^k * A^k, elementwise, no averaging."""
    return xp.sum(G * A, axis=-1)


METHODS: dict[str, Callable[[Any, Any, Any], Any]] = {
    "gradcam": gradcam,
    "gradcam++": gradcam_plus_plus,
    "layercam": layercam,
    "hirescam": hirescam,
}


def normalize(raw_cam: Any, xp: Any) -> tuple[Any, Any]:
    """ReLU, then divide each map by max(its maximum, epsilon): [0, 1], never NaN.

    Returns:
        (the maps, each map's raw maximum (N,)): the maximum is what a scale across frames
        needs (``livecam.trust.scale``), since the maps alone all peak at 1.
    """
    cam = xp.maximum(raw_cam, 0.0)
    peak = xp.max(cam, axis=(1, 2), keepdims=True)
    return cam / xp.maximum(peak, EPSILON), peak[:, 0, 0]


METHOD_NAMES: tuple[str, ...] = tuple(METHODS)


def check_method(name: str) -> str:
    """``name`` if it is a method here, else a UserError with the close matches."""
    if not isinstance(name, str):
        raise UserError(f"Expected method to be a name, one of {', '.join(METHOD_NAMES)}. Received: method={name!r}")
    if name not in METHODS:
        close = close_matches(name, METHOD_NAMES, n=2)
        hint = f" Did you mean {close}?" if close else ""
        raise UserError(f"Expected method in {', '.join(METHOD_NAMES)}. Received: method={name!r}.{hint}")
    return name
