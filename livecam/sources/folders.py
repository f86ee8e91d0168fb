"""Image folders and globs: every picture in natural order, each its own frame.

The sizes of the pictures are sniffed from their headers up front (no decoding), so that a
recording of pictures of mixed sizes can be made at the most common one.
"""

from __future__ import annotations

import collections
import glob
import os
import re
from pathlib import Path

import cv2
import numpy as np

from livecam.errors import UserError
from livecam.sources.protocol import FOLDER_DEFAULT_FPS, OrderedSource, not_readable

__all__ = ["IMAGE_SUFFIXES", "ImageFolderSource", "is_image_name", "open_folder", "open_glob"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".jp2", ".ppm", ".pgm", ".pnm")


class ImageFolderSource(OrderedSource):
    """Images from a list of files, in the given order; unreadable ones are skipped and counted.

    Images of different sizes are fine: each frame has its own size. ``size`` is the size a
    recording of them should have: the most common one (the largest of those tied), read from
    the image headers up front; ``mixed_sizes`` says whether they differ.

    Args:
        paths: the image files, already sorted.
        fps: nominal rate for timing the output.
        loop: start again at the end.
        where: how to name the images in messages, e.g. "frames/".

    Raises:
        UserError: no image in ``paths`` can be read.
    """

    unrelated_frames = True  # separate pictures: each frame's map stands alone

    def __init__(self, paths: list[Path], *, fps: float = FOLDER_DEFAULT_FPS, loop: bool = False, where: str = ""):
        super().__init__()
        self.paths = list(paths)
        self.fps = float(fps)
        self.frame_count = len(self.paths)
        self._loop = loop
        self._position = 0
        self._pass_delivered = 0
        self._pending = self._next_image()
        self._pending_name = self._image_name
        if self._pending is None and len(self.paths) == 1:
            raise UserError(not_readable(self.paths[0]))
        if self._pending is None:
            raise UserError(
                f"None of the {len(self.paths)} images in {where} could be read; check that they are "
                f"valid image files ({', '.join(IMAGE_SUFFIXES[:7])})."
            )
        first = (self._pending.shape[1], self._pending.shape[0])
        sizes = collections.Counter(_image_size(p) for p in self.paths) if len(self.paths) > 1 else collections.Counter()
        sizes.pop(None, None)
        self.mixed_sizes = len(sizes) > 1
        self.size = max(sizes, key=lambda wh: (sizes[wh], wh[0] * wh[1])) if self.mixed_sizes else first
        count = f"{len(self.paths)} images" if len(self.paths) > 1 else "1 image"
        self.description = f"{count} in {where} ({self.fps:g} fps)" + (", looping" if loop else "")
        if self.mixed_sizes:
            self.warnings.append(
                f"The images have {len(sizes)} different sizes; a recording is {self.size[0]}x{self.size[1]}, the most "
                f"common, with the others fitted inside (choose another with --size WxH)."
            )

    def _next_image(self) -> np.ndarray | None:
        while True:
            if self._position == len(self.paths):
                if not (self._loop and self._pass_delivered > 0):
                    return None
                self._position = 0
                self._pass_delivered = 0
            path = self.paths[self._position]
            self._position += 1
            image = _decode_image(path)
            if image is not None:
                self._pass_delivered += 1
                self._image_name = path.name
                return image
            self.corrupt += 1


def open_folder(path: Path, *, fps: float | None = None, loop: bool = False) -> ImageFolderSource:
    """The images directly in the folder ``path``, in natural order."""
    images = [p for p in path.iterdir() if is_image_name(p) and p.is_file()]
    if not images:
        raise UserError(
            f"The folder {str(path)!r} has no images ({', '.join(IMAGE_SUFFIXES[:7])}); put images in it "
            f"or pass a video file, a camera index or a URL instead."
        )
    return ImageFolderSource(natural_sorted(images), fps=fps or FOLDER_DEFAULT_FPS, loop=loop, where=f"{path}")


def open_glob(pattern: str, *, fps: float | None = None, loop: bool = False) -> ImageFolderSource:
    """The images that ``pattern`` (``"frames/*.png"``) matches, in natural order."""
    matches = [Path(p) for p in glob.glob(os.path.expanduser(pattern))]
    images = [p for p in matches if is_image_name(p) and p.is_file()]
    if not images:
        raise UserError(f"No images match {pattern!r}; check the pattern (for example 'frames/*.png') and that the files exist.")
    return ImageFolderSource(natural_sorted(images), fps=fps or FOLDER_DEFAULT_FPS, loop=loop, where=repr(pattern))


def is_image_name(path: Path) -> bool:
    """Whether a folder or glob source reads ``path``: an image suffix, and not a dot file."""
    # Dot files include macOS "._photo.jpg" metadata, which would only count as corrupt.
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def natural_sorted(paths: list[Path]) -> list[Path]:
    """``paths`` in natural order: ``2.png`` before ``10.png``."""

    def key(path: Path) -> list:
        # re.split with a group puts the ASCII digit runs at odd positions. Not str.isdigit(), which
        # is also true of "²" and other digits that int() refuses.
        parts = re.split(r"([0-9]+)", str(path))
        return [int(part) if i % 2 else part.lower() for i, part in enumerate(parts)]

    return sorted(paths, key=key)


def _image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the image's header, without decoding it; None if unreadable."""
    from PIL import Image  # lazy: only image folders need it

    try:
        with Image.open(path) as image:
            if image.format in ("JPEG", "MPO", "TIFF", "WEBP", "PNG"):
                # OpenCV turns images as their EXIF orientation says; so must the size.
                orientation = image.getexif().get(0x0112, 1)
                if orientation in (5, 6, 7, 8):
                    return (image.height, image.width)
            return image.size
    except Exception:  # any unreadable header: the image counts as corrupt later, if it is
        return None


def _decode_image(path: Path) -> np.ndarray | None:
    try:
        # imdecode over np.fromfile, not imread: imread fails on non-ASCII paths on Windows.
        data = np.fromfile(path, dtype=np.uint8)
        return cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    except (OSError, cv2.error):
        return None
