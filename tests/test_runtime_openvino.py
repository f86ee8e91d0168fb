"""The OpenVINO runtime gives the TensorFlow runtime's maps; it is chosen, cached and refused as documented."""

from __future__ import annotations

import errno
import re
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from livecam import CamEngine
from livecam.engine.core import METHOD_NAMES
from livecam.engine.runtimes import cache as runtime_cache
from livecam.engine.runtimes import openvino as runtime_openvino
from livecam.errors import UserError
from test_engine import (
    N_CLASSES,
    SIZE,
    _backbone,
    _frames,
    nested_model,
    reference_cam,
    reference_cam_max,
    reference_logits_and_grads,
    tiny_model,
)


def nested_with_layers_after_target(seed: int = 0) -> keras.Model:
    """The target inside a backbone with a layer after it there, and pooling + Dense outside."""
    keras.utils.set_random_seed(seed)
    inner_in = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(5, 1, activation="relu", name="after_target")(_backbone(inner_in))
    backbone = keras.Model(inner_in, x, name="backbone")
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(0.5)(inputs)  # a layer before the backbone, in the outer model
    x = keras.layers.GlobalMaxPooling2D()(backbone(x))
    return keras.Model(inputs, keras.layers.Dense(N_CLASSES, activation="softmax")(x))


def sequential_model(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 3)),
            keras.layers.Rescaling(1 / 255.0),
            keras.layers.Conv2D(6, 3, name="target"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(N_CLASSES),
            keras.layers.Softmax(),
        ]
    )


MODELS = {
    "dense_softmax": lambda: tiny_model("dense_softmax"),
    "softmax_layer": lambda: tiny_model("softmax_layer"),
    "activation_layer": lambda: tiny_model("activation_layer"),
    "logits": lambda: tiny_model("logits"),
    "nested": nested_model,
    "nested_after_target": nested_with_layers_after_target,
    "sequential": sequential_model,
}


def assert_same_result(got, expected, what: str = "") -> None:
    np.testing.assert_array_equal(got.class_ids, expected.class_ids, err_msg=what)
    np.testing.assert_allclose(got.cam, expected.cam, atol=1e-4, err_msg=what)
    np.testing.assert_allclose(got.cam_max, expected.cam_max, rtol=1e-4, atol=1e-7, err_msg=what)
    np.testing.assert_allclose(got.probs, expected.probs, atol=1e-5, err_msg=what)
    np.testing.assert_array_equal(got.topk_ids, expected.topk_ids, err_msg=what)
    assert got.finite.tolist() == expected.finite.tolist()


QUICK = ("dense_softmax", "nested_after_target")  # the quick tier's pair: the NumPy head and the TensorFlow head


@pytest.mark.parametrize("batch", [1, pytest.param(8, marks=pytest.mark.slow)])
@pytest.mark.parametrize("kind", [k if k in QUICK else pytest.param(k, marks=pytest.mark.slow) for k in MODELS])
def test_openvino_maps_equal_tensorflow_for_every_method(kind, batch):
    model = MODELS[kind]()
    tf_engine = CamEngine(model, layer="target", runtime="tensorflow")
    ov_engine = CamEngine(model, layer="target", runtime="openvino")
    assert ov_engine.runtime_info.runtime == "openvino" and tf_engine.runtime_info.runtime == "tensorflow"
    frames = _frames(batch, seed=batch)
    for method in METHOD_NAMES:
        for class_id in (None, 3):
            expected = tf_engine(frames, class_id=class_id, method=method)
            if class_id is None:
                assert expected.cam.max() > 0, "a flat map would test nothing"
            assert_same_result(ov_engine(frames, class_id=class_id, method=method), expected, f"{kind} {method} {class_id}")
    # A pooling + Dense head is computed in NumPy (nothing traced); any other head traces once.
    assert ov_engine.runtime_info.head == ("tensorflow" if kind == "nested_after_target" else "numpy")
    assert ov_engine.runtime_info.traces == (1 if ov_engine.runtime_info.head == "tensorflow" else 0)


@pytest.mark.parametrize("kind", ["dense_softmax", pytest.param("nested_after_target", marks=pytest.mark.slow)])
def test_a_batch_runs_its_frames_on_parallel_streams_with_the_same_maps(kind, monkeypatch):
    model = MODELS[kind]()
    tf_engine = CamEngine(model, layer="target", runtime="tensorflow")
    ov_engine = CamEngine(model, layer="target", runtime="openvino")
    body = ov_engine.step.body
    ov_engine(_frames(1))
    assert body._streams is None  # the streams' copy is compiled when the first batch comes, not at start
    parallel = []
    run_parallel = body._parallel
    monkeypatch.setattr(body, "_parallel", lambda frames: parallel.append(len(frames)) or run_parallel(frames))
    frames = _frames(5, seed=4)
    for method in METHOD_NAMES:
        expected = tf_engine(frames, method=method)
        assert_same_result(ov_engine(frames, method=method), expected, method)
        for i in (0, 4):
            assert_same_result(ov_engine(frames[i], method=method), tf_engine(frames[i], method=method), f"{method} frame {i}")
    assert parallel == [5] * len(METHOD_NAMES)  # each batch on the streams; a lone frame on its own request


def test_a_batch_runs_in_rounds_of_one_frame_a_stream_with_no_callback(monkeypatch):
    """OpenVINO's AsyncInferQueue runs a Python callback on its own thread, which needs the GIL
    while start_async or wait_all can hold it (a deadlock seen on a loaded machine): a batch larger
    than the streams goes in rounds, each request started only once it is idle, and waited for."""
    ov_engine = CamEngine(MODELS["dense_softmax"](), layer="target", runtime="openvino")
    body = ov_engine.step.body
    events: list[tuple[str, int]] = []

    class Watched:
        def __init__(self, request, number):
            self.request, self.number, self.busy = request, number, False

        @property
        def output_tensors(self):
            return self.request.output_tensors

        def start_async(self, inputs, *rest):
            assert not rest, "no userdata: nothing is handed to a callback"
            assert not self.busy, "a request started again before it was waited for"
            self.busy = True
            events.append(("start", self.number))
            return self.request.start_async(inputs)

        def wait(self):
            self.request.wait()
            self.busy = False
            events.append(("wait", self.number))

    streams = body._stream_requests()
    assert isinstance(streams, list), "plain requests, not an AsyncInferQueue with its callback thread"
    monkeypatch.setattr(body, "_streams", [Watched(request, n) for n, request in enumerate(streams)])
    frames = _frames(3 * len(streams) + 1, seed=5)
    assert_same_result(ov_engine(frames), CamEngine(ov_engine.model, layer="target", runtime="tensorflow")(frames), "rounds")
    assert sum(kind == "start" for kind, _ in events) == len(frames)


@pytest.mark.slow
def test_a_body_that_takes_no_fixed_batch_runs_every_batch_on_its_dynamic_copy(monkeypatch):
    import openvino as ov

    def refuse(self, *args, **kwargs):
        raise RuntimeError("this graph takes no fixed batch")

    monkeypatch.setattr(ov.Model, "reshape", refuse)
    model = MODELS["dense_softmax"]()
    engine = CamEngine(model, layer="target", runtime="openvino")
    assert engine.step.body.dynamic
    tf_engine = CamEngine(model, layer="target", runtime="tensorflow")
    frames = _frames(3, seed=5)
    assert_same_result(engine(frames), tf_engine(frames))
    assert_same_result(engine(frames[0]), tf_engine(frames[0]))


@pytest.mark.parametrize("kind", ["dense_softmax", pytest.param("nested", marks=pytest.mark.slow)])
def test_openvino_maps_match_the_independent_reference(kind):
    model = MODELS[kind]()
    engine = CamEngine(model, runtime="openvino")
    frames = _frames(3)
    A, G, logits, chosen = reference_logits_and_grads(model, frames, None)
    for method in METHOD_NAMES:
        result = engine(frames, method=method)
        np.testing.assert_array_equal(result.class_ids, chosen)
        np.testing.assert_allclose(result.cam, reference_cam(method, A, G), atol=1e-3, err_msg=method)
        np.testing.assert_allclose(result.cam_max, reference_cam_max(method, A, G), rtol=1e-3, err_msg=method)
    np.testing.assert_allclose(result.probs, tf.nn.softmax(logits).numpy(), atol=1e-5)


@pytest.mark.slow
def test_a_tensorflow_head_traces_once_over_sizes_batches_classes_and_methods():
    engine = CamEngine(nested_with_layers_after_target(), layer="target", runtime="openvino")
    assert engine.runtime_info.head == "tensorflow"  # global max pooling: not the analytic head
    rng = np.random.default_rng(0)
    for i in range(30):
        n = int(rng.integers(1, 6))
        h, w = (int(v) for v in rng.integers(16, 90, size=2))
        frames = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
        engine(
            frames, class_id=None if i % 3 == 0 else int(rng.integers(0, N_CLASSES)), method=METHOD_NAMES[i % len(METHOD_NAMES)]
        )
    assert engine.runtime_info.traces == 1


@pytest.mark.slow
def test_demo_model_and_input_size_agree_with_tensorflow():
    from livecam.demo import make_scene

    frames = np.stack([make_scene(i, (160, 120))[0] for i in range(8)])
    for input_size in (None, 64):
        tf_engine = CamEngine("demo", runtime="tensorflow", input_size=input_size)
        ov_engine = CamEngine("demo", runtime="openvino", input_size=input_size)
        for method in METHOD_NAMES:
            assert_same_result(ov_engine(frames, method=method), tf_engine(frames, method=method), f"demo {input_size} {method}")
        assert ov_engine.input_size == tf_engine.input_size


@pytest.mark.slow
def test_zoo_model_at_another_input_size_agrees_with_tensorflow():
    keras.utils.set_random_seed(0)
    tf_engine = CamEngine("mobilenet_v2", weights=None, input_size=96, runtime="tensorflow")
    ov_engine = CamEngine(tf_engine.model, preprocess="mobilenet_v2", layer="out_relu", runtime="openvino")
    frames = _frames(2, size=200)
    for method in METHOD_NAMES:
        assert_same_result(ov_engine(frames, method=method), tf_engine(frames, method=method), method)


# ---------------------------------------------------------------------- choosing the runtime


def skip_around_target() -> keras.Model:
    """A residual block whose sum reads the target's input: no clean cut at the target."""
    inputs = keras.Input((SIZE, SIZE, 3))
    a = keras.layers.Conv2D(4, 3, padding="same", name="before")(inputs)
    b = keras.layers.Conv2D(4, 3, padding="same", name="target")(a)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Add()([a, b]))
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))


def nested_skip_around_backbone() -> keras.Model:
    """The outer model reads a tensor from before the backbone, after it."""
    inner_in = keras.Input((SIZE, SIZE, 3))
    backbone = keras.Model(inner_in, _backbone(inner_in), name="backbone")
    inputs = keras.Input((SIZE, SIZE, 3))
    features = keras.layers.GlobalAveragePooling2D()(backbone(inputs))
    colour = keras.layers.GlobalAveragePooling2D()(inputs)
    return keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Concatenate()([features, colour])))


class NumpyOp(keras.layers.Layer):
    """A layer that runs Python code in the graph, which no converter can translate."""

    def call(self, x):
        y = tf.numpy_function(lambda a: a * 0.5, [x], tf.float32)
        return tf.ensure_shape(y, x.shape)


def unconvertible() -> keras.Model:
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(4, 3, name="target")(NumpyOp()(inputs))
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x)))


def test_auto_picks_openvino_on_a_cpu_and_says_why():
    engine = CamEngine(tiny_model("dense_softmax"), layer="target")
    assert engine.runtime_info.runtime == "openvino"
    assert engine.runtime_info.reason == "no GPU, and the model splits cleanly at layer 'target'"


@pytest.mark.parametrize(
    "make, reason",
    [
        (
            skip_around_target,
            r"cannot be cut at layer 'target': a layer after the target layer .* also reads a tensor from before it",
        ),
        (
            nested_skip_around_backbone,
            r"cannot be cut at layer 'target': a layer after the target layer in 'functional.*' also reads",
        ),
        pytest.param(unconvertible, r"OpenVINO could not convert its body", marks=pytest.mark.slow),
    ],
)
def test_models_that_do_not_split_run_in_tensorflow_unless_openvino_is_forced(make, reason):
    model = make()
    engine = CamEngine(model, layer="target")
    assert engine.runtime_info.runtime == "tensorflow"
    assert re.search(reason, engine.runtime_info.reason), engine.runtime_info.reason
    frames = _frames(2)
    assert_same_result(engine(frames), CamEngine(model, layer="target", runtime="tensorflow")(frames))
    with pytest.raises(UserError, match=r"^The OpenVINO runtime cannot run model .*" + reason + r".*use --runtime tensorflow"):
        CamEngine(model, layer="target", runtime="openvino")


def test_a_visible_gpu_keeps_tensorflow(monkeypatch):
    real = tf.config.list_physical_devices
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["GPU:0"] if kind == "GPU" else real(kind))
    engine = CamEngine(tiny_model("dense_softmax"), layer="target")
    assert (engine.runtime_info.runtime, engine.runtime_info.reason) == (
        "tensorflow",
        "a GPU is visible, and TensorFlow runs the whole step on it",
    )


def test_without_openvino_auto_uses_tensorflow_and_forcing_it_is_an_error(monkeypatch):
    monkeypatch.setattr(runtime_openvino, "unavailable_reason", lambda: "OpenVINO is not installed (pip install openvino)")
    model = tiny_model("dense_softmax")
    assert CamEngine(model, layer="target").runtime_info.runtime == "tensorflow"
    with pytest.raises(UserError, match=r"OpenVINO is not installed"):
        CamEngine(model, layer="target", runtime="openvino")


def test_tensorflow_only_options_choose_tensorflow():
    model = tiny_model("dense_softmax")
    engine = CamEngine(model, layer="target", xla=True)
    assert engine.runtime_info.runtime == "tensorflow" and "XLA" in engine.runtime_info.reason
    with pytest.raises(UserError, match=r"XLA and mixed precision are TensorFlow options"):
        CamEngine(model, layer="target", xla=True, runtime="openvino")
    with pytest.raises(UserError, match=r"Expected runtime in auto, tensorflow, openvino. Received: runtime='onnx'"):
        CamEngine(model, runtime="onnx")


# ---------------------------------------------------------------------- the cache


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LIVECAM_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "openvino"


def engine_and_log(model, **kwargs):
    lines: list[str] = []
    engine = CamEngine(model, layer="target", runtime="openvino", log=lines.append, **kwargs)
    return engine, lines


def test_second_start_reads_the_cache_instead_of_converting(cache):
    model = tiny_model("dense_softmax")
    first, lines = engine_and_log(model)
    assert len(lines) == 1 and lines[0].startswith("converting the network body to OpenVINO") and str(cache) in lines[0]
    entries = list(cache.iterdir())
    assert [e.name for e in entries] == [first.step.body.cache_path.name]
    assert sorted(p.name for p in entries[0].iterdir()) == ["body.bin", "body.xml", "manifest.json"]
    second, lines = engine_and_log(model)
    assert lines == [] and not second.step.body.converted
    frames = _frames(4)
    assert_same_result(second(frames), first(frames))


@pytest.mark.slow
def test_other_weights_are_another_cache_entry(cache):
    model = tiny_model("dense_softmax", seed=0)
    engine_and_log(model)
    other = tiny_model("dense_softmax", seed=1)  # same architecture and names, other weights
    engine, lines = engine_and_log(other)
    assert len(lines) == 1 and len(list(cache.iterdir())) == 2
    frames = _frames(2)
    assert_same_result(engine(frames), CamEngine(other, layer="target", runtime="tensorflow")(frames))


@pytest.mark.slow
def test_the_cache_keeps_the_most_recently_used_entries_per_model(cache, monkeypatch):
    monkeypatch.setattr(runtime_openvino, "KEEP_PER_LABEL", 2)
    models = [tiny_model("dense_softmax", seed=seed) for seed in range(3)]
    models = [keras.Model(m.inputs, m.outputs, name="same_name") for m in models]  # one model, retrained
    first = engine_and_log(models[0])[0].step.body.cache_path
    second = engine_and_log(models[1])[0].step.body.cache_path
    assert engine_and_log(models[0])[1] == []  # used again: now the most recent
    engine_and_log(models[2])
    assert first.is_dir() and not second.exists()
    assert len(list(cache.iterdir())) == 2


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncate_bin", "garbage_xml", "no_manifest", "empty_folder"])
def test_a_corrupt_cache_entry_is_rebuilt(cache, damage):
    model = tiny_model("dense_softmax")
    first, _ = engine_and_log(model)
    entry = first.step.body.cache_path
    if damage == "truncate_bin":
        data = (entry / "body.bin").read_bytes()
        (entry / "body.bin").write_bytes(data[: len(data) // 2])
    elif damage == "garbage_xml":
        (entry / "body.xml").write_text("<net>not a model")
    elif damage == "no_manifest":
        (entry / "manifest.json").unlink()
    else:
        for path in entry.iterdir():
            path.unlink()
    engine, lines = engine_and_log(model)
    assert len(lines) == 1 and lines[0].startswith("converting")
    frames = _frames(2)
    assert_same_result(engine(frames), first(frames))
    assert sorted(p.name for p in entry.iterdir()) == ["body.bin", "body.xml", "manifest.json"]
    assert engine_and_log(model)[1] == []  # and it is good again


def test_an_unwritable_cache_is_a_warning_and_the_run_goes_on(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("LIVECAM_CACHE_DIR", str(blocker / "cache"))
    engine, lines = engine_and_log(tiny_model("dense_softmax"))
    assert engine.runtime_info.runtime == "openvino"
    assert any(line.startswith("warning: cannot write the OpenVINO cache") for line in lines), lines


def test_cache_dir_follows_the_platform_convention(monkeypatch, tmp_path):
    monkeypatch.delenv("LIVECAM_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(runtime_cache.sys, "platform", "linux")
    assert runtime_cache.cache_dir() == tmp_path / "xdg" / "livecam"
    monkeypatch.setenv("LIVECAM_CACHE_DIR", str(tmp_path / "mine"))
    assert runtime_cache.cache_dir() == tmp_path / "mine"


def test_without_a_home_folder_nothing_is_cached_at_the_root_and_openvino_runs_unsaved(monkeypatch, tmp_path):
    monkeypatch.delenv("LIVECAM_CACHE_DIR", raising=False)
    monkeypatch.setattr(runtime_cache.sys, "platform", "linux")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # not absolute: the XDG spec ignores it
    monkeypatch.setenv("HOME", str(tmp_path))
    assert runtime_cache.cache_dir() == tmp_path / ".cache" / "livecam"
    monkeypatch.setenv("HOME", str(tmp_path / "missing"))
    assert runtime_cache.cache_dir() is None
    monkeypatch.setenv("HOME", "")  # Path.home() is then "/"
    assert runtime_cache.cache_dir() is None
    engine, lines = engine_and_log(tiny_model("dense_softmax"))
    assert engine.runtime_info.runtime == "openvino" and engine.step.body.cache_path is None
    assert lines == [
        "converting the network body to OpenVINO (not cached: no home folder to keep it in; set LIVECAM_CACHE_DIR to keep it)"
    ]


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(RuntimeError("basic_ios::clear: iostream error"), id="openvino"),  # what save_model says on a full disk
        pytest.param(OSError(errno.ENOSPC, "No space left on device"), id="oserror", marks=pytest.mark.slow),
    ],
)
def test_a_full_cache_disk_runs_openvino_unsaved_and_says_so_once(cache, monkeypatch, error):
    import openvino as ov

    def full_disk(model, path, **kwargs):
        Path(path).write_bytes(b"<net")  # half a file, as a full disk leaves it
        raise error

    monkeypatch.setattr(ov, "save_model", full_disk)
    model = tiny_model("dense_softmax")
    engine, lines = engine_and_log(model)
    assert (engine.runtime_info.runtime, engine.step.body.converted, engine.step.body.saved) == ("openvino", True, False)
    assert len(lines) == 2 and lines[0].startswith("converting"), lines
    reason = getattr(error, "strerror", None) or f"{error}; " + r"\d+ MB free there"  # OpenVINO's own words: how full the disk is
    assert re.match(re.escape(f"warning: cannot write the OpenVINO cache in {cache} (") + reason + r"\); ", lines[1]), lines[1]
    assert lines[1].endswith("OpenVINO runs the converted body unsaved, and the next start converts again")
    assert list(cache.iterdir()) == []  # no half entry, no temporary folder
    frames = _frames(2)
    assert_same_result(engine(frames), CamEngine(model, layer="target", runtime="tensorflow")(frames))


def test_a_read_only_cache_entry_is_used_not_rebuilt(cache, monkeypatch):
    model = tiny_model("dense_softmax")
    first, _ = engine_and_log(model)

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(runtime_openvino.os, "utime", read_only)
    second, lines = engine_and_log(model)
    assert lines == [] and not second.step.body.converted
    frames = _frames(2)
    assert_same_result(second(frames), first(frames))


def _swap(a: Path, b: Path) -> None:
    a.rename(a.with_name("swapping"))
    b.rename(a)
    a.with_name("swapping").rename(b)


@pytest.mark.slow
@pytest.mark.parametrize(
    "options", [({"layer": "features"}, {"layer": "block3a"}), ({}, {"input_size": 64})], ids=["layers", "input-sizes"]
)
def test_swapped_cache_entries_are_rebuilt_never_used(cache, options):
    """Each entry holds its own key: another body's files under its name are rebuilt, not run."""
    from livecam.demo import make_scene

    frames = np.stack([make_scene(i, (160, 120))[0] for i in range(4)])

    def start(log=lambda text: None, **kwargs) -> CamEngine:
        keras.backend.clear_session()  # the layer names of a new process (--input-size makes a new Input)
        return CamEngine("demo", runtime="openvino", log=log, **kwargs)

    entries = [start(**kwargs).step.body.cache_path for kwargs in options]
    _swap(*entries)
    for kwargs in options:
        lines: list[str] = []
        engine = start(lines.append, **kwargs)
        assert engine.step.body.cache_path in entries
        assert len(lines) == 1 and lines[0].startswith("converting"), lines
        assert_same_result(engine(frames), CamEngine("demo", runtime="tensorflow", **kwargs)(frames), str(kwargs))
    for kwargs in options:  # and the rebuilt entries serve the next start
        assert not start(**kwargs).step.body.converted


def _head_on_pooling(*layers) -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(6, 3, name="target")(inputs))
    for layer in layers:
        x = layer(x)
    return keras.Model(inputs, x)


@pytest.mark.parametrize(
    "layers",
    [
        pytest.param(lambda: [keras.layers.Dense(8), keras.layers.Dense(N_CLASSES, activation="softmax")], id="two-dense"),
        pytest.param(lambda: [keras.layers.Dense(N_CLASSES, activation="relu")], id="relu-dense", marks=pytest.mark.slow),
        pytest.param(
            lambda: [keras.layers.Dense(N_CLASSES), keras.layers.Activation("tanh")], id="tanh-after", marks=pytest.mark.slow
        ),
        pytest.param(
            lambda: [keras.layers.Dense(N_CLASSES, activation="softmax"), keras.layers.Rescaling(2.0)],
            id="rescaled-output",
            marks=pytest.mark.slow,
        ),
    ],
)
def test_heads_that_are_not_pooling_and_dense_are_differentiated_in_tensorflow(layers):
    """Only GAP -> [Dropout] -> Dense -> [softmax or sigmoid] takes the NumPy head; the rest keep autodiff and the same maps."""
    model = _head_on_pooling(*layers())
    ov_engine = CamEngine(model, layer="target", runtime="openvino", log=lambda text: None)
    tf_engine = CamEngine(model, layer="target", runtime="tensorflow")
    assert ov_engine.runtime_info.head == "tensorflow"
    frames = _frames(2)
    for method in METHOD_NAMES:
        assert_same_result(ov_engine(frames, method=method), tf_engine(frames, method=method), method)


def test_the_body_has_only_its_own_outputs(cache):
    """The converter exposes tensors inside swish layers as extra outputs (efficientnet_b0: 50, 3.7x slower); they are cut off."""
    import openvino as ov

    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Activation("swish")(keras.layers.Conv2D(8, 3, activation="swish")(inputs))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(6, 3, activation="swish", name="target")(x))
    model = keras.Model(inputs, keras.layers.Dense(N_CLASSES, activation="softmax")(x))
    engine = CamEngine(model, layer="target", runtime="openvino", log=lambda text: None)
    assert engine.runtime_info.head == "numpy"
    saved = ov.Core().read_model(str(engine.step.body.cache_path / "body.xml"))
    shapes = [o.get_partial_shape() for o in saved.outputs]
    assert [len(shape) for shape in shapes] == [4, 2]  # the activations and the scores, nothing else
    assert shapes[1][1].get_length() == N_CLASSES
    expected = CamEngine(model, layer="target", runtime="tensorflow")(_frames(2))
    assert_same_result(engine(_frames(2)), expected)


def test_locked_classes_that_are_not_the_top_class_agree_with_tensorflow():
    """Where a map's weighted channels nearly cancel, a float32 spatial mean in NumPy moved it by 1e-4 and more.

    A locked class that is not the frame's top class is where that happens: its channel weights
    are small and of both signs. On an 80x80 target layer, 36 such maps.
    """
    keras.utils.set_random_seed(0)
    inputs = keras.Input((80, 80, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(keras.layers.Rescaling(1 / 255.0)(inputs))
    x = keras.layers.Conv2D(32, 3, padding="same", name="target")(x)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x)))
    tf_engine = CamEngine(model, layer="target", runtime="tensorflow")
    ov_engine = CamEngine(model, layer="target", runtime="openvino", log=lambda text: None)
    assert ov_engine.runtime_info.head == "numpy"
    frames = _frames(4, size=80, seed=0)
    checked = 0
    for method in ("gradcam", "gradcam++"):
        for class_id in range(10):
            expected = tf_engine(frames, class_id=class_id, method=method)
            got = ov_engine(frames, class_id=class_id, method=method)
            locked = expected.topk_ids[:, 0] != class_id
            np.testing.assert_allclose(got.cam[locked], expected.cam[locked], atol=1e-4, err_msg=f"{method} class {class_id}")
            checked += int(locked.sum())
    assert checked == 2 * 36
