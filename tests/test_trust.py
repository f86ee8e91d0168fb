"""The region score, the session scale and the stamp of how an output was made (``livecam.trust``)."""

from __future__ import annotations

import io
import json

import cv2
import numpy as np
import pytest

from livecam.demo import make_scene
from livecam.errors import UserError
from livecam.trust.region import RegionBox, parse_box, region_fields, region_score, region_text
from livecam.trust.scale import SessionScale, check_normalize
from livecam.trust.stamp import made_with, png_text, png_with_text

# ------------------------------------------------------------------ the region box


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("40,30,120,90", RegionBox(40, 30, 120, 90, False)),
        ([0.25, 0.25, 0.5, 0.5], RegionBox(0.25, 0.25, 0.5, 0.5, True)),
        ("0, 0, 1, 1", RegionBox(0, 0, 1, 1, True)),  # all four in [0, 1]: fractions
        (None, None),
        ("", None),
    ],
)
def test_parse_box_reads_pixels_or_fractions(value, expected):
    assert parse_box(value) == expected


@pytest.mark.parametrize(
    "bad", ["1,2,3", "a,b,c,d", [1, 2, 3, 4, 5], [0, 0, 0, 5], [0, 0, -1, 5], [-1, 0, 5, 5], "nan,0,1,1", [True, 0, 1, 1], 7]
)
def test_parse_box_refuses_what_is_not_a_box_in_one_sentence(bad):
    with pytest.raises(UserError, match="Expected box"):
        parse_box(bad)


def test_box_pixels_scale_fractions_and_cut_to_the_frame():
    assert RegionBox(0.25, 0.5, 0.5, 0.5, True).pixels((200, 100)) == (50, 50, 100, 50)
    assert RegionBox(150, 80, 100, 100, False).pixels((200, 100)) == (150, 80, 50, 20)
    assert RegionBox(300, 0, 10, 10, False).pixels((200, 100))[2] == 0  # outside: empty


# ------------------------------------------------------------------ the region score


def test_energy_and_pointing_game_against_a_direct_sum():
    """A map whose heat is all in the top-left quarter: a box there holds it all, the opposite one none."""
    cam = np.zeros((8, 8), np.float32)
    cam[1:3, 1:3] = 1.0
    frame_wh = (160, 160)
    inside = region_score(cam, (0, 0, 1, 1), frame_wh, RegionBox(0, 0, 80, 80, False))
    outside = region_score(cam, (0, 0, 1, 1), frame_wh, RegionBox(80, 80, 80, 80, False))
    assert inside.energy == pytest.approx(1.0, abs=1e-3) and inside.peak_inside is True
    assert outside.energy == pytest.approx(0.0, abs=1e-3) and outside.peak_inside is False
    # The whole frame holds all the heat; half of a uniform map is half of it.
    assert region_score(
        np.ones((4, 4), np.float32), (0, 0, 1, 1), frame_wh, RegionBox(0, 0, 0.5, 1, True)
    ).energy == pytest.approx(0.5)


def test_energy_follows_where_the_map_lies_under_fit():
    """Under --fit crop the map covers the central square: a box on the frame's left band holds none of its heat."""
    cam = np.ones((4, 4), np.float32)
    crop = (0.125, 0.0, 0.875, 1.0)  # a 4:3 frame's central square
    band = region_score(cam, crop, (160, 120), RegionBox(0, 0, 20, 120, False))
    assert band.energy == 0.0 and band.peak_inside is False
    half = region_score(cam, crop, (160, 120), RegionBox(0, 0, 80, 120, False))
    assert half.energy == pytest.approx(0.5, abs=0.02)


def test_a_map_without_heat_scores_none():
    score = region_score(np.zeros((4, 4), np.float32), (0, 0, 1, 1), (64, 64), RegionBox(0, 0, 10, 10, False))
    assert score.energy is None and score.peak_inside is None
    assert region_text(score) == "in box: no heat"
    assert region_fields(score) == {"box_xywh": [0, 0, 10, 10], "box_energy": None, "box_peak_inside": None}
    assert region_fields(None) == {"box_xywh": None, "box_energy": None, "box_peak_inside": None}


def test_region_text_says_the_share_and_the_peak():
    cam = np.zeros((8, 8), np.float32)
    cam[2, 2] = 1.0
    score = region_score(cam, (0, 0, 1, 1), (80, 80), RegionBox(0, 0, 40, 40, False))
    assert region_text(score).startswith("in box: ") and region_text(score).endswith("of the heat, peak inside")


@pytest.fixture(scope="module")
def demo_engine():
    from livecam import CamEngine

    return CamEngine("demo", runtime="openvino")


def test_the_box_on_the_demo_object_holds_most_of_the_heat(demo_engine):
    """Held-out demo scenes with their known object boxes.

    A box drawn around the object (its tight box grown by a quarter on each side, as a person
    draws one) holds most of the heat and the peak; the tight box holds far more than its share
    of the area; the same box in the opposite corner holds almost none.
    """
    around, tight, share, elsewhere, peaks = [], [], [], [], []
    for seed in range(500_000, 500_020):
        frame, class_id, (x0, y0, x1, y1) = make_scene(seed)
        result = demo_engine(frame)
        if int(result.class_ids[0]) != class_id:
            continue  # a wrong answer says nothing about where the right one looks
        w, h = x1 - x0 + 1, y1 - y0 + 1

        def score(x, y, bw, bh, cam=result.cam[0], box=result.box):
            return region_score(cam, box, (224, 224), RegionBox(max(0, x), max(0, y), bw, bh, False))

        grown = score(x0 - w / 4, y0 - h / 4, 1.5 * w, 1.5 * h)
        around.append(grown.energy)
        peaks.append(grown.peak_inside)
        tight.append(score(x0, y0, w, h).energy)
        share.append(w * h / 224**2)
        elsewhere.append(score(0 if x0 + w / 2 > 112 else 224 - w, 0 if y0 + h / 2 > 112 else 224 - h, w, h).energy)
    assert len(around) >= 15
    assert np.median(around) > 0.7
    assert np.mean(peaks) > 0.8
    assert np.median(np.divide(tight, share)) > 3
    assert np.median(elsewhere) < 0.05


# ------------------------------------------------------------------ the session scale


def test_session_scale_shows_a_weak_map_as_weak_and_decays_with_its_half_life():
    scale = SessionScale(half_life_s=10.0)
    assert scale.factor(4.0, ("cat", "gradcam"), 0.0) == 1.0  # the first map sets the scale
    assert scale.factor(1.0, ("cat", "gradcam"), 0.0) == pytest.approx(0.25)  # a weak one looks weak
    assert scale.factor(1.0, ("cat", "gradcam"), 10.0) == pytest.approx(0.5)  # 10 s later the maximum is 2
    assert scale.factor(1.0, ("dog", "gradcam"), 10.0) == 1.0  # a new class starts afresh
    assert scale.factor(0.5, ("dog", "gradcam++"), 10.0) == 1.0  # and so does a new method
    assert scale.factor(0.0, ("dog", "gradcam++"), 10.0) == 0.0


def test_check_normalize_names_the_choices():
    assert check_normalize("session") == "session"
    with pytest.raises(UserError, match="Expected normalize in frame, session"):
        check_normalize("global")


# ------------------------------------------------------------------ the stamp


def test_made_with_says_version_model_weights_layer_method_scale_size_runtime(demo_engine):
    import livecam

    stamp = made_with(demo_engine, method="layercam", normalize="session")
    assert stamp["livecam"] == livecam.__version__ and stamp["model"] == "demo"
    assert stamp["layer"] == demo_engine.layer_name and stamp["method"] == "layercam" and stamp["normalize"] == "session"
    assert stamp["input_size"] == [96, 96] and stamp["runtime"] == "openvino"
    assert len(stamp["weights_sha256"]) == 64
    json.dumps(stamp)


def test_png_text_chunk_is_read_by_an_independent_decoder():
    from PIL import Image

    ok, data = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
    stamped = png_with_text(data.tobytes(), {"model": "demo", "name": "caf\u00e9"})
    image = Image.open(io.BytesIO(stamped))
    image.load()
    assert json.loads(image.text["livecam"]) == {"model": "demo", "name": "caf\u00e9"}
    assert json.loads(png_text(stamped)["livecam"])["model"] == "demo"
    assert cv2.imdecode(np.frombuffer(stamped, np.uint8), cv2.IMREAD_COLOR).shape == (8, 8, 3)


# ------------------------------------------------------------------ through the viewer's outputs


def test_box_and_session_scale_reach_results_stats_and_snapshot_records(tmp_path, capsys):
    """A run over demo scenes with --box on the first one's object: every output carries the readout and how it was made."""
    from helpers import DEMO_QUIET
    from livecam.cli import main

    folder = tmp_path / "in"
    folder.mkdir()
    frame, _, (x0, y0, x1, y1) = make_scene(500_003)
    cv2.imwrite(str(folder / "a.png"), frame)
    cv2.imwrite(str(folder / "b.png"), make_scene(500_004)[0])
    w, h = x1 - x0 + 1, y1 - y0 + 1
    box = f"{max(0, x0 - w // 4)},{max(0, y0 - h // 4)},{w * 3 // 2},{h * 3 // 2}"
    results, stats = tmp_path / "r.jsonl", tmp_path / "s.json"
    argv = ["--source", str(folder), *DEMO_QUIET, "--box", box, "--normalize", "session"]
    assert main([*argv, "--results", str(results), "--stats-json", str(stats)]) == 0, capsys.readouterr().err
    header, first, second = (json.loads(line) for line in results.read_text().splitlines())
    assert header["made_with"]["normalize"] == "session" and header["made_with"]["model"] == "demo"
    assert first["box_xywh"] == [int(v) for v in box.split(",")]
    assert first["box_energy"] > 0.5 and first["box_peak_inside"] is True
    assert isinstance(second["box_peak_inside"], bool) and 0 <= second["box_energy"] <= 1
    assert first["cam_max"] > 0
    made_with_stats = json.loads(stats.read_text())["made_with"]
    assert made_with_stats == header["made_with"]


def test_a_bad_box_is_one_sentence_and_exit_code_2(capsys):
    from livecam.cli import main

    assert main(["--demo", "--no-display", "--box", "1,2,3"]) == 2
    err = capsys.readouterr().err
    assert "Expected box as X,Y,W,H" in err and "Traceback" not in err


def test_a_right_drag_or_a_modified_drag_makes_a_box_and_a_click_does_not():
    from livecam.viewer.mouse import BoxDrag, frame_box

    drag = BoxDrag()
    drag.on_mouse(cv2.EVENT_RBUTTONDOWN, 50, 40, 0)
    drag.on_mouse(cv2.EVENT_MOUSEMOVE, 30, 30, cv2.EVENT_FLAG_RBUTTON)
    drag.on_mouse(cv2.EVENT_RBUTTONUP, 10, 20, 0)
    assert drag.take() == (10, 20, 40, 20) and drag.take() is None  # any direction; handed out once
    drag.on_mouse(cv2.EVENT_LBUTTONDOWN, 5, 5, 0)  # a plain left drag stays free
    drag.on_mouse(cv2.EVENT_LBUTTONUP, 50, 50, 0)
    assert drag.take() is None
    drag.on_mouse(cv2.EVENT_LBUTTONDOWN, 5, 5, cv2.EVENT_FLAG_SHIFTKEY)
    drag.on_mouse(cv2.EVENT_LBUTTONUP, 50, 50, cv2.EVENT_FLAG_SHIFTKEY)
    assert drag.take() == (5, 5, 45, 45)
    drag.on_mouse(cv2.EVENT_RBUTTONDOWN, 5, 5, 0)
    drag.on_mouse(cv2.EVENT_RBUTTONUP, 7, 6, 0)  # a click
    assert drag.take() is None
    assert frame_box((170, 10, 20, 20), (160, 120), side_by_side=True) == [10, 10, 20, 20]
    assert frame_box((170, 10, 20, 20), (320, 120), side_by_side=False) == [170, 10, 20, 20]


def test_the_box_and_its_readout_are_drawn_over_the_heat_whatever_the_hud():
    from livecam.render import Renderer

    frame = np.full((240, 320, 3), 60, np.uint8)
    cam = np.zeros((7, 7), np.float32)
    renderer = Renderer(hud="none", smooth=0)
    plain = renderer.views(frame, cam, None, window=False).file
    boxed = renderer.views(
        frame, cam, None, window=False, region=((100, 120, 80, 60), "in box: 78% of the heat, peak inside")
    ).file
    assert np.all(boxed[150, 100] > 200)  # the box's left edge, light, at mid height
    assert np.all(boxed[150, 140] == plain[150, 140])  # inside it, the picture as it was
    assert np.any(boxed[95:120, 100:300] != plain[95:120, 100:300])  # the readout above it


def video_comment(path) -> str:
    """The ``comment`` tag of a video, as ffmpeg's metadata dump reads it (an independent reader)."""
    import subprocess

    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "ffmetadata", "-"]
    dump = subprocess.run(cmd, capture_output=True, check=True, text=True).stdout
    return next(line.removeprefix("comment=") for line in dump.splitlines() if line.startswith("comment="))


def test_jpeg_comment_is_read_by_an_independent_decoder():
    from PIL import Image

    from livecam.trust.stamp import picture_with_stamp

    ok, data = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))
    stamped = picture_with_stamp(data.tobytes(), ".JPG", {"model": "demo", "name": "caf\u00e9"})
    assert json.loads(Image.open(io.BytesIO(stamped)).info["comment"]) == {"model": "demo", "name": "caf\u00e9"}
    assert cv2.imdecode(np.frombuffer(stamped, np.uint8), cv2.IMREAD_COLOR).shape == (8, 8, 3)
    assert picture_with_stamp(b"BM...", ".bmp", {"model": "demo"}) == b"BM..."  # a format with no text: as it was


@pytest.mark.slow
@pytest.mark.subprocess
def test_recordings_and_per_image_pictures_say_how_they_were_made(tmp_path, capsys):
    """-o out.mp4 carries made_with in the MP4's comment tag; -o DIR/ pictures in a PNG tEXt chunk or a JPEG comment."""
    from PIL import Image

    from helpers import DEMO_QUIET
    from livecam.cli import main

    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), make_scene(500_005)[0])
    cv2.imwrite(str(folder / "b.jpg"), make_scene(500_006)[0])
    argv = ["--source", str(folder), *DEMO_QUIET, "--method", "layercam", "--normalize", "session"]
    assert main([*argv, "-o", str(tmp_path / "out.mp4")]) == 0, capsys.readouterr().err
    stamp = json.loads(video_comment(tmp_path / "out.mp4"))
    assert stamp["model"] == "demo" and stamp["method"] == "layercam" and stamp["normalize"] == "session"
    assert len(stamp["weights_sha256"]) == 64

    assert main([*argv, "-o", f"{tmp_path / 'pictures'}/"]) == 0, capsys.readouterr().err
    png, jpeg = Image.open(tmp_path / "pictures" / "a.png"), Image.open(tmp_path / "pictures" / "b.jpg")
    png.load()
    assert json.loads(png.text["livecam"]) == stamp
    assert json.loads(jpeg.info["comment"]) == stamp


def test_a_recording_started_with_r_says_how_it_was_made_at_its_start(tmp_path):
    """The r key's writer takes the stamp when it starts: the method and scale the viewer has then."""
    from livecam.viewer.recording import writer_for

    source = type("Source", (), {"live": False, "variable_frame_rate": False, "fps": 10.0, "mixed_sizes": False})()
    state = {"method": "gradcam"}
    new_writer = writer_for(source, None, side_by_side=False, made_with=lambda: {"model": "demo", **state})
    state["method"] = "scorecam"
    writer = new_writer(tmp_path / "r.mp4")
    writer.write(np.zeros((32, 32, 3), np.uint8))
    writer.close()
    assert json.loads(video_comment(tmp_path / "r.mp4")) == {"model": "demo", "method": "scorecam"}
