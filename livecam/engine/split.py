"""Where the engine reads a Keras model: the target layer's output, the class scores, and the cut between them.

Grad-CAM needs two tensors from inside the model: the target layer's activations, and the
class scores before the output activation (softmax or sigmoid), since gradients of the
probabilities are squashed by it. The TensorFlow runtime captures both with hooks while it
traces the whole model. The OpenVINO runtime cuts the model at the target layer instead: the
*body* (input -> activations) needs no gradients and runs in OpenVINO, the *head*
(activations -> output) runs in TensorFlow under a GradientTape, with the same output hook.

Nothing here imports TensorFlow at module level.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

OutputKind = Literal["softmax", "sigmoid", "linear"]


# ---------------------------------------------------------------------- hooks


@contextlib.contextmanager
def capture_output(layer: Any, captured: dict, key: str, tape: Any):
    """While tracing, record ``layer``'s output in ``captured[key]`` and watch it on ``tape``."""
    original = layer.call

    def call(*args, **kwargs):
        out = original(*args, **kwargs)
        tape.watch(out)
        captured[key] = out
        return out

    layer.call = call
    try:
        yield
    finally:
        del layer.call  # back to the class's own method
    if key not in captured:
        raise RuntimeError(f"Layer {layer.name!r} was not called by the model's forward pass.")


@dataclass(frozen=True)
class OutputActivation:
    """The model's output activation, and a hook that records the scores it is applied to.

    Attributes:
        kind: ``"softmax"``, ``"sigmoid"`` or ``"linear"`` (the model outputs its scores).
        units: the size of the output (1 for a one-unit binary classifier).
        hook: ``hook(captured)`` is a context manager; while the model runs inside it, the
            pre-activation scores land in ``captured["logits"]`` (not for ``"linear"``).
    """

    kind: OutputKind
    units: int
    hook: Callable[[dict], contextlib.AbstractContextManager]


def output_activation(model: Any) -> OutputActivation:
    """How ``model`` turns its scores into outputs.

    The activation may be that of the last layer (``Dense(..., activation="softmax")``), an
    ``Activation("softmax"/"sigmoid")`` layer, or a ``Softmax`` layer; the last layer may sit in a
    nested model.
    """
    import keras

    units = int(model.outputs[0].shape[-1])
    layer = _output_layer(model)
    while isinstance(layer, keras.Model):
        layer = _output_layer(layer)

    if isinstance(layer, keras.layers.Softmax):
        return OutputActivation("softmax", units, _hook_call_input(layer))
    name = getattr(getattr(layer, "activation", None), "__name__", "")
    if name in ("softmax", "sigmoid"):
        return OutputActivation(name, units, _hook_activation(layer))
    return OutputActivation("linear", units, lambda captured: contextlib.nullcontext())


def _hook_call_input(layer: Any):
    @contextlib.contextmanager
    def hook(captured: dict):
        original = layer.call

        def call(inputs, *args, **kwargs):
            captured["logits"] = inputs
            return original(inputs, *args, **kwargs)

        layer.call = call
        try:
            yield
        finally:
            del layer.call

    return hook


def _hook_activation(layer: Any):
    @contextlib.contextmanager
    def hook(captured: dict):
        original = layer.activation

        def activation(logits, *args, **kwargs):
            captured["logits"] = logits
            return original(logits, *args, **kwargs)

        layer.activation = activation
        try:
            yield
        finally:
            layer.activation = original

    return hook


def _output_layer(model: Any) -> Any:
    history = getattr(model.outputs[0], "_keras_history", None)
    return history[0] if history is not None else model.layers[-1]


# ---------------------------------------------------------------------- the cut at the target layer


class SplitError(Exception):
    """The model cannot be cut cleanly at the target layer; the message says why, in a clause."""


@dataclass(frozen=True)
class Split:
    """A model cut at its target layer: ``head(body(x))`` is ``model(x)``.

    Attributes:
        body: model input -> the target layer's activations (a keras callable).
        head: the activations -> the model's output (a keras callable).
    """

    body: Callable[..., Any]
    head: Callable[..., Any]


def split_at(model: Any, target: Any) -> Split:
    """Cut ``model`` at ``target``, which may sit inside a nested model (a backbone).

    Raises:
        SplitError: the part after the target also reads a tensor from before it (a skip
            connection around the cut), a model on the way has several inputs or outputs, or a
            nested model is called more than once.
    """
    path = _path_to(model, target)
    if path is None:
        raise SplitError(f"layer {target.name!r} is not part of the model's graph")
    body, head = _split(path, target)
    return Split(body=body, head=head)


def _path_to(model: Any, target: Any) -> list[Any] | None:
    """[model, nested model, ..., the model that holds ``target``], or None."""
    import keras

    for layer in model.layers:
        if layer is target:
            return [model]
        if isinstance(layer, keras.Model):
            inner = _path_to(layer, target)
            if inner is not None:
                return [model, *inner]
    return None


def _split(path: list[Any], target: Any) -> tuple[Callable, Callable]:
    owner = path[0]
    if len(owner.inputs) != 1 or len(owner.outputs) != 1:
        raise SplitError(f"model {owner.name!r} has {len(owner.inputs)} inputs and {len(owner.outputs)} outputs, not one of each")
    if len(path) == 1:
        return _subgraph(owner, owner.inputs[0], target.output), _subgraph(owner, target.output, owner.outputs[0])
    nested = path[1]
    nodes = [node for node in nested._inbound_nodes if node in _nodes(owner)]
    if len(nodes) != 1:
        raise SplitError(f"nested model {nested.name!r} is called {len(nodes)} times in {owner.name!r}")
    if len(nodes[0].input_tensors) != 1 or len(nodes[0].output_tensors) != 1:
        raise SplitError(f"nested model {nested.name!r} has several inputs or outputs")
    (t_in,), (t_out,) = nodes[0].input_tensors, nodes[0].output_tensors
    before = _subgraph(owner, owner.inputs[0], t_in)
    after = _subgraph(owner, t_out, owner.outputs[0])
    inner_body, inner_head = _split(path[1:], target)
    return _chain(before, inner_body), _chain(inner_head, after)


def _subgraph(owner: Any, start: Any, end: Any) -> Callable:
    """The part of ``owner``'s graph from tensor ``start`` to tensor ``end`` as a keras model."""
    import keras

    if start is end:
        return _identity
    try:
        return keras.Model(start, end, name=f"{owner.name}_part")
    except ValueError as exc:  # "... is not connected to `inputs`"
        if "not connected" not in str(exc):
            raise
        raise SplitError(
            f"a layer after the target layer in {owner.name!r} also reads a tensor from before it (a skip connection around the cut)"
        ) from None


def _nodes(model: Any) -> list[Any]:
    graph = getattr(model, "_functional", None) or model  # a Sequential keeps its graph in _functional
    return [node for nodes in getattr(graph, "_nodes_by_depth", {}).values() for node in nodes]


def _identity(x: Any, training: bool = False) -> Any:
    return x


def _chain(first: Callable, second: Callable) -> Callable:
    if first is _identity:
        return second
    if second is _identity:
        return first
    return lambda x, training=False: second(first(x, training=training), training=training)


def head_chain(model: Any, target: Any) -> list[Any] | None:
    """The layers from ``target``'s output to ``model``'s output, in order, when each takes only the
    one before it (the target may sit in a nested model); None for any other shape of head."""
    import keras

    chain: list[Any] = []
    tensor = model.outputs[0]
    while tensor is not target.output:
        history = getattr(tensor, "_keras_history", None)
        if history is None:
            return None
        layer, node_index = history[0], history[1]
        if isinstance(layer, keras.Model):  # a nested model: the target must be inside it
            inner = head_chain(layer, target) if _path_to(layer, target) is not None else None
            return None if inner is None else inner + chain
        node = layer._inbound_nodes[node_index]
        if len(node.input_tensors) != 1 or isinstance(layer, keras.layers.InputLayer):
            return None
        chain.insert(0, layer)
        tensor = node.input_tensors[0]
    return chain
