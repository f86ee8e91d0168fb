"""End-to-end tests of the ``livecam`` command: flags in, video, stats, snapshots and exit codes out.

Most runs call ``livecam.cli.main`` in this process, so TensorFlow loads once; a real process is
used where only one can tell: signals, the window under Xvfb, and "no traceback, exit code 2".
Every run uses random weights (``--weights none``) at a small input size: nothing is downloaded.
In this process the weights are seeded, so that two runs compare (MobileNetV2 at seed 1 gives
maps with structure, not flat ones).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
import pytest

from helpers import DEMO, DEMO_QUIET, assert_user_error, corrupt_avi_frames, read_frames, run, video_info, visible_windows
from livecam import __version__
from livecam.cli import main, memory
from livecam.models import ZOO

FAST = ("--weights", "none", "--model", "mobilenet_v2", "--input-size", "96", "--quiet")
N = 24  # frames in the test clip
SIZE = (160, 120)  # its (width, height)
FPS = 15.0

# Bounds on waiting for a child process or for X, so that a hang fails instead of blocking CI.
# They are deadlines, not measurements: nothing here asserts how fast anything runs.
PROCESS_TIMEOUT_S = 120


# ---------------------------------------------------------------------- helpers


def cli(capsys, *args) -> tuple[int, str, str]:
    """``livecam ARGS`` in this process, with the same random weights every time: (exit code, stdout, stderr)."""
    import keras

    keras.utils.set_random_seed(1)
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def livecam_process(*args, **popen_kwargs) -> subprocess.Popen:
    """``python -m livecam ARGS`` as a child process; stdout and stderr are pipes unless given."""
    options = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, **popen_kwargs}
    return subprocess.Popen([sys.executable, "-m", "livecam", *map(str, args)], **options)


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def jet_distance(heat_bgr: np.ndarray) -> np.ndarray:
    """Per pixel, the distance (0..441) from a BGR colour to the nearest colour of OpenCV's jet map."""
    lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_JET)[:, 0].astype(np.float32)
    pixels = heat_bgr.reshape(-1, 1, 3).astype(np.float32)
    return np.sqrt(((pixels - lut[None]) ** 2).sum(-1)).min(axis=1)


def heat_like_fraction(image_bgr: np.ndarray) -> float:
    """The share of pixels coloured like a heat map over the test clip: strongly coloured and not its red square.

    The clip itself is grey, black and white (no colour) plus one pure red square.
    """
    image = image_bgr.astype(np.int16)
    spread = image.max(axis=-1) - image.min(axis=-1)
    red = np.abs(image - np.array([0, 0, 255])).max(axis=-1) < 60
    return float(((spread > 60) & ~red).mean())


@pytest.fixture
def clip(tmp_path, make_video) -> Path:
    """The 24-frame 160x120 15 fps test clip (mp4v); frame i carries index i."""
    return make_video(tmp_path / "clip.mp4", N, size=SIZE, fps=FPS)


def record(capsys, source, out: Path, *flags) -> np.ndarray:
    """Runs ``livecam --source SOURCE --no-display --output OUT FLAGS`` and returns the output's frames."""
    code, _, err = cli(capsys, "--source", source, "--no-display", "--output", out, *FAST, *flags)
    assert code == 0, err
    return read_frames(out)


# ---------------------------------------------------------------------- 1. a file end to end


@pytest.mark.slow
def test_file_to_h264_with_stats(capsys, clip, tmp_path):
    out, stats_path = tmp_path / "out.mp4", tmp_path / "stats.json"
    code, stdout, err = cli(capsys, "--source", clip, "--no-display", "--output", out, "--stats-json", stats_path, *FAST)
    assert code == 0, err
    assert stdout == "" and err == ""  # --quiet

    info = video_info(out)
    assert info["frames"] == N
    assert info["size"] == SIZE
    assert info["fps"] == pytest.approx(FPS)
    assert info["codec"] == "h264"
    assert info["pix_fmt"].startswith("yuv420p")

    stats = json.loads(stats_path.read_text())
    assert stats["frames"] == N
    assert stats["seconds"] > 0
    assert stats["fps"] == pytest.approx(stats["frames"] / stats["seconds"], rel=1e-3)
    assert set(stats["stage_ms"]) == {"capture", "engine", "render", "write"}
    assert all(ms >= 0 for ms in stats["stage_ms"].values())
    assert 0 <= stats["latency_p50_ms"] <= stats["latency_p95_ms"]
    # One compiled step for all 24 frames, in batches of 8 and the rest; none with the NumPy head.
    assert stats["traces"] == (0 if stats["runtime"]["head"] == "numpy" else 1)
    assert stats["dropped"] == 0 and stats["corrupt"] == 0 and stats["non_finite"] == 0
    assert stats["recording_error"] is None
    assert stats["recordings"] == [str(out)]


# ---------------------------------------------------------------------- 2. the overlay and HUD are in the pictures


@pytest.mark.slow
def test_alpha_zero_without_hud_gives_back_the_input_in_order(capsys, clip, tmp_path, make_video):
    frames = record(capsys, clip, tmp_path / "out.mp4", "--no-hud", "--alpha", "0")
    source = read_frames(clip)
    assert frames.shape == source.shape
    assert mean_abs_diff(frames, source) < 3  # only the H.264 encoding error
    # No colour swap on the way: the red square (band 20 px, 5 px further right per frame) stays red.
    centres = np.stack([frames[i, 34, (i * 5) % (SIZE[0] - 20) + 10] for i in range(N)])
    assert (centres[:, 2] > 200).all() and (centres[:, :2] < 60).all(), centres
    assert [make_video.index_of(f.astype(np.uint8)) for f in frames] == list(range(N))


@pytest.mark.slow
def test_heat_map_is_blended_in_with_jet_colours(capsys, clip, tmp_path):
    alpha = 0.6
    frames = record(capsys, clip, tmp_path / "out.mp4", "--no-hud", "--blend", "uniform", "--alpha", alpha)
    source = read_frames(clip)
    assert mean_abs_diff(frames, source) > 25
    # out = alpha * heat + (1 - alpha) * frame, so the heat image can be recovered and must be
    # made of jet colours (up to codec error, magnified by 1 / alpha).
    heat = np.clip((frames - (1 - alpha) * source) / alpha, 0, 255)[::3, ::2, ::2]
    distance = jet_distance(heat)
    assert np.median(distance) < 12
    assert np.mean(distance < 30) > 0.9
    # ... and the input itself is not: grey, black, white and red are far from every jet colour.
    assert np.median(jet_distance(source[::3, ::2, ::2])) > 60


@pytest.mark.slow
def test_hud_is_drawn_over_the_overlay(capsys, tmp_path, make_video):
    clip = make_video(tmp_path / "clip.mp4", 12, size=(320, 240), fps=FPS)  # room beside the text panel
    plain = record(capsys, clip, tmp_path / "plain.mp4", "--no-hud", "--blend", "uniform", "--alpha", "0.6")
    hud = record(capsys, clip, tmp_path / "hud.mp4", "--blend", "uniform", "--alpha", "0.6")
    assert hud.shape == plain.shape == (12, 240, 320, 3)
    assert heat_like_fraction(plain[0].astype(np.uint8)) > 0.5  # both carry the map
    panel = (slice(None), slice(0, 40), slice(0, 80))  # the label
    assert mean_abs_diff(hud[panel], plain[panel]) > 30
    legend = (slice(None), slice(215, 235), slice(260, 315))
    assert mean_abs_diff(hud[legend], plain[legend]) > 30
    # A recording keeps the label and the legend only: no top-k bars, diagnostics or REC badge.
    for empty in ((slice(45, 200), slice(0, 320)), (slice(200, 240), slice(0, 200)), (slice(0, 40), slice(200, 320))):
        assert mean_abs_diff(hud[(slice(None), *empty)], plain[(slice(None), *empty)]) < 3, empty


@pytest.mark.slow
def test_hud_full_puts_bars_and_diagnostics_in_the_recording(capsys, tmp_path, make_video):
    clip = make_video(tmp_path / "clip.mp4", 6, size=(320, 240), fps=FPS)
    label = record(capsys, clip, tmp_path / "label.mp4")
    full = record(capsys, clip, tmp_path / "full.mp4", "--hud", "full")
    bars, diagnostics = (slice(None), slice(45, 100), slice(0, 120)), (slice(None), slice(200, 240), slice(0, 120))
    assert mean_abs_diff(full[bars], label[bars]) > 10
    assert mean_abs_diff(full[diagnostics], label[diagnostics]) > 10


# ---------------------------------------------------------------------- 3. file-mode options


@pytest.mark.slow
def test_batched_and_unbatched_runs_agree(capsys, clip, tmp_path):
    batched = record(capsys, clip, tmp_path / "b8.mp4", "--no-hud", "--batch", "8", "--alpha", "0.6")
    single = record(capsys, clip, tmp_path / "b1.mp4", "--no-hud", "--batch", "1", "--alpha", "0.6")
    assert batched.shape == single.shape == (N, SIZE[1], SIZE[0], 3)
    assert single.reshape(N, -1).std(axis=1).min() > 30  # maps with structure: the comparison means something
    per_frame = np.abs(batched - single).mean(axis=(1, 2, 3))
    assert per_frame.max() < 2, per_frame


@pytest.mark.slow
def test_both_runtimes_record_the_same_overlay_with_every_batch_and_input_size(capsys, clip, tmp_path):
    flags = ("--no-hud", "--alpha", "0.6", "--every", "2", "--batch", "3")  # FAST has --input-size 96
    tensorflow = record(capsys, clip, tmp_path / "tf.mp4", *flags, "--runtime", "tensorflow")
    openvino = record(capsys, clip, tmp_path / "ov.mp4", *flags, "--runtime", "openvino")
    assert tensorflow.shape == openvino.shape == (N, SIZE[1], SIZE[0], 3)
    assert tensorflow.reshape(N, -1).std(axis=1).min() > 30  # maps with structure: the comparison means something
    # The maps agree to 1e-6 (test_runtime_openvino); a grey level of rounding that differs here and
    # there grows through H.264's predicted frames until the next keyframe, as between batch sizes.
    per_frame = np.abs(tensorflow - openvino).mean(axis=(1, 2, 3))
    assert per_frame.max() < 2, per_frame


@pytest.mark.slow
def test_image_folder_keeps_every_image_in_order(capsys, image_folder, tmp_path, make_video):
    out = tmp_path / "out.mp4"
    frames = record(capsys, image_folder, out, "--no-hud", "--alpha", "0")
    assert [make_video.index_of(f.astype(np.uint8)) for f in frames] == list(range(12))
    assert video_info(out)["fps"] == pytest.approx(30.0)  # image folders default to 30 fps


@pytest.mark.slow
def test_max_frames_stops_there(capsys, clip, tmp_path):
    stats = tmp_path / "stats.json"
    frames = record(capsys, clip, tmp_path / "out.mp4", "--max-frames", "10", "--stats-json", stats)
    assert len(frames) == 10
    assert json.loads(stats.read_text())["frames"] == 10


@pytest.mark.slow
def test_every_third_frame_reuses_the_map_in_between(capsys, clip, tmp_path):
    # --blend uniform --alpha 1: the output is the heat image alone. With default smoothing on, a reused map must
    # not be folded into the average again: frames 3k, 3k+1, 3k+2 show the same picture.
    frames = record(capsys, clip, tmp_path / "out.mp4", "--no-hud", "--blend", "uniform", "--alpha", "1", "--every", "3")
    assert len(frames) == N
    within = [mean_abs_diff(frames[i], frames[i + 1]) for i in range(N - 1) if (i + 1) % 3]
    assert max(within) < 1.5, np.round(within, 2)


@pytest.mark.slow
def test_loop_with_max_frames_goes_past_the_end(capsys, clip, tmp_path, make_video):
    frames = record(capsys, clip, tmp_path / "out.mp4", "--no-hud", "--alpha", "0", "--loop", "--max-frames", 40)
    assert [make_video.index_of(f.astype(np.uint8)) for f in frames] == [*range(N), *range(40 - N)]


@pytest.mark.slow
def test_side_by_side_doubles_the_width(capsys, clip, tmp_path):
    out = tmp_path / "out.mp4"
    frames = record(capsys, clip, out, "--side-by-side", "--no-hud", "--blend", "uniform", "--alpha", "0.6")
    assert video_info(out)["size"] == (2 * SIZE[0], SIZE[1])
    raw, overlay = frames[:, :, : SIZE[0]], frames[:, :, SIZE[0] :]
    assert mean_abs_diff(raw, read_frames(clip)) < 3
    assert mean_abs_diff(overlay, raw) > 25


@pytest.fixture
def explained_classes(monkeypatch) -> list[int]:
    """Records the class every map of a run explains, as the engine reports it."""
    from livecam.engine.core import CamEngine

    explained: list[int] = []
    call = CamEngine.__call__

    def spy(self, *args, **kwargs):
        result = call(self, *args, **kwargs)
        explained.extend(int(c) for c in result.class_ids)
        return result

    monkeypatch.setattr(CamEngine, "__call__", spy)
    return explained


@pytest.mark.slow
@pytest.mark.parametrize(("query", "class_id"), [("3", 3), ("Goldfish", 1)])  # names in any case
def test_class_flag_locks_the_explained_class(capsys, clip, tmp_path, explained_classes, query, class_id):
    record(
        capsys, clip, tmp_path / "out.mp4", "--class", query, "--max-frames", 8, "--faithfulness", 0
    )  # the frames' own maps only
    assert explained_classes == [class_id] * 8


@pytest.mark.slow
def test_without_class_flag_the_top_class_is_explained(capsys, clip, tmp_path, explained_classes):
    # The reference for the test above: random weights do not make every frame's top class 1, 2 or 3.
    record(capsys, clip, tmp_path / "out.mp4", "--max-frames", 8, "--faithfulness", 0)
    assert len(explained_classes) == 8 and not set(explained_classes) <= {1, 2, 3}


# ---------------------------------------------------------------------- 4. user errors


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process cannot create files in: a read-only one, or /sys for root (who writes anywhere else)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        (folder / "probe").touch()
    except PermissionError:
        return folder
    (folder / "probe").unlink()
    return Path("/sys")


# Command lines that exit 2 with one sentence and write nothing: id -> (argv, what the sentence says).
# In argv, {clip} is the test clip, {tmp} the test's folder and {readonly} a folder no file can be
# created in. The sentence holds the text given (each of a tuple's); a Sentence is all of it.
ON_CLIP = ("--source", "{clip}", "--no-display", *FAST)


class Sentence(str):
    """The whole answer: stderr is exactly ``livecam: error: <sentence>``."""


USER_ERRORS = {
    "missing file": ([*ON_CLIP, "--source", "{tmp}/nope.mp4"], "'{tmp}/nope.mp4' does not exist"),
    "unknown model": ([*ON_CLIP, "--model", "mobilnet_v2"], "did you mean 'mobilenet_v2'"),
    "unknown layer": ([*ON_CLIP, "--layer", "out_rel"], "did you mean 'out_relu'"),
    "unknown method": ([*ON_CLIP, "--method", "gradcm"], "Received: method='gradcm'. Did you mean 'gradcam'"),
    "alpha too big": ([*ON_CLIP, "--alpha", "1.5"], "expected --alpha in [0, 1]. Received: 1.5"),
    "alpha not a number": ([*ON_CLIP, "--alpha", "half"], "expected a number for --alpha. Received: 'half'"),
    "smooth 1": ([*ON_CLIP, "--smooth", "1"], "expected --smooth in [0, 1). Received: 1.0"),
    "topk 0": ([*ON_CLIP, "--topk", "0"], "expected --topk in [1, 20]. Received: 0"),
    "topk 21": ([*ON_CLIP, "--topk", "21"], "expected --topk in [1, 20]. Received: 21"),
    "batch 0": ([*ON_CLIP, "--batch", "0"], "expected --batch in [1, 256]. Received: 0"),
    "batch text": ([*ON_CLIP, "--batch", "8.5"], "expected an integer for --batch. Received: '8.5'"),
    "every 0": ([*ON_CLIP, "--every", "0"], "expected --every in [1, 1000]. Received: 0"),
    "faithfulness negative": ([*ON_CLIP, "--faithfulness", "-1"], "expected --faithfulness >= 0. Received: -1"),
    "resolution form": ([*ON_CLIP, "--resolution", "640"], "expected --resolution as WxH"),
    "resolution size": ([*ON_CLIP, "--resolution", "8x8"], "expected --resolution between 16x16 and 7680x4320"),
    "size form": ([*ON_CLIP, "--size", "640by480"], "expected --size as WxH, e.g. 1280x720. Received: '640by480'"),
    "size too big": ([*ON_CLIP, "--size", "20000x10"], "expected --size between 16x16 and 16384x16384. Received: '20000x10'"),
    "output exists": ([*ON_CLIP, "--output", "{tmp}/exists.mp4"], "already exists; pass --overwrite to replace it"),
    "output folder missing": (
        [*ON_CLIP, "--output", "{tmp}/no/such/out.mp4"],
        "The folder '{tmp}/no/such' for 'out.mp4' does not exist",
    ),
    "output not writable": ([*ON_CLIP, "--output", "{readonly}/out.mp4"], "Cannot write to the folder '{readonly}'"),
    "labels of another length": ([*ON_CLIP, "--labels", "{tmp}/labels.txt"], "has 3 names but the model has 1000 classes"),
    "camera that does not open": ([*ON_CLIP, "--source", "7"], "Camera 7 did not open"),
    "colormap typo": ([*ON_CLIP, "--colormap", "jte"], "Did you mean 'jet'?"),
    "output not a video": ([*ON_CLIP, "--output", "{tmp}/out.avi"], "Expected an output file ending in .mp4"),
    "class id out of range": ([*ON_CLIP, "--class", "1000"], "Expected a class id in [0, 999]. Received: 1000"),
    "class name ambiguous": ([*ON_CLIP, "--class", "Sunglasses"], "Class name 'Sunglasses' is ambiguous (ids 836, 837)"),
    "runtime unknown": ([*ON_CLIP, "--runtime", "onnx"], "Argument --runtime: invalid choice: 'onnx'"),
    "fit unknown": ([*ON_CLIP, "--fit", "zoom"], "Argument --fit: invalid choice: 'zoom'"),
    "runtime forced with xla": (
        [*ON_CLIP, "--runtime", "openvino", "--xla"],
        "The OpenVINO runtime cannot run model 'mobilenet_v2': XLA and mixed",
    ),
    "unknown class name": (
        ["--source", "{clip}", "--no-display", "--output", "{tmp}/out.mp4", "--class", "goldfsh", *FAST],
        "did you mean 'goldfish' (1)",
    ),
    "class that is a unicode digit": (["--source", "{clip}", "--class", "\u00b2", *DEMO_QUIET], "Unknown class '\u00b2'"),
    "camera index too big for opencv": (
        ["--source", "99999999999999999999", *DEMO_QUIET],
        ("Camera index 99999999999999999999 is out of range: expected 0 to 99", "./99999999999999999999"),
    ),
    "synth scene bigger than 8k": (
        ["--source", "synth:20000x20000", *DEMO_QUIET],
        "Expected a synth size of at most 7680x4320, as for --resolution. Received: 20000x20000",
    ),
    "synth size too small to draw": (
        ["--source", "synth:20x20", "--no-display", "--quiet"],
        Sentence("Expected a synth size of at least 32x32. Received: 20x20"),
    ),
    "character device as input": (
        ["--source", "/dev/zero", *DEMO_QUIET],
        "The input '/dev/zero' is a character device, not a video or image file",
    ),
    "folder output for a video": (
        [*ON_CLIP, "-o", "{tmp}/frames/"],
        "is a folder, which gets one image per input, but the source is not a folder or glob of images",
    ),
    "layers of an unknown model": (["layers", "resnet5"], "did you mean 'resnet50'"),
    "viewer options before a command": (
        ["--demo", "serve", "--port", "0"],
        "Options go after the command: `livecam serve --demo --port 0`; see `livecam serve --help`.",
    ),
}
# The rows answered before any model is built; the others build mobilenet_v2 (or start slowly).
QUICK = {
    "class that is a unicode digit",
    "camera index too big for opencv",
    "synth scene bigger than 8k",
    "character device as input",
    "folder output for a video",
    "layers of an unknown model",
    "viewer options before a command",
}


@pytest.fixture
def error_case(tmp_path, clip):
    """(argv, expected) for one row of USER_ERRORS, its places filled in."""
    (tmp_path / "exists.mp4").write_bytes(b"keep me")
    (tmp_path / "labels.txt").write_text("cat\ndog\nbird\n")

    def make(name: str) -> tuple[list[str], str | tuple[str, ...]]:
        argv, expected = USER_ERRORS[name]
        places = {"clip": clip, "tmp": tmp_path, "readonly": unwritable_folder(tmp_path) if name == "output not writable" else ""}
        if isinstance(expected, tuple):
            expected = tuple(e.format(**places) for e in expected)
        elif not isinstance(expected, Sentence):
            expected = expected.format(**places)
        return [a.format(**places) for a in argv], expected

    return make


@pytest.mark.parametrize("name", [pytest.param(name, marks=() if name in QUICK else pytest.mark.slow) for name in USER_ERRORS])
def test_user_errors_exit_2_with_one_line(capsys, error_case, tmp_path, name):
    argv, expected = error_case(name)
    code, out, err = cli(capsys, *argv)
    if isinstance(expected, Sentence):
        assert (code, err) == (2, f"livecam: error: {expected}\n")
    else:
        assert_user_error(code, err, *(expected if isinstance(expected, tuple) else [expected]))
    assert out == ""
    assert (tmp_path / "exists.mp4").read_bytes() == b"keep me"


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.parametrize("name", ["missing file", "colormap typo", "unknown layer"])
def test_user_error_in_a_real_process_has_no_traceback(error_case, name):
    argv, expected = error_case(name)
    done = subprocess.run([sys.executable, "-m", "livecam", *argv], capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S)
    # The whole of stderr, TensorFlow's native start-up lines included: one line.
    assert_user_error(done.returncode, done.stderr, expected)
    assert done.stdout == ""


@pytest.mark.slow
def test_in_a_real_process_the_answer_is_the_only_line(model_files):
    """TensorFlow's native start-up lines go to the same stderr: there must be none around the answer."""
    for argv, expected in [
        (["layers", model_files["two_outputs"]], "has 2 outputs"),
        (["--source", "synth:", "--model", model_files["segmentation"], "--no-display", "--quiet"], "gives a score per pixel"),
    ]:
        done = subprocess.run(
            [sys.executable, "-m", "livecam", *map(str, argv)], capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S
        )
        assert_user_error(done.returncode, done.stderr, expected)
        assert done.stdout == ""


def test_layers_command_takes_unsafe_model_load(capsys, model_files):
    code, err = run(capsys, "layers", model_files["lambda"])
    assert_user_error(code, err, "Lambda layer", "--unsafe-model-load")
    code = main(["layers", str(model_files["lambda"]), "--unsafe-model-load"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert ["feat", "30x30x4", "<- default target layer (without --layer)"] in [
        line.split(maxsplit=2) for line in out.splitlines()
    ]


# ---------------------------------------------------------------------- 5. Ctrl-C and SIGTERM while recording


def stop_once_recording(proc: subprocess.Popen, path: Path, stop) -> str:
    """Waits until ``proc`` records to ``path``, calls ``stop()`` (a signal), and returns its stderr; never leaves it running."""
    try:
        wait_until_growing(path, proc)
        stop()
        _, err = proc.communicate(timeout=PROCESS_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return err


def wait_until_growing(path: Path, proc: subprocess.Popen, min_bytes: int = 4096) -> None:
    """Waits until the recording for ``path`` (written under a temporary name beside it) has ``min_bytes``."""
    deadline = time.monotonic() + PROCESS_TIMEOUT_S
    while not any(p.stat().st_size >= min_bytes for p in path.parent.glob(f"{path.stem}.partial-*{path.suffix}")):
        if proc.poll() is not None:
            pytest.fail(f"livecam ended before recording (exit {proc.returncode}): {proc.stderr.read()}")
        if time.monotonic() > deadline:
            pytest.fail(f"{path} did not grow to {min_bytes} bytes within {PROCESS_TIMEOUT_S} s")
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_recording_exits_130_with_a_playable_file(tmp_path, make_video, signum):
    clip = make_video(tmp_path / "clip.mp4", 30, size=SIZE, fps=FPS)
    out = tmp_path / "out.mp4"
    # Its own session, like a program in a terminal: the signal goes to the whole process group,
    # as Ctrl-C does (ffmpeg, in a session of its own, must not get it).
    proc = livecam_process("--source", clip, "--loop", "--no-display", "--output", out, *FAST, start_new_session=True)
    err = stop_once_recording(proc, out, lambda: os.killpg(proc.pid, signum))
    assert proc.returncode == 130, err
    assert err.strip() == "livecam: interrupted"
    frames, _ = imageio_ffmpeg.count_frames_and_secs(str(out))
    assert frames > 0
    assert video_info(out)["codec"] == "h264"
    cap = cv2.VideoCapture(str(out))
    ok, image = cap.read()
    cap.release()
    assert ok and image.shape == (SIZE[1], SIZE[0], 3)


# ---------------------------------------------------------------------- 6. the window under Xvfb


def x_run(*args, timeout: float = 60) -> str:
    return subprocess.run(list(args), capture_output=True, text=True, check=True, timeout=timeout).stdout


@pytest.mark.slow
@pytest.mark.subprocess
def test_window_shows_the_overlay_saves_snapshots_and_quits_on_q(xvfb_screen, xdotool, tmp_path, make_video):
    clip = make_video(tmp_path / "clip.mp4", 30, size=(320, 240), fps=FPS)
    snapshots = tmp_path / "snaps"
    # stderr goes to a file, not a pipe: nothing reads a pipe while the window is watched, and a
    # full one would block livecam.
    err_path = tmp_path / "stderr.txt"
    with err_path.open("w") as err_file:
        proc = livecam_process(
            "--source", clip, "--loop", *FAST, "--no-hud", "--blend", "uniform", "--alpha", "0.6", "--snapshot-dir", snapshots,
            env={**os.environ, "DISPLAY": xvfb_screen.display}, stdout=subprocess.DEVNULL, stderr=err_file,
        )  # fmt: skip

    def diagnosis(what: str) -> str:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        return f"{what}; livecam's exit code {proc.returncode}, its stderr: {err_path.read_text()[-3000:]!r}"

    try:
        # The window opens before the first frame is shown: look it up on every try (it may be
        # laid out again), wait for the picture, then judge it.
        deadline = time.monotonic() + PROCESS_TIMEOUT_S
        heat, shot, windows = 0.0, None, []
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(diagnosis("livecam ended while its window was awaited"))
            windows = [w for w in visible_windows(xdotool, "livecam") if w["WIDTH"] >= 160 and w["HEIGHT"] >= 120]
            if windows:
                shot = xvfb_screen.grab(*(windows[0][k] for k in ("X", "Y", "WIDTH", "HEIGHT")))
                if (heat := heat_like_fraction(shot)) >= 0.5:
                    break
            time.sleep(0.5)
        if heat < 0.5:
            seen = "no window"
            if shot is not None:
                cv2.imwrite(str(tmp_path / "window.png"), shot)
                seen = f"{heat:.0%} heat-coloured pixels, mean level {shot.mean():.0f}, windows {windows}"
            pytest.fail(diagnosis(f"the window does not show a heat map ({seen})"))
        assert heat_like_fraction(make_video.frame(0, (320, 240))) < 0.05  # the raw clip would not pass
        assert shot.mean() > 20  # not a black window
        assert (windows[0]["WIDTH"], windows[0]["HEIGHT"]) == (320, 240)  # opened at the frame's size
        window = str(windows[0]["WINDOW"])

        x_run(xdotool, "key", "--window", window, "s")
        deadline = time.monotonic() + PROCESS_TIMEOUT_S
        while len(list(snapshots.glob("*"))) < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        x_run(xdotool, "key", "--window", window, "q")
        proc.wait(timeout=PROCESS_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = err_path.read_text()
    assert proc.returncode == 0, err
    assert "Traceback" not in err

    files = sorted(snapshots.iterdir())
    assert [f.name.rsplit("-", 1)[1] for f in files] == ["cam.npy", "overlay.png", "raw.png", "record.json"], files
    by_kind = {f.name.rsplit("-", 1)[1]: f for f in files}
    raw = cv2.imread(str(by_kind["raw.png"]))
    overlay = cv2.imread(str(by_kind["overlay.png"]))
    index = make_video.index_of(raw)
    assert raw.shape == overlay.shape == (240, 320, 3)
    assert index < 30 and mean_abs_diff(raw, make_video.frame(index, (320, 240))) < 5  # a frame of the clip
    assert mean_abs_diff(overlay, raw) > 25 and heat_like_fraction(overlay) > 0.5
    cam = np.load(by_kind["cam.npy"])
    assert cam.ndim == 2 and cam.dtype == np.float32 and 0 <= cam.min() and cam.max() <= 1
    saved = json.loads(by_kind["record.json"].read_text())
    assert saved["model"] == "mobilenet_v2" and saved["method"] == "gradcam" and saved["layer"] == "out_relu"
    assert 0 <= saved["class_id"] < 1000 and saved["locked"] is False
    assert saved["files"] == {
        "raw": by_kind["raw.png"].name,
        "overlay": by_kind["overlay.png"].name,
        "cam": by_kind["cam.npy"].name,
    }


# ---------------------------------------------------------------------- 7. the other commands


@pytest.mark.subprocess
def test_version():
    done = subprocess.run(
        [sys.executable, "-m", "livecam", "--version"], capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"livecam {__version__}"


def test_models_lists_the_whole_zoo_and_says_what_default_means(capsys):
    code, out, err = cli(capsys, "models")
    assert code == 0, err
    table, _, note = out.partition("\n\n")
    names = [line.split()[0] for line in table.splitlines()[1:]]
    assert names == [*ZOO, "demo", "demo-vit"]
    assert table.splitlines()[1 + list(ZOO).index("mobilenet_v2")].startswith("mobilenet_v2 (default)")
    assert sum("(default)" in line for line in table.splitlines()) == 1
    assert note.startswith("(default): the model used when --model is not given.")


def test_models_help_prints_help(capsys):
    code, out, _ = cli(capsys, "models", "--help")
    assert code == 0
    assert out.startswith("usage: livecam models") and "mobilenet_v2" not in out
    code, _, err = cli(capsys, "models", "--bogus")
    assert_user_error(code, err, "see `livecam models --help`")


@pytest.mark.slow
def test_layers_lists_spatial_layers_with_the_default_marked(capsys):
    code, out, err = cli(capsys, "layers", "mobilenet_v2")
    assert code == 0, err
    rows = [line.split(maxsplit=2) for line in out.splitlines()]
    assert ["out_relu", "7x7x1280", "<- default target layer (without --layer)"] in rows
    assert all(len(row) in (2, 3) for row in rows) and len(rows) > 20
    assert sum(len(row) == 3 for row in rows) == 1


def test_layers_marks_the_default_of_a_user_model(capsys, tmp_path):
    import keras

    from livecam import CamEngine

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="early")(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="late")(x)
    path = tmp_path / "mine.keras"
    keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))).save(path)
    code, out, err = cli(capsys, "layers", path)
    assert code == 0, err
    marked = [line.split()[0] for line in out.splitlines() if "<- default target layer" in line]
    assert marked == ["late"] == [CamEngine(str(path), runtime="tensorflow").layer_name]


@pytest.mark.slow
def test_layers_marks_the_automatic_default_of_mobilenet_v3(capsys):
    code, out, err = cli(capsys, "layers", "mobilenet_v3_large")
    assert code == 0, err
    rows = out.splitlines()
    assert [i for i, line in enumerate(rows) if "<- default target layer" in line] == [len(rows) - 1]  # the last spatial layer


@pytest.mark.slow
def test_demo_runs_offline_and_records_60_frames(capsys, tmp_path):
    out, stats_path = tmp_path / "demo.mp4", tmp_path / "stats.json"
    code, _, err = cli(
        capsys, "--demo", "--no-display", "--max-frames", "60", "--output", out, "--stats-json", stats_path, "--quiet"
    )
    assert code == 0, err
    assert json.loads(stats_path.read_text())["frames"] == 60  # explained, drawn and handed to the recorder
    info = video_info(out)
    assert info["codec"].startswith("h264") and info["size"] == (640, 480)
    frames, _ = imageio_ffmpeg.count_frames_and_secs(str(out))
    # A live source: the file follows the clock, so a late frame repeats one, and on a starved
    # machine two frames captured within one frame period share a slot (the later one is kept).
    assert frames >= 57
    assert len(read_frames(out)) == frames, "every frame decodes"


@pytest.mark.slow
@pytest.mark.subprocess
def test_demo_without_a_display_records_instead(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    done = subprocess.run(
        [sys.executable, "-m", "livecam", "--demo", "--max-frames", "30", "--quiet"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    saved = (tmp_path / "livecam-demo.mp4").resolve()
    assert f"no display here, so the demo records 30 frames to {saved} instead" in done.stderr  # the full path
    assert imageio_ffmpeg.count_frames_and_secs(str(tmp_path / "livecam-demo.mp4"))[0] >= 27  # see the test above


@pytest.mark.slow
@pytest.mark.subprocess
def test_window_without_a_display_says_what_to_do(tmp_path, make_video):
    clip = make_video(tmp_path / "clip.avi", 4)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    done = subprocess.run(
        [sys.executable, "-m", "livecam", "--source", str(clip), "--weights", "none"],
        env=env, capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "livecam: error: This OpenCV build has no GUI or there is no display (opencv-python-headless, or no $DISPLAY); "
        "run with --no-display --output out.mp4 to record instead."
    ]


# ---------------------------------------------------------------------- 7b. the grammar: commands and settings


@pytest.mark.parametrize(
    ("argv", "command", "source"),
    [
        ([], None, "0"),
        (["--source", "serve"], None, "serve"),  # a file named like a command is a source after --source
        (["--source", "models", "--no-display"], None, "models"),
        (["serve"], "serve", None),
        (["--debug", "serve", "--source", "x"], "serve", "x"),
    ],
)
def test_subcommands_are_chosen_by_argparse(argv, command, source):
    from livecam.cli.parsers import parse

    args = parse(argv)
    assert (args.command, args.source) == (command, source)


def test_debug_may_come_before_the_command(capsys, monkeypatch):
    monkeypatch.setenv(
        "LIVECAM_DEBUG", "0"
    )  # --debug sets it to 1: undone after the test, for the child processes of later tests
    code, out, err = cli(capsys, "--debug", "models")
    assert code == 0, err
    assert out.splitlines()[1].startswith("mobilenet_v2 (default)")


def test_the_model_is_resolved_once_for_every_command(monkeypatch):
    import livecam.models
    from livecam.cli.configs import serve_config, view_config
    from livecam.cli.parsers import parse

    monkeypatch.setattr(livecam.models, "DEFAULT_MODEL", "resnet50")
    assert view_config(parse([])).engine.model == serve_config(parse(["serve"])).engine.model == "resnet50"
    assert view_config(parse(["--demo"])).engine.model == serve_config(parse(["serve", "--demo"])).engine.model == "demo"
    assert view_config(parse(["--demo", "--model", "vgg16"])).engine.model == "vgg16"
    # --demo is the synthetic scene for the viewer whatever --source says; the server's --source wins.
    assert view_config(parse(["--demo", "--source", "a.mp4"])).source.spec == "synth:"
    assert serve_config(parse(["serve", "--demo", "--source", "a.mp4"])).source.spec == "a.mp4"
    assert serve_config(parse(["serve", "--demo"])).source.spec == "synth:"


_SERVE_THEN_RETURN = """
import atexit, sys
marker = sys.argv[1]
atexit.register(lambda: open(marker, "a").write("atexit ran\\n"))  # registered before livecam's own
from livecam.cli import main, memory
code = main(sys.argv[2:])
open(marker, "a").write(f"main returned {code}\\n")
sys.exit(code)
"""


@pytest.mark.slow
@pytest.mark.subprocess
def test_serve_stopped_by_sigterm_returns_from_main_and_runs_atexit(tmp_path):
    marker = tmp_path / "marker.txt"
    args = [marker, "serve", "--port", "0", "--model", "demo"]
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVE_THEN_RETURN, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        for line in proc.stdout:  # the server is up once it prints its address
            if line.startswith("livecam: open "):
                break
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=PROCESS_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "livecam: server stopped" in err
    assert marker.read_text().splitlines() == ["main returned 0", "atexit ran"]


# ---------------------------------------------------------------------- 8. quiet, quick and honest


def run_python(code: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S, env=env)


_IMPORTS_OF = """
import sys
from livecam.cli import main, memory
code = main(sys.argv[1:])
print("tensorflow" in sys.modules, "keras" in sys.modules, code)
"""


@pytest.mark.subprocess
@pytest.mark.parametrize("args", [["models"], ["--help"], ["models", "--help"], ["layers", "--help"], ["--version"]])
def test_help_and_models_do_not_import_tensorflow(args):
    done = run_python(_IMPORTS_OF, *args)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "False False 0"


# Lines that TensorFlow, CUDA, absl and OpenCV print on their own (on this CPU-only machine: the
# oneDNN note, "Could not find cuda drivers", "failed call to cuInit", OpenCV's camera probe).
_LIBRARY_LINE = ("I0000", "W0000", "E0000", "WARNING: All log messages", "oneDNN", "cuda", "cuInit", "[ERROR:", "[ WARN:")


def library_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if any(mark in line for mark in _LIBRARY_LINE)]


@pytest.mark.slow
@pytest.mark.subprocess
def test_layers_prints_no_library_log_lines_unless_debug():
    done = subprocess.run(
        [sys.executable, "-m", "livecam", "layers", "demo"], capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S
    )
    assert done.returncode == 0 and "features" in done.stdout
    assert done.stderr == "", done.stderr
    debug = subprocess.run(
        [sys.executable, "-m", "livecam", "layers", "demo", "--debug"], capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S
    )
    assert debug.returncode == 0
    assert library_lines(debug.stderr), "--debug shows TensorFlow's own lines (this machine has no GPU: at least the CUDA notes)"


@pytest.mark.slow
@pytest.mark.subprocess
def test_python_api_prints_no_library_log_lines():
    code = "import livecam, numpy as np; e = livecam.CamEngine('demo'); e(np.zeros((96, 96, 3), np.uint8)); print('ok')"
    first = run_python(code)  # with a cold cache livecam says once that it converts the body: its own line
    assert first.returncode == 0 and first.stdout.strip() == "ok", first.stderr
    assert all(line.startswith("livecam: converting the network body") for line in first.stderr.splitlines()), first.stderr
    done = run_python(code)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
    assert done.stderr == "", done.stderr
    # A warm start imports no TensorFlow, so nothing of it could speak: the TensorFlow runtime does.
    loud = run_python(
        code.replace("CamEngine('demo')", "CamEngine('demo', runtime='tensorflow')"), env={**os.environ, "LIVECAM_DEBUG": "1"}
    )
    assert loud.returncode == 0 and library_lines(loud.stderr)


@pytest.mark.subprocess
def test_list_cameras_prints_only_its_answer():
    done = subprocess.run(
        [sys.executable, "-m", "livecam", "--list-cameras"], capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S
    )
    assert done.returncode == 0
    assert done.stderr == "", done.stderr  # OpenCV probes 10 indexes; its "[ERROR] ... out of range" lines stay out
    assert done.stdout.strip()  # "No camera opened ..." here, one line per camera elsewhere


@pytest.mark.subprocess
@pytest.mark.parametrize("args", [["models"], ["--list-cameras"], pytest.param(["layers", "demo"], marks=pytest.mark.slow)])
def test_a_list_into_a_closed_pipe_ends_quietly(args):
    """`livecam layers resnet50 | head -1`: the reader leaves before the list is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # closed before the child starts, so its first write or flush fails, every time
    try:
        done = subprocess.run(
            [sys.executable, "-m", "livecam", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=PROCESS_TIMEOUT_S,
        )
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (141, "")  # as a tool killed by SIGPIPE, with no "BrokenPipeError"


@pytest.mark.subprocess
@pytest.mark.parametrize("scheme", ["rtsp", "http"])
def test_an_unreachable_stream_gets_livecam_s_sentence_only(scheme):
    import socket

    with socket.socket() as closed:  # bound but not listening: connecting is refused at once
        closed.bind(("127.0.0.1", 0))
        url = f"{scheme}://127.0.0.1:{closed.getsockname()[1]}/x"
        done = subprocess.run(
            [sys.executable, "-m", "livecam", "--source", url, "--no-display", "--model", "demo"],
            capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S,
        )  # fmt: skip
    assert done.returncode == 2
    # FFmpeg's own "[tcp @ 0x...] Connection to tcp://... failed" line stays out.
    assert done.stderr.splitlines() == [
        f"livecam: error: The stream {url} could not be opened; check the address (scheme, host, port and path) and that the camera or server is on."
    ]


@pytest.mark.slow
def test_random_zoo_weights_are_said_to_mean_nothing(capsys, clip, tmp_path):
    args = [
        "--source",
        clip,
        "--weights",
        "none",
        "--model",
        "mobilenet_v2",
        "--input-size",
        "96",
        "--no-display",
        "--max-frames",
        "2",
    ]
    code, _, err = cli(capsys, *args, "-o", tmp_path / "out.mp4")
    assert code == 0, err
    assert "livecam: warning: --weights none gives mobilenet_v2 random weights: its labels and maps mean nothing" in err
    code, _, err = cli(capsys, "--demo", "--no-display", "--max-frames", "2", "-o", tmp_path / "demo.mp4")
    assert code == 0 and "random weights" not in err  # the demo model ships trained


@pytest.mark.slow
def test_a_headless_run_that_saves_nothing_is_warned_about(capsys, clip, tmp_path):
    code, _, err = cli(capsys, "--source", clip, "--no-display", *FAST, "--max-frames", "2")
    assert code == 0, err
    assert err.splitlines() == [
        "livecam: warning: --no-display without -o/--output, --results or --save-maps saves nothing; add one of them to keep the output."
    ]
    code, _, err = cli(capsys, "--source", clip, "--no-display", *FAST, "--max-frames", "2", "-o", tmp_path / "out.mp4")
    assert code == 0 and err == ""


@pytest.mark.slow
@pytest.mark.subprocess
def test_sigterm_prints_the_summary_with_full_paths(tmp_path, make_video):
    clip = make_video(tmp_path / "clip.mp4", 30, size=SIZE, fps=FPS)
    proc = livecam_process(
        "--source", clip.name, "--loop", "--no-display", "-o", "out.mp4", "--weights", "none", "--input-size", "96", cwd=tmp_path
    )
    err = stop_once_recording(proc, tmp_path / "out.mp4", lambda: proc.send_signal(signal.SIGTERM))
    assert proc.returncode == 130, err
    summary = [line for line in err.splitlines() if " frames in " in line]
    assert len(summary) == 1, err
    assert summary[0].endswith(f"; saved {(tmp_path / 'out.mp4').resolve()}")
    assert err.splitlines()[-1] == "livecam: interrupted"


def test_default_outputs_are_ignored_by_git():
    import fnmatch

    root = Path(__file__).resolve().parents[1]
    patterns = [
        line.strip() for line in (root / ".gitignore").read_text().splitlines() if line.strip() and not line.startswith("#")
    ]
    for name in ("livecam-demo.mp4", "livecam-demo-2.mp4", "livecam-20261128-213000.mp4", "livecam-20261128-213000-001-overlay.png",
                 "livecam-20261128-213000-001-raw.png", "livecam-20261128-213000-001-cam.npy", "livecam-20261128-213000-001-record.json"):  # fmt: skip
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), name


# ---------------------------------------------------------------------- 9. per-frame outputs


@pytest.mark.slow
def test_image_folder_to_a_folder_gives_one_picture_per_input_with_results_and_maps(capsys, image_folder, tmp_path, make_video):
    out, results, maps = tmp_path / "out", tmp_path / "results.jsonl", tmp_path / "maps"
    code, _, err = cli(capsys, "--source", image_folder, "--no-display", *FAST, "--hud", "none", "--alpha", "0",
                       "-o", f"{out}/", "--results", results, "--save-maps", maps)  # fmt: skip
    assert code == 0, err
    inputs = sorted(p.name for p in image_folder.iterdir())
    assert sorted(p.name for p in out.iterdir()) == inputs
    for name in inputs:  # alpha 0, no HUD: each output is its own input, not a neighbour's
        assert make_video.index_of(cv2.imread(str(out / name))) == make_video.index_of(cv2.imread(str(image_folder / name)))
    header, *lines = [json.loads(line) for line in results.read_text().splitlines()]
    assert list(header) == ["made_with"] and header["made_with"]["model"] == "mobilenet_v2"
    assert [line["source"] for line in lines] == [f"frame_{i}.png" for i in range(1, 13)]  # natural order
    assert [line["frame_index"] for line in lines] == list(range(12))
    assert all(0 <= line["hot_x"] < 160 and 0 <= line["hot_y"] < 120 for line in lines)
    assert sorted(p.name for p in maps.iterdir()) == sorted(f"{Path(n).stem}.npy" for n in inputs)
    cam = np.load(maps / "frame_1.npy")
    assert cam.dtype == np.float32 and cam.shape == (3, 3)  # mobilenet_v2 at 96 px: a 3x3 last layer


@pytest.mark.slow
def test_results_of_a_video_one_csv_line_per_frame(capsys, clip, tmp_path):
    results = tmp_path / "results.csv"
    code, _, err = cli(capsys, "--source", clip, "--no-display", *FAST, "--results", results)
    assert code == 0, err
    rows = results.read_text().splitlines()
    assert len(rows) == 1 + N and rows[0].startswith("frame_index,source_time_s,source,")
    made_with = json.loads((tmp_path / "results.meta.json").read_text())["made_with"]
    assert made_with["model"] == "mobilenet_v2" and made_with["normalize"] == "frame"
    assert all(row.split(",")[2] == "clip.mp4" for row in rows[1:])


def test_per_frame_outputs_follow_the_output_rules(capsys, clip, tmp_path):
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "old.npy").write_bytes(b"")
    code, _, err = cli(capsys, "--source", clip, "--no-display", *FAST, "--save-maps", tmp_path / "maps")
    assert_user_error(code, err, "already has files; pass --overwrite")
    (tmp_path / "r.jsonl").write_text("old\n")
    code, _, err = cli(capsys, "--source", clip, "--no-display", *FAST, "--results", tmp_path / "r.jsonl")
    assert_user_error(code, err, "already exists; pass --overwrite")
    assert (tmp_path / "r.jsonl").read_text() == "old\n"


# ---------------------------------------------------------------------- runtimes


@pytest.mark.parametrize(
    "runtime, reason",
    [
        ("auto", "no GPU, and the model splits cleanly at layer 'features'"),
        pytest.param("tensorflow", "asked for", marks=pytest.mark.slow),
    ],
)
def test_runtime_is_said_on_the_console_and_in_the_stats(capfd, clip, tmp_path, monkeypatch, runtime, reason):
    monkeypatch.setenv("LIVECAM_CACHE_DIR", str(tmp_path / "cache"))
    stats_path = tmp_path / "stats.json"
    argv = [
        "--source",
        clip,
        "--model",
        "demo",
        "--no-display",
        "--max-frames",
        "4",
        "--runtime",
        runtime,
        "--stats-json",
        stats_path,
    ]
    assert main([str(a) for a in argv]) == 0
    err = capfd.readouterr().err
    name = "openvino" if runtime == "auto" else "tensorflow"
    assert f"livecam: runtime {name} ({reason})" in err.splitlines()
    head = "numpy" if name == "openvino" else "tensorflow"  # the demo's head is pooling + Dense
    assert json.loads(stats_path.read_text())["runtime"] == {"name": name, "reason": reason, "head": head}
    converting = [line for line in err.splitlines() if "converting the network body to OpenVINO" in line]
    assert len(converting) == (1 if name == "openvino" else 0)
    if name == "openvino":  # the second start reads the cache
        stats_path.unlink()  # --stats-json never replaces a file without --overwrite
        assert main([str(a) for a in argv]) == 0
        assert "converting" not in capfd.readouterr().err


def test_forced_openvino_for_a_model_that_does_not_split_is_one_line(capsys, clip, tmp_path):
    import keras

    inputs = keras.Input((32, 32, 3))
    a = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    b = keras.layers.Conv2D(4, 3, padding="same", name="target")(a)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Add()([a, b]))
    path = tmp_path / "residual.keras"
    keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x)).save(path)
    common = ["--source", clip, "--model", path, "--layer", "target", "--no-display", "--max-frames", "2"]
    code, _, err = cli(capsys, *common, "--runtime", "openvino", "--quiet")
    assert_user_error(code, err, "The OpenVINO runtime cannot run model 'residual': the model cannot be cut at layer 'target'")
    code, _, err = cli(capsys, *common)
    assert code == 0, err
    assert "livecam: runtime tensorflow (the model cannot be cut at layer 'target': a layer after the target layer" in err


def test_fit_reaches_the_engine(monkeypatch):
    import livecam.engine.core
    from livecam.cli.configs import engine_from_config, view_config
    from livecam.cli.parsers import parse

    made = {}
    monkeypatch.setattr(livecam.engine.core, "CamEngine", lambda model, **kwargs: made.update(kwargs))
    assert parse([]).fit == "squash"
    engine_from_config(view_config(parse(["--fit", "crop", "--demo"])).engine)
    assert made["fit"] == "crop"


# ---------------------------------------------------------------------- 10. memory a batch needs


def test_batch_and_input_size_that_would_not_fit_in_memory(capsys, clip, monkeypatch):
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 2_000_000_000)
    monkeypatch.setattr(memory, "activations_in_host_memory", lambda: True)  # as on a CPU, also where a GPU is
    code, err = run(capsys, "--source", clip, "--batch", "256", "--input-size", "1024", *DEMO_QUIET)
    assert_user_error(code, err, "A batch of 256 frames at 1024x1024 with demo needs about ", "but only 2.0 GB is available")
    needed_gb = float(err.split("needs about ")[1].split(" GB")[0])
    fits = int(err.split("pass --batch ")[1].split()[0])
    assert needed_gb > 2.0 and 1 <= fits < 256
    assert abs(needed_gb / 256 * fits - 2.0) < needed_gb / 256, "the batch it suggests is the largest that fits"


def test_available_memory_is_read_from_the_system():
    available = memory.available_memory_bytes()
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert available is not None and 0 < available <= total


# ---------------------------------------------------------------------- 11. what the console says of the input


@pytest.mark.slow
def test_corrupt_frames_in_a_video_are_skipped_and_counted_by_the_cli(tmp_path, make_video, capsys):
    clip = make_video(tmp_path / "clip.avi", 24)
    corrupt_avi_frames(clip, {5, 6, 15})
    out = tmp_path / "out.mp4"
    stats = tmp_path / "stats.json"
    code = main(["--source", str(clip), "--model", "mobilenet_v2", "--weights", "none", "--input-size", "64",
                 "--no-display", "--quiet", "--output", str(out), "--stats-json", str(stats)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    report = json.loads(stats.read_text())
    assert report["corrupt"] == 3 and report["frames"] == 21
    assert imageio_ffmpeg.count_frames_and_secs(str(out))[0] == 21


def test_names_with_terminal_escape_codes_are_printed_escaped(tmp_path, make_video, capsys):
    clip = make_video(tmp_path / "evil\x1b[2J\x1b]0;pwned\x07.mp4", 3)
    out = tmp_path / "out\x1b[31m.mp4"
    assert main(["--source", str(clip), *DEMO, "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err
    assert "video evil\\x1b[2J\\x1b]0;pwned\\x07.mp4" in err and "saved " in err and "out\\x1b[31m.mp4" in err
    assert main(["--source", str(tmp_path / "missing\x1b[2J.mp4"), *DEMO]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and "missing\\x1b[2J.mp4" in err
