"""End-to-end speed: livecam against the forward pass and against what users would otherwise write.

One run, one machine, the same generated 640x480 video for every row. For each model
(weights=None: weights do not change speed) and each engine runtime (tf: TensorFlow, ov: the
body in OpenVINO) it prints frames/s and the ratio to TensorFlow's forward pass:

  forward             TensorFlow's compiled forward pass alone, batch 1, at the model's input size
                      (the faster of this process and a process of its own: the ratios are not
                      flattered by anything that slows TensorFlow here)
  engine              CamEngine alone on 640x480 frames, one at a time
  livecam --batch 1   `livecam --source video --no-display --output out.mp4 --batch 1` (the live path)
  livecam file mode   the same, batched (the default for files)
  keras example       the loop a user writes from the official Keras Grad-CAM example: model.predict
                      for the label, make_gradcam_heatmap, a matplotlib jet overlay, cv2 writer
  tf-keras-vis        tf_keras_vis.gradcam.Gradcam per frame, the same overlay and writer

then the cost of the faithfulness readout (every 10th map tested, its two hidden copies in the
engine batch): frames/s with --faithfulness 10 over --faithfulness 0, in the same round, for the
live path (the synthetic source at 120 fps, faster than the engine) and for file mode; then
the live latency p50/p95 with the synthetic source paced at 30 fps against the engine step,
and the time per frame of each pipeline stage (capture = decode and resize, engine, render,
write = H.264 encode) in the live path, to show which stage limits it. livecam's rows are timed
from its --stats-json (model loading, converting and compiling excluded); the others around
their loops after a warm-up. The runtimes alternate within each round (--rounds), and the
median round counts, so that a noisy neighbour slows both alike.

    python scripts/bench.py [--models mobilenet_v2 resnet50 efficientnet_b0] [--frames 240]
                            [--peer-frames 24] [--live-frames 600] [--rounds 1] [--no-peers] [--json]

Needs the `bench` extra: pip install -e ".[bench]".
"""

from __future__ import annotations

import argparse
import collections
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

from bench_engine import forward_alone_ms, keras_example_heatmap  # noqa: E402  (scripts/ is on the path)
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


RUNTIMES = {"tf": "tensorflow", "ov": "openvino"}


def bench_model(name: str, video: Path, args: argparse.Namespace, workdir: Path) -> dict:
    engines = {"tf": CamEngine(name, weights=None, runtime="tensorflow")}
    model = engines["tf"].model
    entry = ZOO[name]
    engines["ov"] = CamEngine(
        model, preprocess=entry.preprocess, layer=engines["tf"].layer_name, runtime="openvino", log=lambda text: None
    )
    h, w = engines["tf"].input_size
    clip = read_video(video, 30)

    forward = tf.function(lambda x: model(x, training=False), input_signature=[tf.TensorSpec([None, h, w, 3], tf.float32)])
    x = preprocess_fn(entry.preprocess)(np.float32(cv2.resize(clip[0], (w, h))[None, ..., ::-1]))
    forward(x)
    for engine in engines.values():
        engine(clip[0])

    def seconds_for(fn, n):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t0) / n

    row: dict = {"model": name}
    # The forward pass and the engines alternate in rounds and the median round counts, so that a
    # noisy neighbour slows all alike.
    frame_iter = iter(clip * 100)
    rounds: dict[str, list[float]] = {"forward": [], "engine tf": [], "engine ov": []}
    for _ in range(5):
        rounds["forward"].append(seconds_for(lambda: forward(x).numpy(), 30))
        for key, engine in engines.items():
            rounds[f"engine {key}"].append(seconds_for(lambda engine=engine: engine(next(frame_iter)), 30))
    for key, samples in rounds.items():
        row[key] = 1.0 / float(np.median(samples))
    row["forward in process"] = row["forward"]
    row["forward"] = max(row["forward"], 1000.0 / forward_alone_ms(name))  # the faster baseline counts

    common = ["--source", str(video), "--model", name, "--weights", "none"]
    live = ["--source", "synth:fps=30", "--model", name, "--weights", "none", "--max-frames", str(args.live_frames)]
    unpaced = ["--source", "synth:fps=120", "--model", name, "--weights", "none", "--max-frames", str(args.live_frames)]
    runs: dict[str, list[dict]] = collections.defaultdict(list)
    for _ in range(args.rounds):
        for key, runtime in RUNTIMES.items():
            runs[f"livecam --batch 1 {key}"].append(run_livecam([*common, "--batch", "1", "--runtime", runtime], workdir))
            runs[f"livecam file mode {key}"].append(run_livecam([*common, "--runtime", runtime], workdir))
            runs[f"live {key}"].append(run_livecam([*live, "--runtime", runtime], workdir))
            for every in ("0", "10"):
                faith = ["--runtime", runtime, "--faithfulness", every]
                runs[f"faith live {every} {key}"].append(run_livecam([*unpaced, *faith], workdir))
                runs[f"faith file {every} {key}"].append(run_livecam([*common, *faith], workdir))
    median = {key: sorted(stats, key=lambda s: s["fps"])[len(stats) // 2] for key, stats in runs.items()}
    for key, stats in median.items():
        if not key.startswith(("live ", "faith ")):
            row[key] = stats["fps"]
    for key in RUNTIMES:  # each round ran both settings back to back: the ratio of the median rounds
        for mode in ("live", "file"):
            row[f"faithfulness {mode} {key}"] = median[f"faith {mode} 10 {key}"]["fps"] / median[f"faith {mode} 0 {key}"]["fps"]
    for key in RUNTIMES:
        row[f"live latency p50 ms {key}"] = median[f"live {key}"]["latency_p50_ms"]
        row[f"live latency p95 ms {key}"] = median[f"live {key}"]["latency_p95_ms"]
        row[f"live dropped {key}"] = median[f"live {key}"]["dropped"]
        row[f"engine step ms {key}"] = 1000.0 / row[f"engine {key}"]
        row[f"stage ms --batch 1 {key}"] = median[f"livecam --batch 1 {key}"]["stage_ms"]
        row[f"stage ms file mode {key}"] = median[f"livecam file mode {key}"]["stage_ms"]
    row["traces"] = max(stats["traces"] for group in runs.values() for stats in group)
    if not args.no_peers:
        peers = read_video(video, args.peer_frames)
        row["keras example"] = run_keras_example(name, peers, workdir / "keras.mp4")
        row["tf-keras-vis"] = run_tf_keras_vis(name, peers, workdir / "tfkv.mp4")
    return row


FPS_ROWS = [
    "forward",
    "engine tf",
    "engine ov",
    "livecam --batch 1 tf",
    "livecam --batch 1 ov",
    "livecam file mode tf",
    "livecam file mode ov",
    "keras example",
    "tf-keras-vis",
]
STAGES = ["capture", "engine", "render", "write"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["mobilenet_v2", "resnet50", "efficientnet_b0"])
    parser.add_argument("--frames", type=int, default=240, help="frames in the generated video")
    parser.add_argument("--peer-frames", type=int, default=24, help="frames the slow peers process")
    parser.add_argument("--live-frames", type=int, default=600, help="frames of the live-latency run")
    parser.add_argument("--rounds", type=int, default=1, help="end-to-end rounds (the runtimes alternate; median)")
    parser.add_argument("--no-peers", action="store_true", help="skip the Keras example and tf-keras-vis rows")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        os.environ.setdefault("LIVECAM_CACHE_DIR", str(workdir / "cache"))
        video = make_video(workdir / "bench.avi", args.frames)
        rows = [bench_model(m, video, args, workdir) for m in args.models]

    if args.json:
        print(json.dumps({"machine": machine(), "rows": rows}, indent=2))
        return
    fps_rows = [k for k in FPS_ROWS if k in rows[0]]
    print(f"Machine: {machine()}. Video: {args.frames} frames, 640x480. tf = TensorFlow runtime, ov = OpenVINO runtime.\n")
    print("| model | " + " | ".join(fps_rows) + " |")
    print("|---|" + "---:|" * len(fps_rows))
    for r in rows:
        cells = [f"{r[k]:.1f} fps ({r[k] / r['forward']:.2f}x)" for k in fps_rows]
        print(f"| {r['model']} | " + " | ".join(cells) + " |")
    print("\n| model | runtime | live latency p50 / p95 (ms) | engine step (ms) | p50 / step | dropped |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        for key in RUNTIMES:
            p50, p95, step = r[f"live latency p50 ms {key}"], r[f"live latency p95 ms {key}"], r[f"engine step ms {key}"]
            print(
                f"| {r['model']} | {key} | {p50:.1f} / {p95:.1f} | {step:.1f} | {p50 / step:.2f}x | {r[f'live dropped {key}']} |"
            )
    print("\nThe faithfulness readout's cost: fps with --faithfulness 10 / fps with --faithfulness 0 (same round):\n")
    print("| model | runtime | live path (synth at 120 fps) | file mode |")
    print("|---|---|---:|---:|")
    for r in rows:
        for key in RUNTIMES:
            print(f"| {r['model']} | {key} | {r[f'faithfulness live {key}']:.2f}x | {r[f'faithfulness file {key}']:.2f}x |")
    print("\nPer-stage ms per frame (capture = decode + resize, write = H.264 encode); stages overlap in threads:\n")
    print("| model | run | " + " | ".join(STAGES) + " | end-to-end ms/frame |")
    print("|---|---|" + "---:|" * (len(STAGES) + 1))
    for r in rows:
        for key in RUNTIMES:
            for mode, label in (("--batch 1", "livecam --batch 1"), ("file mode", "livecam file mode")):
                stage = r[f"stage ms {mode} {key}"]
                print(
                    f"| {r['model']} | {mode} {key} | "
                    + " | ".join(f"{stage.get(s, 0):.1f}" for s in STAGES)
                    + f" | {1000 / r[f'{label} {key}']:.1f} |"
                )
    print(f"\ntraces (compiled steps per run): {max(r['traces'] for r in rows)}")
    if "keras example" in rows[0]:
        print(
            "\nlivecam vs peers: "
            + "; ".join(
                f"{r['model']}: {r['livecam file mode ov'] / r['keras example']:.1f}x the Keras example, "
                f"{r['livecam file mode ov'] / r['tf-keras-vis']:.1f}x tf-keras-vis"
                for r in rows
            )
        )


def machine() -> str:
    import openvino

    return (
        f"{platform.machine()}, {os.cpu_count()} CPUs, TensorFlow {tf.__version__}, "
        f"OpenVINO {openvino.__version__.split('-')[0]}, Python {platform.python_version()}"
    )


if __name__ == "__main__":
    sys.exit(main())
