"""A warm start: the engine opened from its cache entry alone, without importing TensorFlow or Keras.

On a CPU, with the OpenVINO runtime and a pooling + Dense head, the step needs only the converted
body and the head's weights (``runtimes.head``). The first start of a model builds them from the
Keras model and keeps them in the cache entry with the facts the engine reports (``ModelFacts``);
the next start finds that entry by a key computed from how the model is named, without loading
it (``start_key``), and opens in well under a second. Anything else (the TensorFlow runtime, a
general head, XLA, mixed precision, a callable preprocessing, a ``keras.Model``, a GPU that
TensorFlow might use, a cache miss) loads the model as before.
"""

from __future__ import annotations

import glob
import hashlib
import importlib.metadata
import json
import os
import sys
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from livecam.engine.runtimes import cache
from livecam.engine.runtimes.choose import openvino_reason
from livecam.engine.runtimes.head import DenseHead
from livecam.engine.runtimes.openvino import FORMAT, OpenVinoBody
from livecam.engine.runtimes.openvino_step import OpenVinoStep

__all__ = ["ModelFacts", "WarmStart", "facts_of", "gpu_possible", "open_warm", "start_key"]


@dataclass(frozen=True)
class ModelFacts:
    """What the engine tells of its model besides the step: read from the model, or from a warm start's entry.

    Attributes:
        name: the zoo name, ``"demo"``, or the model file's stem.
        class_names: the model's own class names (a labels file's names replace them later).
        input_size: (height, width) the network is fed at.
        layer: the target layer's name.
        layer_candidates: the layers a map can be taken from, in order.
        step_bytes_per_frame: about how much memory a frame takes in the step (``models.step_bytes_per_frame``).
        weights_sha256: the digest of the model's weights that every output carries (``livecam.trust.stamp``).
    """

    name: str
    class_names: tuple[str, ...]
    input_size: tuple[int, int]
    layer: str
    layer_candidates: tuple[str, ...]
    step_bytes_per_frame: int
    weights_sha256: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelFacts:
        return cls(
            name=str(data["name"]),
            class_names=tuple(str(n) for n in data["class_names"]),
            input_size=(int(data["input_size"][0]), int(data["input_size"][1])),
            layer=str(data["layer"]),
            layer_candidates=tuple(str(n) for n in data["layer_candidates"]),
            step_bytes_per_frame=int(data["step_bytes_per_frame"]),
            weights_sha256=str(data["weights_sha256"]),
        )


def facts_of(loaded: Any, target: Any) -> ModelFacts:
    """The facts of a loaded model (``LoadedModel``) explained at ``target``."""
    from livecam.models import step_bytes_per_frame, target_candidates
    from livecam.trust.stamp import weights_digest

    return ModelFacts(
        name=loaded.name,
        class_names=tuple(loaded.class_names),
        input_size=tuple(loaded.input_size),
        layer=target.name,
        layer_candidates=tuple(target.name for target in target_candidates(loaded.model)),
        step_bytes_per_frame=step_bytes_per_frame(loaded.model, target.name, loaded.input_size),
        weights_sha256=weights_digest(loaded.model),
    )


def entry_meta(facts: ModelFacts) -> dict[str, Any]:
    """What the first start keeps in the entry for the next one (the head's part is added by the runtime)."""
    return {"facts": asdict(facts)}


def start_key(model: Any, *, weights: Any, layer: str | None, input_size: int | None, preprocess: Any) -> str | None:
    """The cache key of a model named by the zoo, the demo or a file, computed without loading it.

    What names the model: a zoo name with its weights (``"imagenet"``, which Keras checks by hash
    and its version pins; ``none``, the same seeded random weights every time; or a weights file
    by its path, size and modification time); the demo or a model file by a digest of its bytes
    (remembered by path, size and modification time, so a large file is read once). With it the
    layer, the input size and the preprocessing as asked, and the versions that change the
    converted graph (the entry's format, OpenVINO, Keras, TensorFlow).

    None when the model is not named so (a ``keras.Model``, a callable preprocessing), or the
    name does not resolve (a missing file): then the model is loaded, and says what is wrong.
    """
    from livecam.models import DEMO_MODEL, PREPROCESSORS, ZOO

    if not isinstance(model, (str, Path)) or not (preprocess is None or preprocess in PREPROCESSORS):
        return None
    if isinstance(model, str) and model == DEMO_MODEL:
        with resources.as_file(resources.files("livecam.demo").joinpath("model.keras")) as path:
            named = {"file": cache.file_digest_remembered(path)} if path.is_file() else None
    elif isinstance(model, str) and model in ZOO:
        identity = _weights_identity(weights)
        named = {"zoo": model, "weights": identity} if identity is not None else None
    else:
        named = {"file": cache.file_digest_remembered(Path(model))} if Path(model).is_file() else None
    versions = {
        "openvino": _version("openvino", "openvino-nightly"),
        "keras": _version("keras", "keras-nightly"),
        "tensorflow": _version("tensorflow", "tensorflow-cpu", "tensorflow-intel", "tensorflow-macos", "tf-nightly"),
    }
    if named is None or None in versions.values():
        return None
    parts = {"format": FORMAT, **versions, **named, "layer": layer, "input_size": input_size, "preprocess": preprocess}
    return hashlib.blake2b(json.dumps(parts, sort_keys=True).encode(), digest_size=16).hexdigest()


def _weights_identity(weights: Any) -> Any:
    """How a zoo model's weights are named in its key (as ``models.zoo.build_zoo_model`` reads them)."""
    if weights is None or (isinstance(weights, str) and weights.lower() == "none"):
        return "none"
    if weights == "imagenet":
        return "imagenet"
    path = Path(weights)
    if not path.is_file():
        return None
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _version(*distributions: str) -> str | None:
    for name in distributions:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def gpu_possible() -> bool:
    """Whether TensorFlow might see a GPU here; then only TensorFlow can tell, and the start loads it.

    Linux: an NVIDIA device (unless ``CUDA_VISIBLE_DEVICES`` hides them all), AMD's ROCm device or
    WSL's GPU device; macOS and Windows: TensorFlow's Metal or DirectML plugin.
    """
    if sys.platform.startswith("linux"):
        nvidia = os.environ.get("CUDA_VISIBLE_DEVICES") not in ("", "-1") and bool(glob.glob("/dev/nvidia[0-9]*"))
        return nvidia or os.path.exists("/dev/kfd") or os.path.exists("/dev/dxg")
    return _version("tensorflow-metal", "tensorflow-directml-plugin") is not None


@dataclass(frozen=True)
class WarmStart:
    """An engine's body and facts, read from its cache entry (``open_warm``); ``head`` is the NumPy head's
    ``(kernel, bias, kind)``."""

    body: OpenVinoBody
    facts: ModelFacts
    head: tuple[Any, Any, str]

    def step(self, topk: int, *, forced: bool) -> OpenVinoStep:
        """The engine's step: this body, then the NumPy head; ``forced``: the OpenVINO runtime was asked for."""
        kernel, bias, kind = self.head
        return OpenVinoStep(self.body, DenseHead(kernel, bias, kind, topk), reason=openvino_reason(forced, self.facts.layer))


def open_warm(key: str, *, forced: bool) -> WarmStart | None:
    """The warm start for ``key``, or None when it cannot start warm (then the model is loaded).

    ``forced``: the OpenVINO runtime was asked for, so a GPU does not matter.
    """
    if not forced and gpu_possible():
        return None
    try:
        body = OpenVinoBody.cached(key, wanted=lambda meta: bool(meta.get("head")))
    except ImportError:  # no OpenVINO: the runtime's choice says so
        return None
    if body is None:
        return None
    try:
        facts = ModelFacts.from_json(body.meta["facts"])
        head = (body.arrays["kernel"], body.arrays["bias"], str(body.meta["head"]["kind"]))
    except (KeyError, TypeError, ValueError, IndexError):  # an entry its first start did not finish: rebuilt
        cache.remove(body.cache_path)
        return None
    return WarmStart(body, facts, head)
