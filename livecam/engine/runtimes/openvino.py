"""The network's body in OpenVINO: converted once, cached on disk, compiled for the CPU in float32.

On a CPU, the forward pass through the layers before the target layer is nearly all of an
engine step, and it needs no gradients. OpenVINO runs it 2-4x faster than TensorFlow. The
engine converts the body (its uint8 BGR input, the channel swap and the preprocessing
included) from a ``tf.function`` with ``openvino.convert_model``, saves it under the user's
cache directory (``livecam.engine.runtimes.cache``), and on the next start reads it back
instead of converting again.

An entry's key is a digest of everything that changes the converted graph: for a model named
by the zoo, the demo or a file, what names it (``livecam.engine.warm.start_key``); for a
``keras.Model``, its architecture and weights (``fingerprint``); with the layer, input size,
preprocessing and the OpenVINO, Keras and TensorFlow versions. An entry must prove it is the
one asked for: its manifest holds its full key and its files' checksums, and the model read
back must have the input and outputs asked for. One that does not (a copied or swapped entry,
a damaged file, anything that fails to read or compile) is deleted and rebuilt. The three most
recently used entries per model, layer and size are kept, older ones deleted. A cache that
cannot be written (read-only, full) is used as far as it goes: OpenVINO runs what it converted
without saving it, and says so once.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from livecam.engine.runtimes import cache
from livecam.engine.runtimes.cache import CACHE_ENV, KEEP_PER_LABEL, cache_dir

__all__ = ["CACHE_ENV", "FORMAT", "KEEP_PER_LABEL", "OpenVinoBody", "cache_dir", "default_threads", "fingerprint"]

THREADS_ENV = "LIVECAM_OPENVINO_THREADS"
FORMAT = 6  # bump when the entry layout or the converted graph's shape changes

Shape = Sequence[int | None]  # a tensor's shape, None for a size not known (the batch)
_XML, _ARRAYS = "body.xml", "arrays.npz"


def unavailable_reason() -> str | None:
    """Why OpenVINO cannot be used here (a clause), or None when it can."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return "OpenVINO is not installed (pip install openvino)"
    except Exception as exc:  # a broken install: say so rather than fail later
        return f"OpenVINO does not load ({type(exc).__name__}: {exc})"
    return None


def default_threads() -> int:
    """OpenVINO's inference threads: every core this process may use ($LIVECAM_OPENVINO_THREADS overrides).

    Measured on the quiet 2-core CI machine (mobilenet_v2, recording on), two threads against
    one: the engine step 14.7 against 24.6 ms, live latency p50 25.5 against 39.5 ms, file mode
    47.5 against 39.8 fps, and the live path's rate the same (33.5 against 34.7 fps): decoding,
    drawing and encoding fit in the gaps. (Under heavy load from other programs one thread was
    steadier; set the variable to 1 there.) That was one request for every batch; batches now
    run on streams of one or two threads each (``OpenVinoBody._compile``), these threads in all.
    """
    if os.environ.get(THREADS_ENV, "").strip().isdigit():
        return max(1, int(os.environ[THREADS_ENV]))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 2)
    return max(1, cores)


def fingerprint(model: Any, **parts: Any) -> str:
    """A digest of the model's architecture and weights and of ``parts`` (layer, size, versions, ...)."""
    import keras
    import openvino
    import tensorflow as tf

    digest = hashlib.blake2b(digest_size=16)
    versions = {"format": FORMAT, "openvino": openvino.__version__, "keras": keras.__version__, "tensorflow": tf.__version__}
    digest.update(json.dumps({**versions, **parts}, sort_keys=True, default=str).encode())
    try:
        config = json.dumps(model.get_config(), sort_keys=True, default=str)
    except Exception:  # a custom layer without get_config: the layer types and names stand in
        config = repr([(type(layer).__qualname__, layer.name) for layer in model.layers])
    digest.update(config.encode())
    for weight in model.weights:
        value = np.ascontiguousarray(weight.numpy())
        digest.update(f"{weight.path}:{value.dtype}:{value.shape}".encode())
        digest.update(value.data)
    return digest.hexdigest()


def describe_callable(fn: Callable) -> dict[str, str]:
    """What identifies a preprocessing function across runs: its name and its code."""
    code = getattr(fn, "__code__", None)
    code_digest = hashlib.blake2b((code.co_code + repr(code.co_consts).encode()) if code else b"", digest_size=8).hexdigest()
    return {"module": getattr(fn, "__module__", "") or "", "name": getattr(fn, "__qualname__", repr(fn)), "code": code_digest}


class OpenVinoBody:
    """The body of the network compiled by OpenVINO for the CPU: uint8 BGR frames -> activations.

    Args:
        make_function: returns the body as a ``tf.function`` with an input signature (uint8
            frames, any batch); called only when there is no usable cache entry.
        label: a readable prefix for the cache entry (model, layer, size).
        key: the digest that identifies the converted graph (see ``fingerprint``).
        log: where to say that it converts, or that it cannot save (one line each).
        input_shape: the frames' shape, (None, height, width, 3).
        output_shapes: the shape of each output the function returns, in order (the activations,
            (None, h, w, C), first), None for a size not known; the converted body (and one read
            from the cache) is checked against them.
        threads: OpenVINO inference threads (default: ``default_threads()``).
        meta: what else a later start needs (JSON), kept in the entry's manifest when it converts.
        arrays: arrays a later start needs (the head's weights), kept beside the body.

    ``OpenVinoBody.cached(key)`` opens an entry alone, without TensorFlow: it has the ``meta`` and
    ``arrays`` its first start kept.

    Raises:
        RuntimeError: OpenVINO could not convert or compile the body (the message says why).
    """

    def __init__(
        self,
        make_function: Callable[[], Any],
        *,
        label: str,
        key: str,
        log: Callable[[str], None],
        input_shape: Shape,
        output_shapes: tuple[Shape, ...],
        threads: int | None = None,
        meta: dict[str, Any] | None = None,
        arrays: dict[str, np.ndarray] | None = None,
    ) -> None:
        ov, core = self._start(threads)
        # None: no folder to keep it in (see cache_dir); it converts on every start.
        self.cache_path = cache.entry_path(label, key)
        shapes = (input_shape, output_shapes)
        if self._open_entry(ov, core, key, shapes):
            return
        if self.cache_path is None:
            log(f"converting the network body to OpenVINO (not cached: no home folder to keep it in; set {CACHE_ENV} to keep it)")
        else:
            log(f"converting the network body to OpenVINO (once; cached in {self.cache_path})")
        model = _checked(ov, ov.convert_model(make_function()), shapes)
        self.converted = True
        self.meta, self.arrays = meta or {}, arrays or {}
        if self.cache_path is not None:
            manifest = {"format": FORMAT, "shapes": [input_shape, list(output_shapes)], "meta": self.meta}
            problem = cache.write_entry(self.cache_path, key, lambda folder: _save(ov, model, folder, self.arrays), manifest)
            if problem is None:
                self.saved = True
                cache.evict(self.cache_path, keep=KEEP_PER_LABEL)
            else:  # the conversion worked: run it, unsaved
                log(
                    f"warning: cannot write the OpenVINO cache in {self.cache_path.parent} ({problem}); "
                    "OpenVINO runs the converted body unsaved, and the next start converts again"
                )
        self._compile(ov, core, model)

    @classmethod
    def cached(
        cls, key: str, *, wanted: Callable[[dict[str, Any]], bool] = lambda meta: True, threads: int | None = None
    ) -> OpenVinoBody | None:
        """The body of the cache entry for ``key`` when its ``meta`` is ``wanted``, else None (a damaged entry is removed)."""
        path = cache.find_entry(key)
        if path is None:  # a cold start: on to the model, without starting OpenVINO twice
            return None
        body = cls.__new__(cls)
        ov, core = body._start(threads)
        body.cache_path = path
        return body if body._open_entry(ov, core, key, None, wanted) else None

    def _start(self, threads: int | None) -> tuple[Any, Any]:
        import openvino as ov

        self.threads = threads or default_threads()
        self.converted = False  # True when this start converted (no usable cache entry)
        self.saved = False  # True when the body is in the cache for the next start
        self.meta: dict[str, Any] = {}
        self.arrays: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        return ov, ov.Core()

    def _open_entry(
        self,
        ov: Any,
        core: Any,
        key: str,
        shapes: tuple[Shape, tuple[Shape, ...]] | None,
        wanted: Callable[[dict[str, Any]], bool] = lambda meta: True,
    ) -> bool:
        """Reads and compiles the entry at ``cache_path``; False when there is none usable (a damaged one is removed).

        ``shapes`` (input, outputs) are checked; None takes those the entry says (a warm start).
        """
        path = self.cache_path
        manifest = cache.read_manifest(path, key) if path is not None else None
        if manifest is None or not wanted(manifest.get("meta") or {}):
            return False
        try:
            model = _checked(ov, core.read_model(str(path / _XML)), shapes or tuple(manifest["shapes"]))
            arrays = {}
            if (path / _ARRAYS).exists():
                with np.load(path / _ARRAYS, allow_pickle=False) as stored:
                    arrays = {name: stored[name] for name in stored.files}
            self._compile(ov, core, model)
        except Exception:  # an entry that reads but does not compile: rebuilt
            cache.remove(path)
            return False
        self.meta, self.arrays, self.saved = manifest.get("meta", {}), arrays, True
        return True

    def _compile(self, ov: Any, core: Any, model: Any) -> None:
        """Compiles the requests ``__call__`` uses.

        Two copies compiled for exactly one frame (with every shape known, OpenVINO plans its
        memory and picks its kernels once: mobilenet_v2 on 2 cores, 10.7 against 11.6 ms), the
        second when the first batch comes:
        - ``_single``, for a lone frame: one request with every thread on it, the lowest latency;
        - ``_streams``, for a batch: one request per stream (a stream per core or two, a thread or
          two each), its frames in parallel. Threads of one request wait for each other at every
          layer, so one of them pushed off its core by decoding or drawing stalls the rest:
          measured on 2 cores, two threads on one frame cost 16-17 ms of CPU, one thread 11 ms,
          and two frames on two streams took 6.3 ms a frame against 7.2 for a batch of 8 on two
          threads. (A lone frame with more waiting behind it, as in file mode with ``--batch 1``,
          still did better on every thread: 47-54 against 46-48 frames/s end to end.)
        A graph that does not take a fixed batch is compiled as it is (``_dynamic``), for everything.
        """
        # Float32: bf16/fp16 (the default on CPUs that have them) change the map. The latency
        # hint, one stream (the streams' copy is made below). No pinning: the threads of the
        # other stages share the cores, and a pinned thread waits when its core is taken.
        config = {
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
            "ENABLE_CPU_PINNING": False,
            "INFERENCE_NUM_THREADS": self.threads,
            "INFERENCE_PRECISION_HINT": "f32",
        }
        self._single = self._streams = self._dynamic = None
        try:
            single = model.clone()
            single.reshape([1, *single.input(0).get_partial_shape()[1:].to_shape()])
            self._single = core.compile_model(single, "CPU", config).create_infer_request()
        except Exception:
            self._dynamic = core.compile_model(model, "CPU", config).create_infer_request()
            return
        # The streams' copy when the first batch comes: a live view never has one, and compiling it
        # took as long as the single copy (0.4-0.8 s for mobilenet_v2 on 2 cores) of every start.
        throughput = {key: value for key, value in config.items() if key != "NUM_STREAMS"} | {"PERFORMANCE_HINT": "THROUGHPUT"}
        self._compile_streams = lambda: core.compile_model(single, "CPU", throughput)

    def _stream_requests(self) -> list[Any]:
        """One request per stream of the throughput copy (compiled on first use; call under ``_lock``)."""
        if self._streams is None:
            parallel = self._compile_streams()
            self._streams = [
                parallel.create_infer_request() for _ in range(parallel.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
            ]
        return self._streams

    @property
    def dynamic(self) -> bool:
        """True when the body takes no fixed batch: every batch runs on one copy compiled for any batch."""
        return self._dynamic is not None

    def __call__(self, frames_bgr: np.ndarray) -> tuple[np.ndarray, ...]:
        """The body's outputs (activations (N, h, w, C) float32 first) for uint8 BGR frames (N, H, W, 3) at the input size."""
        frames = np.ascontiguousarray(frames_bgr)
        with self._lock:  # requests are reused; the engine can be called from two threads
            if self._dynamic is None and len(frames) > 1:
                return self._parallel(frames)
            request = self._dynamic if self._dynamic is not None else self._single
            request.infer({0: frames})
            return tuple(tensor.data.copy() for tensor in request.output_tensors)

    def _parallel(self, frames: np.ndarray) -> tuple[np.ndarray, ...]:
        """Each frame on its own request, as many at once as there are streams, in rounds.

        No Python callback: OpenVINO's ``AsyncInferQueue`` calls one on its own thread, which
        needs the GIL while ``start_async`` (waiting for an idle request) or ``wait_all`` may hold
        it; on a loaded machine that deadlocked the engine for good. ``wait`` releases the GIL.
        """
        streams = self._stream_requests()
        results = tuple(
            np.empty((len(frames), *tensor.data.shape[1:]), tensor.data.dtype) for tensor in streams[0].output_tensors
        )
        for first in range(0, len(frames), len(streams)):
            running = list(zip(range(first, len(frames)), streams))
            for i, request in running:
                request.start_async({0: frames[i : i + 1]})
            for i, request in running:
                request.wait()
                for result, tensor in zip(results, request.output_tensors):
                    result[i] = tensor.data[0]
        return results


def _checked(ov: Any, model: Any, shapes: tuple[Shape, tuple[Shape, ...]]) -> Any:
    """``model`` with only the function's own outputs, checked against the shapes asked for.

    The converter also makes outputs of some tensors inside Keras layers (efficientnet_b0's body
    came out with 50); OpenVINO then computes and keeps every one of them, which made that body
    3.7x slower (62 against 17 ms on 2 cores). So only the first ones are kept.

    Raises:
        RuntimeError: the input or the first outputs are not of these shapes (a converted body:
            the engine then uses TensorFlow; a cached one: it is rebuilt).
    """
    input_shape, output_shapes = shapes
    found = [model.output(i).get_partial_shape() for i in range(min(len(output_shapes), len(model.outputs)))]
    expected = [_partial_shape(ov, shape) for shape in output_shapes]
    if len(found) != len(expected) or not all(f.compatible(e) for f, e in zip(found, expected)):
        raise RuntimeError(f"its outputs came out with shapes {', '.join(map(str, found))}, not {', '.join(map(str, expected))}")
    got_input = model.input(0).get_partial_shape() if len(model.inputs) == 1 else None
    if got_input is None or not got_input.compatible(_partial_shape(ov, input_shape)):
        raise RuntimeError(
            f"its input came out as {[i.get_partial_shape() for i in model.inputs]}, not {_partial_shape(ov, input_shape)}"
        )
    if len(model.outputs) == len(output_shapes):
        return model
    return ov.Model([model.output(i) for i in range(len(output_shapes))], model.get_parameters(), model.get_friendly_name())


def _partial_shape(ov: Any, shape: Shape) -> Any:
    return ov.PartialShape([ov.Dimension() if size is None else int(size) for size in shape])


def _save(ov: Any, model: Any, folder: Path, arrays: dict[str, np.ndarray]) -> None:
    ov.save_model(model, str(folder / _XML), compress_to_fp16=False)  # fp16 weights would change the map
    if arrays:
        np.savez(folder / _ARRAYS, **arrays)
