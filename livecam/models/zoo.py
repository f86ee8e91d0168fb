"""The named models: the keras.applications zoo, and the demo classifier shipped in ``livecam.demo``.

Nothing here imports TensorFlow (or the demo's drawing code) at module level, so ``livecam
models`` answers at once.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from livecam.errors import UserError, first_line
from livecam.models.hub import import_keras_hub
from livecam.models.loaded import LoadedModel, preprocess_fn

__all__ = [
    "DEFAULT_MODEL",
    "DEMO_MODEL",
    "DEMO_VIT_MODEL",
    "RANDOM_WEIGHTS_SEED",
    "ZOO",
    "ZooEntry",
    "build_zoo_model",
    "imagenet_class_names",
    "load_demo_model",
]


@dataclass(frozen=True)
class ZooEntry:
    """How to build one keras.applications model and feed it.

    Attributes:
        builder: attribute name in ``keras.applications``.
        preprocess: name of the preprocessing (a key of ``PREPROCESSORS``).
        input_size: (height, width) the network is fed.
        default_layer: the target layer; None = the automatic choice (the last layer with a
            spatial 4-D output).
    """

    builder: str
    preprocess: str
    input_size: tuple[int, int]
    default_layer: str | None


ZOO: dict[str, ZooEntry] = {
    "mobilenet_v2": ZooEntry("MobileNetV2", "mobilenet_v2", (224, 224), "out_relu"),
    # MobileNetV3's activations have auto-numbered names that depend on what was built
    # before it in the process, so its layer is found by the automatic rule.
    "mobilenet_v3_large": ZooEntry("MobileNetV3Large", "mobilenet_v3", (224, 224), None),
    "resnet50": ZooEntry("ResNet50", "resnet50", (224, 224), "conv5_block3_out"),
    # The Grad-CAM paper's layer: 14x14, twice the resolution of the automatic block5_pool.
    "vgg16": ZooEntry("VGG16", "vgg16", (224, 224), "block5_conv3"),
    "efficientnet_b0": ZooEntry("EfficientNetB0", "efficientnet", (224, 224), "top_activation"),
    "inception_v3": ZooEntry("InceptionV3", "inception_v3", (299, 299), "mixed10"),
    "densenet121": ZooEntry("DenseNet121", "densenet", (224, 224), "relu"),
    "convnext_tiny": ZooEntry("ConvNeXtTiny", "convnext", (224, 224), "convnext_tiny_stage_3_block_2_identity"),
}

DEFAULT_MODEL = "mobilenet_v2"
DEMO_MODEL = "demo"
DEMO_VIT_MODEL = "demo-vit"
# The shipped demo models: name -> file in livecam/demo/.
_DEMO_FILES = {DEMO_MODEL: "model.keras", DEMO_VIT_MODEL: "vit.keras"}
# Zoo models start from these random weights (what --weights none keeps): the same on every run.
RANDOM_WEIGHTS_SEED = 0


def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names shipped with the package (see livecam/data/README.md)."""
    text = resources.files("livecam").joinpath("data/imagenet_class_names.json").read_text()
    return tuple(json.loads(text))


def build_zoo_model(name: str, weights: str | Path | None) -> LoadedModel:
    """Build the zoo model ``name`` with ``weights`` (see ``livecam.models.load_model``)."""
    import keras

    entry = ZOO[name]
    builder = getattr(keras.applications, entry.builder)
    weight_path = None
    if isinstance(weights, str) and weights.lower() == "none":
        weights = None
    if weights is not None and weights != "imagenet":
        weight_path = Path(weights)
        if not weight_path.is_file():
            raise UserError(
                f"Weights file {str(weight_path)!r} does not exist; pass a path to a .weights.h5/.h5 file, 'imagenet' or 'none'."
            )
        weights = None
    kwargs: dict[str, Any] = {"weights": weights, "input_shape": (*entry.input_size, 3)}
    try:
        with _seeded(RANDOM_WEIGHTS_SEED):
            model = builder(**kwargs)
    except Exception as exc:  # Keras raises a bare Exception on a failed download
        if weights == "imagenet":
            python = _download_failed(name, exc, "weights='file.weights.h5'", "weights=None")
            raise UserError(python, cli=_download_failed(name, exc, "--weights PATH", "'none'")) from exc
        raise
    if weight_path is not None:
        try:
            # Keras only warns when parts of the file do not match (and keeps random weights
            # there); a partial load is a wrong model, so warnings count as failures here.
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                model.load_weights(weight_path)
        except Exception as exc:
            raise UserError(
                f"Weights file {str(weight_path)!r} does not fit {name} ({first_line(exc)}); "
                f"pass weights saved from the same architecture."
            ) from exc
    return LoadedModel(
        model, name, preprocess_fn(entry.preprocess), entry.input_size, imagenet_class_names(), entry.default_layer
    )


@contextlib.contextmanager
def _seeded(seed: int):
    """Keras's initializers draw their seeds from Python's ``random``: seed it here, then put it back.

    So ``--weights none`` gives the same random weights on every run, and the OpenVINO cache
    (keyed by the weights) one entry for them, not a new one per run. Only this module's
    ``random`` state is touched (not NumPy's or TensorFlow's, as ``keras.utils.set_random_seed``
    would), and it is restored: the caller's random numbers go on as if nothing was built.
    """
    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)


def _download_failed(name: str, exc: Exception, weights_file: str, no_weights: str) -> str:
    """Why the ImageNet weights are missing and where to put them; ``weights_file`` and ``no_weights``
    say how the caller passes a weights file or random weights (Python's keywords or the CLI's flags)."""
    url = re.search(r"https?://\S+?(?=[\s:]|$)", str(exc))
    where = "~/.keras/models/"
    if url:
        file = url.group(0).rstrip(".,:").rsplit("/", 1)[-1]
        return (
            f"Could not download the ImageNet weights for {name} (no internet?); "
            f"download {url.group(0).rstrip('.,:')} into {where}{file}, or pass {weights_file} (or {no_weights} for random weights)."
        )
    return f"Could not get the ImageNet weights for {name} ({first_line(exc)}); put them in {where} or pass {weights_file}."


def load_demo_model(name: str = DEMO_MODEL) -> LoadedModel:
    """Load a shipped demo classifier (offline): ``"demo"``, the CNN, or ``"demo-vit"``, a tiny ViT.

    Both take float32 RGB pixels in 0..255 (they rescale them themselves) and output softmax
    probabilities over ``livecam.demo.CLASS_NAMES``. The ViT is built on KerasHub's
    ``ViTBackbone``, so it needs the hub extra.

    Raises:
        UserError: the package was installed without the model's file, or KerasHub is missing.
    """
    import keras

    from livecam.demo import CLASS_NAMES, DEMO_LAYER  # lazy: the scenes need OpenCV, `livecam models` does not

    if name == DEMO_VIT_MODEL:
        import_keras_hub(f"--model {DEMO_VIT_MODEL}")  # registers the classes the file holds
    file = resources.files("livecam.demo").joinpath(_DEMO_FILES[name])
    script = "train_demo_vit.py" if name == DEMO_VIT_MODEL else "train_demo_model.py"
    with resources.as_file(file) as path:
        if not path.is_file():
            raise UserError(
                f"The demo model {str(path)!r} is missing; reinstall livecam, or rebuild it with `python scripts/{script}`."
            )
        model = keras.models.load_model(path, compile=False, safe_mode=True)
    height, width = (int(v) for v in model.inputs[0].shape[1:3])
    return LoadedModel(
        model=model,
        name=name,
        preprocess=preprocess_fn("none"),
        input_size=(height, width),
        class_names=CLASS_NAMES,
        # The ViT's default is the engine's own: the tokens entering its last transformer block.
        default_layer=DEMO_LAYER if name == DEMO_MODEL else None,
    )
