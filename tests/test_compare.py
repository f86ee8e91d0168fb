"""Side by side (--compare) and contrast (--contrast) in the viewer, its records and the wire protocol."""

from __future__ import annotations

import json

import numpy as np
import pytest

from livecam.cli import main
from livecam.engine.core import CamResult
from livecam.errors import UserError
from livecam.render.grid import draw_grid, grid_size, panel_titles
from livecam.serve import protocol
from livecam.viewer.control import Action, Controller, ViewerState

NAMES = ("cat", "dog", "fox", "owl")


def controller() -> Controller:
    return Controller(ViewerState(method="gradcam", alpha=0.4, colormap="jet"), class_names=NAMES)


def test_contrast_by_id_or_name_a_typo_gets_close_matches_and_null_clears():
    c = controller()
    outcome = c.apply(Action.SET_CONTRAST, "dog")
    assert c.state.contrast_id == 1 and outcome.reexplain and c.message() == "contrast: not dog"
    assert c.apply(Action.SET_CONTRAST, 3).changed and c.state.contrast_id == 3
    with pytest.raises(UserError, match="did you mean 'dog'"):
        c.apply(Action.SET_CONTRAST, "dgo")
    with pytest.raises(UserError, match=r"contrast in \[0, 3\]"):
        c.apply(Action.SET_CONTRAST, 9)
    assert c.apply(Action.SET_CONTRAST, None).reexplain and c.state.contrast_id is None


def test_compare_modes_and_off():
    c = controller()
    assert c.apply(Action.SET_COMPARE, "classes").reexplain and c.state.compare == "classes"
    assert c.apply(Action.SET_COMPARE, "off").changed and c.state.compare is None
    with pytest.raises(UserError, match="Did you mean 'methods'"):
        c.apply(Action.SET_COMPARE, "method")


def test_the_websocket_contrast_control_and_the_result_fields():
    c = controller()
    c.apply_all(protocol.commands(protocol.parse_controls('{"contrast": "fox", "class_id": 0}')))
    assert (c.state.contrast_id, c.state.class_id) == (2, 0)
    c.apply_all(protocol.commands(protocol.parse_controls('{"contrast": null}')))
    assert c.state.contrast_id is None
    row = _row(contrast=2)
    message = protocol.result_message(row, NAMES, seq=1, engine_ms=1.0, server_ms=2.0)
    assert (message["contrast_id"], message["contrast_name"]) == (2, "fox")
    plain = protocol.result_message(_row(), NAMES, seq=1, engine_ms=1.0, server_ms=2.0)
    assert (plain["contrast_id"], plain["contrast_name"]) == (None, None)


def _row(class_id: int = 0, method: str = "gradcam", contrast: int | None = None) -> CamResult:
    probs = np.float32([[0.1, 0.2, 0.3, 0.4]])
    cam = np.zeros((1, 4, 4), np.float32)
    cam[0, 1, 2] = 1.0
    return CamResult(
        probs=probs,
        class_ids=np.int64([class_id]),
        cam=cam,
        topk_ids=np.int64([[3, 2]]),
        topk_probs=np.float32([[0.4, 0.3]]),
        finite=np.array([True]),
        layer="target",
        method=method,
        contrast_ids=None if contrast is None else np.int64([contrast]),
    )


def test_the_grid_tiles_each_panel_at_its_size_and_titles_them():
    frame = np.full((120, 160, 3), 90, np.uint8)
    classes = [_row(3), _row(2), _row(1)]
    grid = draw_grid(frame, classes, NAMES, titles=panel_titles(classes))
    assert grid.shape == (120, 480, 3) == (*grid_size((160, 120), 3)[::-1], 3)
    assert panel_titles(classes) == ["top 1", "top 2", "top 3"]
    methods = [_row(method=m) for m in ("gradcam", "gradcam++", "layercam", "hirescam")]
    assert panel_titles(methods) == ["gradcam", "gradcam++", "layercam", "hirescam"]
    assert draw_grid(frame, methods, NAMES).shape == (240, 320, 3)
    # Each panel has its own map: the heat lies in the panel, not only in the first.
    assert all(np.abs(grid[:, i * 160 : (i + 1) * 160].astype(int) - 90).max() > 40 for i in range(3))
    assert grid_size((1280, 720), 3) == (1920, 360)  # wider than MAX_GRID_W: panels scaled down


@pytest.mark.slow
def test_compare_classes_records_the_grid_of_the_top_three_in_one_call_with_a_contrast(capsys, tmp_path, monkeypatch):
    import cv2

    from livecam.engine.core import CamEngine

    calls: list[tuple[list[int], object]] = []
    call = CamEngine.__call__

    def spy(self, frames, class_id=None, **kwargs):
        calls.append((list(np.asarray(class_id)), kwargs.get("contrast")))
        return call(self, frames, class_id, **kwargs)

    monkeypatch.setattr(CamEngine, "__call__", spy)
    out, results = tmp_path / "grid.mp4", tmp_path / "results.jsonl"
    args = ["--demo", "--no-display", "-o", out, "--max-frames", 4, "--compare", "classes", "--contrast", "square"]
    code = main([str(a) for a in [*args, "--results", results]])
    assert code == 0, capsys.readouterr().err
    capture = cv2.VideoCapture(str(out))
    ok, picture = capture.read()
    capture.release()
    assert ok and picture.shape == (480, 1920, 3)  # three 640x480 panels
    assert calls and all(ids == [-1, -2, -3] and list(contrast) == [1, 1, 1] for ids, contrast in calls)
    header, *lines = [json.loads(line) for line in results.read_text().splitlines()]
    assert set(header) == {"made_with"}
    assert {(line["contrast_id"], line["contrast_name"]) for line in lines} == {(1, "square")}


def test_a_contrast_typo_is_one_sentence_with_close_matches(capsys):
    code = main(["--demo", "--no-display", "-o", "/tmp/unused-livecam-contrast.mp4", "--contrast", "sqare"])
    err = capsys.readouterr().err
    assert code == 2 and "did you mean 'square'" in err and "Traceback" not in err
