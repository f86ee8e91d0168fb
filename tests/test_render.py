from __future__ import annotations

import cv2
import numpy as np
import pytest

from livecam.errors import UserError
from livecam.render import (
    COLORMAPS,
    NO_MAP,
    CamSmoother,
    HudInfo,
    Renderer,
    blend,
    blend_heat,
    colorize,
    colormap_id,
    format_percent,
    hud_info,
    overlay,
    page_constants,
    upsample_cam,
)
from livecam.render.heat import cubic_step
from livecam.viewer.keys import KEY_HELP

H, W = 120, 160


@pytest.fixture
def frame():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (H, W, 3), dtype=np.uint8)


@pytest.fixture
def cam():
    rng = np.random.default_rng(1)
    return rng.random((7, 7)).astype(np.float32)


def make_hud(**changes) -> HudInfo:
    fields = dict(
        label="tabby",
        prob=0.62,
        locked=False,
        topk=(("tabby", 0.62), ("tiger cat", 0.2), ("Egyptian cat", 0.1)),
        method="gradcam",
        layer="out_relu",
        engine_fps=12.5,
        display_fps=30.0,
        latency_ms=80.0,
        dropped=2,
    )
    fields.update(changes)
    return HudInfo(**fields)


def bbox_of_difference(a: np.ndarray, b: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(np.any(a != b, axis=2))
    return ys.min(), ys.max(), xs.min(), xs.max()


# ---------------------------------------------------------------- upsample_cam


@pytest.mark.parametrize("value", [0.0, 0.5, 1.0])
def test_upsample_flat_maps(value):
    out = upsample_cam(np.full((7, 7), value, np.float32), (W, H))
    assert out.shape == (H, W) and out.dtype == np.float32
    np.testing.assert_allclose(out, value, atol=1e-6)


def test_upsample_matches_bicubic_and_stays_in_range(cam):
    out = upsample_cam(cam, (640, 480))
    reference = np.clip(cv2.resize(cam, (640, 480), interpolation=cv2.INTER_CUBIC), 0, 1)
    assert out.shape == (480, 640)
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert np.abs(out - reference).max() < 0.01


def test_upsample_removes_non_finite_values_and_keeps_input():
    cam = np.array([[np.nan, np.inf], [-np.inf, 2.0]], np.float32)
    before = cam.copy()
    out = upsample_cam(cam, (W, H))
    assert np.isfinite(out).all() and 0.0 <= out.min() and out.max() <= 1.0
    np.testing.assert_array_equal(cam, before)


def test_upsample_same_size_returns_a_copy():
    cam = np.full((H, W), 0.3, np.float32)
    out = upsample_cam(cam, (W, H))
    out[:] = 0
    assert cam[0, 0] == pytest.approx(0.3)


@pytest.mark.parametrize(
    "cam, size, match",
    [
        (np.zeros((7, 7, 1)), (W, H), "Expected cam to be a non-empty 2-D"),
        (np.zeros((0, 7)), (W, H), "Expected cam to be a non-empty 2-D"),
        (np.zeros((7, 7)), (0, H), "Expected size_wh to be positive"),
        (np.zeros((7, 7)), "big", "Expected size_wh to be"),
    ],
)
def test_upsample_rejects_bad_arguments(cam, size, match):
    with pytest.raises(UserError, match=match):
        upsample_cam(cam, size)


# ---------------------------------------------------------------- colormaps and colorize


@pytest.mark.parametrize(
    "name, expected",
    [
        ("jet", cv2.COLORMAP_JET),
        ("JET", cv2.COLORMAP_JET),
        ("Turbo", cv2.COLORMAP_TURBO),
        ("viridis", cv2.COLORMAP_VIRIDIS),
        ("inferno", cv2.COLORMAP_INFERNO),
        ("twilight_shifted", cv2.COLORMAP_TWILIGHT_SHIFTED),
    ],
)
def test_colormap_names(name, expected):
    assert colormap_id(name) == expected


def test_every_opencv_colormap_is_known():
    names = {n.removeprefix("COLORMAP_").lower() for n in dir(cv2) if n.startswith("COLORMAP_")}
    assert set(COLORMAPS) == names


def test_unknown_colormap_suggests_close_names():
    with pytest.raises(UserError, match=r"Unknown colormap 'jte'\. Did you mean 'jet'\? Expected one of: .*turbo"):
        colormap_id("jte")
    with pytest.raises(ValueError, match="Unknown colormap 'rainbowz'"):
        colormap_id("rainbowz")


def test_colorize_matches_applycolormap(cam):
    cam01 = upsample_cam(cam, (W, H))
    out = colorize(cam01, "turbo")
    reference = cv2.applyColorMap(np.round(cam01 * 255).astype(np.uint8), cv2.COLORMAP_TURBO)
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - reference.astype(int)).max() <= 1
    np.testing.assert_array_equal(colorize(cam01, cv2.COLORMAP_TURBO), out)


def test_colorize_clips_out_of_range_values():
    out = colorize(np.array([[-0.5, 1.5]], np.float32), "jet")
    expected = colorize(np.array([[0.0, 1.0]], np.float32), "jet")
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("colormap", [999, True, 2.0, None])
def test_colorize_rejects_bad_colormaps(colormap):
    with pytest.raises(UserError, match="Expected colormap to be a name"):
        colorize(np.zeros((4, 4), np.float32), colormap)


# ---------------------------------------------------------------- blend


def test_blend_ends_and_middle(frame):
    heat = np.full_like(frame, 200)
    np.testing.assert_array_equal(blend(frame, heat, 0.0), frame)
    np.testing.assert_array_equal(blend(frame, heat, 1.0), heat)
    half = blend(frame, heat, 0.5)
    reference = np.round(0.5 * frame.astype(float) + 0.5 * 200)
    assert np.abs(half - reference).max() <= 1


def test_blend_does_not_modify_inputs(frame):
    heat = np.full_like(frame, 200)
    frame_before, heat_before = frame.copy(), heat.copy()
    for alpha in (0.0, 0.4, 1.0):
        out = blend(frame, heat, alpha)
        out[:] = 7
    np.testing.assert_array_equal(frame, frame_before)
    np.testing.assert_array_equal(heat, heat_before)


@pytest.mark.parametrize("alpha", [1.7, -0.1, float("nan"), "half"])
def test_blend_rejects_bad_alpha(frame, alpha):
    with pytest.raises(UserError, match=r"Expected alpha in \[0, 1\]\. Received: alpha="):
        blend(frame, frame, alpha)


def test_blend_message_is_keras_style(frame):
    with pytest.raises(UserError, match=r"^Expected alpha in \[0, 1\]\. Received: alpha=1\.7$"):
        blend(frame, frame, 1.7)


def test_blend_rejects_mismatched_images(frame):
    with pytest.raises(UserError, match="Expected heat_bgr to have the frame's shape"):
        blend(frame, frame[:10], 0.5)
    with pytest.raises(UserError, match="Expected frame_bgr to be a uint8 BGR image"):
        blend(frame.astype(np.float32), frame, 0.5)


# ---------------------------------------------------------------- CamSmoother


def test_smoother_off_returns_each_map():
    smoother = CamSmoother(0.0)
    a, b = np.zeros((7, 7), np.float32), np.ones((7, 7), np.float32)
    smoother.update(a)
    np.testing.assert_array_equal(smoother.update(b), b)


def test_smoother_averages_converges_and_resets():
    smoother = CamSmoother(0.5)
    a, b = np.zeros((7, 7), np.float32), np.ones((7, 7), np.float32)
    np.testing.assert_array_equal(smoother.update(a), a)  # the first map is taken as it is
    np.testing.assert_allclose(smoother.update(b), 0.5)
    np.testing.assert_allclose(smoother.update(b), 0.75)
    for _ in range(30):
        out = smoother.update(b)
    np.testing.assert_allclose(out, 1.0, atol=1e-6)
    smoother.reset()
    np.testing.assert_array_equal(smoother.update(a), a)


def test_smoother_restarts_on_a_new_shape():
    smoother = CamSmoother()
    smoother.update(np.zeros((7, 7), np.float32))
    b = np.ones((14, 14), np.float32)
    np.testing.assert_array_equal(smoother.update(b), b)


def test_smoother_survives_a_nan_map_and_returns_copies():
    smoother = CamSmoother(0.5)
    smoother.update(np.full((3, 3), np.nan, np.float32))
    out = smoother.update(np.ones((3, 3), np.float32))
    assert np.isfinite(out).all()
    out[:] = 9  # the caller's copy, not the running average
    np.testing.assert_allclose(smoother.update(np.ones((3, 3), np.float32)), 0.75)


@pytest.mark.parametrize("smooth", [1.0, -0.1, 2])
def test_smoother_rejects_bad_levels(smooth):
    with pytest.raises(UserError, match=r"Expected smooth in \[0, 1\)\. Received: smooth="):
        CamSmoother(smooth)


def test_default_smoothing_damps_flicker_without_trailing():
    # What DEFAULT_SMOOTH promises: a map flickering 0/1 on alternate frames is at least halved,
    # and a step is followed to 90 % within 4 maps (at 30 maps/s, about 130 ms).
    smoother = CamSmoother()
    assert Renderer().smooth == smoother.smooth
    flicker = [float(smoother.update(np.full((2, 2), k % 2, np.float32))[0, 0]) for k in range(20)]
    swing = max(flicker[10:]) - min(flicker[10:])
    assert 0.0 < swing < 0.5, swing
    smoother.reset()
    smoother.update(np.zeros((2, 2), np.float32))
    step = [float(smoother.update(np.ones((2, 2), np.float32))[0, 0]) for _ in range(4)]
    assert step[-1] >= 0.9, step


# ---------------------------------------------------------------- Renderer


def assert_drawn_like(out: np.ndarray, expected: np.ndarray) -> None:
    """The renderer colours the map at the bicubic step's resolution and resizes the colours: within a few levels."""
    assert out.shape == expected.shape and out.dtype == np.uint8
    diff = np.abs(out.astype(int) - expected)
    assert diff.max() <= 10 and diff.mean() <= 1.0, (diff.max(), diff.mean())


def test_render_without_hud_is_the_blend(frame, cam):
    renderer = Renderer(alpha=0.4, hud=False, blend="uniform", colormap="viridis")
    out = renderer.render(frame, cam, make_hud())
    expected = blend(frame, colorize(upsample_cam(cam, (W, H)), "viridis"), 0.4)
    assert_drawn_like(out, expected)


def test_heat_blend_is_the_default_and_follows_the_map(frame):
    renderer = Renderer(hud="none")
    assert renderer.blend == "heat" and renderer.alpha == pytest.approx(0.6)
    cam = np.zeros((4, 4), np.float32)
    cam[2:, 2:] = 1.0  # hot bottom-right quarter, cold elsewhere
    out = renderer.render(frame, cam, None)
    cam01 = upsample_cam(cam, (W, H))
    assert_drawn_like(out, blend_heat(frame, colorize(cam01), cam01, 0.6))

    # cold regions show the picture as it is (but for the few pixels next to a warm one that the
    # colours' bilinear step mixes from both)
    def inside(mask):
        return cv2.erode(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)

    cold = inside(cam01 == 0)
    assert cold.mean() > 0.4
    np.testing.assert_array_equal(out[cold], frame[cold])
    hot = inside(cam01 == 1)
    assert hot.mean() > 0.1
    uniform = blend(frame, colorize(cam01), 0.6)
    assert np.abs(out[hot].astype(int) - uniform[hot]).max() <= 1  # the hottest at full alpha


def test_blend_heat_matches_the_per_pixel_formula(frame):
    rng = np.random.default_rng(2)
    heat = rng.integers(0, 256, frame.shape, dtype=np.uint8)
    cam01 = rng.random((H, W)).astype(np.float32)
    out = blend_heat(frame, heat, cam01, 0.7)
    weight = 0.7 * cam01[..., None]
    reference = weight * heat + (1 - weight) * frame
    assert np.abs(out - reference).max() <= 1.5  # opacity in steps of 1/255, and two roundings
    np.testing.assert_array_equal(blend_heat(frame, heat, cam01, 0.0), frame)
    with pytest.raises(UserError, match="Expected cam01 to have the frame's size"):
        blend_heat(frame, heat, cam01[:5], 0.5)
    with pytest.raises(UserError, match=r"Expected alpha in \[0, 1\]"):
        blend_heat(frame, heat, cam01, 2)


def test_render_hud_draws_in_the_hud_region(frame, cam):
    plain = Renderer(hud=False).render(frame, cam, None)
    with_hud = Renderer().render(frame, cam, make_hud())
    assert with_hud.shape == plain.shape
    assert np.any(with_hud[: H // 3, : W // 2] != plain[: H // 3, : W // 2])  # text panel, top left
    assert np.any(with_hud[-H // 5 :, -W // 3 :] != plain[-H // 5 :, -W // 3 :])  # legend, bottom right


def test_render_with_no_hud_info_draws_only_the_overlay(frame, cam):
    np.testing.assert_array_equal(Renderer().render(frame, cam, None), Renderer(hud=False).render(frame, cam, None))


def test_render_does_not_modify_the_frame_or_map(frame, cam):
    frame_before, cam_before = frame.copy(), cam.copy()
    Renderer(side_by_side=True, show_help=True, help_rows=KEY_HELP).render(frame, cam, make_hud(recording=True, message="hi"))
    np.testing.assert_array_equal(frame, frame_before)
    np.testing.assert_array_equal(cam, cam_before)


def test_side_by_side_is_raw_then_overlay(frame, cam):
    out = Renderer(side_by_side=True, hud=False, alpha=0.5).render(frame, cam, None)
    assert out.shape == (H, 2 * W, 3)
    np.testing.assert_array_equal(out[:, :W], frame)
    np.testing.assert_array_equal(out[:, W:], Renderer(hud=False, alpha=0.5).render(frame, cam, None))
    assert np.any(out[:, W:] != frame)


def test_side_by_side_with_hud_keeps_the_shape(frame, cam):
    assert Renderer(side_by_side=True).render(frame, cam, make_hud()).shape == (H, 2 * W, 3)


def test_no_map_shows_the_frame_with_hud(frame):
    grey = np.full((240, 320, 3), 128, np.uint8)
    out = Renderer().render(grey, None, make_hud(status="no map (non-finite output)"))
    assert out.shape == grey.shape
    assert np.any(out[:60, :160] != 128)  # the HUD is there
    np.testing.assert_array_equal(out[170:, 260:], grey[170:, 260:])  # no heat, no legend
    np.testing.assert_array_equal(Renderer(hud=False).render(frame, None, make_hud()), frame)


@pytest.mark.parametrize(
    "change, region",
    [
        (dict(recording=True), (slice(0, 30), slice(-60, None))),  # red REC dot, top right
        (dict(message="snapshot saved: a.png"), (slice(-60, None), slice(0, 120))),  # bottom left
        (dict(status="reconnecting"), (slice(0, 120), slice(0, 200))),  # extra line, top left
        (dict(locked=True), (slice(0, 120), slice(0, 200))),
    ],
)
def test_hud_items_are_drawn(change, region):
    grey = np.full((240, 320, 3), 128, np.uint8)
    renderer = Renderer()
    base = renderer.render(grey, None, make_hud())
    changed = renderer.render(grey, None, make_hud(**change))
    assert np.any(changed[region] != base[region])


def test_rec_dot_is_red():
    grey = np.full((240, 320, 3), 128, np.uint8)
    out = Renderer().render(grey, None, make_hud(recording=True))
    corner = out[:30, -60:].reshape(-1, 3).astype(int)
    assert np.any((corner[:, 2] > 200) & (corner[:, 0] < 60) & (corner[:, 1] < 60))


def test_text_scales_with_frame_height():
    heights = []
    for height in (240, 480, 960):
        grey = np.full((height, height * 4 // 3, 3), 128, np.uint8)
        out = Renderer(hud="label").render(grey, None, make_hud())  # the label panel alone
        top, bottom, _, _ = bbox_of_difference(out, grey)
        heights.append(bottom - top)
    assert heights[0] < heights[1] < heights[2]
    assert 1.5 < heights[2] / heights[1] < 2.5


def test_help_overlay_is_drawn(frame, cam):
    renderer = Renderer(hud=False, help_rows=KEY_HELP)
    plain = renderer.render(frame, cam, None)
    renderer.show_help = True
    with_help = renderer.render(frame, cam, None)
    assert np.any(with_help[H // 3 : 2 * H // 3, W // 3 : 2 * W // 3] != plain[H // 3 : 2 * H // 3, W // 3 : 2 * W // 3])


def test_the_help_panel_draws_the_rows_it_is_handed(frame, cam):
    """The window front-end hands in its key list; the renderer knows no keys of its own."""
    plain = Renderer(hud=False).render(frame, cam, None)
    np.testing.assert_array_equal(Renderer(hud=False, show_help=True).render(frame, cam, None), plain)  # no rows, no panel
    ours = Renderer(hud=False, show_help=True, help_rows=[("x", "do a thing")]).render(frame, cam, None)
    keys = Renderer(hud=False, show_help=True, help_rows=KEY_HELP).render(frame, cam, None)
    assert np.any(ours != plain) and np.any(ours != keys)


def test_render_imports_nothing_from_the_viewer_or_the_server():
    """render -> viewer.keys -> viewer.control -> render was a circle; the render package sits below both."""
    import ast
    from pathlib import Path

    import livecam.render

    imported = set()
    for path in Path(livecam.render.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    livecam_modules = {name for name in imported if name.startswith("livecam")}
    assert livecam_modules and not {name for name in livecam_modules if name.split(".")[1] in ("viewer", "serve")}


@pytest.mark.parametrize("size_hw", [(24, 32), (1, 1), (1080, 1920)])
def test_hud_and_help_fit_any_frame(size_hw, cam):
    frame = np.zeros((*size_hw, 3), np.uint8)
    hud = make_hud(
        label="a very long class name, " * 6 + "café ☕",
        locked=True,
        status="reconnecting",
        recording=True,
        message="recording stopped: disk full " * 5,
        engine_fps=None,
        display_fps=float("nan"),
        latency_ms=None,
    )
    out = Renderer(show_help=True, side_by_side=True, help_rows=KEY_HELP).render(frame, cam, hud)
    assert out.shape == (size_hw[0], 2 * size_hw[1], 3)


def test_renderer_smooths_each_map_once_and_resets():
    frame = np.zeros((H, W, 3), np.uint8)
    a, b = np.zeros((7, 7), np.float32), np.ones((7, 7), np.float32)
    renderer = Renderer(alpha=1.0, hud=False, smooth=0.5, colormap="bone")

    def shown_value(cam, map_id):
        return renderer.render(frame, cam, None, map_id=map_id)[H // 2, W // 2, 0]

    low = shown_value(a, 1)
    mid = shown_value(b, 2)
    assert shown_value(b, 2) == mid  # the same map again: no second averaging step
    assert low < mid < shown_value(b, 3)  # a new map moves on
    renderer.reset()
    assert shown_value(a, 4) == low


def test_renderer_without_smoothing_shows_each_map():
    frame = np.zeros((H, W, 3), np.uint8)
    renderer = Renderer(alpha=1.0, hud=False, smooth=0.0)
    renderer.render(frame, np.zeros((7, 7), np.float32), None)
    b = np.ones((7, 7), np.float32)
    assert_drawn_like(renderer.render(frame, b, None), colorize(upsample_cam(b, (W, H))))


def test_renderer_settings_can_change(frame, cam):
    renderer = Renderer(hud=False, blend="uniform")
    before = renderer.render(frame, cam, None)
    renderer.alpha = 0.9
    renderer.colormap = "TURBO"
    assert renderer.colormap == "turbo"
    after = renderer.render(frame, cam, None)
    assert_drawn_like(after, blend(frame, colorize(upsample_cam(cam, (W, H)), "turbo"), 0.9))
    assert np.any(after != before)
    renderer.colormap = cv2.COLORMAP_JET
    assert renderer.colormap == "jet"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(alpha=1.7), r"^Expected alpha in \[0, 1\]\. Received: alpha=1\.7$"),
        (dict(alpha=-0.1), r"Expected alpha in \[0, 1\]"),
        (dict(smooth=1.0), r"Expected smooth in \[0, 1\)\. Received: smooth=1\.0"),
        (dict(smooth=-0.5), r"Expected smooth in \[0, 1\)"),
        (dict(colormap="jett"), r"Unknown colormap 'jett'\. Did you mean 'jet'\?"),
    ],
)
def test_renderer_validates_arguments(kwargs, match):
    with pytest.raises(UserError, match=match):
        Renderer(**kwargs)


def test_renderer_rejects_bad_alpha_later_and_bad_frames(cam):
    renderer = Renderer()
    with pytest.raises(UserError, match=r"Expected alpha in \[0, 1\]\. Received: alpha=2"):
        renderer.alpha = 2
    assert renderer.alpha == pytest.approx(0.6)
    with pytest.raises(UserError, match="Expected frame_bgr to be a uint8 BGR image"):
        renderer.render(np.zeros((H, W), np.uint8), cam, None)
    with pytest.raises(UserError, match="Expected cam to be a non-empty 2-D"):
        renderer.render(np.zeros((H, W, 3), np.uint8), np.zeros((2, 2, 2)), None)


# ---------------------------------------------------------------- HUD levels, window and file pictures


def grey_frame(height: int = 240, width: int = 320) -> np.ndarray:
    return np.full((height, width, 3), 128, np.uint8)


def test_window_shows_full_hud_and_files_the_label_only():
    renderer = Renderer()  # window "full", files "label"
    assert (renderer.hud, renderer.file_hud) == ("full", "label")
    cam = np.zeros((7, 7), np.float32)
    hud = make_hud(recording=True, message="snapshot saved: a.png")
    views = renderer.views(grey_frame(), cam, hud)
    plain = Renderer(hud="none").render(grey_frame(), cam, None)
    label_only = Renderer(hud="label").render(grey_frame(), cam, make_hud())
    np.testing.assert_array_equal(views.file, label_only)  # no REC badge, no message, no bars
    np.testing.assert_array_equal(views.file[:30, -60:], plain[:30, -60:])  # REC is the window's
    np.testing.assert_array_equal(views.file[-60:, :120], plain[-60:, :120])  # no message, no diagnostics
    assert np.any(views.window[:30, -60:] != plain[:30, -60:])
    assert np.any(views.window[-60:, :120] != plain[-60:, :120])
    assert np.any(views.window != views.file)
    np.testing.assert_array_equal(views.window, Renderer().render(grey_frame(), cam, hud))
    np.testing.assert_array_equal(views.file, Renderer().render(grey_frame(), cam, hud, view="file"))


def test_full_hud_adds_topk_bars_and_diagnostics_to_the_label():
    label = Renderer(hud="label").render(grey_frame(), None, make_hud())
    full = Renderer(hud="full").render(grey_frame(), None, make_hud())
    top, bottom, left, right = bbox_of_difference(label, grey_frame())
    assert bottom < 60 and top < 10  # one line of big text, top left
    np.testing.assert_array_equal(full[:top], label[:top])
    assert np.any(full[bottom + 1 : 120, :200] != 128)  # the top-k bars below the label
    assert np.any(full[-40:, :200] != 128)  # diagnostics, bottom left


def test_hud_covers_little_of_a_480p_frame():
    # The old 9-line text panel covered about 14 % of a 640x480 frame.
    grey = grey_frame(480, 640)
    for level, most in (("label", 0.04), ("full", 0.10)):
        out = Renderer(hud=level).render(grey, None, make_hud())
        top, bottom, left, right = bbox_of_difference(out[:240], grey[:240])  # the panel, top left
        assert (bottom - top + 1) * (right - left + 1) < most * grey.shape[0] * grey.shape[1], level


def test_topk_bars_are_as_long_as_the_probabilities():
    def bar_pixels(prob: float) -> int:
        out = Renderer(hud="full").render(grey_frame(), None, make_hud(topk=(("tabby", prob),), label="tabby", prob=prob))
        white = np.all(out >= 230, axis=2)  # the explained class's bar is drawn in white
        return int(white[:120].sum())

    empty, half, full = bar_pixels(0.0), bar_pixels(0.5), bar_pixels(1.0)
    assert empty < half < full
    assert (full - empty) == pytest.approx(2 * (half - empty), rel=0.25)


def test_no_hud_anywhere_shares_one_picture(frame, cam):
    views = Renderer(hud="none").views(frame, cam, make_hud(recording=True))
    assert views.window is views.file
    views = Renderer(hud="full", file_hud="full").views(frame, cam, make_hud())
    assert views.window is not views.file


def test_views_can_be_asked_one_at_a_time(frame, cam):
    renderer = Renderer()
    only_file = renderer.views(frame, cam, make_hud(), window=False)
    assert only_file.window is None and only_file.file is not None
    only_window = renderer.views(frame, cam, make_hud(), file=False)
    assert only_window.file is None and only_window.window is not None


def test_help_is_drawn_in_the_window_only(frame, cam):
    views = Renderer(hud="none", show_help=True, help_rows=KEY_HELP).views(frame, cam, None)
    np.testing.assert_array_equal(views.file, Renderer(hud="none").render(frame, cam, None))
    assert np.any(views.window != views.file)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(hud="debug"), r"Expected hud to be one of full, label, none\. Received: hud='debug'"),
        (dict(file_hud="all"), r"Expected hud to be one of full, label, none"),
        (dict(blend="additive"), r"Expected blend to be one of heat, uniform\. Received: blend='additive'"),
    ],
)
def test_renderer_rejects_unknown_hud_levels_and_blends(kwargs, match):
    with pytest.raises(UserError, match=match):
        Renderer(**kwargs)


def test_hud_booleans_still_mean_full_and_none():
    assert (Renderer(hud=True).hud, Renderer(hud=True).file_hud) == ("full", "label")
    assert (Renderer(hud=False).hud, Renderer(hud=False).file_hud) == ("none", "none")


@pytest.mark.parametrize(
    "prob, text",
    [
        (0.998, "99.8%"),
        (0.9996, ">99.9%"),
        (1.0, "100%"),
        (0.0004, "<0.1%"),
        (0.0, "0.0%"),
        (0.25, "25.0%"),
        (float("nan"), "--%"),
    ],
)
def test_one_rounding_for_every_probability(prob, text):
    assert format_percent(prob) == text


# ---------------------------------------------------------------- overlay (the Python helper)


class FakeResult:
    """The fields of a two-row CamResult, made by hand."""

    def __init__(self, cam):
        self.probs = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]], np.float32)
        self.class_ids = np.array([1, 0])
        self.cam = np.stack([cam, np.zeros_like(cam)])
        self.topk_ids = np.array([[1, 2, 0], [0, 1, 2]])
        self.topk_probs = np.array([[0.7, 0.2, 0.1], [0.5, 0.3, 0.2]], np.float32)
        self.finite = np.array([True, False])
        self.layer = "conv"
        self.method = "gradcam"


def test_overlay_draws_a_result_row_like_the_files_picture(frame, cam):
    result = FakeResult(cam)
    out = overlay(frame, result, class_names=["cat", "dog", "fox"])
    hud = HudInfo(
        label="dog", prob=0.7, locked=False, topk=(("dog", 0.7), ("fox", 0.2), ("cat", 0.1)), method="gradcam", layer="conv"
    )
    expected = Renderer(smooth=0, hud="label").render(frame, cam, hud, view="file")
    np.testing.assert_array_equal(out, expected)
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert_drawn_like(
        overlay(frame, result, hud="none", blend="uniform", alpha=0.5), blend(frame, colorize(upsample_cam(cam, (W, H))), 0.5)
    )


def test_overlay_without_names_or_map(frame, cam):
    result = FakeResult(cam)
    named = overlay(frame, result, class_names=["cat", "dog", "fox"])
    assert np.any(overlay(frame, result) != named)  # "class 1" instead of "dog"
    no_map = overlay(frame, result, index=1, hud="none")  # a non-finite row: the frame as it is
    np.testing.assert_array_equal(no_map, frame)
    with pytest.raises(UserError, match=r"Expected index in \[0, 1\] for a result with 2 rows\. Received: index=2"):
        overlay(frame, result, index=2)


def test_overlay_is_exported_lazily():
    import livecam

    assert livecam.overlay is overlay


# ---------------------------------------------------------------- smoothing per viewer, by explicit keys


def heat_of(cam01: np.ndarray) -> np.ndarray:
    """What a renderer with alpha 1 and no HUD shows for a (smoothed) map."""
    return colorize(upsample_cam(cam01, (W, H)), "jet")


def test_a_map_drawn_again_under_the_same_id_is_folded_in_once(frame):
    zeros, ones = np.zeros((7, 7), np.float32), np.ones((7, 7), np.float32)
    renderer = Renderer(alpha=1.0, hud=False, blend="uniform", smooth=0.5)
    renderer.render(frame, zeros, None, explains=("gradcam", None), map_id=1)
    for _ in range(3):  # a paused frame redrawn, or --every N reusing a map: still one fold
        out = renderer.render(frame, ones, None, explains=("gradcam", None), map_id=2)
        np.testing.assert_array_equal(out, heat_of(np.full((7, 7), 0.5, np.float32)))
    out = renderer.render(frame, ones, None, explains=("gradcam", None), map_id=3)
    np.testing.assert_array_equal(out, heat_of(np.full((7, 7), 0.75, np.float32)))


def test_without_a_map_id_every_call_is_a_new_map(frame):
    zeros, ones = np.zeros((7, 7), np.float32), np.ones((7, 7), np.float32)
    renderer = Renderer(alpha=1.0, hud=False, blend="uniform", smooth=0.5)
    renderer.render(frame, zeros, None)
    renderer.render(frame, ones, None)
    out = renderer.render(frame, ones, None)  # the same array object counts as a new map too
    np.testing.assert_array_equal(out, heat_of(np.full((7, 7), 0.75, np.float32)))


@pytest.mark.parametrize("new_explains", [("gradcam++", None), ("gradcam", 3)])
def test_a_new_method_or_class_restarts_the_smoothing(frame, new_explains):
    zeros, ones = np.zeros((7, 7), np.float32), np.ones((7, 7), np.float32)
    renderer = Renderer(alpha=1.0, hud=False, blend="uniform", smooth=0.5)
    renderer.render(frame, zeros, None, explains=("gradcam", None), map_id=1)
    out = renderer.render(frame, ones, None, explains=new_explains, map_id=2)
    np.testing.assert_array_equal(out, heat_of(ones))  # the old question's map does not count
    # A frame without a map under yet another question restarts it as well.
    renderer.render(frame, None, None, explains=("other", None), map_id=3)
    out = renderer.render(frame, zeros, None, explains=("other", None), map_id=4)
    np.testing.assert_array_equal(out, heat_of(zeros))


def test_each_viewer_smooths_on_its_own(frame):
    zeros, ones = np.zeros((7, 7), np.float32), np.ones((7, 7), np.float32)
    a, b = Renderer(alpha=1.0, hud=False, blend="uniform"), Renderer(alpha=1.0, hud=False, blend="uniform")
    a.render(frame, zeros, None, explains=("gradcam", None), map_id=1)
    b.render(frame, ones, None, explains=("gradcam", 2), map_id=1)  # same ids, another viewer
    out = a.render(frame, ones, None, explains=("gradcam", None), map_id=2)
    np.testing.assert_array_equal(out, heat_of(np.full((7, 7), 0.5, np.float32)))


# ---------------------------------------------------------------- the map where the network looked (--fit)


@pytest.mark.parametrize("blend_name", ["heat", "uniform"])
def test_a_cropped_map_covers_its_box_only(frame, cam, blend_name):
    box = (20 / W, 0.0, 140 / W, 1.0)  # the central 120x120 of a 160x120 frame
    out = Renderer(smooth=0, hud="none", blend=blend_name).render(frame, cam, None, box=box)
    np.testing.assert_array_equal(out[:, :20], frame[:, :20])  # no heat outside the box
    np.testing.assert_array_equal(out[:, 140:], frame[:, 140:])
    alone = Renderer(smooth=0, hud="none", blend=blend_name).render(np.ascontiguousarray(frame[:, 20:140]), cam, None)
    np.testing.assert_array_equal(out[:, 20:140], alone)  # inside: the crop's own overlay


@pytest.mark.parametrize("blend_name", ["heat", "uniform"])
def test_a_padded_map_loses_its_part_over_the_bands(frame, cam, blend_name):
    box = (0.0, -20 / H, 1.0, 140 / H)  # the frame letterboxed to 160x160: bands of 20 above and below
    out = Renderer(smooth=0, hud="none", blend=blend_name).render(frame, cam, None, box=box)
    padded = np.zeros((160, W, 3), np.uint8)
    padded[20:140] = frame
    reference = Renderer(smooth=0, hud="none", blend=blend_name).render(padded, cam, None)[20:140]
    assert np.abs(out.astype(int) - reference).max() <= 2  # the same heat, within rounding


def test_a_box_off_the_frame_is_refused(frame, cam):
    with pytest.raises(UserError, match="Expected box to overlap the frame"):
        Renderer().render(frame, cam, None, box=(1.5, 0.0, 2.0, 1.0))


# ---------------------------------------------------------------- the HUD of a result, built in one place


def test_hud_info_describes_a_result_row(cam):
    result = FakeResult(cam)
    info = hud_info(
        result, ["cat", "dog", "fox"], locked=True, status="paused", engine_fps=9.0, display_fps=30.0, latency_ms=40.0, dropped=3
    )
    expected = HudInfo(
        label="dog",
        prob=pytest.approx(0.7),
        locked=True,
        topk=(("dog", pytest.approx(0.7)), ("fox", pytest.approx(0.2)), ("cat", pytest.approx(0.1))),
        method="gradcam",
        layer="conv",
        engine_fps=9.0,
        display_fps=30.0,
        latency_ms=40.0,
        dropped=3,
        status="paused",
    )
    assert info == expected
    assert isinstance(info.prob, float) and all(isinstance(p, float) for _, p in info.topk)


def test_hud_info_takes_the_lock_it_is_given_and_names_classes_without_names(cam):
    result = FakeResult(cam)
    assert not hud_info(result, None, locked=False).locked
    assert hud_info(result, None, locked=True).locked  # the frame's own lock, whatever the viewer's is now
    assert hud_info(result, None, locked=False).label == "class 1"
    assert [name for name, _ in hud_info(result, None, locked=False, index=-1).topk] == ["class 0", "class 1", "class 2"]


def test_a_row_without_a_map_says_so_whatever_the_status(cam):
    result = FakeResult(cam)  # row 1 is not finite
    assert hud_info(result, None, locked=False, index=1, status="reconnecting").status == NO_MAP
    assert hud_info(result, None, locked=False, index=0, status="reconnecting").status == "reconnecting"
    with pytest.raises(UserError, match=r"Expected index in \[0, 1\] for a result with 2 rows\. Received: index=-3"):
        hud_info(result, None, locked=False, index=-3)


def test_page_constants_are_the_renderers_own_rules():
    import json

    constants = json.loads(json.dumps(page_constants()))  # what /api/config can send as it is
    assert constants["smooth"] == CamSmoother().smooth == Renderer().smooth
    assert constants["blend"] == Renderer().blend and set(constants["blends"]) == {"heat", "uniform"}
    assert {name: Renderer(blend=name).alpha for name in constants["blends"]} == constants["alpha"]
    levels = constants["heat_levels"]  # the heat blend's opacity steps: white heat over black shows them
    cam01 = ((np.arange(levels + 1) + 0.4) / levels).clip(0, 1).astype(np.float32)[None, :]
    black, white = np.zeros((1, levels + 1, 3), np.uint8), np.full((1, levels + 1, 3), 255, np.uint8)
    np.testing.assert_array_equal(blend_heat(black, white, cam01, 1.0)[0, :, 0], np.arange(levels + 1))
    step = constants["cubic_step"]  # the page colours its heat at the renderer's resolution: at most step pixels per cell
    assert cubic_step(np.zeros((2, 3), np.float32), (1000, 1000)).shape == (2 * step, 3 * step)
    percent = constants["percent"]
    assert percent["decimals"] == 1 and format_percent(0.1234) == "12.3%"
    assert [format_percent(p) for p in (float("nan"), 1.0, 0.99996, 0.00004)] == [
        percent["unknown"],
        percent["one"],
        percent["almost_one"],
        percent["almost_zero"],
    ]
