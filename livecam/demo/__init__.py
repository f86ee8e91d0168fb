"""The offline demo: a synthetic live scene and a small classifier shipped with the package.

``make_scene`` and ``AnimatedScene`` draw the scenes (OpenCV + numpy only, so importing this
package stays light). ``model.keras`` was trained on those scenes by
``scripts/train_demo_model.py``; ``livecam.models`` loads it by the name ``"demo"``
(``livecam.models.zoo.load_demo_model``). This package imports nothing of ``livecam.models``.
Sizes are (width, height), OpenCV order.
"""

from __future__ import annotations

from livecam.demo.scene import CLASS_NAMES, AnimatedScene, make_scene

__all__ = ["CLASS_NAMES", "DEMO_LAYER", "AnimatedScene", "make_scene"]

# The last convolution block, before global average pooling: the layer the demo explains.
DEMO_LAYER = "features"
