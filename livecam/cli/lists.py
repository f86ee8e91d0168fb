"""``livecam models``, ``livecam layers`` and ``livecam cache``: what --model and --layer accept, and the converted models kept."""

from __future__ import annotations

import time

from livecam import logs
from livecam.errors import shown


def models() -> int:
    from livecam.models import DEFAULT_MODEL, ZOO
    from livecam.models.hub import HUB_PREFIX, HUB_PRESETS

    print(f"{'model':<22} {'input':<9} {'preprocessing':<14} target layer (without --layer)")
    for name, entry in ZOO.items():
        size = f"{entry.input_size[1]}x{entry.input_size[0]}"
        layer = entry.default_layer or "the last spatial layer"
        listed = f"{name} (default)" if name == DEFAULT_MODEL else name
        print(f"{listed:<22} {size:<9} {entry.preprocess:<14} {layer}")
    print(f"{'demo':<22} {'':<9} {'built in':<14} the shipped offline demo model (livecam --demo)")
    print(f"{'demo-vit':<22} {'':<9} {'built in':<14} a tiny ViT trained on the demo's scenes (needs the hub extra)")
    print("\n(default): the model used when --model is not given. ImageNet weights download once, to ~/.keras/models/.")
    print(f'\nKerasHub presets (--model {HUB_PREFIX}PRESET, with pip install "livecam[hub]"); any ImageClassifier preset loads:')
    print(f"{'preset':<36} what the map is taken from")
    for preset, about in HUB_PRESETS.items():
        print(f"{HUB_PREFIX + preset:<36} {about}")
    print("KerasHub downloads a preset once, to ~/.cache/kagglehub/ (or $KAGGLEHUB_CACHE).")
    return 0


def layers(model: str, *, weights: str, unsafe_model_load: bool) -> int:
    from livecam.engine.targets import is_tokens
    from livecam.models import find_target_layer, load_model, map_shape, target_candidates

    logs.import_tensorflow()
    with logs.native_stderr_silenced(logs.quiet()):  # Keras's C++ notes while it builds the model
        loaded = load_model(model, weights=weights, unsafe=unsafe_model_load)
    default = find_target_layer(loaded.model, loaded.default_layer)  # the engine's own choice without --layer
    for target in target_candidates(loaded.model):
        shape = "x".join(str(d) for d in map_shape(target))
        tokens = "  (the patch tokens entering this transformer block)" if is_tokens(target) else ""
        mark = "  <- default target layer (without --layer)" if target == default else ""
        print(f"{shown(target.name):<45} {shape}{tokens}{mark}")
    return 0


def cache(action: str) -> int:
    """``livecam cache list``: the entries, newest first, with their sizes; ``livecam cache clear``: all of them gone."""
    from livecam.engine.runtimes import cache as cached

    root = cached.cache_dir()
    if root is None:
        print(f"livecam: no cache folder (no home folder to keep one in; set {cached.CACHE_ENV} to have one)")
        return 0
    if action == "clear":
        count, size = cached.clear()
        print(f"livecam: removed {count} entr{'y' if count == 1 else 'ies'} ({size / 2**20:.1f} MB) from {shown(str(root))}")
        return 0
    entries = cached.list_entries()
    total = sum(entry.size_bytes for entry in entries)
    print(f"livecam: {len(entries)} entr{'y' if len(entries) == 1 else 'ies'} ({total / 2**20:.1f} MB) in {shown(str(root))}")
    if entries:
        print(f"{'size':>9}  {'last used':<16}  {'TensorFlow':<10}  entry (model-layer-size-key)")
    for entry in entries:
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.last_used))
        needs = "not needed" if entry.warm else "needed"
        print(f"{entry.size_bytes / 2**20:>6.1f} MB  {used:<16}  {needs:<10}  {shown(entry.name)}")
    return 0
