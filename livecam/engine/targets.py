"""What a map is taken from: a layer's feature map, or the patch tokens entering a transformer block.

A CNN's target is a layer with a spatial output (batch, h, w, channels). A vision transformer has
no such layer: its blocks pass on token sequences (batch, prefix + h * w, channels), where the
prefix is the class token (and any other tokens that are not patches). Its target is the tokens
entering a block (by default the last), as the block's attention reads them: after the block's
first LayerNorm (the layer pytorch-grad-cam's ViT recipe takes, ``blocks[-1].norm1``). Not the
block's own output: only its class token feeds the classifier, so the patch tokens get little or
no gradient there. Not the raw residual stream before the norm either: with class-token pooling,
the last block reads the patch tokens only through that scale-invariant norm, so the gradient is
orthogonal to them and HiResCAM (G * A summed over channels) is exactly zero, float noise when
normalised. The map is made on the patch tokens with the prefix dropped, reshaped to their grid
(14 x 14 for a 224 px input and 16 px patches); from there every CAM method works unchanged.

KerasHub's ``ViTBackbone`` runs every block inside one layer (``ViTEncoder``), so a block boundary
is no layer of the model's graph. The TensorFlow step reaches it with a hook on the block's norm
(``livecam.engine.split.capture_output``); the OpenVINO split calls the patching layer and the
blocks itself, from the model's own layers: the body ends with the residual tokens entering the
target block, and the head runs that block (its norm hooked the same way), the rest, the final
norm and the classifier.

``capture``, ``capture_head``, ``split`` and ``activation_shape`` take either kind of target, and
``to_grid`` turns what was captured into the (batch, h, w, channels) map the CAM methods read.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from typing import Any

from livecam.engine.split import Split, capture_output, split_at

__all__ = [
    "TokenTarget",
    "activation_shape",
    "capture",
    "capture_head",
    "is_tokens",
    "split",
    "to_grid",
    "to_grid_shape",
    "token_targets",
]


@dataclass(frozen=True)
class TokenTarget:
    """The tokens entering one transformer block of a KerasHub ViT, as its attention reads them (normalised).

    Attributes:
        name: the block's name (``transformer_block_12``): what ``--layer`` takes.
        block: the block layer itself.
        index: its place among ``encoder.encoder_layers`` (0 for the first).
        encoder: the ``ViTEncoder`` that runs the blocks.
        patching: the ``ViTPatchingAndEmbedding`` layer whose tokens enter the encoder.
        grid: (h, w), the patch tokens' grid.
        prefix: how many tokens come before the patches (1: the class token).
        channels: the tokens' width (``hidden_dim``).
    """

    name: str
    block: Any
    index: int
    encoder: Any
    patching: Any
    grid: tuple[int, int]
    prefix: int
    channels: int

    @property
    def tokens(self) -> int:
        return self.prefix + self.grid[0] * self.grid[1]


def is_tokens(target: Any) -> bool:
    return isinstance(target, TokenTarget)


def token_targets(model: Any) -> list[TokenTarget]:
    """The block boundaries of every KerasHub ViT encoder in ``model``, first block first; [] for other models.

    Only looked for when KerasHub is imported already: a model that holds its layers was built or
    loaded by it, so a plain CNN never pays for importing it.
    """
    if "keras_hub" not in sys.modules:
        return []
    import keras
    from keras_hub.src.models.vit.vit_layers import ViTEncoder, ViTPatchingAndEmbedding

    def walk(owner: Any):
        for layer in owner.layers:
            yield from walk(layer) if isinstance(layer, keras.Model) else (layer,)

    found = []
    for layer in walk(model):
        if not isinstance(layer, ViTEncoder) or not layer._inbound_nodes:
            continue
        # The node made when the backbone was built (cutting a model adds nodes of its own).
        source = layer._inbound_nodes[0].input_tensors[0]._keras_history[0]
        if not isinstance(source, ViTPatchingAndEmbedding) or source.data_format != "channels_last":
            continue
        grid = (source.image_size[0] // source.patch_size[0], source.image_size[1] // source.patch_size[1])
        prefix = source.num_positions - grid[0] * grid[1]
        for index, block in enumerate(layer.encoder_layers):
            found.append(TokenTarget(block.name, block, index, layer, source, grid, prefix, layer.hidden_dim))
    return found


def activation_shape(target: Any) -> tuple:
    """The shape of what the body hands the head, and of what is captured, without the batch:
    a layer's output, or the tokens."""
    if is_tokens(target):
        return (target.tokens, target.channels)
    return tuple(target.output.shape)[1:]


def to_grid_shape(target: Any, shape: tuple) -> tuple:
    """``activation_shape(target)`` as the map's (h, w, channels)."""
    return (*target.grid, target.channels) if is_tokens(target) else tuple(shape)


def to_grid(target: Any, x: Any) -> Any:
    """Captured activations or their gradients as (batch, h, w, channels): tokens lose their prefix."""
    if not is_tokens(target):
        return x
    import tensorflow as tf

    return tf.reshape(x[:, target.prefix :, :], (-1, *target.grid, target.channels))


def capture(target: Any, captured: dict, key: str, tape: Any) -> contextlib.AbstractContextManager:
    """While the model is traced, record in ``captured[key]`` (and watch) the target's activations."""
    return capture_output(target.block.layer_norm_1 if is_tokens(target) else target, captured, key, tape)


def capture_head(target: Any, activations: Any, captured: dict, key: str, tape: Any) -> contextlib.AbstractContextManager:
    """While the head (``split(model, target).head``) is traced on ``activations``, record the
    target's activations in ``captured[key]``: the head's input for a layer, the norm's output
    inside the target block for tokens."""
    if is_tokens(target):
        return capture(target, captured, key, tape)
    tape.watch(activations)
    captured[key] = activations
    return contextlib.nullcontext()


def split(model: Any, target: Any) -> Split:
    """``model`` cut at ``target`` (``livecam.engine.split.split_at`` for a layer).

    For tokens: the body is the model up to the patching layer, the encoder's input dropout and
    the blocks before the target (the residual tokens entering it); the head is the target block
    and those after it, the encoder's final norm, and the model after the encoder (pooling or
    class token, Dense).
    """
    if not is_tokens(target):
        return split_at(model, target)
    to_patches = split_at(model, target.patching).body
    after_encoder = split_at(model, target.encoder).head
    encoder, blocks = target.encoder, target.encoder.encoder_layers

    def body(x: Any, training: bool = False) -> Any:
        x = encoder.dropout(to_patches(x, training=training), training=training)
        for block in blocks[: target.index]:
            x = block(x, training=training)
        return x

    def head(x: Any, training: bool = False) -> Any:
        for block in blocks[target.index :]:
            x = block(x, training=training)
        return after_encoder(encoder.layer_norm(x), training=training)

    return Split(body=body, head=head)
