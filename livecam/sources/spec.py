"""``open_source``: one input argument, auto-detected into the reader that fits it.

The forms it takes are listed in the package's docstring (``livecam.sources``).
"""

from __future__ import annotations

import math
import os
import re
import stat
from pathlib import Path

from livecam.errors import UserError, file_kind, redact
from livecam.sources.cameras import open_camera
from livecam.sources.files import VideoFileSource
from livecam.sources.folders import ImageFolderSource, is_image_name, open_folder, open_glob
from livecam.sources.protocol import FOLDER_DEFAULT_FPS, FrameSource
from livecam.sources.streams import STREAM_SCHEMES, open_stream
from livecam.sources.synth import open_synth

__all__ = ["open_source"]


def open_source(
    spec: str | int | os.PathLike = 0,
    *,
    loop: bool = False,
    resolution: tuple[int, int] | None = None,
    fps: float | None = None,
    timeout_s: float = 10.0,
) -> FrameSource:
    """Open whatever ``spec`` names: camera index, video, image(s), folder, glob, URL or synth.

    Args:
        spec: see the module docstring for the forms it takes.
        loop: replay files and folders from the start when they end.
        resolution: (width, height) to ask a camera for, or the synth scene size. Files and
            streams keep their own (a note goes in ``warnings``).
        fps: rate to ask a camera for; the synth pace; the nominal rate of an image folder
            (default 30).
        timeout_s: how long a stream URL may take to answer.

    Returns:
        An open ``FrameSource``; close it (or use ``with``).

    Raises:
        UserError: the input does not exist, does not open or holds nothing readable.
    """
    if resolution is not None:
        resolution = _check_resolution(resolution)
    if fps is not None and not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise UserError(f"Expected fps > 0. Received: fps={fps!r}.")
    if not (isinstance(timeout_s, (int, float)) and timeout_s > 0):
        raise UserError(f"Expected timeout_s > 0. Received: timeout_s={timeout_s!r}.")
    if isinstance(spec, bool) or not isinstance(spec, (int, str, os.PathLike)):
        raise UserError(f"Expected a camera index, path, URL or 'synth' as input. Received: {spec!r}.")
    if isinstance(spec, int):
        return open_camera(spec, resolution, fps)
    text = os.fspath(spec).strip()
    if not text:
        raise UserError("Expected an input: a camera index, a video, an image folder, a URL or synth. Received: ''.")
    if re.fullmatch(r"[0-9]+", text):
        return open_camera(int(text), resolution, fps)
    if text.lower() == "synth" or text.lower().startswith("synth:"):
        return open_synth(text, resolution, fps)
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", text)
    if scheme:
        if scheme.group(1).lower() not in STREAM_SCHEMES:
            raise UserError(
                f"Unsupported URL scheme {scheme.group(1)!r} in {redact(text)!r}; expected one of "
                f"{', '.join(s + '://' for s in STREAM_SCHEMES)}, or a local path."
            )
        source = open_stream(text, timeout_s, loop=loop)
        _note_ignored(source, resolution, fps)
        return source
    path = Path(text).expanduser()
    if path.is_dir():
        source = open_folder(path, fps=fps, loop=loop)
    elif path.is_file():
        if is_image_name(path):
            source = ImageFolderSource([path], fps=fps or FOLDER_DEFAULT_FPS, loop=loop, where=f"{path}")
        else:
            source = VideoFileSource(path, loop=loop)
            _note_ignored(source, None, fps)
    elif os.path.lexists(path):
        raise UserError(_not_a_regular_file(path))
    elif re.search(r"[*?[]", text):
        source = open_glob(text, fps=fps, loop=loop)
    else:
        raise UserError(
            f"The input {text!r} does not exist; check the path, or pass a camera index (0), a folder or "
            f"glob of images, a URL (rtsp://..., http://...) or synth."
        )
    _note_ignored(source, resolution, None)
    return source


def _note_ignored(source: FrameSource, resolution: tuple[int, int] | None, fps: float | None) -> None:
    if resolution is not None:
        source.warnings.append(
            f"The requested resolution {resolution[0]}x{resolution[1]} applies to cameras and synth only; "
            f"{source.description} keeps its own."
        )
    if fps is not None:
        source.warnings.append(
            f"The requested {fps:g} fps applies to cameras, synth and image folders only; {source.description} keeps its own."
        )


def _check_resolution(resolution: tuple[int, int]) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in resolution)
    except (TypeError, ValueError):
        width = height = 0
    if width <= 0 or height <= 0 or (width, height) != tuple(resolution):
        raise UserError(f"Expected resolution as (width, height), two positive integers. Received: resolution={resolution!r}.")
    return width, height


def _not_a_regular_file(path: Path) -> str:
    """Why ``path``, which exists as a name, is no input: a device, a pipe, a socket, a broken link."""
    try:
        mode = path.stat().st_mode
    except OSError:
        if path.is_symlink():
            return f"The input {str(path)!r} is a link to {os.readlink(path)!r}, which does not exist; fix the link or pass the file itself."
        return f"The input {str(path)!r} cannot be read (no permission to look at it); check its permissions."
    camera = re.fullmatch(r"/dev/video([0-9]+)", os.path.realpath(path))
    if stat.S_ISCHR(mode) and camera:
        return f"The input {str(path)!r} is a camera device; pass its index instead: --source {int(camera.group(1))}."
    return (
        f"The input {str(path)!r} is {file_kind(mode)}, not a video or image file; pass a video file, a folder or glob of "
        f"images, a camera index (0), a URL (a stream can come in as udp://... or rtsp://...) or synth."
    )
