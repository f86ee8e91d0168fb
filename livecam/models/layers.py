"""What livecam can explain, and where in a model the map is taken: the model checks, the
target layer, and the memory a frame takes up to it."""

from __future__ import annotations

import math
from typing import Any

from livecam.engine.split import output_activation
from livecam.engine.targets import activation_shape, to_grid_shape, token_targets
from livecam.errors import UserError, close_matches

__all__ = [
    "EXPLAINABLE",
    "check_explainable",
    "find_target_layer",
    "iter_layers",
    "map_shape",
    "spatial_layers",
    "step_bytes_per_frame",
    "target_candidates",
]

EXPLAINABLE = (
    "livecam explains image classifiers: one image input (batch, height, width, 3), one class-score output "
    "(batch, classes), and a convolutional layer or a vision transformer's blocks before it"
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
    if not target_candidates(model):
        raise UserError(f"{what} has no convolutional layer (no spatial feature map) to take a map from; {EXPLAINABLE}.")


def _shape_text(shape: tuple) -> str:
    """(None, 32, 32, 3) as "(batch, 32, 32, 3)"."""
    dims = ["batch" if i == 0 and d is None else "?" if d is None else str(d) for i, d in enumerate(shape)]
    return f"({', '.join(dims)})"


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


def target_candidates(model: Any) -> list[Any]:
    """Where a map can be taken, in order: the layers with a spatial output, then the block
    boundaries of a vision transformer (``livecam.engine.targets.TokenTarget``)."""
    return spatial_layers(model) + token_targets(model)


def map_shape(target: Any) -> tuple[int, ...]:
    """(h, w, channels) of the map a target gives: a layer's output, or a transformer's token grid."""
    return to_grid_shape(target, activation_shape(target))


def find_target_layer(model: Any, name: str | None = None) -> Any:
    """The explicit ``name`` if given, else the last candidate: the last layer with a spatial 4-D
    output, or the tokens entering a vision transformer's last block."""
    candidates = target_candidates(model)
    if name is None:
        if not candidates:
            raise UserError(
                f"Model {model.name!r} has no convolutional layer (no spatial feature map) to take a map from; {EXPLAINABLE}."
            )
        return candidates[-1]
    import keras

    for target in token_targets(model):
        if target.name == name:
            return target

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
