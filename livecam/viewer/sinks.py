"""The sink contract, and snapshots.

The run's loop hands each processed frame (``Processed``: the frame, its map, its pictures and
HUD) to a list of sinks that share one contract, ``FrameSink``: the window front-end
(``livecam.viewer.window``), the recording (``livecam.viewer.recording``), the per-frame outputs
(``livecam.viewer.outputs``) and the statistics (``livecam.viewer.stats``). ``SnapshotWriter``
saves what a window shows (key s).

Whether a file may be written, and how it is written safely, is ``livecam.viewer.safe_files``;
the OpenCV window itself is ``livecam.viewer.cvwindow``. Their names are here too, where callers
have always found them.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import cv2
import numpy as np

from livecam.errors import UserError, check_bgr_image
from livecam.trust.stamp import png_with_text
from livecam.viewer.cvwindow import WindowSink, fit_to_screen, gui_available, screen_size
from livecam.viewer.safe_files import (
    KeepOut,
    SinkError,
    check_output,
    check_target,
    check_video_output,
    check_writable,
    free_name,
    open_replacing,
    remove_files,
    write_file_atomic,
)

if TYPE_CHECKING:
    from livecam.engine.core import CamResult
    from livecam.render import HudInfo
    from livecam.sources import Frame
    from livecam.trust.faithfulness import Faithfulness
    from livecam.trust.region import RegionScore

__all__ = [
    "FrameSink",
    "KeepOut",
    "Processed",
    "SinkError",
    "SnapshotWriter",
    "WindowSink",
    "check_output",
    "check_target",
    "check_video_output",
    "fit_to_screen",
    "free_name",
    "gui_available",
    "open_replacing",
    "remove_files",
    "screen_size",
    "write_file_atomic",
]


@dataclass(frozen=True)
class Processed:
    """One frame after the engine and the renderer: what every sink is given.

    Attributes:
        frame: the ``livecam.sources.Frame`` (its ``name`` is the image's file name, for folders).
        result: its one-row ``CamResult``, or None before the first map.
        picture: the annotated picture as recordings, snapshots and image outputs keep it (uint8 BGR).
        locked: True when the map was made for a class the user chose rather than the top one.
        source_time_s: the frame's time in its source (seconds; video: its time in the file).
        window_picture: the picture as a window shows it (HUD, key hints); None where no window asked.
        hud: what the HUD said; None before the first map.
        class_lock: the class the map was made for (None: the top one), whatever the lock is now.
        map_id: numbers the map; a map reused for ``--every`` frames keeps its number.
        scene: counts unrelated pictures (image folders): a new one restarts the smoothing.
        panels: side by side (``--compare``): each panel's one-row result (``result`` is the
            first); empty otherwise. The pictures are then the grid (``livecam.render.grid``).
        region: the map's score in the user's box (``livecam.trust.region``), None without a box.
        faith: the faithfulness readout that came with this frame (``livecam.trust``); None on most frames.
    """

    frame: Frame
    result: CamResult | None
    picture: np.ndarray
    locked: bool
    source_time_s: float | None
    window_picture: np.ndarray | None = None
    hud: HudInfo | None = None
    class_lock: int | None = None
    map_id: int = 0
    scene: int = 0
    panels: tuple[CamResult, ...] = ()
    region: RegionScore | None = None
    faith: Faithfulness | None = None

    @property
    def explains(self) -> tuple[str, int | None, int, int] | None:
        """What the map answers, for the renderer: a new method, locked class, contrast or picture restarts the smoothing."""
        if self.result is None:
            return None
        contrast = -1 if self.result.contrast_ids is None else int(self.result.contrast_ids[0])
        return (self.result.method, self.class_lock, self.scene, contrast)


class FrameSink(Protocol):
    """Where processed frames go: the window, the recording, the per-frame outputs, the statistics.

    The loop calls ``write`` for every frame, in order, from one thread, and ``close`` once at
    the end (``close`` is idempotent). A ``write`` that raises ``SinkError`` (a full disk) ends
    that sink: the loop closes it, says why, and goes on with the others.

    Attributes:
        keeps_output: whether the sink keeps something of the run now (a window, a recording
            under way, a file being written). A run without a window stops once a failure
            leaves no sink that does: it would work for nothing.
    """

    keeps_output: bool

    def write(self, processed: Processed) -> None: ...
    def close(self) -> None: ...


class SnapshotWriter:
    """Save what is on screen: raw frame, overlay, raw CAM map and a JSON record.

    Names are ``<prefix>-YYYYmmdd-HHMMSS-NNN-{raw.png,overlay.png,cam.npy,record.json}`` in
    local time; NNN counts up from 001 until no file of that name exists: nothing is ever
    overwritten.

    Args:
        folder: where to save; created if missing.
        prefix: start of every file name.

    Raises:
        UserError: the folder cannot be created or written to.
    """

    def __init__(self, folder: str | os.PathLike, *, prefix: str = "livecam"):
        self.folder = Path(folder).expanduser()
        self.prefix = prefix
        if self.folder.exists() and not self.folder.is_dir():
            raise UserError(f"{str(self.folder)!r} is a file, not a folder; choose a folder for the snapshots.")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UserError(
                f"Could not create the snapshot folder {str(self.folder)!r} ({error.strerror}); choose another folder."
            ) from error
        check_writable(self.folder)

    def save(self, raw_bgr: np.ndarray, overlay_bgr: np.ndarray, cam: np.ndarray | None, record: dict) -> list[Path]:
        """Write one snapshot.

        Args:
            raw_bgr: the camera frame, uint8 (height, width, 3).
            overlay_bgr: the frame with the heat map, uint8 (height, width, 3).
            cam: the raw map before colouring (any float array), or None to skip the .npy.
            record: what to remember, e.g. class, probability, layer, method. ``time`` (local,
                ISO 8601) is added unless given; ``files`` lists the other files' names.

        Returns:
            The paths written: raw, overlay, cam (if given), record.

        Raises:
            SinkError: the disk refused a file; none of this snapshot's files are left behind.
        """
        blobs = {
            "raw.png": _png(check_bgr_image(raw_bgr, "raw_bgr")),
            "overlay.png": _png(check_bgr_image(overlay_bgr, "overlay_bgr")),
        }
        if record.get("made_with") is not None:  # the overlay says how it was made (a tEXt chunk)
            blobs["overlay.png"] = png_with_text(blobs["overlay.png"], record["made_with"])
        if cam is not None:
            blobs["cam.npy"] = _npy(np.asarray(cam))
        now = _now()
        stamp = now.strftime("%Y%m%d-%H%M%S")
        record = {"time": now.isoformat(timespec="milliseconds"), **record}
        sequence = 1
        while True:
            stem = f"{self.prefix}-{stamp}-{sequence:03d}"
            paths = {kind: self.folder / f"{stem}-{kind}" for kind in [*blobs, "record.json"]}
            if not any(p.exists() for p in paths.values()):
                files = {kind.split(".")[0]: paths[kind].name for kind in blobs}
                blobs["record.json"] = json.dumps({**record, "files": files}, indent=2, default=_jsonable).encode()
                if self._write_all(paths, blobs):
                    return list(paths.values())
                del blobs["record.json"]
            sequence += 1

    def _write_all(self, paths: dict[str, Path], blobs: dict[str, bytes]) -> bool:
        written: list[Path] = []
        try:
            for kind, path in paths.items():
                with open(path, "xb") as file:  # "x": fail rather than overwrite, even in a race
                    written.append(path)
                    file.write(blobs[kind])
            return True
        except FileExistsError:
            remove_files(written)
            return False
        except OSError as error:
            remove_files(written)
            raise SinkError(f"Could not save the snapshot in {self.folder}: {error.strerror or error}.") from error


def _png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"Could not encode an image of shape {image.shape} as PNG.")
    return data.tobytes()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (Path, dt.datetime, dt.date)):
        return str(value)
    raise TypeError(f"Cannot store {type(value).__name__} in a snapshot record; use numbers, strings, lists or dicts.")


def _now() -> dt.datetime:
    return dt.datetime.now().astimezone()
