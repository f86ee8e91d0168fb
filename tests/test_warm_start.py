"""A warm start opens from the cache entry alone: no TensorFlow, the same maps and probabilities."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from livecam import CamEngine
from livecam.cli import main
from livecam.engine import core, warm
from livecam.errors import UserError
from test_engine import SIZE, _frames, tiny_model
from test_runtime_openvino import _head_on_pooling


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LIVECAM_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def model_file(tmp_path) -> Path:
    path = tmp_path / "tiny.keras"
    tiny_model("dense_softmax").save(path)
    return path


def no_loading(monkeypatch) -> None:
    """From here on, building the Keras model fails the test."""

    def load_model(*args, **kwargs):
        raise AssertionError("the warm start loaded the model")

    monkeypatch.setattr(core, "load_model", load_model)


def start(model, log: list[str] | None = None, **kwargs) -> CamEngine:
    return CamEngine(model, log=(log.append if log is not None else lambda text: None), **kwargs)


def assert_identical(got, expected) -> None:
    for field in ("probs", "class_ids", "cam", "topk_ids", "topk_probs", "finite"):
        np.testing.assert_array_equal(getattr(got, field), getattr(expected, field), err_msg=field)


@pytest.mark.parametrize(
    "model, kwargs",
    [
        ("file", {}),
        pytest.param("demo", {}, marks=pytest.mark.slow),
        pytest.param("mobilenet_v2", {"weights": "none"}, marks=pytest.mark.slow),
    ],
)
def test_a_second_start_opens_from_the_cache_with_the_same_numbers(cache, model_file, monkeypatch, model, kwargs):
    model = str(model_file) if model == "file" else model
    cold_log: list[str] = []
    cold = start(model, cold_log, **kwargs)
    assert cold_log and cold_log[0].startswith("converting the network body to OpenVINO")
    no_loading(monkeypatch)
    warm_log: list[str] = []
    second = start(model, warm_log, **kwargs)
    assert warm_log == [] and not second.step.body.converted
    assert second.runtime_info == cold.runtime_info
    for name in ("model_name", "class_names", "input_size", "layer_name", "topk", "layer_candidates", "step_bytes_per_frame"):
        assert getattr(second, name) == getattr(cold, name), name
    h, w = cold.input_size
    frames = np.random.default_rng(0).integers(0, 256, (4, h + 8, w + 16, 3), dtype=np.uint8)
    for method in ("gradcam", "gradcam++"):
        assert_identical(second(frames, method=method), cold(frames, method=method))
    assert_identical(second(frames, class_id=1), cold(frames, class_id=1))


def test_the_key_names_the_model_without_loading_it(cache, model_file, tmp_path):
    def key(model=str(model_file), **kwargs):
        return warm.start_key(model, **{"weights": "imagenet", "layer": None, "input_size": None, "preprocess": None, **kwargs})

    assert key() == key() is not None
    assert len({key(), key(layer="target"), key(input_size=64), key(preprocess="none")}) == 4
    weights = tmp_path / "w.weights.h5"
    weights.write_bytes(b"1234")
    zoo = {key("mobilenet_v2", weights=w) for w in ("imagenet", "none", "NONE", None, str(weights))}
    assert len(zoo) == 3  # "none", "NONE" and None are the same random weights
    os.utime(weights, ns=(1, 1))  # a weights file replaced: another key
    assert key("mobilenet_v2", weights=str(weights)) not in zoo
    before = key()
    model_file.write_bytes(model_file.read_bytes() + b"\0")  # another model file, however it is timed
    assert key() != before
    # Not named (the model is loaded, and says what is wrong): a keras.Model, a callable, a missing file.
    assert key(tiny_model("dense_softmax")) is None
    assert key(preprocess=lambda x: x) is None
    assert key(str(tmp_path / "missing.keras")) is None
    assert key("mobilenet_v2", weights=str(tmp_path / "missing.h5")) is None


def test_a_general_head_a_gpu_or_tensorflow_load_the_model(cache, tmp_path, monkeypatch):
    general = tmp_path / "general.keras"
    _head_on_pooling(keras.layers.Dense(8), keras.layers.Dense(3, activation="softmax")).save(general)
    first = start(general, layer="target")
    assert first.runtime_info.head == "tensorflow"
    second = start(general, layer="target")  # its body still comes from the cache
    assert not second.step.body.converted and second.runtime_info.head == "tensorflow"
    frames = _frames(2)
    assert_identical(second(frames), first(frames))

    dense = tmp_path / "dense.keras"
    tiny_model("dense_softmax").save(dense)
    start(dense)
    monkeypatch.setattr(warm, "gpu_possible", lambda: True)
    loads = []
    real = core.load_model
    monkeypatch.setattr(core, "load_model", lambda *a, **k: loads.append(a) or real(*a, **k))
    assert start(dense).runtime_info.runtime == "openvino" and len(loads) == 1  # TensorFlow looked for the GPU
    assert start(dense, runtime="openvino").step.body is not None and len(loads) == 1  # forced: no GPU question
    assert start(dense, runtime="tensorflow").runtime_info.runtime == "tensorflow" and len(loads) == 2


def test_labels_replace_the_cached_class_names(cache, model_file, tmp_path, monkeypatch):
    start(model_file)
    no_loading(monkeypatch)
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\nd\ne\n")
    assert start(model_file, labels=labels).class_names == ("a", "b", "c", "d", "e")
    labels.write_text("a\nb\n")
    with pytest.raises(UserError, match=r"has 2 names but the model has 5 classes"):
        start(model_file, labels=labels)


def test_the_model_is_loaded_when_asked_for(cache, model_file):
    start(model_file)
    engine = start(model_file)  # warm: the Keras model is loaded on first use
    expected = tiny_model("dense_softmax").get_layer("target").get_weights()
    for got, want in zip(engine.model.get_layer("target").get_weights(), expected):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("damage", ["arrays", "meta"])
def test_a_damaged_warm_entry_is_rebuilt(cache, model_file, damage):
    first = start(model_file)
    entry = first.step.body.cache_path
    if damage == "arrays":
        (entry / "arrays.npz").write_bytes(b"PK not a zip")
    else:  # a manifest whose own checksum is not checked: its facts gone
        manifest = json.loads((entry / "manifest.json").read_text())
        del manifest["meta"]["facts"]
        (entry / "manifest.json").write_text(json.dumps(manifest))
    lines: list[str] = []
    again = start(model_file, lines)
    assert len(lines) == 1 and lines[0].startswith("converting"), lines
    assert_identical(again(_frames(2)), first(_frames(2)))
    assert not start(model_file).step.body.converted


def test_livecam_cache_lists_and_clears(cache, model_file, capsys):
    start(model_file)
    assert main(["cache"]) == 0
    out = capsys.readouterr().out
    assert f"1 entry (0.0 MB) in {cache}" in out and "not needed" in out and f"tiny-target-{SIZE}x{SIZE}-" in out
    assert main(["cache", "clear"]) == 0
    assert capsys.readouterr().out.startswith("livecam: removed 1 entry (")
    assert not (cache / "openvino").exists()
    lines: list[str] = []
    start(model_file, lines)
    assert lines[0].startswith("converting")


# ---------------------------------------------------------------------- in a process of its own

_CHILD = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    what = sys.argv[1]
    if what == "serve":  # `livecam serve --demo` up to ready, then stopped
        from livecam.serve import app
        app.run = lambda application, host, port, ssl_ctx, on_ready: on_ready(port)
        from livecam.cli import main
        assert main(["serve", "--demo", "--port", "0"]) == 0
    elif what == "view":
        from livecam.cli import main
        assert main(["--demo", "--no-display", "--max-frames", "3", "-o", sys.argv[2], "--overwrite"]) == 0
    else:
        from livecam import CamEngine
        kwargs = json.loads(sys.argv[3])
        engine = CamEngine(what, log=lambda text: print(text, file=sys.stderr), **kwargs)
        frames = np.random.default_rng(0).integers(0, 256, (3, 90, 120, 3), dtype=np.uint8)
        result = engine(frames)
        np.savez(sys.argv[2], probs=result.probs, cam=result.cam, info=str(engine.runtime_info))
    print(json.dumps(sorted(m for m in ("tensorflow", "keras") if m in sys.modules)))
    """
)


def _child(*args: str, cache: Path) -> tuple[list[str], str]:
    env = dict(os.environ, LIVECAM_CACHE_DIR=str(cache), CUDA_VISIBLE_DEVICES="-1")
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-c", _CHILD, *args], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_warm_start_imports_no_tensorflow(tmp_path):
    cache = tmp_path / "cache"
    cold, log = _child("demo", str(tmp_path / "cold.npz"), "{}", cache=cache)
    assert "tensorflow" in cold and "converting the network body" in log  # the first start builds the entry
    assert _child("demo", str(tmp_path / "warm.npz"), "{}", cache=cache) == ([], "")
    with np.load(tmp_path / "cold.npz") as a, np.load(tmp_path / "warm.npz") as b:
        for name in ("probs", "cam", "info"):
            np.testing.assert_array_equal(a[name], b[name])
    assert _child("view", str(tmp_path / "out.mp4"), cache=cache)[0] == []
    assert _child("serve", cache=cache)[0] == []
    # TensorFlow where it is needed: the TensorFlow runtime, and a general head.
    imported, _ = _child("demo", str(tmp_path / "tf.npz"), json.dumps({"runtime": "tensorflow"}), cache=cache)
    assert "tensorflow" in imported
    with np.load(tmp_path / "cold.npz") as a, np.load(tmp_path / "tf.npz") as b:
        np.testing.assert_allclose(a["probs"], b["probs"], atol=1e-5)
        np.testing.assert_allclose(a["cam"], b["cam"], atol=1e-4)
    general = tmp_path / "general.keras"
    _head_on_pooling(keras.layers.Dense(8), keras.layers.Dense(3, activation="softmax")).save(general)
    for _ in range(2):  # cold, then warm: a general head needs TensorFlow both times
        imported, _ = _child(str(general), str(tmp_path / "general.npz"), json.dumps({"layer": "target"}), cache=cache)
        assert "tensorflow" in imported
