"""Keeps TensorFlow's, CUDA's and OpenCV's own log lines out of livecam's output.

TensorFlow prints oneDNN and CUDA notes from C++ while it is imported and when it first looks
for devices ("failed call to cuInit" on machines without a GPU), before its logger reads
``TF_CPP_MIN_LOG_LEVEL``; OpenCV prints an "[ERROR]" line for every camera index a probe finds
empty, and FFmpeg its own "[tcp @ 0x...] Connection refused" for a stream that does not open. None of it is livecam's to say. Quiet is the default; it is off when the user asks for
the lines: ``livecam --debug`` (which sets ``LIVECAM_DEBUG=1``), ``LIVECAM_DEBUG=1`` for the
Python API, or a ``TF_CPP_MIN_LOG_LEVEL`` below 2 set before livecam starts.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

_DEBUG_ENV = "LIVECAM_DEBUG"


def quiet() -> bool:
    """True unless the user asked to see the libraries' log lines (see the module docstring)."""
    if os.environ.get(_DEBUG_ENV, "") not in ("", "0"):
        return False
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")) >= 2
    except ValueError:
        return True


def configure(debug: bool = False) -> None:
    """Sets the environment before TensorFlow or OpenCV are imported (the CLI calls it first thing).

    Args:
        debug: show the libraries' log lines instead.
    """
    if debug:
        os.environ[_DEBUG_ENV] = "1"
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if quiet():
        os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")
        # FFmpeg's own lines (av_log): OpenCV reads this once, when its FFmpeg backend is first
        # used, so it must be set before any video or stream is opened. -8 is AV_LOG_QUIET.
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
        if "cv2" in sys.modules:  # read at import time only; set it live too
            sys.modules["cv2"].utils.logging.setLogLevel(sys.modules["cv2"].utils.logging.LOG_LEVEL_SILENT)


@contextlib.contextmanager
def native_stderr_silenced(active: bool = True, into: int | None = None) -> Iterator[Callable[[str], None]]:
    """Sends file descriptor 2 to /dev/null (or the open file ``into``) for a while: C++ libraries write there directly.

    Python exceptions pass through unchanged (they are printed later, by whoever catches them).
    Yields ``say(text)``, which still reaches the real stderr (for livecam's own progress lines,
    such as the OpenVINO conversion notice).
    """
    if not active:
        yield lambda text: print(text, file=sys.stderr, flush=True)
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY) if into is None else os.dup(into)
    try:
        os.dup2(devnull, 2)
        yield lambda text: os.write(saved, f"{text}\n".encode())
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow() -> Any:
    """Imports TensorFlow and lets it find its devices, without its start-up lines when quiet.

    Returns:
        The ``tensorflow`` module.
    """
    silence = quiet()
    if silence:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    with native_stderr_silenced(silence):
        import tensorflow as tf

        tf.config.list_physical_devices()  # the CUDA probe ("failed call to cuInit") happens here
    if silence:
        tf.get_logger().setLevel("ERROR")
        with contextlib.suppress(ImportError):
            from absl import logging as absl_logging

            absl_logging.set_verbosity(absl_logging.ERROR)
    return tf
