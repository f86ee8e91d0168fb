"""The window front-end: a sink that shows each processed frame, and the display loop that turns
the window's keys into commands for this viewer's ``Controller`` and carries out their effects
(snapshots, recordings, full screen, stepping through an image folder, redrawing a frozen frame).

It runs on the main thread (OpenCV's windows must); the loop's render thread hands it frames
through a latest-wins mailbox. The OpenCV window itself is ``livecam.viewer.cvwindow.WindowSink``.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from livecam.engine.compare import contrast_fields
from livecam.mailbox import Mailbox
from livecam.sources import Frame
from livecam.trust.faithfulness import faith_fields
from livecam.trust.region import region_fields
from livecam.viewer.control import MESSAGE_S, Action, Command, Controller, Outcome
from livecam.viewer.keys import action_for_key
from livecam.viewer.mouse import frame_box
from livecam.viewer.outputs import cam_max_of
from livecam.viewer.recording import RecordingSession
from livecam.viewer.safe_files import SinkError
from livecam.viewer.sinks import Processed, SnapshotWriter

_POLL_S = 0.05  # how long the display waits for a frame before it looks at the keys and the run again
_HISTORY = 64  # image folders: how many pictures p / Left can go back


class Window(Protocol):
    """What the front-end needs of a window (``WindowSink`` is the real one; tests fake it)."""

    @property
    def closed(self) -> bool: ...
    @property
    def fullscreen(self) -> bool: ...
    def show(self, image_bgr: np.ndarray) -> int: ...
    def poll(self, wait_ms: int = 1) -> int: ...
    def set_fullscreen(self, on: bool) -> None: ...
    def close(self) -> None: ...


class Viewer(Protocol):
    """What the front-end asks of the run's loop (``livecam.viewer.pipeline.Pipeline``)."""

    controller: Controller

    def stopping(self) -> bool: ...
    def reconnecting(self) -> bool: ...
    def delivered(self, frame: Frame) -> None: ...
    def redraw(self, processed: Processed, *, reexplain: bool = False, file: bool = True) -> Processed: ...


class WindowFrontEnd:
    """A ``FrameSink`` that shows frames in a window, and the window's display loop (``run``).

    Args:
        window: the window (``WindowSink``).
        controller: this viewer's controller; the window's keys become its commands.
        recording: the run's recording, started and stopped by r.
        snapshots: where s saves.
        class_names, model_name: for the snapshots' records.
        made_with: how the run's pictures are made (``livecam.trust.stamp``), for the snapshots.
        every_frame: show every frame (files): ``write`` waits for the display to take the one
            before; else (live) the newest frame wins.
        step_images: each picture stays until n / Right (or ``delay_s``); p / Left goes back.
        delay_s: with ``step_images``, go on to the next picture after this long.
        log: prints one line.
    """

    keeps_output = True  # a window keeps the run going, whatever else fails
    draws_window = True  # the loop draws the window's picture for it

    def __init__(
        self,
        window: Window,
        *,
        controller: Controller,
        recording: RecordingSession,
        snapshots: SnapshotWriter,
        class_names: Sequence[str],
        model_name: str,
        every_frame: bool,
        made_with: dict[str, Any] | None = None,
        step_images: bool = False,
        delay_s: float | None = None,
        log: Callable[[str], None],
    ) -> None:
        self.window = window
        self.controller = controller
        self._recording = recording
        self._snapshots = snapshots
        self._class_names = class_names
        self._model_name = model_name
        self._made_with = made_with
        self._every_frame = every_frame
        self._stepping = step_images
        self._delay_s = delay_s
        self._log = log
        self._shown: Mailbox[Processed] = Mailbox()  # render stage -> display; closed at the end

    def write(self, processed: Processed) -> None:
        """Hands a frame to the display (from the render thread)."""
        if self._every_frame:  # wait for the display to take the one before (end() stops the wait)
            while not self._shown.wait_empty(_POLL_S):
                pass
        self._shown.put(processed)

    def end(self) -> None:
        """No more frames: the display shows what is left, then ``run`` returns."""
        self._shown.close()

    def close(self) -> None:
        self._shown.close()
        self.window.close()

    def run(self, viewer: Viewer) -> None:
        """Shows frames and carries out keys until the input is all shown, the user quits or closes the window, or the run stops."""
        state = self.controller.state
        current: Processed | None = None
        redraw = False  # the frozen frame was drawn again (or another one brought back) and is yet to be shown
        holding, shown_at = False, 0.0
        resumed_s = -math.inf  # when the last pause ended
        back: collections.deque[Processed] = collections.deque(maxlen=_HISTORY)
        ahead: list[Processed] = []
        while not viewer.stopping():
            paused = state.paused
            frozen = paused or holding
            processed = self._shown.get(timeout_s=_POLL_S) if not frozen else None
            if processed is not None and not self._every_frame and processed.frame.timestamp_s < resumed_s:
                processed = None  # captured before the pause ended: stale, it would carry the pause as latency
            if processed is not None:
                if current is not None and self._stepping:
                    back.append(current)
                current, image = processed, processed.window_picture
                viewer.delivered(processed.frame)
                holding, shown_at = self._stepping, time.monotonic()
            elif current is not None and frozen:
                image = current.window_picture if redraw else None  # else it stays on screen; poll() waits for keys
                redraw = False
            elif self._shown.closed:
                break  # the end of input, all of it shown
            elif current is not None and viewer.reconnecting():
                image = viewer.redraw(current, file=False).window_picture  # the last frame, with "reconnecting" on the HUD
            else:
                image = None
            if image is not None:
                key = self.window.show(image)
            else:  # nothing new: wait for keys a little, so that a frozen window does not spin
                key = self.window.poll(30) if frozen else self.window.poll()
            if self.window.closed:
                break
            command = action_for_key(key)
            drawn = self._drawn_box(current)
            if drawn is not None:  # a box drawn with the mouse: a command like a key's
                command = Command(Action.SET_BOX, drawn)
            outcome = self._apply(command.action, command.arg, current)
            if paused and not state.paused:
                resumed_s = time.monotonic()
            if outcome.effect is Action.QUIT:
                break
            due = holding and not paused and self._delay_s is not None and time.monotonic() - shown_at >= self._delay_s
            if self._stepping and current is not None and (outcome.effect is Action.NEXT_IMAGE or due):
                if ahead:  # forward again through pictures gone back over
                    back.append(current)
                    current, redraw, shown_at = ahead.pop(), True, time.monotonic()
                else:
                    holding = False  # take the next picture from the pipeline
            elif self._stepping and outcome.effect is Action.PREV_IMAGE and back and current is not None:
                ahead.append(current)
                current, redraw, holding, shown_at = back.pop(), True, True, time.monotonic()
            if current is not None and frozen and outcome.redraw:
                current, redraw = viewer.redraw(current, reexplain=outcome.reexplain), True

    def _drawn_box(self, current: Processed | None) -> list[int] | None:
        """The box the user just drew on the picture, in the frame's pixels (``livecam.viewer.mouse``); or None."""
        take = getattr(self.window, "take_box", None)  # a window without a mouse draws none
        box = take() if take is not None else None
        if box is None or current is None:
            return None
        image = current.frame.image_bgr
        side_by_side = current.window_picture is not None and current.window_picture.shape[1] == 2 * image.shape[1]
        return frame_box(box, image.shape[1::-1], side_by_side)

    def _apply(self, action: Action, arg: Any, current: Processed | None) -> Outcome:
        """Applies a command from the window and carries out its effect (full screen, snapshot, recording)."""
        result = current.result if current is not None else None
        outcome = self.controller.apply(action, arg, topk_ids=result.topk_ids[0] if result is not None else ())
        if outcome.action is Action.FULLSCREEN and outcome.changed:
            self.window.set_fullscreen(self.controller.state.fullscreen)
        if outcome.effect is Action.SNAPSHOT and current is not None:
            self._snapshot(current)
        elif outcome.effect is Action.RECORD:
            self._recording.toggle()
        return outcome

    def _snapshot(self, processed: Processed) -> None:
        result = processed.result
        made_with = None if self._made_with is None else {**self._made_with, "normalize": self.controller.state.normalize}
        record = snapshot_record(processed, self._class_names, self._model_name, made_with)
        try:
            paths = self._snapshots.save(
                processed.frame.image_bgr, processed.picture, result.cam[0] if result is not None else None, record
            )
        except (SinkError, OSError) as exc:
            self._tell(f"snapshot failed: {exc}", f"snapshot failed: {exc}", seconds=10)
            return
        self._tell(
            f"snapshot saved: {paths[0].name if paths else ''}",
            f"snapshot saved: {', '.join(str(Path(p).resolve()) for p in paths)}",
        )

    def _tell(self, on_picture: str, in_log: str, seconds: float = MESSAGE_S) -> None:
        self.controller.say(on_picture, seconds)
        self._log(f"livecam: {in_log}")


def snapshot_record(
    processed: Processed, class_names: Sequence[str], model_name: str, made_with: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The JSON record of a snapshot: the frame, the class its map was made for (its own lock, not
    the lock now), its raw maximum, the region score in the user's box, and how it was made
    (``made_with``, ``livecam.trust.stamp``: its method is the snapshot's own)."""
    record: dict[str, Any] = {"time": datetime.now().isoformat(timespec="milliseconds"), "frame_index": processed.frame.index}
    result = processed.result
    if result is not None:
        class_id = int(result.class_ids[0])
        record.update(
            class_id=class_id,
            class_name=class_names[class_id],
            probability=float(result.probs[0, class_id]),
            locked=processed.locked,
            layer=result.layer,
            method=result.method,
            model=model_name,
            **contrast_fields(result, class_names),
            cam_max=cam_max_of(result),
            **region_fields(processed.region),
        )
        if processed.panels:  # side by side: what each panel of the picture shows
            record["panels"] = [
                {"class_id": int(row.class_ids[0]), "class_name": class_names[int(row.class_ids[0])],
                 "probability": float(row.probs[0, int(row.class_ids[0])]), "method": row.method}
                for row in processed.panels
            ]  # fmt: skip
        if made_with is not None:
            record["made_with"] = {**made_with, "method": result.method}
    record.update(faith_fields(processed.faith))
    return record
