"""Train the demo classifier shipped as livecam/demo/model.keras.

    python scripts/train_demo_model.py              # the defaults rebuild the shipped file

The network is fully convolutional down to a 12x12 feature map (the layer the demo explains),
then global average pooling and one softmax Dense layer: the shape for which Grad-CAM is
exactly the class activation map, so the heatmap can only be as good as the features.

It trains on scenes with seeds 0..samples-1 (always below 500,000; seeds from 500,000 up are
held out for scripts/eval_localization.py), drawn at 224x224 and a few wider sizes, resized to
the model's input with cv2.INTER_AREA and turned into RGB exactly as the engine feeds frames.
Every epoch shows each scene once in a random one of the 8 flips and quarter turns, which
leave every class unchanged. Seeded, and deterministic on one machine: the defaults rebuild
the shipped weights bit for bit (about 7 minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from livecam.demo import CLASS_NAMES, DEMO_LAYER, make_scene

INPUT_SIZE = (96, 96)  # (height, width) the model is fed
TRAIN_SEED_LIMIT = 500_000  # seeds from here up are held out for evaluation
VALIDATION_SEEDS = range(490_000, 491_000)  # training side of the split, never trained on
# Frame sizes (width, height) the training scenes are drawn at; the wider ones teach the model
# the squash that a 4:3 camera frame gets when it is resized to the square input.
SCENE_SIZES = ((224, 224), (224, 224), (224, 224), (299, 224), (256, 224))
BATCH_SIZE = 128
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "livecam" / "demo" / "model.keras"


def scene_to_input(frame_bgr: np.ndarray, input_size: tuple[int, int] = INPUT_SIZE) -> np.ndarray:
    """A BGR frame as the engine feeds it: resized with INTER_AREA to ``input_size`` (height, width), RGB uint8."""
    height, width = input_size
    small = cv2.resize(frame_bgr, (width, height), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_BGR2RGB)


def render(seeds: range, input_size: tuple[int, int] = INPUT_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Model inputs (N, h, w, 3) uint8 RGB and class ids (N,) for the scenes with these seeds."""
    images = np.empty((len(seeds), *input_size, 3), dtype=np.uint8)
    labels = np.empty(len(seeds), dtype=np.int32)
    for i, seed in enumerate(seeds):
        frame_bgr, class_id, _ = make_scene(seed, SCENE_SIZES[seed % len(SCENE_SIZES)])
        images[i] = scene_to_input(frame_bgr, input_size)
        labels[i] = class_id
    return images, labels


def render_parallel(seeds: range, workers: int, input_size: tuple[int, int] = INPUT_SIZE) -> tuple[np.ndarray, np.ndarray]:
    chunk = 2000
    parts = [range(s, min(s + chunk, seeds.stop)) for s in range(seeds.start, seeds.stop, chunk)]
    draw = functools.partial(render, input_size=input_size)
    if workers <= 1:
        results = [draw(p) for p in parts]
    else:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(draw, parts))
    return np.concatenate([r[0] for r in results]), np.concatenate([r[1] for r in results])


def build_model(n_classes: int):
    import keras
    from keras import layers

    def conv_block(x, filters: int, kernel: int, name: str, strides: int = 1):
        x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
        return layers.Activation("relu", name=name)(x)

    inputs = keras.Input((*INPUT_SIZE, 3), name="rgb_0_255")
    x = layers.Rescaling(1 / 255, name="rescale")(inputs)
    x = conv_block(x, 24, 5, "block1", strides=2)  # 48x48
    x = layers.MaxPooling2D(name="pool1")(x)  # 24x24
    x = conv_block(x, 48, 3, "block2a")
    x = conv_block(x, 48, 3, "block2b")
    x = layers.MaxPooling2D(name="pool2")(x)  # 12x12, stride 8
    x = conv_block(x, 96, 3, "block3a")
    x = conv_block(x, 96, 3, DEMO_LAYER)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(n_classes, activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name="livecam_demo")


def dihedral(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each image in a random one of the 8 flips and quarter turns (a new array)."""
    out = np.empty_like(images)
    choice = rng.integers(0, 8, size=len(images))
    for k in range(8):
        idx = np.flatnonzero(choice == k)
        part = images[idx]
        if k & 4:
            part = part[:, :, ::-1]
        out[idx] = np.rot90(part, k & 3, axes=(1, 2))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the .keras file")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0, help="weights, shuffling and augmentation")
    parser.add_argument("--samples", type=int, default=20_000, help="training scenes: seeds 0..samples-1")
    parser.add_argument("--workers", type=int, default=2, help="processes that draw the scenes (does not change the result)")
    args = parser.parse_args(argv)
    if not 0 < args.samples <= VALIDATION_SEEDS.start:
        parser.error(
            f"Expected --samples in 1..{VALIDATION_SEEDS.start} (seeds from {TRAIN_SEED_LIMIT} up are held out). Received: {args.samples}"
        )
    if args.epochs < 1:
        parser.error(f"Expected --epochs >= 1. Received: {args.epochs}")

    start = time.perf_counter()
    # Draw the scenes before TensorFlow is imported, so the worker processes fork cleanly.
    x_train, y_train = render_parallel(range(args.samples), args.workers)
    x_val, y_val = render_parallel(VALIDATION_SEEDS, args.workers)
    print(f"drew {len(x_train)} + {len(x_val)} scenes in {time.perf_counter() - start:.0f} s", flush=True)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(args.seed)
    tf.config.experimental.enable_op_determinism()
    # bfloat16 compute (float32 weights) trains about a quarter faster on CPUs with AVX512-BF16;
    # the shipped copy below is built in float32 and takes the same weights.
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    model = build_model(len(CLASS_NAMES))
    steps = args.epochs * -(-len(x_train) // BATCH_SIZE)
    schedule = keras.optimizers.schedules.CosineDecay(0.0, steps, warmup_target=3e-3, warmup_steps=min(300, steps // 10))
    model.compile(keras.optimizers.Adam(schedule), "sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(args.seed)
    for epoch in range(args.epochs):
        order = rng.permutation(len(x_train))
        x_epoch = dihedral(x_train[order], rng)
        history = model.fit(x_epoch, y_train[order], batch_size=BATCH_SIZE, epochs=1, shuffle=False, verbose=0)
        val_loss, val_acc = model.evaluate(x_val, y_val, batch_size=256, verbose=0)
        print(
            f"epoch {epoch + 1}/{args.epochs}: loss {history.history['loss'][0]:.4f} "
            f"acc {history.history['accuracy'][0]:.4f}  val loss {val_loss:.4f} val acc {val_acc:.4f}  "
            f"({time.perf_counter() - start:.0f} s)",
            flush=True,
        )

    # A fresh, uncompiled copy: the file then holds no optimizer state (a third of the size).
    keras.mixed_precision.set_dtype_policy("float32")
    save_weights_in(build_model(len(CLASS_NAMES)), model, args.out, start)
    return 0


def save_weights_in(shipped, trained, out: Path, start: float) -> None:
    """Saves ``trained``'s weights in ``shipped``, a fresh copy of its model, and says what it wrote."""
    shipped.set_weights(trained.get_weights())
    out.parent.mkdir(parents=True, exist_ok=True)
    shipped.save(out)
    print(
        f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB, {shipped.count_params()} parameters) in {time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    sys.exit(main())
