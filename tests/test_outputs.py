"""Tests for livecam.viewer.outputs: --results lines, --save-maps files, one picture per input image; full disks under them."""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import re
from types import SimpleNamespace

import numpy as np
import pytest

from helpers import DEMO_QUIET
from livecam.cli import main
from livecam.errors import UserError
from livecam.sources import Frame
from livecam.viewer import outputs
from livecam.viewer import stats as run_stats
from livecam.viewer.outputs import RESULT_FIELDS, ImageFolderWriter, MapWriter, Processed, ResultsWriter, check_output_folder

NAMES = ["cat", "dog", "fox", "owl"]


def row(cam: np.ndarray, class_id: int = 1, finite: bool = True):
    """A one-row result, made by hand."""
    probs = np.array([[0.1, 0.6, 0.2, 0.1]], np.float32)
    return SimpleNamespace(
        probs=probs,
        class_ids=np.array([class_id]),
        cam=cam[None].astype(np.float32),
        topk_ids=np.array([[1, 2, 0]]),
        topk_probs=np.array([[0.6, 0.2, 0.1]], np.float32),
        finite=np.array([finite]),
        layer="conv",
        method="gradcam",
    )


def processed(index: int, cam: np.ndarray | None = None, name: str | None = None, **kwargs) -> Processed:
    image = np.full((120, 160, 3), index, np.uint8)
    cam = np.zeros((3, 4), np.float32) if cam is None else cam
    result = kwargs.pop("result", row(cam))
    return Processed(
        Frame(image, index, 100.0 + index, name=name), result, image, kwargs.pop("locked", False), kwargs.pop("time", 0.5 * index)
    )


def hot_cam(row_: int, col: int) -> np.ndarray:
    cam = np.full((3, 4), 0.2, np.float32)
    cam[row_, col] = 1.0
    return cam


def test_jsonl_lines_carry_the_frame_topk_and_hottest_point(tmp_path):
    path = tmp_path / "results.jsonl"
    with ResultsWriter(path, class_names=NAMES, source="clip.mp4") as writer:
        writer.write(processed(0, hot_cam(2, 3)))
        writer.write(processed(1, hot_cam(0, 0), locked=True))
        writer.write(processed(2, result=None))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [list(line) for line in lines] == [list(RESULT_FIELDS)] * 3
    first = lines[0]
    assert first["frame_index"] == 0 and first["source"] == "clip.mp4" and first["source_time_s"] == 0.0
    assert (first["class_id"], first["class_name"], first["probability"]) == (1, "dog", pytest.approx(0.6))
    assert (first["topk_ids"], first["topk_names"]) == ([1, 2, 0], ["dog", "fox", "cat"])
    assert first["topk_probs"] == pytest.approx([0.6, 0.2, 0.1])
    assert (first["method"], first["layer"], first["locked"], first["finite"]) == ("gradcam", "conv", False, True)
    # The hottest cell (row 2, col 3 of a 3x4 map) has its centre at (3.5/4 * 160, 2.5/3 * 120) in the frame.
    assert (first["hot_x"], first["hot_y"], first["hot_value"]) == (140, 100, 1.0)
    assert (lines[1]["hot_x"], lines[1]["hot_y"], lines[1]["locked"]) == (20, 20, True)
    assert lines[2]["class_id"] is None and lines[2]["frame_index"] == 2  # before the first map


def test_csv_has_a_header_and_lists_as_json(tmp_path):
    path = tmp_path / "results.csv"
    names = ["cat", "semi;colon", 'a "quoted", name', "owl"]  # nothing a class name holds splits its list
    with ResultsWriter(path, class_names=names, source="camera 0") as writer:
        writer.write(processed(0, hot_cam(1, 1), name="a.png"))
    rows = list(csv.DictReader(path.open(newline="")))
    assert list(rows[0]) == list(RESULT_FIELDS)
    assert rows[0]["source"] == "a.png" and rows[0]["class_name"] == "semi;colon"
    assert json.loads(rows[0]["topk_names"]) == ["semi;colon", 'a "quoted", name', "cat"]
    assert json.loads(rows[0]["topk_ids"]) == [1, 2, 0] and json.loads(rows[0]["topk_probs"]) == pytest.approx([0.6, 0.2, 0.1])
    assert (rows[0]["hot_x"], rows[0]["hot_y"]) == ("60", "60")


def test_each_line_is_on_disk_as_soon_as_it_is_written(tmp_path):
    path = tmp_path / "results.jsonl"
    writer = ResultsWriter(path, class_names=NAMES, source="x")
    writer.write(processed(0))
    writer.write(processed(1))
    assert len(path.read_text().splitlines()) == 2  # read by another reader before close: a killed run keeps them
    writer.close()


def test_a_non_finite_map_has_no_hottest_point(tmp_path):
    path = tmp_path / "results.jsonl"
    with ResultsWriter(path, class_names=NAMES, source="x") as writer:
        writer.write(processed(0, result=row(np.zeros((3, 4)), finite=False)))
    line = json.loads(path.read_text())
    assert line["finite"] is False and line["hot_x"] is None and line["hot_value"] is None


@pytest.mark.parametrize(
    "name, match", [("r.txt", r"Expected --results to end in \.jsonl or \.csv"), ("missing/r.csv", "does not exist")]
)
def test_results_paths_are_checked(tmp_path, name, match):
    with pytest.raises(UserError, match=match):
        ResultsWriter(tmp_path / name, class_names=NAMES, source="x")


def test_results_never_replace_a_file_without_overwrite(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text("keep\n")
    with pytest.raises(UserError, match="already exists; pass --overwrite"):
        ResultsWriter(path, class_names=NAMES, source="x")
    assert path.read_text() == "keep\n"
    ResultsWriter(path, class_names=NAMES, source="x", overwrite=True).close()
    assert path.read_text() == ""


def test_maps_are_float32_at_layer_resolution_named_after_the_input(tmp_path):
    folder = tmp_path / "maps"
    cam = hot_cam(1, 2)
    with MapWriter(folder) as writer:
        writer.write(processed(0, cam, name="first.png"))
        writer.write(processed(7, cam))
        writer.write(processed(8, result=row(cam, finite=False)))  # no map: nothing saved
        writer.write(processed(9, cam, name="first.png"))  # the same name again (--loop): the index keeps it apart
    assert sorted(p.name for p in folder.iterdir()) == ["first-9.npy", "first.npy", "frame-000007.npy"]
    saved = np.load(folder / "first.npy")
    assert saved.dtype == np.float32 and saved.shape == (3, 4)
    np.testing.assert_array_equal(saved, cam)
    assert writer.saved == 3


def test_one_picture_per_input_under_its_name(tmp_path):
    folder = tmp_path / "out"
    with ImageFolderWriter(folder) as writer:
        writer.write(processed(5, name="a.png"))
        writer.write(processed(6, name="b.jpg"))
    assert sorted(p.name for p in folder.iterdir()) == ["a.png", "b.jpg"]
    import cv2

    np.testing.assert_array_equal(cv2.imread(str(folder / "a.png")), np.full((120, 160, 3), 5, np.uint8))


def test_output_folders_are_created_and_must_be_empty_unless_overwrite(tmp_path):
    assert check_output_folder(tmp_path / "new" / "maps", "--save-maps").is_dir()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.npy").write_bytes(b"")
    with pytest.raises(UserError, match=r"The --save-maps folder .* already has files; pass --overwrite"):
        MapWriter(tmp_path / "full")
    MapWriter(tmp_path / "full", overwrite=True)
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match=r"-o .* is a file; give a folder"):
        ImageFolderWriter(tmp_path / "file")


# ---------------------------------------------------------------------- full disks and names that are not UTF-8


class FullDisk(io.FileIO):
    """A file on a disk that fills up after ``room`` bytes: the write that crosses it is cut short, the next fails."""

    def __init__(self, file: io.FileIO, room: int):
        super().__init__(os.dup(file.fileno()), "wb")
        file.close()
        self.room = room

    def write(self, data) -> int:
        if self.room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        taken = super().write(bytes(data)[: self.room])
        self.room -= taken
        return taken


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_a_full_disk_under_results_ends_on_a_whole_line_and_the_rest_goes_on(
    tmp_path, make_image_folder, monkeypatch, capsys, suffix
):
    images = make_image_folder(tmp_path / "in", 8)
    results = tmp_path / f"r{suffix}"
    real_open = outputs.open_replacing
    monkeypatch.setattr(outputs, "open_replacing", lambda path: FullDisk(real_open(path), room=1000))
    argv = ["--source", str(images), *DEMO_QUIET, "--results", str(results), "-o", str(tmp_path / "out") + "/"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    kept = int(re.search(r"it keeps (\d+) whole lines", err).group(1))
    assert (
        err.startswith(f"livecam: Stopped writing the results to {results} (No space left on device)") and err.count("\n") == 1
    ), err
    text = results.read_text()
    assert text.endswith("\n") and len(text) <= 1000
    lines = text.splitlines()[1:]  # the CSV's column names, the JSON Lines' header (made_with)
    assert 0 < len(lines) == kept < 8
    assert len(list((tmp_path / "out").iterdir())) == 8, "the other outputs went on to the end"


def test_a_full_disk_under_per_frame_files_and_stats_is_one_sentence_each(tmp_path, make_image_folder, monkeypatch, capsys):
    images = make_image_folder(tmp_path / "in", 6)
    real_write = outputs.write_file_atomic
    written = []

    def fills_up(path, data):
        if len(written) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write(path, data)
        written.append(path)

    monkeypatch.setattr(outputs, "write_file_atomic", fills_up)
    monkeypatch.setattr(run_stats, "write_file_atomic", lambda path, data: fills_up(path, data))
    results = tmp_path / "r.jsonl"
    argv = [
        "--source",
        str(images),
        *DEMO_QUIET,
        "--save-maps",
        str(tmp_path / "maps"),
        "--results",
        str(results),
        "--stats-json",
        str(tmp_path / "s.json"),
    ]
    assert main(argv) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "livecam: Stopped writing --save-maps maps: frame_3.npy could not be written (No space left on device); the 2 saved "
        "before are whole. Free some space or choose a folder on another disk.",
        f"livecam: Could not write the statistics to {tmp_path / 's.json'} (No space left on device).",
    ]
    assert len(results.read_text().splitlines()) == 1 + 6  # the header, then every frame
    assert sorted(p.name for p in (tmp_path / "maps").iterdir()) == ["frame_1.npy", "frame_2.npy"]


def test_file_names_that_are_not_utf8_are_written_losslessly(tmp_path, make_image_folder, capsys):
    images = make_image_folder(tmp_path / "in", 6)
    bad = os.fsdecode(b"bad\xff\xfe.png")
    os.rename(images / "frame_3.png", images / bad)
    jsonl, csv_path, out = tmp_path / "r.jsonl", tmp_path / "r.csv", tmp_path / "out"
    for results in (jsonl, csv_path):
        assert (
            main(
                [
                    "--source",
                    str(images),
                    "--model",
                    "demo",
                    "--no-display",
                    "--results",
                    str(results),
                    "-o",
                    f"{out}/",
                    "--overwrite",
                ]
            )
            == 0
        )
        err = capsys.readouterr().err
        assert "Traceback" not in err and "unexpected" not in err, err
    sources = [json.loads(line)["source"] for line in jsonl.read_text(encoding="utf-8").splitlines()[1:]]  # after the header
    assert len(sources) == 6 and os.fsencode(bad) in [os.fsencode(s) for s in sources]
    assert '"bad\\udcff\\udcfe.png"' in jsonl.read_text(encoding="utf-8"), "JSON's own escapes: the file stays UTF-8"
    rows = csv_path.read_text(encoding="utf-8").splitlines()
    assert len(rows) == 1 + 6 and any(row.split(",")[2] == "bad\\udcff\\udcfe.png" for row in rows)
    assert os.fsencode(bad) in os.listdir(os.fsencode(out))
