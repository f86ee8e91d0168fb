"""Frame sources: one input argument, auto-detected into a reader that hands out ``Frame``s.

``open_source(spec)`` understands:

- a camera index: ``0``, ``"1"`` (digits always mean a camera, even if a file has that name);
- a video file: ``clip.mp4`` (anything FFmpeg reads);
- an image file, a folder of images or a glob pattern: ``photo.jpg``, ``frames/``,
  ``"frames/*.png"`` (natural order: ``2.png`` before ``10.png``);
- a stream URL: ``rtsp://``, ``rtsps://``, ``rtmp://``, ``http://``, ``https://``, ``udp://``,
  ``tcp://``, ``srt://``;
- ``synth``: the synthetic demo scene. Options follow a colon, separated by commas, in any
  order: ``synth:640x480``, ``synth:seed=3``, ``synth:320x240,seed=3,fps=15``.

Files and folders are read in order, every frame, none dropped. Live sources (camera, URL,
synth) run a capture thread where the latest frame wins: ``read()`` returns the newest frame
that was not handed out before and counts the ones nobody read in ``dropped``. A live source
that stops delivering is reopened with back-off while ``status == "reconnecting"``, and
``read(timeout_s)`` returns None when no new frame came in time, so the viewer stays responsive.

The modules: ``protocol`` (``Frame``, ``FrameSource`` and the bases), ``files`` (video files),
``folders`` (images), ``live`` (the capture thread), ``cameras``, ``streams`` and ``synth`` (what
it reads from), and ``spec`` (``open_source``).
"""

from __future__ import annotations

from livecam.sources.cameras import MAX_CAMERA_INDEX, list_cameras
from livecam.sources.files import VideoFileSource
from livecam.sources.folders import IMAGE_SUFFIXES, ImageFolderSource, is_image_name
from livecam.sources.live import LiveSource
from livecam.sources.protocol import FOLDER_DEFAULT_FPS, CaptureLike, Frame, FrameSource, Status
from livecam.sources.spec import open_source
from livecam.sources.streams import STREAM_SCHEMES
from livecam.sources.synth import SYNTH_DEFAULT_SIZE, SYNTH_MAX_SIZE

__all__ = [
    "FOLDER_DEFAULT_FPS",
    "IMAGE_SUFFIXES",
    "MAX_CAMERA_INDEX",
    "STREAM_SCHEMES",
    "SYNTH_DEFAULT_SIZE",
    "SYNTH_MAX_SIZE",
    "CaptureLike",
    "Frame",
    "FrameSource",
    "ImageFolderSource",
    "LiveSource",
    "Status",
    "VideoFileSource",
    "is_image_name",
    "list_cameras",
    "open_source",
]
