"""livecam: a real-time Grad-CAM viewer.

The flow is source -> engine -> renderer -> sinks. ``CamEngine`` is imported lazily so that
``livecam --version`` answers without loading TensorFlow.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["CamEngine", "CamResult", "UserError", "__version__"]

from livecam.errors import UserError


def __getattr__(name: str):
    if name in ("CamEngine", "CamResult"):
        from livecam import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'livecam' has no attribute {name!r}")
