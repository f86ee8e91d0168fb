"""What a loaded model is, and how a model is fed: ``LoadedModel`` and the preprocessing by name.

The zoo, the user's files and the shipped demo model all end as a ``LoadedModel``; this module
imports nothing of theirs, so each of them can use it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from livecam.errors import UserError, close_matches

__all__ = ["PREPROCESSORS", "LoadedModel", "preprocess_fn", "unknown_choice"]

# keras.applications module that holds each preprocess_input. "none" feeds RGB pixels in 0..255
# (the models that carry their own rescaling layers: EfficientNet, ConvNeXt, MobileNetV3).
_PREPROCESS_MODULES = {
    "mobilenet_v2": "mobilenet_v2",
    "mobilenet_v3": "mobilenet_v3",
    "resnet50": "resnet50",
    "vgg16": "vgg16",
    "efficientnet": "efficientnet",
    "inception_v3": "inception_v3",
    "densenet": "densenet",
    "convnext": "convnext",
    "none": None,
}
PREPROCESSORS = tuple(_PREPROCESS_MODULES)


@dataclass(frozen=True)
class LoadedModel:
    """A ready model and what the engine needs to feed and read it."""

    model: Any  # keras.Model
    name: str
    preprocess: Callable[[Any], Any]  # float32 RGB 0..255 tensor -> model input tensor
    input_size: tuple[int, int]  # (height, width)
    class_names: tuple[str, ...]
    default_layer: str | None


def preprocess_fn(name: str) -> Callable[[Any], Any]:
    """The preprocessing called ``name``: a function of a float32 RGB tensor in 0..255."""
    if name not in _PREPROCESS_MODULES:
        raise UserError(unknown_choice("preprocessing", name, PREPROCESSORS))
    module = _PREPROCESS_MODULES[name]
    if module is None:
        return lambda x: x
    import keras

    return getattr(keras.applications, module).preprocess_input


def unknown_choice(kind: str, name: str, choices: tuple[str, ...] | list[str], hint: str = "") -> str:
    """The message for a ``kind`` called ``name`` that is none of ``choices``, with the closest ones."""
    close = close_matches(name, choices)
    did_you_mean = f"did you mean {close}? " if close else ""
    return f"Unknown {kind} {name!r}: {did_you_mean}Expected one of {', '.join(choices)}{' ' + hint if hint else ''}."
