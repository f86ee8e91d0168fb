"""Model zoo and model loading: name -> builder, preprocessing, input size, target layer, labels.

Nothing here imports TensorFlow at module level, so ``livecam models`` answers at once.
"""

from __future__ import annotations

import contextlib
import difflib
import itertools
import json
import math
import random
import re
import stat
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from livecam.engine.split import output_activation
from livecam.errors import UserError, close_matches, file_kind, first_line


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
# Zoo models start from these random weights (what --weights none keeps): the same on every run.
RANDOM_WEIGHTS_SEED = 0

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


# ImageNet-21k's names take about 0.5 MiB: no labels file comes near this.
MAX_LABELS_BYTES = 16 * 2**20


def load_labels(path: str | Path) -> tuple[str, ...]:
    """Class names from a file: one per line, or a JSON list, or a JSON object {"0": name, ...}.

    A JSON object must name every class id from 0 up, each once: a gap or a negative id would
    shift every name after it onto the wrong class. A byte-order mark at the start is dropped.
    """
    path = Path(path)
    where = f"Labels file {str(path)!r}"
    try:
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):  # a folder; or a FIFO, which would block, or a device, which may never end
            raise UserError(f"{where} is {file_kind(mode)}; give a text file with one class name per line.")
        # Even a regular file can be endless (/proc): read no more than any labels file needs.
        with path.open("rb") as file:
            raw = file.read(MAX_LABELS_BYTES + 1)
    except FileNotFoundError:
        raise UserError(f"{where} does not exist; pass a text file with one class name per line.") from None
    except OSError as exc:
        raise UserError(f"{where} cannot be read ({exc.strerror}); check the path and its permissions.") from None
    if len(raw) > MAX_LABELS_BYTES:
        raise UserError(
            f"{where} is larger than {MAX_LABELS_BYTES // 2**20} MiB, far more than class names take; "
            f"give a text file with one class name per line."
        )
    try:
        text = raw.decode("utf-8-sig")  # -sig: Windows editors start UTF-8 files with a BOM
    except UnicodeDecodeError:
        raise UserError(f"Labels file {str(path)!r} is not UTF-8 text; save it as UTF-8, one class name per line.") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"Labels file {str(path)!r} is not valid JSON ({exc.msg} at line {exc.lineno}).") from None
        if isinstance(data, dict):
            data = _names_by_id(path, data)
        if not isinstance(data, list) or not all(isinstance(n, str) for n in data):
            raise UserError(f"Labels file {str(path)!r} must hold a JSON list of class names.")
        names = data
    else:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise UserError(f"Labels file {str(path)!r} holds no class names.")
    return tuple(names)


def _names_by_id(path: Path, data: dict) -> list:
    """The names of a JSON object {"0": name, "1": name, ...} in id order; Keras' own class index
    file gives each class as ["n01440764", "tench"], of which the name is the last item."""
    by_id: dict[int, Any] = {}
    for key, value in data.items():
        if not re.fullmatch(r"[0-9]+", key):
            raise UserError(
                f"Labels file {str(path)!r} has the key {key!r}; it must map class ids 0, 1, 2, ... to names, "
                'for example {"0": "cat", "1": "dog"}.'
            )
        class_id = int(key)
        if class_id in by_id:
            raise UserError(f"Labels file {str(path)!r} names class {class_id} twice; give each class id one name.")
        if isinstance(value, list):
            if not value or not isinstance(value[-1], str):
                raise UserError(
                    f"Labels file {str(path)!r} gives class {class_id} no name ({json.dumps(value)}); give it a name."
                )
            value = value[-1]
        if not isinstance(value, str):
            raise UserError(f"Labels file {str(path)!r} gives class {class_id} the name {json.dumps(value)}; names must be text.")
        by_id[class_id] = value
    n_missing = max(by_id, default=-1) + 1 - len(by_id)
    if n_missing:
        missing = [str(i) for i in itertools.islice((i for i in range(max(by_id)) if i not in by_id), 5)]
        shown = ", ".join(missing) + (f" and {n_missing - 5} more" if n_missing > 5 else "")
        raise UserError(
            f"Labels file {str(path)!r} has class ids up to {max(by_id)} but none for {shown}; "
            f"name every class from 0 up, so that no name lands on the wrong class."
        )
    return [by_id[i] for i in range(len(by_id))]


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
        loaded = _user_model(model, model.name, f"Model {model.name!r}")
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
        raise UserError(
            f"The {where} has {len(names)} names but the model has {n_classes} classes; pass a labels file with one name per class."
        )
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


def _load_file(path: Path, *, unsafe: bool) -> LoadedModel:
    import keras

    if not path.is_file():
        raise UserError(
            f"Model file {str(path)!r} does not exist; pass a zoo name ({', '.join(ZOO)}) or a path to a .keras/.h5 file."
        )
    try:
        model = keras.models.load_model(path, compile=False, safe_mode=not unsafe)
    except Exception as exc:
        text = str(exc)
        if "safe_mode" in text or "Lambda" in text:
            raise UserError(
                f"Model file {str(path)!r} contains a Lambda layer, which runs arbitrary code when loaded; "
                f"load it only if you trust its source, with --unsafe-model-load."
            ) from exc
        raise UserError(
            f"Could not load model file {str(path)!r} ({first_line(exc)}); pass a model saved with keras' model.save()."
        ) from exc
    if not isinstance(model, keras.Model):
        raise UserError(f"Model file {str(path)!r} does not hold a Keras model.")
    return _user_model(model, path.stem, f"Model file {str(path)!r}")


def _user_model(model: Any, name: str, what: str) -> LoadedModel:
    """A model from outside the zoo, once it is known that livecam can explain it."""
    check_explainable(model, what)
    shape = tuple(model.inputs[0].shape)
    input_size = (224, 224) if shape[1] is None or shape[2] is None else (int(shape[1]), int(shape[2]))
    return LoadedModel(model, name, preprocess_fn("none"), input_size, (), None)


# ---------------------------------------------------------------- what livecam can explain

EXPLAINABLE = (
    "livecam explains image classifiers: one image input (batch, height, width, 3), one class-score output "
    "(batch, classes), and a convolutional layer before it"
)


def check_explainable(model: Any, what: str = "The model") -> None:
    """Refuses, with the reason, a model whose predictions livecam cannot explain.

    Grad-CAM needs an image classifier: one image input, one output of class scores, and a layer
    with a spatial feature map (height x width > 1) between them. Segmentation models (a score
    per pixel), detectors and multi-input or multi-output models are not such classifiers.

    Args:
        model: a keras.Model.
        what: how messages name the model, e.g. "Model file 'seg.keras'".

    Raises:
        UserError: one sentence: what is wrong with the model, and what livecam explains.
    """
    try:
        inputs, outputs = list(model.inputs), list(model.outputs)
    except (AttributeError, ValueError):  # a Sequential model that was never built
        raise UserError(f"{what} has not been built, so its input is unknown; {EXPLAINABLE}.") from None
    if len(inputs) != 1:
        raise UserError(f"{what} has {len(inputs)} inputs; {EXPLAINABLE}.")
    in_shape = tuple(inputs[0].shape)
    if len(in_shape) != 4 or in_shape[-1] != 3:
        raise UserError(f"{what} takes input of shape {_shape_text(in_shape)}, not RGB images; {EXPLAINABLE}.")
    if len(outputs) != 1:
        raise UserError(f"{what} has {len(outputs)} outputs; {EXPLAINABLE}.")
    out_shape = tuple(outputs[0].shape)
    if len(out_shape) == 4:
        raise UserError(
            f"{what} gives a score per pixel {_shape_text(out_shape)}, as a segmentation model does, "
            f"not one score per class; {EXPLAINABLE}."
        )
    if len(out_shape) != 2 or not out_shape[-1]:
        raise UserError(f"{what} gives output of shape {_shape_text(out_shape)}, not one score per class; {EXPLAINABLE}.")
    if out_shape[-1] == 1 and output_activation(model).kind == "softmax":  # a one-unit sigmoid is a binary classifier
        raise UserError(
            f"{what} ends in a softmax over one unit, which is always 1.0 whatever the picture and has no gradient, "
            f"so it cannot explain anything; for a binary classifier use one sigmoid unit or a softmax over two."
        )
    if not spatial_layers(model):
        raise UserError(f"{what} has no convolutional layer (no spatial feature map) to take a map from; {EXPLAINABLE}.")


def _shape_text(shape: tuple) -> str:
    """(None, 32, 32, 3) as "(batch, 32, 32, 3)"."""
    dims = ["batch" if i == 0 and d is None else "?" if d is None else str(d) for i, d in enumerate(shape)]
    return f"({', '.join(dims)})"


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
    """Layers whose output is a 4-D feature map larger than 1x1, in order; never an input layer,
    whose "map" would only be the picture itself."""
    import keras

    found = []
    for layer in iter_layers(model):
        if isinstance(layer, keras.layers.InputLayer):
            continue
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
            raise UserError(
                f"Model {model.name!r} has no convolutional layer (no spatial feature map) to take a map from; {EXPLAINABLE}."
            )
        return candidates[-1]
    import keras

    for layer in iter_layers(model):
        if layer.name == name:
            if isinstance(layer, keras.layers.InputLayer):
                raise UserError(
                    f"Layer {name!r} is the model's input, whose map would only be the picture itself; "
                    f"pick a layer inside the network: {_layer_list(candidates)}."
                )
            if layer not in candidates:
                raise UserError(
                    f"Layer {name!r} does not output a spatial 4-D feature map; pick one of {_layer_list(candidates)}."
                )
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
    if re.fullmatch(r"-?[0-9]+", text):  # ASCII digits only: "²" is a name, and int() refuses it
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
    hint = (
        "did you mean " + " or ".join(f"{class_names[folded.index(c)]!r} ({folded.index(c)})" for c in close) + "? "
        if close
        else ""
    )
    raise UserError(f"Unknown class {text!r}: {hint}Pass a class id or one of the model's class names.")


# ---------------------------------------------------------------- memory


def step_bytes_per_frame(model: Any, layer_name: str, input_size: tuple[int, int]) -> int:
    """About how much memory one frame takes in the engine's step, in bytes (float32 activations).

    Up to the target layer the forward pass streams: about three of the largest outputs there are
    alive at once. From the target layer on, outputs are kept for the gradient. Add the frame as
    uint8, as float32 and preprocessed. Checked against TensorFlow on a CPU (peak resident memory
    per frame at batches of 16 to 64): 0.7 to 1.3 times the measured value for mobilenet_v2,
    resnet50, vgg16 and the demo model at their default layers, 2.8 times for an early layer.

    A layer whose output size is unknown (a model with any input size) counts as if it kept the
    input's full resolution, which no classifier's layers exceed.
    """
    import keras

    height, width = input_size
    sizes, names = [], []
    for layer in iter_layers(model):
        if isinstance(layer, keras.layers.InputLayer):
            continue
        try:
            shape = tuple(layer.output.shape)[1:]
        except (AttributeError, ValueError):  # a layer called more than once: not one output
            continue
        if len(shape) == 3 and (shape[0] is None or shape[1] is None):
            shape = (height, width, shape[2])
        sizes.append(math.prod(d or 1 for d in shape))
        names.append(layer.name)
    target = names.index(layer_name) if layer_name in names else len(names) - 1
    streamed = 3 * max(sizes[: target + 1], default=0)
    kept = sum(sizes[target:])
    return 4 * (streamed + kept) + height * width * 3 * (1 + 4 + 4)
