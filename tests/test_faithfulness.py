"""livecam.trust: the live faithfulness readout (hide the heat, and a control) and the offline curves."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from fakes import FakeSource, KeepPictures
from livecam.engine.worker import EngineWorker, split_rows
from livecam.render import Renderer, hud_info
from livecam.trust.curves import centre_map, curve_images, curve_scores
from livecam.trust.faithfulness import FIELDS, Faithfulness, Means, Schedule, answered, faith_fields, hidden_pair, probe
from livecam.trust.hiding import strong_blur
from livecam.viewer.outputs import RESULT_FIELDS, result_record
from livecam.viewer.pipeline import Options, Pipeline
from livecam.viewer.stats import Stats as RunStats
from livecam.viewer.stats import StatsSink

# ---------------------------------------------------------------------- the hidden pictures


def test_the_hottest_and_the_coldest_fifth_are_blurred_away_and_nothing_else():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    cam = np.linspace(0, 1, 7 * 7, dtype=np.float32).reshape(7, 7)  # hottest at the bottom right
    before = image.copy()
    hot, cold = hidden_pair(image, cam)
    np.testing.assert_array_equal(image, before)  # the frame is not modified
    blurred = strong_blur(image)
    for hidden in (hot, cold):
        changed = np.any(hidden != image, axis=2)
        assert changed.sum() <= 0.2 * 40 * 50 and changed.sum() > 0.18 * 40 * 50
        np.testing.assert_array_equal(hidden[changed], blurred[changed])  # a blur of the frame, not black
    assert np.any(hot != image, axis=2)[-1, -1] and not np.any(hot != image, axis=2)[0, 0]
    assert np.any(cold != image, axis=2)[0, 0] and not np.any(cold != image, axis=2)[-1, -1]


def test_the_hud_line_gives_the_change_in_percentage_points():
    readout = Faithfulness(frame=7, class_id=1, shown=0.97, hot_hidden=0.08, cold_hidden=0.95)
    assert readout.text == "hide the heat: -89 % (control -2 %)"
    assert Faithfulness(0, 0, 0.5, 0.5, 0.6).text == "hide the heat: 0 % (control +10 %)"


def test_result_fields_are_null_where_not_computed_and_the_numbers_where_they_are():
    assert faith_fields(None) == dict.fromkeys(FIELDS)
    fields = faith_fields(Faithfulness(frame=7, class_id=1, shown=0.97, hot_hidden=0.08, cold_hidden=0.95))
    assert fields["faith_shown"] == 0.97 and fields["faith_hot_hidden"] == 0.08 and fields["faith_frame"] == 7
    assert fields["faith_deletion_auc"] is None
    assert set(FIELDS) <= set(RESULT_FIELDS)


def test_run_means_of_the_readouts():
    means = Means()
    assert means.summary() == {}
    means.add(Faithfulness(1, 0, 0.9, 0.1, 0.8))
    means.add(Faithfulness(2, 0, 0.7, 0.3, 0.6))
    summary = means.summary()
    assert summary["readouts"] == 2 and summary["faith_shown"] == pytest.approx(0.8)
    assert summary["faith_hot_hidden"] == pytest.approx(0.2) and "faith_frame" not in summary


def test_every_nth_explained_frame_is_probed_and_a_non_finite_map_never():
    schedule = Schedule(3)
    image = np.zeros((32, 32, 3), np.uint8)

    class Row:
        finite = np.array([True])
        class_ids = np.array([1])
        cam = np.ones((1, 4, 4), np.float32)
        probs = np.array([[0.2, 0.8]], np.float32)

    probes = [schedule.after(image, Row, frame) for frame in range(7)]
    assert [p is not None for p in probes] == [True, False, False, True, False, False, True]
    assert probes[3].frame == 3 and probes[3].class_id == 1 and probes[3].shown == pytest.approx(0.8)
    Row.finite = np.array([False])
    assert Schedule(1).after(image, Row, 0) is None
    assert all(Schedule(0).after(image, Row, i) is None for i in range(3))


# ---------------------------------------------------------------------- the offline curves


def test_curve_areas_and_average_drop_from_known_probabilities():
    steps = 4
    deletion = [0.6, 0.3, 0.1, 0.0]  # after steps 1..4 (step 0 is the picture: 0.8)
    insertion = [0.0, 0.2, 0.5, 0.7]  # after steps 0..3 (step 4 is the picture)
    scores = curve_scores(0.8, np.array([*deletion, *insertion, 0.6]), steps)
    assert scores.deletion_auc == pytest.approx(np.trapezoid([0.8, *deletion], dx=0.25))
    assert scores.insertion_auc == pytest.approx(np.trapezoid([*insertion, 0.8], dx=0.25))
    assert scores.drop == pytest.approx(0.25) and scores.increase is False
    assert curve_scores(0.5, np.array([0.0] * 8 + [0.6]), steps).increase is True


def test_curve_images_hide_more_and_restore_more_at_each_step():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    images = curve_images(image, centre_map((4, 4)), steps=4)
    assert images.shape == (9, 32, 32, 3) and images.dtype == np.uint8
    changed = np.any(images != image, axis=3).sum(axis=(1, 2))
    assert list(changed[:4]) == sorted(changed[:4]) and changed[3] > 0.9 * 32 * 32  # deletion: more each step
    assert list(changed[4:8]) == sorted(changed[4:8], reverse=True)  # insertion: fewer each step


# ---------------------------------------------------------------------- on the demo model's scenes


@pytest.fixture(scope="module")
def demo_engine():
    from livecam import CamEngine

    return CamEngine("demo")


@pytest.mark.slow
def test_on_demo_scenes_hiding_the_heat_drops_the_probability_far_more_than_hiding_the_cold(demo_engine):
    from livecam.demo import make_scene

    scenes = [make_scene(seed) for seed in range(500_000, 500_012)]
    frames = np.stack([frame for frame, _, _ in scenes])
    result = demo_engine(frames, class_id=np.array([c for _, c, _ in scenes]))
    hot_drops, cold_drops, hot_on_object, object_share = [], [], [], []
    for i, row in enumerate(split_rows(result)):
        p = probe(frames[i], row, i, steps=8)
        readout = answered(p, split_rows(demo_engine(p.images, class_id=p.class_id)))
        hot_drops.append(readout.shown - readout.hot_hidden)
        cold_drops.append(readout.shown - readout.cold_hidden)
        x0, y0, x1, y1 = scenes[i][2]  # the object's known box: the hidden heat lies on it
        hidden = np.any(p.images[0] != frames[i], axis=2)
        hot_on_object.append(hidden[y0 : y1 + 1, x0 : x1 + 1].sum() / hidden.sum())
        object_share.append((x1 + 1 - x0) * (y1 + 1 - y0) / hidden.size)
        assert readout.curves.deletion_auc < readout.curves.insertion_auc
    assert np.mean(hot_drops) > 0.5 and np.mean(cold_drops) < 0.05
    assert np.mean(hot_drops) > 10 * max(np.mean(cold_drops), 0.01)
    assert np.mean(hot_on_object) > 2 * np.mean(object_share)  # far more than a region placed by chance


# ---------------------------------------------------------------------- the engine batch


class Spy:
    """The real engine with a record of each call's batch size."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.sizes: list[int] = []
        self._lock = threading.Lock()

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def __call__(self, batch, class_id=None, *, method=None):
        with self._lock:
            self.sizes.append(len(batch))
        return self.engine(batch, class_id=class_id, method=method)


def test_a_group_shares_one_call_even_past_the_batch_cap_and_waits_for_no_one(tiny_engine):
    spy = Spy(tiny_engine)
    images = list(np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8))
    with EngineWorker(spy, max_batch=1, max_wait_ms=60_000) as worker:
        jobs = worker.submit_group(images, class_ids=[None, 2, 2])
        rows = [job.result(timeout=30) for job in jobs]
    assert spy.sizes == [3]
    assert [int(r.class_ids[0]) for r in rows[1:]] == [2, 2]


def test_a_files_group_waits_for_company_and_rides_in_the_batch(tiny_engine):
    """Files: a frame and the hidden copies riding with it wait for the batch like any frame, so
    the copies add rows to a call rather than a call of their own."""
    spy = Spy(tiny_engine)
    images = list(np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8))
    with EngineWorker(spy, max_batch=4, max_wait_ms=60_000) as worker:
        jobs = worker.submit_group(images[:3], class_ids=[None, 2, 2], now=False)
        time.sleep(0.2)  # nothing runs yet: three rows wait for a fourth
        assert spy.sizes == []
        jobs.append(worker.submit(images[3]))
        for job in jobs:
            job.result(timeout=30)
    assert spy.sizes == [4]


class LiveFrames(FakeSource):
    """A live source over a list of frames."""

    live = True


def _frames(n: int) -> list[np.ndarray]:
    return list(np.random.default_rng(2).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8))


def test_live_the_hidden_copies_ride_with_the_next_frame_and_the_readout_names_its_frame(tiny_engine):
    spy, kept = Spy(tiny_engine), KeepPictures()
    Pipeline(LiveFrames(_frames(7)), spy, Renderer(hud="full"), Options(faithfulness=3), outputs=[kept]).run()
    assert len(kept.processed) == 7
    assert spy.sizes == [1, 3, 1, 1, 3, 1, 1]  # one engine call per frame, the pair inside the next one
    faiths = [(p.frame.index, p.faith.frame) for p in kept.processed if p.faith is not None]
    assert faiths == [(1, 0), (4, 3)]  # frame 6's copies would ride with a frame 7
    shown = kept.processed[3].faith
    assert shown is None and kept.processed[1].faith.shown == pytest.approx(float(kept.processed[0].result.probs[0].max()))
    assert kept.processed[2].hud.faithfulness.startswith("hide the heat: ")  # held until the next


@pytest.mark.parametrize("every", [1, 2])
def test_files_keep_every_frame_in_order_each_with_its_own_readout(tiny_engine, every):
    kept = KeepPictures()
    frames = _frames(10)
    options = Options(batch=4, faithfulness=every)
    stats = Pipeline(FakeSource(frames), tiny_engine, Renderer(hud="full"), options, outputs=[kept]).run()
    assert [p.frame.index for p in kept.processed] == list(range(10))
    assert [p.faith.frame if p.faith else None for p in kept.processed] == [i if i % every == 0 else None for i in range(10)]
    assert (kept.processed[0].faith.curves is not None) == (every == 1)  # --faithfulness 1 on files: the curves too
    record = result_record(kept.processed[0], tiny_engine.class_names, "fake")
    assert record["faith_frame"] == 0 and record["faith_shown"] == pytest.approx(kept.processed[0].faith.shown, abs=1e-6)
    assert stats.frames == 10


def test_no_faithfulness_means_no_extra_images(tiny_engine):
    spy, kept = Spy(tiny_engine), KeepPictures()
    Pipeline(LiveFrames(_frames(4)), spy, Renderer(), Options(faithfulness=0), outputs=[kept]).run()
    assert set(spy.sizes) == {1} and all(p.faith is None for p in kept.processed)


def test_stats_json_holds_the_means(tiny_engine):
    stats = RunStats()
    sink = StatsSink(stats, None, finish=lambda s: None, failed=print)
    kept = KeepPictures()
    Pipeline(FakeSource(_frames(4)), tiny_engine, Renderer(), Options(batch=2, faithfulness=2), outputs=[kept, sink]).run()
    summary = stats.to_json()["faithfulness"]
    assert summary["readouts"] == 2
    assert summary["faith_hot_hidden"] == pytest.approx(
        np.mean([p.faith.hot_hidden for p in kept.processed if p.faith]), abs=1e-6
    )


def test_the_hud_says_nothing_without_a_readout(tiny_engine):
    result = tiny_engine(_frames(1)[0])
    assert hud_info(result, None, locked=False).faithfulness == ""
    assert "control" in hud_info(result, None, locked=False, faith=Faithfulness(0, 0, 0.9, 0.1, 0.9)).faithfulness


@pytest.mark.parametrize("level", ["label", "full"])
def test_the_readout_is_drawn_small_at_the_bottom_left_with_the_full_hud(tiny_engine, level):
    from dataclasses import replace

    from livecam.render.hud import draw_hud

    hud = hud_info(tiny_engine(_frames(1)[0]), None, locked=False)
    pictures = []
    for info in (hud, replace(hud, faithfulness=Faithfulness(0, 0, 0.97, 0.08, 0.95).text)):
        picture = np.zeros((240, 320, 3), np.uint8)
        draw_hud(picture, info, None, level, in_window=False)
        pictures.append(picture)
    changed = np.argwhere(np.any(pictures[0] != pictures[1], axis=2))
    if level == "label":  # a recording's HUD: the label and the legend only
        assert not len(changed)
        return
    assert len(changed) and changed[:, 0].min() > 120 and changed[:, 1].max() < 240  # the bottom left
