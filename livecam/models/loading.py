"""``load_model``: a zoo name, the demo, a KerasHub preset, a user's model file or a keras.Model, as a ``LoadedModel``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from livecam.errors import UserError, first_line
from livecam.models.hub import HUB_PREFIX, hub_input_size, hub_preprocess, import_keras_hub, is_keras_hub_file, load_hub_model
from livecam.models.labels import load_labels
from livecam.models.layers import check_explainable
from livecam.models.loaded import LoadedModel, preprocess_fn, unknown_choice
from livecam.models.zoo import (
    DEFAULT_MODEL,
    DEMO_MODEL,
    DEMO_VIT_MODEL,
    ZOO,
    build_zoo_model,
    imagenet_class_names,
    load_demo_model,
)

__all__ = ["load_model", "with_labels"]


def load_model(
    model: Any = DEFAULT_MODEL,
    *,
    weights: str | Path | None = "imagenet",
    labels: str | Path | None = None,
    unsafe: bool = False,
) -> LoadedModel:
    """Build a zoo model, load a user's model file, or wrap a keras.Model.

    Args:
        model: a zoo name (see ``ZOO``), ``"demo"``, ``"demo-vit"``, ``"hub:PRESET"`` (a KerasHub ImageClassifier
            preset), a path to a .keras/.h5 file, or a keras.Model.
        weights: ``"imagenet"``, ``None``/``"none"`` (random init) or a path to a weights file
            (zoo models only; a KerasHub preset takes ``"imagenet"``, its own, or none).
        labels: optional labels file (one name per line, or JSON).
        unsafe: allow model files with Lambda layers (arbitrary code). Off by default.

    Raises:
        UserError: unknown name, missing file, failed download, weights that do not fit.
    """
    import keras

    if isinstance(model, keras.Model):
        loaded = _user_model(model, model.name, f"Model {model.name!r}")
    elif isinstance(model, str) and model in (DEMO_MODEL, DEMO_VIT_MODEL):
        loaded = load_demo_model(model)
    elif isinstance(model, str) and model in ZOO:
        loaded = build_zoo_model(model, weights)
    elif isinstance(model, str) and model.startswith(HUB_PREFIX):
        preset = model[len(HUB_PREFIX) :]
        loaded = _user_model(load_hub_model(preset, weights), Path(preset).name or preset, f"KerasHub preset {preset!r}")
    elif isinstance(model, (str, Path)) and (Path(model).suffix.lower() in (".keras", ".h5") or Path(model).exists()):
        loaded = _load_file(Path(model), unsafe=unsafe)
    else:
        raise UserError(
            unknown_choice(
                "model",
                str(model),
                (*ZOO, DEMO_MODEL, DEMO_VIT_MODEL),
                hint=f"or {HUB_PREFIX}PRESET, or a path to a .keras/.h5 file",
            )
        )

    units = int(loaded.model.outputs[0].shape[-1])
    n_classes = 2 if units == 1 else units  # one unit: a binary classifier, class 0 = not class 1
    if loaded.class_names and len(loaded.class_names) != n_classes:
        raise UserError(
            f"The model's class names are {len(loaded.class_names)} but the model has {n_classes} classes; "
            "pass a labels file with one name per class."
        )
    names = with_labels(loaded.class_names or tuple(f"class {i}" for i in range(n_classes)), labels)
    return LoadedModel(loaded.model, loaded.name, loaded.preprocess, loaded.input_size, names, loaded.default_layer)


def with_labels(class_names: tuple[str, ...], labels: str | Path | None) -> tuple[str, ...]:
    """The names of a labels file in place of a model's ``class_names`` (one per class), or those when None."""
    if labels is None:
        return tuple(class_names)
    names = load_labels(labels)
    if len(names) != len(class_names):
        raise UserError(
            f"The labels file {str(labels)!r} has {len(names)} names but the model has {len(class_names)} classes; "
            "pass a labels file with one name per class."
        )
    return names


def _load_file(path: Path, *, unsafe: bool) -> LoadedModel:
    import keras

    if not path.is_file():
        raise UserError(
            f"Model file {str(path)!r} does not exist; pass a zoo name ({', '.join(ZOO)}) or a path to a .keras/.h5 file."
        )
    if is_keras_hub_file(path):  # its classes are registered by importing KerasHub
        import_keras_hub(f"Model file {str(path)!r}")
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
    """A model from outside the zoo, once it is known that livecam can explain it.

    A KerasHub ImageClassifier is fed by its own preprocessor's image converter, and one with
    1000 classes (KerasHub's are ImageNet-1k's) gets the ImageNet class names.
    """
    check_explainable(model, what)
    hub = hub_preprocess(model)
    shape = tuple(model.inputs[0].shape)
    if shape[1] is not None and shape[2] is not None:
        input_size = (int(shape[1]), int(shape[2]))
    else:
        input_size = hub_input_size(hub) or (224, 224)
    if hub is None:
        return LoadedModel(model, name, preprocess_fn("none"), input_size, (), None)
    names = imagenet_class_names() if int(model.outputs[0].shape[-1]) == 1000 else ()
    return LoadedModel(model, name, hub, input_size, names, None)
