"""livecam: a real-time Grad-CAM viewer.

The flow is source -> engine -> renderer -> sinks. ``CamEngine`` and ``overlay`` (OpenCV) are
imported lazily, so that ``livecam --version`` and ``--help`` answer without them.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["CamEngine", "CamResult", "UserError", "overlay", "__version__"]

from livecam.errors import UserError


def __getattr__(name: str):
    if name in ("CamEngine", "CamResult"):
        # TensorFlow only when the engine needs it (``livecam.engine.warm``), without its start-up lines.
        from livecam.engine import core as engine

        return getattr(engine, name)
    if name == "overlay":
        from livecam.render import overlay

        return overlay
    raise AttributeError(f"module 'livecam' has no attribute {name!r}")
