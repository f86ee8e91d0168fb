"""Where the network looks on a frame (``--fit``): the one home of that geometry.

A network takes a fixed input, usually square, and frames are usually not. Three ways to fit:

- ``squash`` (the default): the whole frame, stretched to the input's shape; the map covers the
  whole frame (stretched back).
- ``crop``: the largest central part of the frame with the input's shape (what a classifier was
  usually trained on); the map covers that part only, the rest of the frame has none.
- ``pad``: the whole frame, letterboxed to the input's shape with ``PAD_BGR`` bands; the map's
  part over the bands is cut away and the rest lies over the frame.

``fit_geometry`` is a pure function of the frame's size, the input's size and the fit; the engine
uses it to prepare frames (``apply_fit``), and every front-end places the map with its ``box``
(carried by ``CamResult.box``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from livecam.errors import UserError

FITS = ("squash", "crop", "pad")
# The padding: ImageNet's mean colour (RGB 124, 116, 104), which the zoo's preprocessing maps to
# about zero (resnet50/vgg16 and the models that normalise inside, EfficientNet and ConvNeXt,
# subtract it; mobilenet_v2's x / 127.5 - 1 gives -0.03 to -0.18), so the bands feed the first
# layer almost nothing. Black would be a strong value (-1 or -124) with an edge against the frame
# that convolutions respond to.
PAD_BGR = (104, 116, 124)
FULL_BOX = (0.0, 0.0, 1.0, 1.0)


@dataclass(frozen=True)
class FitGeometry:
    """How a frame is fitted to the network's input, and where the map lies on the frame.

    Attributes:
        crop: (x0, y0, x1, y1), the frame's pixels the network sees (crop: the central part;
            otherwise the whole frame).
        pad: (top, bottom, left, right), pixels of ``PAD_BGR`` added around them (pad only).
        box: (x0, y0, x1, y1), where the whole map lies on the frame in fractions of its width
            and height: (0, 0, 1, 1) for squash, inside it for crop, reaching past it for pad
            (that part of the map lies over the padding and is not drawn).
    """

    crop: tuple[int, int, int, int]
    pad: tuple[int, int, int, int]
    box: tuple[float, float, float, float]


def check_fit(fit: str) -> str:
    """``fit`` if it is one of ``FITS``, else a UserError."""
    if fit not in FITS:
        raise UserError(f"Expected fit to be one of {', '.join(FITS)}. Received: fit={fit!r}")
    return fit


def fit_geometry(frame_wh: tuple[int, int], input_hw: tuple[int, int], fit: str = "squash") -> FitGeometry:
    """The crop, the padding and the map's box for a frame of ``frame_wh`` fed to an input of ``input_hw``.

    Args:
        frame_wh: (width, height) of the frame.
        input_hw: (height, width) of the network's input (``CamEngine.input_size``).
        fit: "squash", "crop" or "pad".
    """
    check_fit(fit)
    width, height = (int(v) for v in frame_wh)
    in_h, in_w = (int(v) for v in input_hw)
    whole = (0, 0, width, height)
    if fit == "squash" or width * in_h == height * in_w:  # same shape: nothing to crop or pad
        return FitGeometry(whole, (0, 0, 0, 0), FULL_BOX)
    wider = width * in_h > height * in_w  # than the input
    if fit == "crop":
        if wider:
            crop_w = max(1, round(height * in_w / in_h))
            x0 = (width - crop_w) // 2
            crop = (x0, 0, x0 + crop_w, height)
        else:
            crop_h = max(1, round(width * in_h / in_w))
            y0 = (height - crop_h) // 2
            crop = (0, y0, width, y0 + crop_h)
        return FitGeometry(crop, (0, 0, 0, 0), (crop[0] / width, crop[1] / height, crop[2] / width, crop[3] / height))
    if wider:
        extra = round(width * in_h / in_w) - height
        top, bottom, left, right = extra // 2, extra - extra // 2, 0, 0
    else:
        extra = round(height * in_w / in_h) - width
        top, bottom, left, right = 0, 0, extra // 2, extra - extra // 2
    box = (-left / width, -top / height, (width + right) / width, (height + bottom) / height)
    return FitGeometry(whole, (top, bottom, left, right), box)


def apply_fit(frame_bgr: np.ndarray, geometry: FitGeometry) -> np.ndarray:
    """The frame as the network sees it before resizing: cropped (a view) or padded (a copy)."""
    x0, y0, x1, y1 = geometry.crop
    image = frame_bgr[y0:y1, x0:x1]
    if any(geometry.pad):
        image = cv2.copyMakeBorder(image, *geometry.pad, cv2.BORDER_CONSTANT, value=PAD_BGR)
    return image
