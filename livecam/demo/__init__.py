"""The offline demo: a synthetic live scene and a small classifier shipped with the package.

``make_scene`` and ``AnimatedScene`` draw the scenes (OpenCV + numpy only, so importing this
package stays light); ``load_demo_model`` loads ``model.keras``, trained on those scenes by
``scripts/train_demo_model.py``. Sizes are (width, height), OpenCV order.
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

from livecam.demo.scene import CLASS_NAMES, AnimatedScene, make_scene

if TYPE_CHECKING:
    from livecam.models import LoadedModel

__all__ = ["CLASS_NAMES", "AnimatedScene", "make_scene", "load_demo_model", "DEMO_LAYER"]

# The last convolution block, before global average pooling: the layer the demo explains.
DEMO_LAYER = "features"


def load_demo_model() -> LoadedModel:
    """Load the shipped demo classifier (offline).

    The model takes float32 RGB pixels in 0..255 (it rescales them itself) and outputs
    softmax probabilities over ``CLASS_NAMES``.

    Raises:
        UserError: the package was installed without its ``model.keras``.
    """
    import keras

    from livecam.errors import UserError
    from livecam.models import LoadedModel, preprocess_fn

    file = resources.files("livecam.demo").joinpath("model.keras")
    with resources.as_file(file) as path:
        if not path.is_file():
            raise UserError(
                f"The demo model {str(path)!r} is missing; reinstall livecam, or rebuild it with "
                f"`python scripts/train_demo_model.py`."
            )
        model = keras.models.load_model(path, compile=False, safe_mode=True)
    height, width = (int(v) for v in model.inputs[0].shape[1:3])
    return LoadedModel(
        model=model,
        name="demo",
        preprocess=preprocess_fn("none"),
        input_size=(height, width),
        class_names=CLASS_NAMES,
        default_layer=DEMO_LAYER,
    )
