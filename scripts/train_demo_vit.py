"""Train the tiny vision transformer shipped as livecam/demo/vit.keras (``--model demo-vit``).

    python scripts/train_demo_vit.py                # the defaults rebuild the shipped file
    python scripts/train_demo_vit.py --cache /tmp   # keep the drawn scenes for the next run

It needs KerasHub (pip install "livecam[hub]").

A small hybrid vision transformer (as in the ViT paper's ResNet hybrids): 64 px pictures, two
stride-2 convolutions down to a 16x16 map, which KerasHub's ``ViTBackbone`` cuts into 2x2 patches
(an 8x8 grid of tokens, one per 8x8 input pixels, and a class token), a few pre-norm transformer
blocks and their final norm, then the mean of all tokens and one softmax Dense layer. livecam
explains it as any KerasHub ViT: the patch tokens entering its last block. The stem is there
because a plain ViT learns these cluttered scenes far too slowly from scratch (one with 8 px
patches was still under 30% accuracy after 8 epochs of 12,000 scenes); the mean of the tokens,
not the class token, feeds the classifier so that every patch token of the last block does.

The scenes are those of scripts/train_demo_model.py (seeds below 490,000 train, 490,000..490,999
validate, from 500,000 up are held out for scripts/eval_localization.py), drawn at the same sizes
and resized with cv2.INTER_AREA as the engine does; every epoch shows each scene once in a random
one of the 8 flips and quarter turns. Seeded and deterministic on one machine: the defaults
rebuild the shipped weights bit for bit (about 15 minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from livecam.demo import CLASS_NAMES
from train_demo_model import VALIDATION_SEEDS, dihedral, render_parallel, save_weights_in

INPUT_SIZE = (64, 64)  # (height, width) the model is fed
PATCH = 8  # input pixels per patch token side: an 8x8 grid
STEM_STRIDE = 4  # the convolution stem's downsampling; the backbone cuts its output into 2x2 patches
STEM_CHANNELS = 64
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "livecam" / "demo" / "vit.keras"


def build_model(n_classes: int, layers: int, width: int, heads: int):
    import keras
    import keras_hub
    from keras import layers as kl

    def conv_block(x, filters: int, name: str):
        x = kl.Conv2D(filters, 3, strides=2, padding="same", use_bias=False, name=f"{name}_conv")(x)
        x = kl.BatchNormalization(name=f"{name}_bn")(x)
        return kl.Activation("relu", name=name)(x)

    stem_hw = (INPUT_SIZE[0] // STEM_STRIDE, INPUT_SIZE[1] // STEM_STRIDE)
    backbone = keras_hub.models.ViTBackbone(
        image_shape=(*stem_hw, STEM_CHANNELS),
        patch_size=PATCH // STEM_STRIDE,
        num_layers=layers,
        num_heads=heads,
        hidden_dim=width,
        mlp_dim=2 * width,
        name="vit_backbone",
    )
    inputs = keras.Input((*INPUT_SIZE, 3), name="rgb_0_255")
    x = kl.Rescaling(1 / 255, name="rescale")(inputs)
    x = conv_block(x, STEM_CHANNELS // 2, "stem1")  # 32x32
    x = conv_block(x, STEM_CHANNELS, "stem2")  # 16x16: the backbone's "image"
    x = backbone(x)  # class token + 8x8 patch tokens
    x = kl.GlobalAveragePooling1D(name="gap")(x)
    outputs = kl.Dense(n_classes, activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name="livecam_demo_vit")


def scenes(seeds: range, workers: int, cache: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """The model inputs and class ids for ``seeds``, drawn or read back from ``cache``."""
    file = cache / f"demo-scenes-{INPUT_SIZE[0]}x{INPUT_SIZE[1]}-{seeds.start}-{seeds.stop}.npz" if cache else None
    if file is not None and file.is_file():
        with np.load(file) as data:
            return data["x"], data["y"]
    x, y = render_parallel(seeds, workers, INPUT_SIZE)
    if file is not None:
        np.savez(file, x=x, y=y)
    return x, y


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the .keras file")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="weights, shuffling and augmentation")
    parser.add_argument("--samples", type=int, default=24_000, help="training scenes: seeds 0..samples-1")
    parser.add_argument("--layers", type=int, default=4, help="transformer blocks")
    parser.add_argument("--width", type=int, default=64, help="the tokens' width (hidden_dim)")
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (warmup, then cosine decay)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2, help="processes that draw the scenes (does not change the result)")
    parser.add_argument("--cache", type=Path, default=None, help="a folder to keep the drawn scenes in between runs")
    args = parser.parse_args(argv)
    if not 0 < args.samples <= VALIDATION_SEEDS.start:
        parser.error(f"Expected --samples in 1..{VALIDATION_SEEDS.start}. Received: {args.samples}")
    if args.epochs < 1:
        parser.error(f"Expected --epochs >= 1. Received: {args.epochs}")

    start = time.perf_counter()
    # Draw the scenes before TensorFlow is imported, so the worker processes fork cleanly.
    x_train, y_train = scenes(range(args.samples), args.workers, args.cache)
    x_val, y_val = scenes(VALIDATION_SEEDS, args.workers, args.cache)
    print(f"have {len(x_train)} + {len(x_val)} scenes after {time.perf_counter() - start:.0f} s", flush=True)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(args.seed)
    tf.config.experimental.enable_op_determinism()
    model = build_model(len(CLASS_NAMES), args.layers, args.width, args.heads)
    steps = args.epochs * -(-len(x_train) // args.batch)
    schedule = keras.optimizers.schedules.CosineDecay(0.0, steps, warmup_target=args.lr, warmup_steps=steps // 10)
    model.compile(
        keras.optimizers.AdamW(schedule, weight_decay=0.05, global_clipnorm=1.0),
        keras.losses.CategoricalCrossentropy(label_smoothing=0.1),
        metrics=["accuracy"],
    )
    one_hot = np.eye(len(CLASS_NAMES), dtype=np.float32)
    rng = np.random.default_rng(args.seed)
    for epoch in range(args.epochs):
        order = rng.permutation(len(x_train))
        x_epoch = dihedral(x_train[order], rng)
        history = model.fit(x_epoch, one_hot[y_train[order]], batch_size=args.batch, epochs=1, shuffle=False, verbose=0)
        val_loss, val_acc = model.evaluate(x_val, one_hot[y_val], batch_size=256, verbose=0)
        print(
            f"epoch {epoch + 1}/{args.epochs}: loss {history.history['loss'][0]:.4f} "
            f"acc {history.history['accuracy'][0]:.4f}  val loss {val_loss:.4f} val acc {val_acc:.4f}  "
            f"({time.perf_counter() - start:.0f} s)",
            flush=True,
        )

    # A fresh, uncompiled copy: the file then holds no optimizer state.
    save_weights_in(build_model(len(CLASS_NAMES), args.layers, args.width, args.heads), model, args.out, start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
