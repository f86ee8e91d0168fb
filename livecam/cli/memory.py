"""Whether a run's working set fits in the memory available now: refused with a sentence before it starts."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from livecam.errors import UserError

# Frames of the source's size alive at once, per frame of a batch: the queue to the engine (two
# batches), the batch in the engine and the queue to the renderer (two batches).
_FRAMES_IN_FLIGHT_PER_BATCH_FRAME = 5


def check_memory(engine, source, batch: int) -> None:
    """Refuses a batch and input size whose working set would not fit in the memory available now.

    On a GPU the step's activations live in the GPU's memory, so only the frames count here.
    """
    available = available_memory_bytes()
    if available is None:
        return
    width, height = source.size or (1920, 1080)
    per_frame = _FRAMES_IN_FLIGHT_PER_BATCH_FRAME * width * height * 3
    if engine.runtime_info.runtime == "openvino" or activations_in_host_memory():  # OpenVINO runs on the CPU
        per_frame += engine.step_bytes_per_frame
    if batch * per_frame <= available:
        return
    h, w = engine.input_size
    fits = available // per_frame
    advice = f"pass --batch {fits} or less, or a smaller --input-size" if fits >= 1 else "pass a smaller --input-size"
    raise UserError(
        f"A batch of {batch} frames at {w}x{h} with {engine.model_name} needs about {_gigabytes(batch * per_frame)} of memory, "
        f"but only {_gigabytes(available)} is available; {advice}."
    )


def activations_in_host_memory() -> bool:
    """Whether TensorFlow runs the step in the machine's memory: True unless it sees a GPU."""
    import tensorflow as tf

    return not tf.config.list_physical_devices("GPU")


def available_memory_bytes() -> int | None:
    """Memory this process can still take without swapping, in bytes; None where it cannot be told.

    Linux's MemAvailable (free memory plus caches it can drop), lowered to what is left under a
    cgroup (container) limit; elsewhere the free physical pages, where the system says.
    """
    available = None
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    if available is None:
        with contextlib.suppress(AttributeError, OSError, ValueError):
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    for folder, limit, usage, cache in (
        ("/sys/fs/cgroup", "memory.max", "memory.current", "inactive_file"),  # cgroup v2
        ("/sys/fs/cgroup/memory", "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"),  # v1
    ):
        with contextlib.suppress(OSError, ValueError):  # no such file, or "max": no limit
            cgroup = Path(folder)
            left = int((cgroup / limit).read_text()) - int((cgroup / usage).read_text())
            stats = dict(line.split() for line in (cgroup / "memory.stat").read_text().splitlines())
            left += int(stats.get(cache, 0))  # page cache the kernel drops before it runs out
            available = left if available is None else min(available, left)
            break
    return available


def _gigabytes(n_bytes: int) -> str:
    return f"{n_bytes / 1e9:.1f} GB" if n_bytes >= 1e9 else f"{n_bytes / 1e6:.0f} MB"
