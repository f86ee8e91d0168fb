"""Engine speed against the forward pass alone and the official Keras Grad-CAM example.

For each model (weights=None: weights do not change speed) on 640x480 BGR frames, prints ms per
frame for:
  forward   TensorFlow's compiled forward pass alone, batch 1, at the model's input size: the
            faster of its time in this process and in a process of its own (see forward_alone_ms)
  tf step   CamEngine(runtime="tensorflow") on a 640x480 frame (resize, preprocessing,
            forward, gradients, map)
  ov step   CamEngine(runtime="openvino"): the body in OpenVINO, the head with gradients in TF
  ov body   its OpenVINO body alone (so ov step - ov body is the head, the map and the glue)
  keras     the Keras example's make_gradcam_heatmap (eager GradientTape, a gradient model
            built per call, as the example does), plus its resize and preprocessing
and the ratios tf step/forward (target <= 1.3), forward/ov step (the OpenVINO step's rate over
TF's forward-pass rate; target >= 3) and keras/tf step (target >= 8). The model ``vit_base`` is
KerasHub's ViT-B/16 at 224 px with random weights (``pip install "livecam[hub]"``), explained at
the tokens entering its last block; the Keras example needs a convolution, so it has no row
there. The rows are measured
interleaved, in rounds, and the median round is reported, so a noisy neighbour slows all rows
alike.

    python scripts/bench_engine.py [--models mobilenet_v2 resnet50 vit_base] [--rounds 5] [--frames 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from livecam import CamEngine  # noqa: E402
from livecam.models import RANDOM_WEIGHTS_SEED, ZOO, preprocess_fn  # noqa: E402

VIT_BASE = "vit_base"


def vit_base_model() -> keras.Model:
    """KerasHub's ViT-B/16 classifier at 224 px (the vit_base_patch16_224_imagenet architecture, with
    its converter: pixels / 127.5 - 1), random weights."""
    import keras_hub

    keras.utils.set_random_seed(RANDOM_WEIGHTS_SEED)
    backbone = keras_hub.models.ViTBackbone(
        image_shape=(224, 224, 3), patch_size=16, num_layers=12, num_heads=12, hidden_dim=768, mlp_dim=3072
    )
    converter = keras_hub.layers.ViTImageConverter(image_size=(224, 224), scale=1 / 127.5, offset=-1.0)
    preprocessor = keras_hub.models.ViTImageClassifierPreprocessor(image_converter=converter)
    return keras_hub.models.ViTImageClassifier(backbone=backbone, num_classes=1000, preprocessor=preprocessor)


def keras_example_heatmap(img_array, model, last_conv_layer_name, pred_index=None):
    """Grad-CAM as the official Keras example writes it (keras.io/examples/vision/grad_cam)."""
    grad_model = keras.models.Model(model.inputs, [model.get_layer(last_conv_layer_name).output, model.output])
    with tf.GradientTape() as tape:
        last_conv_layer_output, preds = grad_model(img_array)
        if pred_index is None:
            pred_index = tf.argmax(preds[0])
        class_channel = preds[:, pred_index]
    grads = tape.gradient(class_channel, last_conv_layer_output)
    pooled_grads = tf.reduce_mean(grads, axis=(0, 1, 2))
    heatmap = last_conv_layer_output[0] @ pooled_grads[..., tf.newaxis]
    heatmap = tf.squeeze(heatmap)
    heatmap = tf.maximum(heatmap, 0) / tf.math.reduce_max(heatmap)
    return heatmap.numpy()


FORWARD_ALONE = """
import os, statistics, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np, tensorflow as tf
from livecam import CamEngine
model = CamEngine(sys.argv[1], weights=None, runtime="tensorflow", log=lambda text: None).model
h, w = model.input_shape[1:3]
forward = tf.function(lambda x: model(x, training=False), input_signature=[tf.TensorSpec([None, h, w, 3], tf.float32)])
x = np.random.default_rng(0).uniform(-1, 1, (1, h, w, 3)).astype(np.float32)
forward(x).numpy()
samples = []
for _ in range(int(sys.argv[2])):
    t0 = time.perf_counter()
    for _ in range(int(sys.argv[3])):
        forward(x).numpy()
    samples.append((time.perf_counter() - t0) * 1000 / int(sys.argv[3]))
print(statistics.median(samples))
"""


def forward_alone_ms(name: str, rounds: int = 5, frames: int = 20) -> float:
    """TensorFlow's forward pass in a process of its own (no OpenVINO, no other rows), ms per frame.

    The baselines are measured twice, in the benchmark's process and alone, and the faster one
    counts: whatever slows TensorFlow inside the benchmark can then only lower livecam's ratios.
    """
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", FORWARD_ALONE, name, str(rounds), str(frames)], capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def bench_model(name: str, rounds: int, frames: int) -> dict:
    vit = name == VIT_BASE
    if vit:
        from livecam.models.hub import hub_preprocess

        engine = CamEngine(vit_base_model(), runtime="tensorflow")
        preprocess = hub_preprocess(engine.model)  # the model's own converter, in both engines
    else:
        engine = CamEngine(name, weights=None, runtime="tensorflow")
        preprocess = preprocess_fn(ZOO[name].preprocess)
    model = engine.model
    ov_engine = CamEngine(model, preprocess=preprocess, layer=engine.layer_name, runtime="openvino", log=lambda text: None)
    h, w = engine.input_size
    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, (frames, 480, 640, 3), dtype=np.uint8)

    forward = tf.function(lambda x: model(x, training=False), input_signature=[tf.TensorSpec([None, h, w, 3], tf.float32)])
    x = preprocess(np.float32(cv2.resize(video[0], (w, h))[None, ..., ::-1]))
    forward(x)

    if not vit:  # the example removes the last layer's softmax so the gradient is of the logit
        example_model = keras.models.clone_model(model)
        example_model.set_weights(model.get_weights())
        example_model.layers[-1].activation = None

    def run_forward():
        for _ in range(frames):
            forward(x).numpy()

    def run_engine():
        for frame in video:
            engine(frame)

    def run_ov_engine():
        for frame in video:
            ov_engine(frame)

    prepared = ov_engine.prepare(video[:1])

    def run_ov_body():
        for _ in range(frames):
            ov_engine.step.body(prepared)

    def run_keras():
        for frame in video[: max(2, frames // 4)]:
            img = preprocess(np.float32(cv2.resize(frame, (w, h))[None, ..., ::-1]))
            keras_example_heatmap(img, example_model, engine.layer_name)

    rows = {"forward": run_forward, "engine": run_engine, "ov": run_ov_engine, "ov_body": run_ov_body, "keras": run_keras}
    counts = {"forward": frames, "engine": frames, "ov": frames, "ov_body": frames, "keras": max(2, frames // 4)}
    if vit:  # the example takes a convolution's output
        del rows["keras"], counts["keras"]
    for fn in rows.values():  # warm-up
        fn()
    samples: dict[str, list[float]] = {k: [] for k in rows}
    for _ in range(rounds):
        for key, fn in rows.items():
            t0 = time.perf_counter()
            fn()
            samples[key].append((time.perf_counter() - t0) * 1000 / counts[key])
    ms = {k: statistics.median(v) for k, v in samples.items()}
    ms["forward_in_process"] = ms["forward"]
    if not vit:  # a zoo name, which the process of its own can build
        ms["forward"] = min(ms["forward"], forward_alone_ms(name, rounds, frames))
    keras_ms = ms.get("keras")
    return {
        "model": name,
        "forward_ms": round(ms["forward"], 2),
        "forward_in_process_ms": round(ms["forward_in_process"], 2),
        "engine_ms": round(ms["engine"], 2),
        "openvino_step_ms": round(ms["ov"], 2),
        "openvino_body_ms": round(ms["ov_body"], 2),
        "keras_example_ms": None if keras_ms is None else round(keras_ms, 2),
        "engine_over_forward": round(ms["engine"] / ms["forward"], 2),
        "openvino_speedup_over_forward": round(ms["forward"] / ms["ov"], 2),
        "keras_over_engine": None if keras_ms is None else round(keras_ms / ms["engine"], 1),
        "traces": max(engine.runtime_info.traces, ov_engine.runtime_info.traces),
        "openvino_threads": ov_engine.step.body.threads,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["mobilenet_v2", "resnet50", VIT_BASE], choices=[*ZOO, VIT_BASE])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = [bench_model(m, args.rounds, args.frames) for m in args.models]
    if args.json:
        print(json.dumps({"machine": _machine(), "results": results}, indent=2))
        return
    print(f"Machine: {_machine()}\n")
    print(
        "| model | TF forward ms | TF step ms | OpenVINO step ms (body) | Keras example ms | TF step / forward | OpenVINO step rate / TF forward rate | Keras example / TF step |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        keras_ms, keras_ratio = (
            ("–", "–") if r["keras_example_ms"] is None else (r["keras_example_ms"], f"{r['keras_over_engine']}x")
        )
        print(
            f"| {r['model']} | {r['forward_ms']} | {r['engine_ms']} | {r['openvino_step_ms']} ({r['openvino_body_ms']}) | {keras_ms} | "
            f"{r['engine_over_forward']}x | {r['openvino_speedup_over_forward']}x | {keras_ratio} |"
        )


def _machine() -> str:
    import openvino

    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, TensorFlow {tf.__version__}, "
        f"OpenVINO {openvino.__version__.split('-')[0]}, Python {platform.python_version()}"
    )


if __name__ == "__main__":
    main()
