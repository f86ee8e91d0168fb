"""The recording as a sink: writes each frame's picture while a recording is under way, starts
and stops one when the user asks (r), and says what became of it (saved, renamed, cut short by
a full disk). The video file itself is ``livecam.viewer.recorder.VideoWriter``."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from livecam.render.grid import grid_size
from livecam.sources import FrameSource
from livecam.viewer.control import MESSAGE_S, ViewerState
from livecam.viewer.recorder import VideoWriter
from livecam.viewer.safe_files import SinkError, free_name
from livecam.viewer.sinks import Processed
from livecam.viewer.stats import Stats

Say = Callable[[str, float], None]  # (text, seconds): a message on the picture


class Recorder(Protocol):
    """What a recording session needs of its writer (``VideoWriter`` is the real one).

    Attributes:
        path: the file asked for.
        saved_path: where the file went once closed (another name when another program took
            ``path`` meanwhile); None before, or when nothing was saved.
        frames_received: frames given to ``write`` so far.
    """

    path: Path
    saved_path: Path | None
    frames_received: int

    def write(self, frame_bgr: np.ndarray, timestamp_s: float | None = None) -> None: ...
    def close(self) -> None: ...
    def new_warnings(self) -> list[str]: ...


def recording_size(
    source: FrameSource, size: tuple[int, int] | None = None, *, side_by_side: bool = False, panels: int = 1
) -> tuple[int, int] | None:
    """The (width, height) to record ``source`` at: ``size`` (--size), else for a folder of mixed
    sizes the size it chose from its images; twice as wide side by side (raw | overlay); the
    grid's size for several panels (``--compare``, ``livecam.render.grid``).
    None: the first picture's size."""
    size = size or (source.size if source.mixed_sizes else None)
    if size is None:
        return None
    if panels > 1:
        return grid_size(size, panels)
    return (2 * size[0], size[1]) if side_by_side else size


def writer_for(
    source: FrameSource,
    size: tuple[int, int] | None,
    *,
    side_by_side: bool,
    panels: int = 1,
    made_with: Callable[[], dict[str, Any]] | None = None,
) -> Callable[[Path], Recorder]:
    """Makes the writer for a recording started with r: the source's rate and timing, at
    ``recording_size``; ``made_with()`` says how it is made when it starts (``livecam.trust.stamp``)."""

    def new_writer(path: Path) -> Recorder:
        live = source.live or source.variable_frame_rate  # the latter: keep the file's own timing
        size_wh = recording_size(source, size, side_by_side=side_by_side, panels=panels)
        stamp = made_with() if made_with is not None else None
        return VideoWriter(path, fps=source.fps or 30.0, size=size_wh, live=live, made_with=stamp)

    return new_writer


class RecordingSession:
    """A ``FrameSink``: the recording under way, if any, and its whole life.

    Writes from the render thread and toggles from the window's thread are serialised by a lock
    (the writer never blocks for long: it gives up on a stuck encoder).

    Args:
        recorder: a recording to write from the start, or None.
        state: the viewer's state; its ``recording`` flag follows the session.
        stats: where the recordings and the recording's error are listed.
        new_writer: makes the writer for a recording started with ``toggle``.
        output: where ``toggle`` records (a free name next to it); None: a dated name here.
        say: shows a message on the picture.
        log: prints one line.
    """

    def __init__(
        self,
        recorder: Recorder | None,
        *,
        state: ViewerState,
        stats: Stats,
        new_writer: Callable[[Path], Recorder],
        output: Path | None,
        say: Say,
        log: Callable[[str], None],
    ) -> None:
        self._recorder = recorder
        self._state = state
        self._stats = stats
        self._new_writer = new_writer
        self._output = output
        self._say = say
        self._log = log
        self._lock = threading.Lock()
        if recorder is not None:
            stats.recordings.append(str(recorder.path))

    @property
    def keeps_output(self) -> bool:
        return self._recorder is not None

    def write(self, processed: Processed) -> None:
        media_time_s = processed.frame.media_time_s
        with self._lock:
            if self._recorder is None:
                return
            try:
                self._recorder.write(processed.picture, processed.frame.timestamp_s if media_time_s is None else media_time_s)
            except SinkError as exc:
                recorder, self._recorder = self._recorder, None
                with contextlib.suppress(SinkError):  # keeps the file playable; the first error is the one reported
                    recorder.close()
                self._notes(recorder)
                self._failed(exc)
            else:
                self._notes(self._recorder)

    def toggle(self) -> None:
        """Stops the recording under way, or starts one (the r key)."""
        with self._lock:
            if self._recorder is not None:
                self._stop()
            else:
                self._start()

    def close(self) -> None:
        with self._lock:
            recorder, self._recorder = self._recorder, None
            if recorder is None:
                return
            try:
                recorder.close()
            except SinkError as exc:  # what the file keeps is in the message
                self._failed(exc)
            finally:
                self._notes(recorder)
                self._state.recording = False
            if recorder.frames_received == 0:
                self._log(f"livecam: no frame was recorded, so {recorder.path} was not written")

    def _stop(self) -> None:
        recorder, self._recorder = self._recorder, None
        try:
            recorder.close()
        except SinkError as exc:
            self._failed(exc)
            return
        finally:
            self._notes(recorder)
        self._state.recording = False
        if recorder.frames_received == 0:
            text = f"recording stopped before its first frame; {recorder.path} was not written"
        else:
            text = f"recording saved: {Path(recorder.saved_path or recorder.path).resolve()}"
        self._tell(text)

    def _start(self) -> None:
        path = free_name(self._output or Path(f"livecam-{datetime.now():%Y%m%d-%H%M%S}.mp4"))
        try:
            self._recorder = self._new_writer(path)
        except ValueError as exc:
            self._tell(f"cannot record: {exc}", seconds=10)
            return
        self._stats.recordings.append(str(path))
        self._state.recording = True
        self._say(f"recording to {path}", MESSAGE_S)
        self._log(f"livecam: recording to {path.resolve()}")

    def _tell(self, text: str, seconds: float = MESSAGE_S) -> None:
        self._say(text, seconds)
        self._log(f"livecam: {text}")

    def _notes(self, recorder: Recorder) -> None:
        """Says once what the writer noticed (a size scaled down, a file saved under another name)."""
        for note in recorder.new_warnings():
            self._log(f"livecam: {note}")
        recordings, name = self._stats.recordings, str(recorder.path)
        if name not in recordings:
            return
        if recorder.frames_received == 0:  # closed before its first frame: no file was made
            recordings.remove(name)
        elif recorder.saved_path is not None and recorder.saved_path != recorder.path:
            recordings[recordings.index(name)] = str(recorder.saved_path)

    def _failed(self, exc: SinkError) -> None:
        self._state.recording = False
        self._stats.recording_error = str(exc)
        self._say(f"recording stopped: {exc}", 10.0)
        self._log(f"livecam: recording stopped: {exc}")
