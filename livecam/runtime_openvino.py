"""The network's body in OpenVINO: converted once, cached on disk, compiled for the CPU in float32.

On a CPU, the forward pass through the layers before the target layer is nearly all of an
engine step, and it needs no gradients. OpenVINO runs it 2-4x faster than TensorFlow. The
engine converts the body (its uint8 BGR input, the channel swap and the preprocessing
included) from a ``tf.function`` with ``openvino.convert_model``, saves it under the user's
cache directory, and on the next start reads it back instead of converting again.

A cache entry is a folder named after the model, layer and input size plus a digest of
everything that changes the converted graph (the model's architecture and weights, the layer,
input size, preprocessing, and the OpenVINO, Keras and TensorFlow versions). It is written in a
temporary folder and renamed into place, so a crash never leaves half an entry; an entry that
fails its checksum or does not load is deleted and rebuilt. The three most recently used entries
per model, layer and size are kept, older ones deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

CACHE_ENV = "LIVECAM_CACHE_DIR"
THREADS_ENV = "LIVECAM_OPENVINO_THREADS"
# Entries kept per model, layer and input size: new weights (a retrained model, or random ones
# with --weights none) make new entries, and the cache must not grow without bound.
KEEP_PER_LABEL = 3
_FORMAT = 3  # bump when the entry layout or the converted graph's shape changes


def unavailable_reason() -> str | None:
    """Why OpenVINO cannot be used here (a clause), or None when it can."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return "OpenVINO is not installed (pip install openvino)"
    except Exception as exc:  # a broken install: say so rather than fail later
        return f"OpenVINO does not load ({type(exc).__name__}: {exc})"
    return None


def cache_dir() -> Path:
    """Where converted bodies are kept: $LIVECAM_CACHE_DIR, else the platform's user cache folder."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "livecam"


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
    versions = {"format": _FORMAT, "openvino": openvino.__version__, "keras": keras.__version__, "tensorflow": tf.__version__}
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
        log: where to say that it converts (one line).
        output_ranks: the rank of each output the function returns, in order (the activations,
            4, first); the converted body is checked against it.
        threads: OpenVINO inference threads (default: ``default_threads()``).

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
        output_ranks: tuple[int, ...] = (4,),
        threads: int | None = None,
    ) -> None:
        import openvino as ov

        self.threads = threads or default_threads()
        root = cache_dir() / "openvino"
        prefix = f"{_safe(label)}-"
        self.cache_path = root / f"{prefix}{key[:20]}"
        self.converted = False  # True when this start converted (no usable cache entry)
        core = ov.Core()
        # Float32: bf16/fp16 (the default on CPUs that have them) change the map. The latency
        # hint, one stream (``_compile`` makes the streams' copy). No pinning: the threads of the
        # other stages share the cores, and a pinned thread waits when its core is taken.
        config = {
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
            "ENABLE_CPU_PINNING": False,
            "INFERENCE_NUM_THREADS": self.threads,
            "INFERENCE_PRECISION_HINT": "f32",
        }
        self._lock = threading.Lock()
        model = _read_entry(core, self.cache_path)
        if model is not None:
            try:
                self._compile(ov, core, model, config)
            except Exception:  # an entry that reads but does not compile: rebuilt below
                shutil.rmtree(self.cache_path, ignore_errors=True)
                model = None
        if model is None:
            log(f"converting the network body to OpenVINO (once; cached in {self.cache_path})")
            model = _only_outputs(ov, ov.convert_model(make_function()), output_ranks)
            self.converted = True
            _write_entry(ov, model, self.cache_path, log)
            _evict(root, prefix, keep=KEEP_PER_LABEL)
            self._compile(ov, core, model, config)

    def _compile(self, ov: Any, core: Any, model: Any, config: dict[str, Any]) -> None:
        """Compiles the requests ``__call__`` uses.

        Two copies compiled for exactly one frame (with every shape known, OpenVINO plans its
        memory and picks its kernels once: mobilenet_v2 on 2 cores, 10.7 against 11.6 ms):
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
        self._single = self._streams = self._dynamic = None
        try:
            single = model.clone()
            single.reshape([1, *single.input(0).get_partial_shape()[1:].to_shape()])
            one = core.compile_model(single, "CPU", config).create_infer_request()
            throughput = {key: value for key, value in config.items() if key != "NUM_STREAMS"} | {"PERFORMANCE_HINT": "THROUGHPUT"}
            parallel = core.compile_model(single, "CPU", throughput)
        except Exception:
            self._dynamic = core.compile_model(model, "CPU", config).create_infer_request()
            return
        self._single = one
        self._streams = ov.AsyncInferQueue(parallel, parallel.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self._streams.set_callback(self._collect)

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
        """Each frame on its own request, as many at once as there are streams."""
        results = tuple(np.empty((len(frames), *tensor.data.shape[1:]), tensor.data.dtype) for tensor in self._streams[0].output_tensors)
        for i in range(len(frames)):
            self._streams.start_async({0: frames[i : i + 1]}, (results, i))
        self._streams.wait_all()
        return results

    @staticmethod
    def _collect(request: Any, row: tuple[tuple[np.ndarray, ...], int]) -> None:
        """The queue's callback, on OpenVINO's thread: copy one frame's outputs into its row of the results."""
        results, index = row
        for result, tensor in zip(results, request.output_tensors):
            result[index] = tensor.data[0]


def _only_outputs(ov: Any, model: Any, ranks: tuple[int, ...]) -> Any:
    """``model`` with only the function's own outputs: its first ones, of these ``ranks``.

    The converter also makes outputs of some tensors inside Keras layers (efficientnet_b0's body
    came out with 50); OpenVINO then computes and keeps every one of them, which made that body
    3.7x slower (62 against 17 ms on 2 cores).

    Raises:
        RuntimeError: the first outputs are not of these ranks (the engine then uses TensorFlow).
    """
    found = tuple(model.output(i).get_partial_shape().rank.get_length() for i in range(min(len(ranks), len(model.outputs))))
    if found != ranks:
        raise RuntimeError(f"its outputs came out with ranks {found}, not {ranks}")
    if len(model.outputs) == len(ranks):
        return model
    return ov.Model([model.output(i) for i in range(len(ranks))], model.get_parameters(), model.get_friendly_name())


# ---------------------------------------------------------------------- the cache entry

_XML, _BIN, _MANIFEST = "body.xml", "body.bin", "manifest.json"


def _read_entry(core: Any, path: Path) -> Any | None:
    """The cached model, or None (missing, or corrupt and then removed)."""
    if not path.is_dir():
        return None
    try:
        manifest = json.loads((path / _MANIFEST).read_text())
        for name in (_XML, _BIN):
            if manifest.get(name) != _file_digest(path / name):
                raise ValueError(f"{name} does not match its checksum")
        model = core.read_model(str(path / _XML))
        os.utime(path)  # last used: eviction keeps the most recently used entries
        return model
    except Exception:
        shutil.rmtree(path, ignore_errors=True)
        return None


def _write_entry(ov: Any, model: Any, path: Path, log: Callable[[str], None]) -> None:
    """Save ``model`` at ``path`` atomically: a temporary folder beside it, renamed into place."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=path.parent))
    except OSError as exc:
        log(f"warning: cannot write the OpenVINO cache in {path.parent} ({exc.strerror}); it will convert again next time")
        return
    try:
        ov.save_model(model, str(staging / _XML), compress_to_fp16=False)  # fp16 weights would change the map
        manifest = {name: _file_digest(staging / name) for name in (_XML, _BIN)}
        (staging / _MANIFEST).write_text(json.dumps(manifest))
        try:
            staging.rename(path)
        except OSError:  # another livecam wrote the same entry first: keep theirs
            pass
    except OSError as exc:
        log(f"warning: cannot write the OpenVINO cache in {path.parent} ({exc.strerror}); it will convert again next time")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _evict(root: Path, prefix: str, keep: int) -> None:
    """Remove all but the ``keep`` most recently used entries named ``prefix...``, and stale temporary folders."""
    try:
        entries = sorted((p for p in root.iterdir() if p.name.startswith(prefix)), key=lambda p: p.stat().st_mtime, reverse=True)
        stale = [p for p in root.iterdir() if p.name.startswith(".tmp-") and time.time() - p.stat().st_mtime > 3600]
    except OSError:
        return
    for path in entries[keep:] + stale:
        shutil.rmtree(path, ignore_errors=True)


def _file_digest(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:80]
