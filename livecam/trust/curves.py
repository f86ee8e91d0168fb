"""Offline faithfulness scores of one map, from images that all go through one engine call.

- Deletion and insertion (RISE, Petsiuk et al. 2018): hide the picture's pixels in the map's
  order, hottest first, in K steps, and read the explained class's probability after each; or
  start from the hidden picture and restore them in that order. The areas under the two curves
  (x from 0 to 1): a faithful map makes deletion fall fast (a small area) and insertion rise
  fast (a large one). Hidden means the same strong blur as the live readout
  (``livecam.trust.hiding``), not black.
- Average drop and increase in confidence (Grad-CAM++, Chattopadhay et al. 2018, sec. 5.1): the
  picture multiplied by the map (its explanation map E); drop = max(0, Y - O) / Y, increase =
  O > Y, with Y the probability on the picture and O on E, averaged over pictures.

Baselines (``random_map``, ``centre_map``) put the numbers in scale: a map that knows nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from livecam.render.heat import upsample_cam
from livecam.trust.hiding import hot_first, strong_blur

DEFAULT_STEPS = 16


@dataclass(frozen=True)
class CurveScores:
    """One picture's offline scores (see the module's docstring).

    Attributes:
        deletion_auc, insertion_auc: the areas under the curves, in [0, 1].
        drop: max(0, Y - O) / Y.
        increase: whether O > Y.
    """

    deletion_auc: float
    insertion_auc: float
    drop: float
    increase: bool

    def fields(self) -> dict[str, Any]:
        return {
            "faith_deletion_auc": round(self.deletion_auc, 6),
            "faith_insertion_auc": round(self.insertion_auc, 6),
            "faith_drop": round(self.drop, 6),
            "faith_increase": self.increase,
        }


def curve_images(image_bgr: np.ndarray, cam: np.ndarray, steps: int = DEFAULT_STEPS) -> np.ndarray:
    """(2 * steps + 1, H, W, 3): deletion after steps 1..K, insertion after steps 0..K-1, then the explanation map E.

    The ends left out are the picture itself (deletion's step 0, insertion's step K), whose
    probability the caller has.
    """
    height, width = image_bgr.shape[:2]
    counts = [round(i * width * height / steps) for i in range(steps + 1)]
    order = hot_first(cam, (width, height), counts)
    flat = image_bgr.reshape(-1, 3)
    blurred = strong_blur(image_bgr).reshape(-1, 3)
    deleted = np.repeat(flat[None], steps, axis=0)
    inserted = np.repeat(blurred[None], steps, axis=0)
    for i in range(steps):
        gone, back = order[: counts[i + 1]], order[: counts[i]]
        deleted[i, gone] = blurred[gone]
        inserted[i, back] = flat[back]
    weights = upsample_cam(cam, (width, height))[..., None]
    explanation = (image_bgr * weights).round().astype(np.uint8).reshape(1, -1, 3)
    return np.concatenate([deleted, inserted, explanation]).reshape(-1, height, width, 3)


def curve_scores(shown: float, probs: np.ndarray, steps: int = DEFAULT_STEPS) -> CurveScores:
    """The scores from the probability on the picture and on each of ``curve_images``, in order."""
    probs = np.asarray(probs, np.float64)
    deletion = np.concatenate([[shown], probs[:steps]])
    insertion = np.concatenate([probs[steps : 2 * steps], [shown]])
    masked = float(probs[2 * steps])
    return CurveScores(
        deletion_auc=float(np.trapezoid(deletion, dx=1 / steps)),
        insertion_auc=float(np.trapezoid(insertion, dx=1 / steps)),
        drop=max(0.0, shown - masked) / shown if shown > 0 else 0.0,
        increase=masked > shown,
    )


def random_map(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A baseline map that knows nothing: uniform noise on the map's grid."""
    return rng.random(shape, dtype=np.float32)


def centre_map(shape: tuple[int, int]) -> np.ndarray:
    """A baseline map that only knows that objects tend to be central: a Gaussian (sigma a quarter of the side) at the centre."""
    h, w = shape
    y = (np.arange(h) - (h - 1) / 2) / (h / 4)
    x = (np.arange(w) - (w - 1) / 2) / (w / 4)
    return np.exp(-0.5 * (y[:, None] ** 2 + x[None, :] ** 2)).astype(np.float32)
