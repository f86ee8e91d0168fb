"""Models: the zoo and the demo, a user's model files, labels, and where in a model the map is taken.

- ``livecam.models.loading``: ``load_model`` (any of them, as a ``LoadedModel``);
- ``livecam.models.zoo``: the named models (``ZOO``, ``DEFAULT_MODEL``, the shipped demo);
- ``livecam.models.loaded``: ``LoadedModel`` and the preprocessing by name;
- ``livecam.models.labels``: labels files and finding a class by id or name;
- ``livecam.models.layers``: what livecam can explain, the target layer, the memory per frame.

Nothing here imports TensorFlow at module level, so ``livecam models`` answers at once.
"""

from __future__ import annotations

from livecam.models.labels import class_index, load_labels
from livecam.models.layers import (
    EXPLAINABLE,
    check_explainable,
    find_target_layer,
    iter_layers,
    map_shape,
    spatial_layers,
    step_bytes_per_frame,
    target_candidates,
)
from livecam.models.loaded import PREPROCESSORS, LoadedModel, preprocess_fn
from livecam.models.loading import load_model, with_labels
from livecam.models.zoo import DEFAULT_MODEL, DEMO_MODEL, RANDOM_WEIGHTS_SEED, ZOO, ZooEntry, imagenet_class_names

__all__ = [
    "DEFAULT_MODEL",
    "DEMO_MODEL",
    "EXPLAINABLE",
    "PREPROCESSORS",
    "RANDOM_WEIGHTS_SEED",
    "ZOO",
    "LoadedModel",
    "ZooEntry",
    "check_explainable",
    "class_index",
    "find_target_layer",
    "imagenet_class_names",
    "iter_layers",
    "load_labels",
    "load_model",
    "map_shape",
    "preprocess_fn",
    "spatial_layers",
    "step_bytes_per_frame",
    "target_candidates",
    "with_labels",
]
