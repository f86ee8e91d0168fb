"""End-to-end speed: livecam against the forward pass and against what users would otherwise write.

One run, one machine, the same generated 640x480 video for every row. For each model
(weights=None: weights do not change speed) it prints frames/s and the ratio to the forward pass:

  forward          the compiled forward pass alone, batch 1, at the model's input size
  engine           CamEngine alone on 640x480 frames, one at a time
  livecam --batch 1   `livecam --source video --no-display --output out.mp4 --batch 1` (the live path)
  livecam file mode   the same, batched (the default for files)
  keras example    the loop a user writes from the official Keras Grad-CAM example: model.predict
                   for the label, make_gradcam_heatmap, a matplotlib jet overlay, cv2 writer
  tf-keras-vis     tf_keras_vis.gradcam.Gradcam per frame, the same overlay and writer

and the live latency p50/p95 with the synthetic source paced at 30 fps, against the engine step.
livecam's rows are timed from its --stats-json (model loading and compiling excluded); the
others are timed around their loops after a warm-up.

    python scripts/bench.py [--models mobilenet_v2 resnet50 efficientnet_b0] [--frames 240]
                            [--peer-frames 24] [--live-frames 600] [--json]

Needs the `bench` extra: pip install -e ".[bench]".
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench_engine import keras_example_heatmap  # noqa: E402  (scripts/ is on the path)
from livecam import CamEngine  # noqa: E402
from livecam.cli import main as livecam_main  # noqa: E402
from livecam.models import ZOO, preprocess_fn  # noqa: E402

SIZE_WH = (640, 480)


def make_video(path: Path, frames: int) -> Path:
    """A 640x480 MJPG video of moving coloured shapes on a textured background."""
    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur(rng.integers(0, 256, (SIZE_WH[1], SIZE_WH[0], 3), dtype=np.uint8), (0, 0), 3)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, SIZE_WH)
    for i in range(frames):
        frame = background.copy()
        cv2.circle(frame, (80 + (i * 7) % 480, 240), 60, (0, 200, 255), -1)
        cv2.rectangle(frame, (300, 60 + (i * 5) % 300), (420, 160 + (i * 5) % 300), (255, 80, 0), -1)
        writer.write(frame)
    writer.release()
    return path


def read_video(path: Path, limit: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < limit:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


# ---------------------------------------------------------------------- the peers, as users write them


def jet_overlay(frame_bgr: np.ndarray, heatmap: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """The example's overlay: matplotlib jet colours, resized with keras.utils, added to the image."""
    import matplotlib as mpl

    heatmap = np.uint8(255 * np.nan_to_num(heatmap))
    jet_colors = mpl.colormaps["jet"](np.arange(256))[:, :3]
    jet_heatmap = keras.utils.array_to_img(jet_colors[heatmap])
    jet_heatmap = jet_heatmap.resize((frame_bgr.shape[1], frame_bgr.shape[0]))
    jet_heatmap = keras.utils.img_to_array(jet_heatmap)
    superimposed = jet_heatmap * alpha + frame_bgr[..., ::-1]
    return np.uint8(np.clip(superimposed, 0, 255))[..., ::-1]


def peer_model(name: str):
    """A zoo model built as a user would, its Grad-CAM layer, and the usual frame -> input code."""
    entry = ZOO[name]
    model = getattr(keras.applications, entry.builder)(weights=None, input_shape=(*entry.input_size, 3))
    layer = entry.default_layer or CamEngine(model, preprocess=entry.preprocess).layer_name
    preprocess = preprocess_fn(entry.preprocess)
    h, w = entry.input_size

    def model_input(frame_bgr: np.ndarray) -> np.ndarray:
        return preprocess(np.float32(cv2.resize(frame_bgr, (w, h))[None, ..., ::-1]))

    return model, layer, model_input


def run_keras_example(name: str, frames: list[np.ndarray], out: Path) -> float:
    model, layer, model_input = peer_model(name)
    linear = keras.models.clone_model(model)
    linear.set_weights(model.get_weights())
    linear.layers[-1].activation = None  # as the example does
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, SIZE_WH)

    def step(frame):
        x = model_input(frame)
        preds = model.predict(x, verbose=0)
        heatmap = keras_example_heatmap(x, linear, layer, int(np.argmax(preds[0])))
        writer.write(jet_overlay(frame, heatmap))

    return frames_per_second(step, frames, writer)


def run_tf_keras_vis(name: str, frames: list[np.ndarray], out: Path) -> float:
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    model, layer, model_input = peer_model(name)
    gradcam = Gradcam(model, model_modifier=ReplaceToLinear(), clone=True)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, SIZE_WH)

    def step(frame):
        x = model_input(frame)
        preds = model.predict(x, verbose=0)
        cam = gradcam(CategoricalScore([int(np.argmax(preds[0]))]), x, penultimate_layer=layer)
        heat = cv2.applyColorMap(np.uint8(255 * cv2.resize(cam[0], SIZE_WH)), cv2.COLORMAP_JET)
        writer.write(cv2.addWeighted(frame, 0.6, heat, 0.4, 0))

    return frames_per_second(step, frames, writer)


def frames_per_second(step, frames: list[np.ndarray], writer: cv2.VideoWriter) -> float:
    """Times a peer's per-frame loop after one warm-up frame, then closes its writer."""
    step(frames[0])
    t0 = time.perf_counter()
    for frame in frames:
        step(frame)
    elapsed = time.perf_counter() - t0
    writer.release()
    return len(frames) / elapsed


# ---------------------------------------------------------------------- livecam


def run_livecam(args: list[str], workdir: Path) -> dict:
    stats_path = workdir / "stats.json"
    out = workdir / "out.mp4"
    for p in (stats_path, out):
        p.unlink(missing_ok=True)
    with contextlib.redirect_stderr(io.StringIO()) as err:
        code = livecam_main([*args, "--no-display", "--quiet", "--output", str(out), "--stats-json", str(stats_path)])
    if code != 0:
        raise RuntimeError(f"livecam {' '.join(args)} exited {code}: {err.getvalue()}")
    return json.loads(stats_path.read_text())


def bench_model(name: str, video: Path, frames: int, peer_frames: int, live_frames: int, workdir: Path) -> dict:
    engine = CamEngine(name, weights=None)
    model = engine.model
    h, w = engine.input_size
    clip = read_video(video, 30)

    forward = tf.function(lambda x: model(x, training=False), input_signature=[tf.TensorSpec([None, h, w, 3], tf.float32)])
    x = preprocess_fn(ZOO[name].preprocess)(np.float32(cv2.resize(clip[0], (w, h))[None, ..., ::-1]))
    forward(x)
    engine(clip[0])

    def seconds_for(fn, n):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t0) / n

    row: dict = {"model": name}
    # The forward pass and the engine alternate in rounds and the median round counts, so that a
    # noisy neighbour slows both alike.
    frame_iter = iter(clip * 100)
    rounds = {"forward": [], "engine": []}
    for _ in range(5):
        rounds["forward"].append(seconds_for(lambda: forward(x).numpy(), 30))
        rounds["engine"].append(seconds_for(lambda: engine(next(frame_iter)), 30))
    row["forward"] = 1.0 / float(np.median(rounds["forward"]))
    row["engine"] = 1.0 / float(np.median(rounds["engine"]))
    common = ["--source", str(video), "--model", name, "--weights", "none"]
    batch1 = run_livecam([*common, "--batch", "1"], workdir)
    batched = run_livecam(common, workdir)
    row["livecam --batch 1"] = batch1["fps"]
    row["livecam file mode"] = batched["fps"]
    peers = read_video(video, peer_frames)
    row["keras example"] = run_keras_example(name, peers, workdir / "keras.mp4")
    row["tf-keras-vis"] = run_tf_keras_vis(name, peers, workdir / "tfkv.mp4")
    live = run_livecam(["--source", "synth:fps=30", "--model", name, "--weights", "none", "--max-frames", str(live_frames)], workdir)
    row["live latency p50 ms"] = live["latency_p50_ms"]
    row["live latency p95 ms"] = live["latency_p95_ms"]
    row["engine step ms"] = 1000.0 / row["engine"]
    row["live dropped"] = live["dropped"]
    row["traces"] = max(batch1["traces"], batched["traces"], live["traces"])
    return row


FPS_ROWS = ["forward", "engine", "livecam --batch 1", "livecam file mode", "keras example", "tf-keras-vis"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["mobilenet_v2", "resnet50", "efficientnet_b0"])
    parser.add_argument("--frames", type=int, default=240, help="frames in the generated video")
    parser.add_argument("--peer-frames", type=int, default=24, help="frames the slow peers process")
    parser.add_argument("--live-frames", type=int, default=600, help="frames of the live-latency run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        video = make_video(workdir / "bench.avi", args.frames)
        rows = [bench_model(m, video, args.frames, args.peer_frames, args.live_frames, workdir) for m in args.models]

    if args.json:
        print(json.dumps({"machine": machine(), "rows": rows}, indent=2))
        return
    print(f"Machine: {machine()}. Video: {args.frames} frames, 640x480.\n")
    print("| model | " + " | ".join(FPS_ROWS) + " |")
    print("|---|" + "---:|" * len(FPS_ROWS))
    for r in rows:
        cells = [f"{r[k]:.1f} fps ({r[k] / r['forward']:.2f}x)" for k in FPS_ROWS]
        print(f"| {r['model']} | " + " | ".join(cells) + " |")
    print("\n| model | live latency p50 / p95 (ms) | engine step (ms) | p50 / step | dropped | traces |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['model']} | {r['live latency p50 ms']:.1f} / {r['live latency p95 ms']:.1f} | {r['engine step ms']:.1f} | "
            f"{r['live latency p50 ms'] / r['engine step ms']:.2f}x | {r['live dropped']} | {r['traces']} |"
        )
    print("\nlivecam vs peers: " + "; ".join(
        f"{r['model']}: {r['livecam file mode'] / r['keras example']:.1f}x the Keras example, "
        f"{r['livecam file mode'] / r['tf-keras-vis']:.1f}x tf-keras-vis" for r in rows
    ))


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPUs, TensorFlow {tf.__version__}, Python {platform.python_version()}"


if __name__ == "__main__":
    sys.exit(main())
