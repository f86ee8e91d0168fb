"""Model zoo and model loading: name -> builder, preprocessing, input size, target layer, labels.

Nothing here imports TensorFlow at module level, so ``livecam models`` answers at once.
"""

from __future__ import annotations

import difflib
import json
import re
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable

from livecam.errors import UserError, close_matches, first_line


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
        raise UserError(_unknown("preprocessing", name, PREPROCESSORS))
    module = _PREPROCESS_MODULES[name]
    if module is None:
        return lambda x: x
    import keras

    return getattr(keras.applications, module).preprocess_input


def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names shipped with the package (see livecam/data/README.md)."""
    text = resources.files("livecam").joinpath("data/imagenet_class_names.json").read_text()
    return tuple(json.loads(text))


def load_labels(path: str | Path) -> tuple[str, ...]:
    """Class names from a file: one per line, or a JSON list, or a JSON object {"0": name, ...}."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Labels file {str(path)!r} does not exist; pass a text file with one class name per line.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"Labels file {str(path)!r} is not UTF-8 text; save it as UTF-8, one class name per line.") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"Labels file {str(path)!r} is not valid JSON ({exc.msg} at line {exc.lineno}).") from None
        if isinstance(data, dict):
            try:
                data = [data[k] for k in sorted(data, key=int)]
            except ValueError:
                raise UserError(f"Labels file {str(path)!r} must map class ids (0, 1, ...) to names.") from None
            data = [d[-1] if isinstance(d, list) else d for d in data]  # Keras' {"0": ["n01440764", "tench"]}
        if not isinstance(data, list) or not all(isinstance(n, str) for n in data):
            raise UserError(f"Labels file {str(path)!r} must hold a JSON list of class names.")
        names = data
    else:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise UserError(f"Labels file {str(path)!r} holds no class names.")
    return tuple(names)


def load_model(
    model: Any = DEFAULT_MODEL,
    *,
    weights: str | Path | None = "imagenet",
    labels: str | Path | None = None,
    unsafe: bool = False,
) -> LoadedModel:
    """Build a zoo model, load a user's model file, or wrap a keras.Model.

    Args:
        model: a zoo name (see ``ZOO``), ``"demo"``, a path to a .keras/.h5 file, or a keras.Model.
        weights: ``"imagenet"``, ``None``/``"none"`` (random init) or a path to a weights file.
            Only used for zoo models.
        labels: optional labels file (one name per line, or JSON).
        unsafe: allow model files with Lambda layers (arbitrary code). Off by default.

    Raises:
        UserError: unknown name, missing file, failed download, weights that do not fit.
    """
    import keras

    if isinstance(model, keras.Model):
        loaded = LoadedModel(model, model.name, preprocess_fn("none"), _input_size(model), (), None)
    elif isinstance(model, str) and model == DEMO_MODEL:
        from livecam.demo import load_demo_model

        loaded = load_demo_model()
    elif isinstance(model, str) and model in ZOO:
        loaded = _build_zoo(model, weights)
    elif isinstance(model, (str, Path)) and (Path(model).suffix.lower() in (".keras", ".h5") or Path(model).exists()):
        loaded = _load_file(Path(model), unsafe=unsafe)
    else:
        raise UserError(_unknown("model", str(model), (*ZOO, DEMO_MODEL), hint="or a path to a .keras/.h5 file"))

    units = int(loaded.model.outputs[0].shape[-1])
    n_classes = 2 if units == 1 else units  # one unit: a binary classifier, class 0 = not class 1
    names = load_labels(labels) if labels is not None else loaded.class_names
    if names and len(names) != n_classes:
        where = f"labels file {str(labels)!r}" if labels is not None else "the model's class names"
        raise UserError(f"The {where} has {len(names)} names but the model has {n_classes} classes; pass a labels file with one name per class.")
    if not names:
        names = tuple(f"class {i}" for i in range(n_classes))
    return LoadedModel(loaded.model, loaded.name, loaded.preprocess, loaded.input_size, tuple(names), loaded.default_layer)


def _build_zoo(name: str, weights: str | Path | None) -> LoadedModel:
    import keras

    entry = ZOO[name]
    builder = getattr(keras.applications, entry.builder)
    weight_path = None
    if isinstance(weights, str) and weights.lower() == "none":
        weights = None
    if weights is not None and weights != "imagenet":
        weight_path = Path(weights)
        if not weight_path.is_file():
            raise UserError(f"Weights file {str(weight_path)!r} does not exist; pass a path to a .weights.h5/.h5 file, 'imagenet' or 'none'.")
        weights = None
    kwargs: dict[str, Any] = {"weights": weights, "input_shape": (*entry.input_size, 3)}
    try:
        model = builder(**kwargs)
    except Exception as exc:  # Keras raises a bare Exception on a failed download
        if weights == "imagenet":
            raise UserError(_download_failed(name, exc)) from exc
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
    return LoadedModel(model, name, preprocess_fn(entry.preprocess), entry.input_size, imagenet_class_names(), entry.default_layer)


def _download_failed(name: str, exc: Exception) -> str:
    url = re.search(r"https?://\S+?(?=[\s:]|$)", str(exc))
    where = "~/.keras/models/"
    if url:
        file = url.group(0).rstrip(".,:").rsplit("/", 1)[-1]
        return (
            f"Could not download the ImageNet weights for {name} (no internet?); "
            f"download {url.group(0).rstrip('.,:')} into {where}{file}, or pass --weights PATH (or 'none' for random weights)."
        )
    return f"Could not get the ImageNet weights for {name} ({first_line(exc)}); put them in {where} or pass --weights PATH."


def _load_file(path: Path, *, unsafe: bool) -> LoadedModel:
    import keras

    if not path.is_file():
        raise UserError(f"Model file {str(path)!r} does not exist; pass a zoo name ({', '.join(ZOO)}) or a path to a .keras/.h5 file.")
    try:
        model = keras.models.load_model(path, compile=False, safe_mode=not unsafe)
    except Exception as exc:
        text = str(exc)
        if "safe_mode" in text or "Lambda" in text:
            raise UserError(
                f"Model file {str(path)!r} contains a Lambda layer, which runs arbitrary code when loaded; "
                f"load it only if you trust its source, with --unsafe-model-load."
            ) from exc
        raise UserError(f"Could not load model file {str(path)!r} ({first_line(exc)}); pass a model saved with keras' model.save().") from exc
    if not isinstance(model, keras.Model):
        raise UserError(f"Model file {str(path)!r} does not hold a Keras model.")
    return LoadedModel(model, path.stem, preprocess_fn("none"), _input_size(model), (), None)


def _input_size(model: Any) -> tuple[int, int]:
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[-1] != 3:
        raise UserError(f"Expected a model that takes RGB images (batch, height, width, 3). Received input shape {shape}.")
    if shape[1] is None or shape[2] is None:
        return (224, 224)
    return (int(shape[1]), int(shape[2]))


def _unknown(kind: str, name: str, choices: tuple[str, ...] | list[str], hint: str = "") -> str:
    close = close_matches(name, choices)
    did_you_mean = f"did you mean {close}? " if close else ""
    return f"Unknown {kind} {name!r}: {did_you_mean}Expected one of {', '.join(choices)}{' ' + hint if hint else ''}."


# ---------------------------------------------------------------- target layer choice


def iter_layers(model: Any):
    """All layers in order, nested models replaced by their own layers (depth first)."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from iter_layers(layer)
        else:
            yield layer


def spatial_layers(model: Any) -> list[Any]:
    """Layers whose output is a 4-D feature map larger than 1x1, in order."""
    found = []
    for layer in iter_layers(model):
        try:
            shape = tuple(layer.output.shape)
        except (AttributeError, ValueError):  # layer called more than once, or never
            continue
        if len(shape) == 4 and (shape[1] or 2) * (shape[2] or 2) > 1:
            found.append(layer)
    return found


def find_target_layer(model: Any, name: str | None = None) -> Any:
    """The explicit ``name`` if given, else the last layer with a spatial 4-D output."""
    candidates = spatial_layers(model)
    if name is None:
        if not candidates:
            raise UserError(f"Model {model.name!r} has no layer with a spatial 4-D output; Grad-CAM needs a convolutional layer.")
        return candidates[-1]
    for layer in iter_layers(model):
        if layer.name == name:
            if layer not in candidates:
                raise UserError(f"Layer {name!r} does not output a spatial 4-D feature map; pick one of {_layer_list(candidates)}.")
            return layer
    close = close_matches(name, [c.name for c in candidates])
    did_you_mean = f"did you mean {close}? " if close else ""
    raise UserError(f"Unknown layer {name!r}: {did_you_mean}candidate layers are {_layer_list(candidates)}.")


def _layer_list(candidates: list[Any], last: int = 10) -> str:
    names = [c.name for c in candidates]
    if len(names) <= last:
        return ", ".join(names)
    return f"... {', '.join(names[-last:])} ({len(names)} in all; `livecam layers MODEL` lists them)"


def class_index(class_names: tuple[str, ...] | list[str], query: str | int) -> int:
    """The class id for ``query``: an id ("207") or a name ("golden retriever", any case)."""
    text = str(query).strip()
    if text.lstrip("-").isdigit():
        class_id = int(text)
        if not 0 <= class_id < len(class_names):
            raise UserError(f"Expected a class id in [0, {len(class_names) - 1}]. Received: {class_id}")
        return class_id
    folded = [name.lower() for name in class_names]
    matches = [i for i, name in enumerate(folded) if name == text.lower()]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise UserError(f"Class name {text!r} is ambiguous (ids {', '.join(map(str, matches))}); pass the id instead.")
    close = difflib.get_close_matches(text.lower(), folded, n=3, cutoff=0.6)
    hint = "did you mean " + " or ".join(f"{class_names[folded.index(c)]!r} ({folded.index(c)})" for c in close) + "? " if close else ""
    raise UserError(f"Unknown class {text!r}: {hint}Pass a class id or one of the model's class names.")
