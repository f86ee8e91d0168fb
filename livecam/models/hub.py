"""KerasHub image classifiers: ``--model hub:PRESET``, and KerasHub models saved as ``.keras`` files.

A preset is loaded with ``keras_hub.models.ImageClassifier.from_preset`` (KerasHub downloads it
once and keeps it in its cache), and fed by its own image converter (resizing, scale and offset)
inside the compiled step. KerasHub is an optional extra (``pip install "livecam[hub]"``): it adds
about 270 MB (TensorFlow Text above all) and half a second or more to every start that imports it,
so it is imported only for a model that needs it.

Nothing here imports TensorFlow or KerasHub at module level, so ``livecam models`` answers at once.
"""

from __future__ import annotations

import json
import os
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from livecam.errors import UserError, close_matches, first_line

__all__ = [
    "HUB_PREFIX",
    "HUB_PRESETS",
    "HubPreprocess",
    "hub_preprocess",
    "import_keras_hub",
    "is_keras_hub_file",
    "load_hub_model",
]

HUB_PREFIX = "hub:"

# Presets of KerasHub's ImageClassifier that livecam is built for (ImageNet-1k weights), each with
# the map it gives: `livecam models` prints them. Any other ImageClassifier preset loads too.
HUB_PRESETS: dict[str, str] = {
    "vit_base_patch16_224_imagenet": "ViT-B/16: the tokens entering its last block, 14x14",
    "vit_large_patch16_224_imagenet": "ViT-L/16: the tokens entering its last block, 14x14",
    "resnet_50_imagenet": "ResNet-50: its last stage, 7x7",
    "efficientnet_b0_ra_imagenet": "EfficientNet-B0: its last convolution, 7x7",
    "mobilenet_v3_large_100_imagenet": "MobileNetV3-Large: its last convolution, 7x7",
    "densenet_121_imagenet": "DenseNet-121: its last block, 7x7",
}

_INSTALL = 'pip install "livecam[hub]" (or keras-hub)'


def import_keras_hub(what: str) -> Any:
    """``keras_hub``, or one sentence saying ``what`` needs it and how to install it."""
    try:
        import keras_hub
    except ImportError:
        raise UserError(f"{what} needs KerasHub, which is not installed; {_INSTALL}.") from None
    return keras_hub


def load_hub_model(preset: str, weights: str | Path | None) -> Any:
    """The KerasHub ImageClassifier ``preset`` (a name, a ``kaggle://``/``hf://`` handle or a saved preset folder).

    ``weights`` is ``"imagenet"`` (the preset's own weights) or ``None``/``"none"`` (its
    architecture with random weights). Returns the classifier (a ``keras.Model``).

    Raises:
        UserError: KerasHub missing, an unknown preset, a preset that is no image classifier, or
            one that cannot be downloaded (naming the preset and KerasHub's cache).
    """
    keras_hub = import_keras_hub(f"--model {HUB_PREFIX}{preset}")
    if weights is not None and str(weights).lower() not in ("imagenet", "none"):
        raise UserError(
            f"A KerasHub preset brings its own weights; pass --weights imagenet (the preset's) or none (random), not {str(weights)!r}."
        )
    load_weights = weights is not None and str(weights).lower() != "none"
    try:
        return keras_hub.models.ImageClassifier.from_preset(preset, load_weights=load_weights)
    except Exception as exc:
        raise UserError(_preset_failed(preset, exc, tuple(keras_hub.models.ImageClassifier.presets))) from exc


def _preset_failed(preset: str, exc: Exception, known: tuple[str, ...]) -> str:
    text = str(exc)
    name = f"{HUB_PREFIX}{preset}"
    if "Unknown preset identifier" in text:
        close = close_matches(preset, known)
        did_you_mean = f"did you mean {close}? " if close else ""
        return (
            f"Unknown KerasHub preset {preset!r}: {did_you_mean}Pass {HUB_PREFIX}NAME with a preset name (`livecam models` lists some; "
            f"keras_hub.models.ImageClassifier.presets has them all), a kaggle:// or hf:// handle, or a folder saved with save_to_preset()."
        )
    if "Unable to find a subclass" in text or "is not a" in text:
        return f"KerasHub preset {preset!r} is not an image classifier ({first_line(exc)}); pass an ImageClassifier preset."
    if type(exc).__name__ in ("ConnectionError", "Timeout", "ConnectTimeout") or "resolve" in text or "connect" in text.lower():
        return (
            f"Could not download the KerasHub preset {preset!r} (no internet?); KerasHub keeps the presets it downloaded in "
            f"{_hub_cache()}: run {name} once with internet, or pass {HUB_PREFIX}PATH to a preset folder copied from there."
        )
    return f"Could not load the KerasHub preset {preset!r} ({first_line(exc)})."


def _hub_cache() -> str:
    """Where KerasHub's downloads go: kagglehub's cache (``$KAGGLEHUB_CACHE``), as kagglehub computes it."""
    return os.environ.get("KAGGLEHUB_CACHE") or "~/.cache/kagglehub/ ($KAGGLEHUB_CACHE)"


def is_keras_hub_file(path: Path) -> bool:
    """Whether a .keras file holds KerasHub classes (which need ``keras_hub`` imported to load)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return b'"keras_hub' in archive.read("config.json")
    except (OSError, KeyError, zipfile.BadZipFile):
        return False  # not a .keras archive: Keras' own loader says what is wrong with it


@dataclass(frozen=True, eq=False)
class HubPreprocess:
    """A KerasHub classifier's image converter as livecam's preprocessing (float32 RGB 0..255 in).

    Its ``repr`` is the converter's configuration: the OpenVINO cache key reads it.
    """

    converter: Any

    def __call__(self, x: Any) -> Any:
        return self.converter(x)

    def __repr__(self) -> str:
        return f"HubPreprocess({json.dumps(self.converter.get_config(), sort_keys=True, default=str)})"


def hub_preprocess(model: Any) -> HubPreprocess | None:
    """The image converter of a KerasHub ImageClassifier's preprocessor, or None for any other model."""
    if "keras_hub" not in sys.modules:  # a model of KerasHub's was built or loaded by it
        return None
    import keras_hub

    if not isinstance(model, keras_hub.models.ImageClassifier):
        return None
    converter = getattr(getattr(model, "preprocessor", None), "image_converter", None)
    return None if converter is None else HubPreprocess(converter)


def hub_input_size(preprocess: HubPreprocess | None) -> tuple[int, int] | None:
    """(height, width) the converter resizes to, when the model's input does not say."""
    size = getattr(preprocess.converter, "image_size", None) if preprocess is not None else None
    return (int(size[0]), int(size[1])) if size else None
