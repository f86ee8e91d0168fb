"""`livecam serve` in a real browser: Chromium (the system's) driven by Playwright, with a fake
camera that plays a demo scene whose class and object box are known.

Each simultaneous page gets its own browser context. Under CI=true a missing Chromium fails
these tests instead of skipping them.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import time
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
import pytest

from conftest import require_tool
from serve_helpers import SCENE_SIZE, ServerProcess, scene

pytestmark = pytest.mark.slow
WAIT_MS = 90_000
OTHER_NAME = "livecam-server.test"
TOKEN = "browser-test-token"  # a first answer needs the page, the camera and the engine: generous on a busy machine


def write_y4m(path: Path, image_bgr: np.ndarray, frames: int = 30, fps: int = 30) -> Path:
    """A Y4M video (what Chromium's fake camera plays, in a loop) showing ``image_bgr`` still."""
    height, width = image_bgr.shape[:2]
    planes = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2YUV_I420).tobytes()
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(b"FRAME\n" + planes)
    return path


@pytest.fixture(scope="module")
def shown():
    return scene()


@pytest.fixture(scope="module")
def chromium():
    """(playwright's chromium launcher, the system Chromium's path)."""
    executable = require_tool("chromium", "apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright.chromium, executable


@pytest.fixture(scope="module")
def browser(chromium, tmp_path_factory, shown):
    launcher, executable = chromium
    video = write_y4m(tmp_path_factory.mktemp("camera") / "scene.y4m", shown.image_bgr)
    args = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={video}"]
    args.append(f"--host-resolver-rules=MAP {OTHER_NAME} 127.0.0.1")  # a name that is not localhost: an insecure context
    browser = launcher.launch(executable_path=executable, args=args)
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # With a token, so that the page can also be opened under another name (a token-less server answers loopback names only).
    # The uniform blend: at opacity 100 % the canvas then holds the heat image alone, which the tests read back.
    proc = ServerProcess(
        "--model", "demo", "--source", "synth:320x240,fps=10", "--token", TOKEN, "--blend", "uniform", log_dir=tmp_path_factory.mktemp("serve")
    )  # fmt: skip
    yield proc
    proc.stop()


class SocketLog:
    """The JSON messages a page's WebSockets send and receive, in order (what the browser's developer tools show)."""

    def __init__(self) -> None:
        self.sent: list[dict] = []
        self.received: list[dict] = []

    def watch(self, page) -> None:
        def on_socket(ws) -> None:
            ws.on("framesent", lambda payload: self._log(self.sent, payload))
            ws.on("framereceived", lambda payload: self._log(self.received, payload))

        page.on("websocket", on_socket)

    @staticmethod
    def _log(messages: list[dict], payload: str | bytes) -> None:
        if isinstance(payload, str):  # text: controls and answers; bytes: camera frames
            messages.append(json.loads(payload))

    def wait_sent(self, page, expected: dict) -> None:
        """Until the page has sent a controls message that holds ``expected``'s keys and values."""
        self._wait(page, lambda: any(expected.items() <= message.items() for message in self.sent), f"the page sent {expected}")

    def wait_pulls_answered(self, page) -> None:
        """Until every pull of the server's source the page sent has its answer (one each)."""

        def answered() -> bool:
            pulls = sum("pull" in message for message in self.sent)
            return pulls == sum(message["type"] in ("source_result", "source_error") for message in self.received)

        self._wait(page, answered, "every pull answered")

    def _wait(self, page, done, what: str) -> None:
        deadline = time.monotonic() + WAIT_MS / 1000
        while not done():
            assert time.monotonic() < deadline, f"never: {what}; the page sent {self.sent[-5:]}"
            page.wait_for_timeout(50)  # Playwright hands over the socket's events while it waits


def open_page(browser, url: str, socket: SocketLog | None = None):
    context = browser.new_context(
        viewport={"width": 1280, "height": 800}, bypass_csp=True
    )  # the page forbids eval; the tests use it
    page = context.new_page()
    if socket is not None:
        socket.watch(page)
    page.goto(url)
    # The page's modules load after the document: wait for its view, so that every later check can read it.
    page.wait_for_function("window.livecam !== undefined", timeout=WAIT_MS)
    return context, page


def wait_results(page, more_than: int = 0, timeout_ms: int = WAIT_MS) -> int:
    page.wait_for_function(f"window.livecam && window.livecam.results > {more_than}", timeout=timeout_ms)
    return page.evaluate("window.livecam.results")


def canvas_bgr(page) -> np.ndarray:
    data_url = page.evaluate("document.getElementById('view').toDataURL('image/png')")
    png = base64.b64decode(data_url.split(",", 1)[1])
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)


def jet_values(image_bgr: np.ndarray) -> np.ndarray:
    """Each pixel's position (0..255) on OpenCV's jet colormap: the nearest of its 256 colours."""
    lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_JET)[:, 0].astype(np.int32)
    pixels = image_bgr.reshape(-1, 3).astype(np.int32)
    distances = ((pixels[:, None, :] - lut[None, :, :]) ** 2).sum(axis=2)
    return distances.argmin(axis=1).reshape(image_bgr.shape[:2])


def test_page_shows_the_objects_class_and_the_heat_on_the_object(browser, server, shown):
    context, page = open_page(browser, server.path("/"))
    try:
        wait_results(page, 2)
        assert page.text_content("#label") == shown.label
        assert float(page.text_content("#prob").strip("<>%")) > 90
        top = page.locator("#topk li").first.text_content()
        assert top.startswith(shown.label)
        assert "round trip" in page.text_content("#stats")
        # Opacity 100 %: the canvas then shows only the heat map, which the test reads back.
        page.eval_on_selector("#alpha", "el => { el.value = 1; el.dispatchEvent(new Event('input')); }")
        count = wait_results(page)
        wait_results(page, count + 1)
        image = canvas_bgr(page)
    finally:
        context.close()
    assert image.shape[1::-1] == SCENE_SIZE
    small = cv2.resize(image, (SCENE_SIZE[0] // 4, SCENE_SIZE[1] // 4), interpolation=cv2.INTER_AREA)
    heat = cv2.GaussianBlur(jet_values(small).astype(np.float32), (0, 0), 2)
    y, x = np.unravel_index(int(np.argmax(heat)), heat.shape)
    x0, y0, x1, y1 = shown.box_xyxy
    assert x0 <= 4 * x + 2 <= x1 and y0 <= 4 * y + 2 <= y1, f"hottest at {(4 * x, 4 * y)}, object at {shown.box_xyxy}"
    inside = heat[y0 // 4 : y1 // 4, x0 // 4 : x1 // 4].mean()
    assert inside > 1.5 * heat.mean()  # the object, not one hot pixel, is where the heat is


def test_the_heat_blend_leaves_cold_parts_as_the_camera_shows_them(browser, tmp_path, shown):
    """--blend heat (the default): opacity alpha * map, so at 100 % the hot parts are the colormap and the cold ones the picture."""
    server = ServerProcess("--model", "demo", log_dir=tmp_path)
    context, page = open_page(browser, server.path("/"))
    try:
        wait_results(page)
        page.eval_on_selector("#alpha", "el => { el.value = 1; el.dispatchEvent(new Event('input')); }")
        count = wait_results(page)
        wait_results(page, count + 2)  # a still scene: the smoothed map has settled
        data_url, values, width, height = page.evaluate(
            "[document.getElementById('view').toDataURL('image/png'), Array.from(livecam.smoothed.data), livecam.smoothed.width, livecam.smoothed.height]"
        )
    finally:
        context.close()
        server.stop()
    image = cv2.imdecode(np.frombuffer(base64.b64decode(data_url.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    cam = cv2.resize(np.float32(values).reshape(height, width) / 255.0, SCENE_SIZE, interpolation=cv2.INTER_CUBIC)
    difference = cv2.absdiff(image, shown.image_bgr).mean(axis=2)
    cold, hot = cam < 0.03, cam > 0.9
    assert cold.mean() > 0.05 and hot.mean() > 0.005, "the map must have cold and hot parts for this to mean anything"
    assert difference[cold].mean() < 12  # the picture as the camera gives it (through the fake camera's YUV)
    assert difference[hot].mean() > 40  # the colormap, not the picture


def test_a_token_with_url_and_html_characters_works_from_the_printed_url(browser, tmp_path, shown):
    """& # and a space would end the token in a raw URL, < and " would break the page's HTML: the page must still work."""
    server = ServerProcess("--model", "demo", "--token", 'a&b#c d<"x', log_dir=tmp_path)
    context, page = open_page(browser, server.url)  # exactly what was printed
    try:
        wait_results(page)
        assert page.text_content("#label") == shown.label
    finally:
        context.close()
        server.stop()


def test_two_browser_contexts_get_answers_at_the_same_time(browser, server, shown):
    pages = [open_page(browser, server.path("/")) for _ in range(2)]
    try:
        before = [wait_results(page) for _, page in pages]
        after = [wait_results(page, n + 3) for (_, page), n in zip(pages, before)]  # both keep getting answers
        labels = [page.text_content("#label") for _, page in pages]
    finally:
        for context, _ in pages:
            context.close()
    assert all(a > b for a, b in zip(after, before))
    assert labels == [shown.label, shown.label]


def test_locking_a_class_by_clicking_its_bar_and_unlocking(browser, server, shown):
    context, page = open_page(browser, server.path("/"))
    try:
        wait_results(page)
        second = page.locator("#topk li button").nth(1)
        other_label = second.text_content().rsplit(" ", 1)[0]
        second.click()
        page.wait_for_function(f"document.getElementById('label').textContent === {other_label!r}", timeout=WAIT_MS)
        assert page.is_visible("#locked")
        page.click("#unlock")
        page.wait_for_function(f"document.getElementById('label').textContent === {shown.label!r}", timeout=WAIT_MS)
        assert not page.is_visible("#locked")
    finally:
        context.close()


def test_shift_clicking_a_class_contrasts_the_explained_class_with_it_and_clearing_it(browser, server, shown):
    context, page = open_page(browser, server.path("/"))
    try:
        wait_results(page)
        second = page.locator("#topk li button").nth(1)
        other_label = second.text_content().rsplit(" ", 1)[0]
        second.click(modifiers=["Shift"])
        page.wait_for_function(f"window.livecam.last && window.livecam.last.contrast_name === {other_label!r}", timeout=WAIT_MS)
        assert page.text_content("#label") == f"{shown.label} not {other_label}"
        assert not page.is_visible("#locked")  # a contrast, not a lock
        page.click("#clear-contrast")
        page.wait_for_function("window.livecam.last && window.livecam.last.contrast_id === null", timeout=WAIT_MS)
        assert page.text_content("#label") == shown.label and not page.is_visible("#clear-contrast")
    finally:
        context.close()


def test_while_paused_a_new_lock_explains_the_frozen_frame_and_opacity_still_applies(browser, server, shown):
    context, page = open_page(browser, server.path("/"))
    try:
        wait_results(page)
        page.click("#pause")
        count = page.evaluate("window.livecam.results")
        time.sleep(1.0)
        assert page.evaluate("window.livecam.results") <= count + 1  # at most the answer that was in flight
        second = page.locator("#topk li button").nth(1)
        other_label = second.text_content().rsplit(" ", 1)[0]
        second.click()
        page.wait_for_function(f"document.getElementById('label').textContent === {other_label!r}", timeout=WAIT_MS)
        before = canvas_bgr(page)
        page.eval_on_selector("#alpha", "el => { el.value = 0; el.dispatchEvent(new Event('input')); }")
        time.sleep(0.5)
        after = canvas_bgr(page)
    finally:
        context.close()
    frozen = cv2.absdiff(after, shown.image_bgr).mean()
    assert np.abs(before.astype(int) - after).mean() > 5  # the heat went away from the frozen picture
    assert frozen < 12  # opacity 0 shows the camera's picture (the scene, through the fake camera's YUV)


def ffmpeg_duration_s(path: Path) -> float | None:
    """The Duration ffmpeg reads from a file's header (what players show as its length); None for N/A."""
    text = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True
    ).stderr
    match = re.search(r"Duration: ([^,]+),", text)
    assert match, text
    if match.group(1) == "N/A":
        return None
    hours, minutes, seconds = match.group(1).split(":")
    return 3600 * int(hours) + 60 * int(minutes) + float(seconds)


def region_difference(a: np.ndarray, b: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> float:
    return float(cv2.absdiff(a[y0:y1, x0:x1], b[y0:y1, x0:x1]).mean())


@pytest.mark.subprocess
def test_snapshot_and_recording_carry_the_label_and_colour_bar_and_the_recording_its_length(browser, server, tmp_path):
    context, page = open_page(browser, server.path("/"))
    try:
        wait_results(page, 1)
        # Opacity 0 and paused: the view holds the still picture alone, the files add the HUD to it.
        page.eval_on_selector("#alpha", "el => { el.value = 0; el.dispatchEvent(new Event('input')); }")
        page.click("#pause")
        page.evaluate("new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")  # drawn so
        shown = canvas_bgr(page)
        with page.expect_download(timeout=WAIT_MS) as snapshot:
            page.click("#snapshot")
        png = tmp_path / snapshot.value.suggested_filename
        snapshot.value.save_as(png)
        page.click("#record")
        assert page.is_visible("#rec")
        page.wait_for_timeout(2000)  # about 2 s of video, as a person would record
        with page.expect_download(timeout=WAIT_MS) as recording:
            page.click("#record")
        video = tmp_path / recording.value.suggested_filename
        recording.value.save_as(video)
        assert not page.is_visible("#rec")
    finally:
        context.close()
    width, height = SCENE_SIZE
    label_box = (8, 8, 60, 40)  # inside the label's panel, top left
    legend_box = (width - 120, height - 30, width - 10, height - 8)  # the colour bar's panel, bottom right
    centre = (width // 3, height // 3, 2 * width // 3, 2 * height // 3)
    image = cv2.imread(str(png))
    assert png.suffix == ".png" and image.shape[1::-1] == SCENE_SIZE
    assert region_difference(image, shown, *centre) < 1  # the picture as shown...
    assert region_difference(image, shown, *label_box) > 25  # ...with the label
    assert region_difference(image, shown, *legend_box) > 25  # ...and the colour bar
    assert video.suffix == ".webm" and video.read_bytes()[:4] == b"\x1a\x45\xdf\xa3"  # a Matroska/WebM file
    duration = ffmpeg_duration_s(video)
    frames, decoded_s = imageio_ffmpeg.count_frames_and_secs(str(video))
    assert frames > 0 and duration is not None
    assert duration > 1 and abs(duration - decoded_s) < 0.5  # the length players show is the video's own
    reader = imageio_ffmpeg.read_frames(str(video))
    meta = next(reader)
    first = cv2.cvtColor(np.frombuffer(next(reader), np.uint8).reshape(meta["size"][1], meta["size"][0], 3), cv2.COLOR_RGB2BGR)
    reader.close()
    assert first.shape[1::-1] == SCENE_SIZE
    assert region_difference(first, shown, *centre) < 12  # the picture, through the video codec
    assert region_difference(first, shown, *label_box) > 25
    assert region_difference(first, shown, *legend_box) > 25


def test_the_servers_source_is_shown_on_request(browser, server):
    context, page = open_page(browser, server.path("/"))
    try:
        wait_results(page)
        page.click("#mode-source")
        page.wait_for_function(
            "window.livecam.mode === 'source' && window.livecam.last && window.livecam.pictureSize[0] === 320", timeout=WAIT_MS
        )
        count = wait_results(page)
        wait_results(page, count + 2)
        assert page.evaluate("[document.getElementById('view').width, document.getElementById('view').height]") == [320, 240]
    finally:
        context.close()


def test_page_survives_a_server_restart(browser, tmp_path):
    first = ServerProcess("--model", "demo", log_dir=tmp_path)
    port = first.host_port.split(":")[1]
    second = None
    context, page = open_page(browser, first.path("/"))
    try:
        before = wait_results(page)
        first.stop()
        page.wait_for_selector("#notice:has-text('server went away')", timeout=WAIT_MS)
        second = ServerProcess("--model", "demo", "--port", port, log_dir=tmp_path)
        wait_results(page, before + 2)  # reconnected on its own, and answers flow again
        page.wait_for_selector("#notice", state="hidden", timeout=WAIT_MS)
    finally:
        context.close()
        first.stop()
        if second is not None:
            second.stop()


@pytest.mark.parametrize("camera", ["none", "refused"])
def test_without_a_camera_the_page_starts_on_the_servers_source_and_says_why(chromium, server, tmp_path, shown, camera):
    launcher, executable = chromium
    if camera == "none":  # the fake prompt says yes, but there is no camera
        args = ["--use-fake-ui-for-media-stream"]
    else:  # a camera, and the visitor says no (headless Chromium's prompt answers "block")
        video = write_y4m(tmp_path / "scene.y4m", shown.image_bgr)
        args = ["--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={video}", "--deny-permission-prompts"]
    browser = launcher.launch(executable_path=executable, args=args)
    try:
        _, page = open_page(browser, server.path("/"))
        page.wait_for_function("window.livecam.mode === 'source' && window.livecam.results > 1", timeout=WAIT_MS)
        text = page.text_content("#notice")
        assert page.is_visible("#notice")
        assert page.get_attribute("#mode-source", "aria-pressed") == "true"
        assert page.evaluate("[document.getElementById('view').width, document.getElementById('view').height]") == [320, 240]
    finally:
        browser.close()
    reason = "No camera was found" if camera == "none" else "The camera was refused"
    assert reason in text and "Meanwhile this shows the server's source" in text


def test_an_insecure_context_is_explained_with_https_and_ssh(browser, server):
    # Plain HTTP under a name other than localhost: the browser offers no camera there.
    url = server.path("/").replace("127.0.0.1", OTHER_NAME)
    context, page = open_page(browser, url)
    try:
        page.wait_for_selector("#notice:visible", timeout=WAIT_MS)
        text = page.text_content("#notice")
        assert page.evaluate("window.isSecureContext") is False
        # The server's source is offered instead, and works.
        page.wait_for_function("window.livecam.mode === 'source' && window.livecam.results > 1", timeout=WAIT_MS)
    finally:
        context.close()
    port = server.host_port.split(":")[1]
    assert "HTTPS" in text and "--certfile" in text and f"ssh -L {port}:localhost:{port}" in text


def test_with_fit_crop_the_page_draws_the_heat_on_the_central_square_only(browser, tmp_path, shown):
    """The page places the small map where the result's box says: with --fit crop, nothing outside the crop."""
    server = ServerProcess("--model", "demo", "--fit", "crop", "--blend", "uniform", log_dir=tmp_path)
    context, page = open_page(browser, server.path("/"))
    try:
        wait_results(page)
        page.eval_on_selector("#alpha", "el => { el.value = 1; el.dispatchEvent(new Event('input')); }")
        wait_results(page, wait_results(page) + 1)
        box = page.evaluate("livecam.last.box")
        image = canvas_bgr(page)
    finally:
        context.close()
        server.stop()
    width, height = SCENE_SIZE
    x0, x1 = round(box[0] * width), round(box[2] * width)
    assert box == pytest.approx([(width - height) / 2 / width, 0.0, (width + height) / 2 / width, 1.0])
    difference = cv2.absdiff(image, shown.image_bgr).mean(axis=2)
    assert difference[:, : x0 - 2].mean() < 12 and difference[:, x1 + 2 :].mean() < 12  # the camera's picture, no heat
    assert difference[:, x0 + 2 : x1 - 2].mean() > 40  # at opacity 100 %, the heat alone


def press_like_a_person(page, selector: str) -> None:
    """Mouse down on ``selector``, held while at least one answer arrives (at 30 answers/s a 150 ms press
    spans several), then up: a list redrawn per answer would take the press from under the pointer."""
    box = page.locator(selector).bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    count = page.evaluate("window.livecam.results")
    page.mouse.down()
    page.wait_for_timeout(150)
    wait_results(page, count)
    page.mouse.up()


def wait_locked_to(page, class_id: int) -> None:
    page.wait_for_function(
        f"livecam.classId === {class_id} && livecam.last.class_id === {class_id} && !document.getElementById('locked').hidden",
        timeout=WAIT_MS,
    )


def test_a_bar_pressed_and_held_like_a_person_locks_its_class(browser, server, shown):
    context, page = open_page(browser, server.path("/"))
    try:
        wait_results(page, 1)
        other = page.evaluate("livecam.last.topk[1]")
        press_like_a_person(page, "#topk li:nth-child(2) button")
        wait_locked_to(page, other["id"])
        assert page.text_content("#label") == other["label"]
        press_like_a_person(page, "#unlock")
        page.wait_for_function(
            f"livecam.classId === null && document.getElementById('label').textContent === {shown.label!r}", timeout=WAIT_MS
        )
    finally:
        context.close()


def test_a_bar_is_chosen_with_the_keyboard(browser, server):
    context, page = open_page(browser, server.path("/"))
    try:
        wait_results(page, 1)
        topk = page.evaluate("livecam.last.topk")
        for _ in range(30):  # Tab to the second bar, as a person would
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.closest('#topk li:nth-child(2)') !== null"):
                break
        else:
            raise AssertionError("Tab never reached the second bar")
        wait_results(page, page.evaluate("livecam.results") + 1)  # answers arrive while it has the focus
        page.keyboard.press("Enter")
        wait_locked_to(page, topk[1]["id"])
        page.keyboard.press("Tab")
        wait_results(page, page.evaluate("livecam.results") + 1)
        page.keyboard.press("Space")  # a focused button takes Space as a press, not as the pause key
        wait_locked_to(page, topk[2]["id"])
        assert page.evaluate("livecam.paused") is False
    finally:
        context.close()


def test_the_windows_keys_drive_the_page(browser, server, tmp_path):
    from livecam.viewer.control import step_alpha

    context, page = open_page(browser, server.path("/"))
    try:
        wait_results(page, 1)
        topk = page.evaluate("livecam.last.topk")
        page.keyboard.press("3")
        wait_locked_to(page, topk[2]["id"])
        page.keyboard.press("0")
        page.wait_for_function("livecam.classId === null && livecam.last.class_id === livecam.last.topk[0].id", timeout=WAIT_MS)

        methods, method = page.evaluate("[livecam.config.methods, livecam.method]")
        following = methods[(methods.index(method) + 1) % len(methods)]
        page.keyboard.press("m")
        page.wait_for_function(
            f"livecam.last.method === {following!r} && document.getElementById('method').value === {following!r}", timeout=WAIT_MS
        )

        alpha = page.evaluate("livecam.alpha")
        for key in "]][":
            page.keyboard.press(key)
        expected = step_alpha(step_alpha(step_alpha(alpha, 1), 1), -1)
        assert page.evaluate("[livecam.alpha, Number(document.getElementById('alpha').value)]") == [pytest.approx(expected)] * 2
        page.focus("#alpha")  # typing in a field: the keys are the field's
        page.keyboard.press("]")
        page.keyboard.press("m")
        assert page.evaluate("[livecam.alpha, livecam.method]") == [pytest.approx(expected), following]
        page.click("header h1")

        page.keyboard.press("Space")
        assert page.evaluate("livecam.paused") is True and page.text_content("#pause") == "Resume"
        page.keyboard.press("Space")
        assert page.evaluate("livecam.paused") is False

        page.keyboard.press("h")
        assert page.is_visible("#help") and "fullscreen" in page.text_content("#help")
        page.keyboard.press("h")
        assert not page.is_visible("#help")

        page.keyboard.press("f")
        # The button says so once the browser's fullscreenchange event has come.
        page.wait_for_function(
            "document.fullscreenElement === document.getElementById('view').parentElement"
            " && document.getElementById('fullscreen').getAttribute('aria-pressed') === 'true'",
            timeout=WAIT_MS,
        )
        page.keyboard.press("f")
        page.wait_for_function("document.fullscreenElement === null", timeout=WAIT_MS)
        page.click("#fullscreen")  # the button does the same
        page.wait_for_function("document.fullscreenElement !== null", timeout=WAIT_MS)
        page.keyboard.press("f")
        page.wait_for_function("document.fullscreenElement === null", timeout=WAIT_MS)

        with page.expect_download(timeout=WAIT_MS) as snapshot:
            page.keyboard.press("s")
        page.keyboard.press("r")
        assert page.is_visible("#rec")
        wait_results(page, page.evaluate("livecam.results") + 2)
        with page.expect_download(timeout=WAIT_MS) as recording:
            page.keyboard.press("r")
        assert not page.is_visible("#rec")
        names = [snapshot.value.suggested_filename, recording.value.suggested_filename]
    finally:
        context.close()
    assert names[0].endswith(".png") and names[1].endswith(".webm")


def test_the_pause_opacity_and_colormap_the_person_steers_are_the_connections(browser, server):
    socket = SocketLog()
    context, page = open_page(browser, server.path("/"), socket)
    try:
        wait_results(page, 1)
        page.keyboard.press("]")
        socket.wait_sent(page, {"alpha": page.evaluate("livecam.alpha")})
        page.keyboard.press("[")
        socket.wait_sent(page, {"alpha": page.evaluate("livecam.alpha")})
        slider = page.locator("#alpha").bounding_box()
        page.mouse.click(slider["x"] + slider["width"] / 4, slider["y"] + slider["height"] / 2, delay=150)
        alpha = page.evaluate("livecam.alpha")
        assert 0.1 <= alpha <= 0.4  # a quarter of the way along
        socket.wait_sent(page, {"alpha": alpha})
        names, current = page.evaluate("[Object.keys(livecam.config.colormaps), livecam.colormap]")
        other = next(name for name in names if name != current)
        page.select_option("#colormap", other)
        socket.wait_sent(page, {"colormap": other})
        press_like_a_person(page, "#pause")
        socket.wait_sent(page, {"paused": True})
        page.keyboard.press("Space")
        socket.wait_sent(page, {"paused": False})
    finally:
        context.close()
    assert not [m for m in socket.received if m["type"] == "control_error"]  # the server took every one


def test_paused_on_the_servers_source_a_new_method_or_class_explains_the_frozen_frame(browser, server):
    """Space pauses the connection too: the server answers the next pull with the frame it sent last, explained again."""
    socket = SocketLog()
    context, page = open_page(browser, server.path("/"), socket)
    try:
        wait_results(page, 1)
        press_like_a_person(page, "#mode-source")
        page.wait_for_function("livecam.mode === 'source' && livecam.last && livecam.last.frame > 0", timeout=WAIT_MS)
        page.click("header h1")  # off the focused button: Space would press it
        page.keyboard.press("Space")
        assert page.evaluate("livecam.paused") is True
        socket.wait_pulls_answered(page)  # the frame on the screen is the last the server sent

        methods, method = page.evaluate("[livecam.config.methods, livecam.method]")
        following = methods[(methods.index(method) + 1) % len(methods)]
        page.keyboard.press("m")
        page.wait_for_function(f"livecam.last.method === {following!r}", timeout=WAIT_MS)
        socket.wait_pulls_answered(page)
        second = page.evaluate("livecam.last.topk[1].id")
        page.keyboard.press("2")
        page.wait_for_function(f"livecam.last.class_id === {second} && livecam.classId === {second}", timeout=WAIT_MS)

        page.keyboard.press("Space")  # the source goes on
        page.wait_for_function(f"livecam.last.frame > {page.evaluate('livecam.last.frame')}", timeout=WAIT_MS)
    finally:
        context.close()
    answers = [m for m in socket.received if m["type"] in ("source_result", "source_error", "control_error")]
    assert all(m["type"] == "source_result" for m in answers), answers[-3:]
    asked = next(i for i, m in enumerate(answers) if m["method"] == following)
    locked = next(i for i, m in enumerate(answers) if m["class_id"] == second and m["method"] == following)
    frozen = answers[asked - 1]  # the last frame before the new method: on the page's screen when it was asked
    for again in (answers[asked], answers[locked]):
        assert (again["frame"], again["image"]) == (frozen["frame"], frozen["image"])  # the same picture, explained anew
    assert answers[asked]["class_id"] == frozen["class_id"] != second  # the new method first, then the class


# The page's own code, imported into the page (with its token, as the page imports it), run on the same inputs as the renderer's.
PAGE_MODULES = "const load = (name) => import(`./${name}.js${location.search}`);"


def test_the_pages_rules_are_the_renderers_on_the_same_inputs(browser, server):
    """Smoothing, the heat blend and its opacity, the opacity keys and the percent text: the page's code and Python's agree."""
    from livecam.render import CamSmoother, blend, blend_heat, colorize, format_percent
    from livecam.viewer.control import step_alpha

    rng = np.random.default_rng(18)
    context, page = open_page(browser, server.path("/"))
    try:
        wait_results(page)
        config, rules = page.evaluate("[livecam.config, livecam.rules]")
        sent = config["rules"]
        assert rules == {
            "smooth": sent["smooth"],
            "blend": sent["blend"],
            "alphaStep": sent["alpha_step"],
            "percent": sent["percent"],
            "heatLevels": sent["heat_levels"],
            "cubicStep": sent["cubic_step"],
            "alphaDecimals": sent["alpha_decimals"],
            "gridMaxW": sent["grid_max_w"],
        }
        assert (sent["smooth"], sent["blend"]) == (config["smooth"], config["blend"])

        # Smoothing: maps in 0..255 as the wire sends them; the average restarts on a new question or a new size.
        steps = [
            ((5, 7), "gradcam|"),
            ((5, 7), "gradcam|"),
            ((5, 7), "gradcam|"),
            ((5, 7), "gradcam|3"),
            ((5, 7), "gradcam|3"),
            ((4, 6), "gradcam|3"),
            ((4, 6), "gradcam|3"),
        ]
        maps = [rng.integers(0, 256, shape, dtype=np.uint8) for shape, _ in steps]
        for smooth in (config["smooth"], 0.0, 0.3, 0.9):
            smoothed = page.evaluate(
                PAGE_MODULES
                + """async ([smooth, steps]) => {
                    const { HeatLayer } = await load("heat");
                    const layer = new HeatLayer({ ...livecam.rules, smooth });
                    return steps.map(([data, width, height, explains]) => (layer.update({ data, width, height }, explains), Array.from(layer.smoothed.data)));
                }""",
                [
                    smooth,
                    [
                        [base64.b64encode(m.tobytes()).decode(), m.shape[1], m.shape[0], explains]
                        for m, (_, explains) in zip(maps, steps)
                    ],
                ],
            )
            smoother, explained = CamSmoother(smooth), None
            for got, cam, (_, explains) in zip(smoothed, maps, steps):
                if explains != explained:  # the renderer's rule: a new question restarts the smoothing
                    smoother.reset()
                    explained = explains
                np.testing.assert_allclose(
                    np.float64(got).reshape(cam.shape) / 255, smoother.update(cam / 255.0), rtol=0, atol=1e-6
                )

        # The blend and its opacity, at the map's own size (the upsampling is the browser's, not a rule).
        height, width = 24, 32
        frame = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        cam = np.concatenate(
            [rng.integers(0, 256, (height - 4, width), dtype=np.uint8), np.uint8([0, 1, 254, 255])[:, None].repeat(width, 1)]
        )
        for blend_name in ("heat", "uniform"):
            for colormap in ("jet", "viridis"):
                for alpha in (0.0, 0.05, 0.1, 0.4, 0.5, 0.6, 0.93, 1.0):
                    rgba = page.evaluate(
                        PAGE_MODULES
                        + """async ([frame, cam, width, height, alpha, blend, colormap]) => {
                            const [{ HeatLayer, base64Bytes }] = await Promise.all([load("heat")]);
                            const view = document.createElement("canvas");
                            [view.width, view.height] = [width, height];
                            const ctx = view.getContext("2d", { willReadFrequently: true });
                            const rgb = base64Bytes(frame), picture = ctx.createImageData(width, height);
                            for (let i = 0; i < width * height; i++) picture.data.set([rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2], 255], 4 * i);
                            ctx.putImageData(picture, 0, 0);
                            const layer = new HeatLayer({ ...livecam.rules, blend });
                            layer.update({ data: cam, width, height }, "");
                            layer.draw(ctx, width, height, [0, 0, 1, 1], alpha, base64Bytes(livecam.config.colormaps[colormap]));
                            return Array.from(ctx.getImageData(0, 0, width, height).data);
                        }""",
                        [
                            base64.b64encode(frame[..., ::-1].tobytes()).decode(),
                            base64.b64encode(cam.tobytes()).decode(),
                            width,
                            height,
                            alpha,
                            blend_name,
                            colormap,
                        ],
                    )
                    drawn = np.uint8(rgba).reshape(height, width, 4)[..., 2::-1]
                    heat = colorize(cam / 255.0, colormap)
                    expected = blend_heat(frame, heat, cam / 255.0, alpha) if blend_name == "heat" else blend(frame, heat, alpha)
                    worst = int(np.abs(drawn.astype(int) - expected).max())
                    assert worst <= 1, f"{blend_name} blend, {colormap}, alpha {alpha}: {worst} grey levels from the renderer's"

        # The opacity keys, from every point of the slider.
        alphas = [round(a, 2) for a in np.arange(0, 1.001, 0.05)] + [0.33, 0.999]
        got = page.evaluate(
            PAGE_MODULES
            + "async (alphas) => { const { stepAlpha } = await load('rules'); return alphas.map((a) => [-3, -1, 1, 2].map((k) => stepAlpha(a, k, livecam.rules))); }",
            alphas,
        )
        assert got == [[pytest.approx(step_alpha(a, k), abs=1e-6) for k in (-3, -1, 1, 2)] for a in alphas]

        # Percent text: ties (0.1225 is 12.25 % exactly), the edges of "<0.1%" and ">99.9%", and what is no probability.
        probs = [
            0.0,
            1e-9,
            0.0004,
            0.00049,
            0.0005,
            0.000500001,
            0.1225,
            0.1235,
            0.12345,
            0.5,
            0.9994,
            0.99949,
            0.9995,
            0.99951,
            0.999999,
            1.0,
            1.5,
            -0.0004,
        ]
        probs += [float(p) for p in rng.random(200)] + [float(p) for p in np.round(rng.random(200), 4)]
        texts = page.evaluate(
            PAGE_MODULES
            + "async (probs) => { const { percent } = await load('rules'); return probs.map((p) => percent(p, livecam.rules.percent)); }",
            probs + [None],
        )
        specials = page.evaluate(
            PAGE_MODULES
            + "async () => { const { percent } = await load('rules'); return [NaN, Infinity, -Infinity].map((p) => percent(p)); }"
        )
    finally:
        context.close()
    assert texts == [format_percent(p) for p in probs + [None]]
    assert specials == [format_percent(p) for p in (float("nan"), float("inf"), float("-inf"))]


def drag_box_around_the_object(page, shown) -> list[tuple[float, float]]:
    """Mouse down on one corner of a box around the object (half as large again), moved, held
    ~150 ms, up on the other corner; returns the corners in fractions of the picture."""
    x0, y0, x1, y1 = shown.box_xyxy
    w, h = x1 - x0 + 1, y1 - y0 + 1
    width, height = shown.image_bgr.shape[1], shown.image_bgr.shape[0]
    corners = [(max(0, x0 - w / 4) / width, max(0, y0 - h / 4) / height)]
    corners.append((min(width, x1 + w / 4) / width, min(height, y1 + h / 4) / height))
    rect = page.locator("#view").bounding_box()  # the picture in it: object-fit contain
    scale = min(rect["width"] / width, rect["height"] / height)
    left, top = rect["x"] + (rect["width"] - width * scale) / 2, rect["y"] + (rect["height"] - height * scale) / 2
    (ax, ay), (bx, by) = ((left + fx * width * scale, top + fy * height * scale) for fx, fy in corners)
    page.mouse.move(ax, ay)
    page.mouse.down()
    page.mouse.move((ax + bx) / 2, (ay + by) / 2)
    page.wait_for_timeout(150)
    page.mouse.move(bx, by)
    page.mouse.up()
    return corners


def test_a_box_drawn_on_the_picture_reads_out_the_heat_in_it_and_c_clears_it(browser, server, shown):
    """Mouse down on one corner of the object, moved, held ~150 ms, up on the other: the readout says most of the heat is in it."""
    socket = SocketLog()
    context, page = open_page(browser, server.path("/"), socket)
    try:
        wait_results(page, 1)
        corners = drag_box_around_the_object(page, shown)
        page.wait_for_function("livecam.last && livecam.last.box_xywh !== null", timeout=WAIT_MS)
        box = page.evaluate("livecam.box")
        assert box[0] == pytest.approx(corners[0][0], abs=0.01) and box[2] == pytest.approx(
            corners[1][0] - corners[0][0], abs=0.01
        )
        last = page.evaluate("livecam.last")
        assert last["box_energy"] > 0.5 and last["box_peak_inside"] is True
        readout = page.text_content("#region")
        assert readout == f"in box: {round(100 * last['box_energy'])}% of the heat, peak inside"
        page.keyboard.press("c")
        socket.wait_sent(page, {"box": None})
        page.wait_for_function("livecam.box === null && livecam.last.box_xywh === null", timeout=WAIT_MS)
        page.select_option("#normalize", "session")
        page.wait_for_function("livecam.last.normalize === 'session'", timeout=WAIT_MS)
        assert page.text_content("#legend-high") == "session max"
    finally:
        context.close()


def test_the_side_by_side_selector_shows_three_labelled_panels_then_each_method(browser, server, shown):
    """The selector pressed like a person (mouse down ~150 ms, up), then chosen with the arrow keys."""
    from livecam.engine.methods import METHOD_NAMES

    socket = SocketLog()
    context, page = open_page(browser, server.path("/"), socket)
    try:
        wait_results(page, 1)
        width, height = page.evaluate("[document.getElementById('view').width, document.getElementById('view').height]")
        box = page.locator("#compare").bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.wait_for_timeout(150)
        page.mouse.up()
        page.keyboard.press("ArrowDown")
        page.keyboard.press("Enter")
        socket.wait_sent(page, {"compare": "classes"})
        page.wait_for_function("livecam.last && livecam.last.panels.length === 3", timeout=WAIT_MS)
        last = page.evaluate("livecam.last")
        captions = page.locator("#panels li").all_text_contents()
        grid = page.evaluate("[document.getElementById('view').width, document.getElementById('view').height]")
        picture = canvas_bgr(page)
        page.keyboard.press("ArrowDown")  # the select keeps the focus: the next choice
        socket.wait_sent(page, {"compare": "methods"})
        page.wait_for_function(f"livecam.last && livecam.last.panels.length === {len(METHOD_NAMES)}", timeout=WAIT_MS)
        methods = page.locator("#panels li").all_text_contents()
        page.keyboard.press("Home")
        socket.wait_sent(page, {"compare": None})
        page.wait_for_function("livecam.last && livecam.last.panels.length === 0", timeout=WAIT_MS)
        page.wait_for_function(f"document.getElementById('view').width === {width}", timeout=WAIT_MS)
        assert not page.is_visible("#panels")
    finally:
        context.close()
    labels = [entry["label"] for entry in last["topk"][:3]]
    assert labels[0] == shown.label
    assert [caption.rsplit(" ", 1)[0] for caption in captions] == [f"top {i}: {label}" for i, label in enumerate(labels, 1)]
    assert all(caption.endswith("%") for caption in captions)
    assert grid == [3 * width, height]  # the window's grid: three panels in a row, each the picture's size
    panels = [picture[:, i * width : (i + 1) * width] for i in range(3)]
    assert region_difference(panels[0], panels[1], 0, height // 4, width, height) > 3  # each panel its own map
    assert [caption.split(":")[0] for caption in methods] == list(METHOD_NAMES)


@pytest.mark.subprocess
def test_the_pages_snapshot_and_recording_carry_the_box_and_its_readout(browser, server, shown, tmp_path):
    """As the window draws them: the box's outline, and its readout in a panel just above it."""
    context, page = open_page(browser, server.path("/"))
    try:
        wait_results(page, 1)
        page.eval_on_selector("#alpha", "el => { el.value = 0; el.dispatchEvent(new Event('input')); }")  # the picture alone
        (fx, fy), _ = drag_box_around_the_object(page, shown)
        page.wait_for_function("livecam.last && livecam.last.box_xywh !== null", timeout=WAIT_MS)
        page.click("#pause")
        page.evaluate("new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
        with page.expect_download(timeout=WAIT_MS) as snapshot:
            page.keyboard.press("s")
        png = tmp_path / "snapshot.png"
        snapshot.value.save_as(png)
        page.keyboard.press("r")
        page.wait_for_timeout(1500)
        with page.expect_download(timeout=WAIT_MS) as recording:
            page.keyboard.press("r")
        video = tmp_path / "recording.webm"
        recording.value.save_as(video)
    finally:
        context.close()
    width, height = SCENE_SIZE
    x, y = round(fx * width), round(fy * height)
    # The readout's panel, 17 pixels high for a 480-pixel picture (the renderer's small text, 13,
    # and its padding, 5): above the box's top left corner, or inside its top edge where there is no room.
    top = y - 22 if y >= 22 else y + 5
    readout = (x + 130, top + 2, x + 200, top + 15)  # right of the label's panel (top left), which it may pass under
    outline = (x - 1, y + 60, x + 2, y + 100)  # the box's left edge, below the label's panel
    image = cv2.imread(str(png))
    reader = imageio_ffmpeg.read_frames(str(video))
    meta = next(reader)
    first = cv2.cvtColor(np.frombuffer(next(reader), np.uint8).reshape(meta["size"][1], meta["size"][0], 3), cv2.COLOR_RGB2BGR)
    reader.close()
    for picture in (image, first):
        assert picture.shape[1::-1] == SCENE_SIZE
        assert region_difference(picture, shown.image_bgr, *readout) > 20
        assert region_difference(picture, shown.image_bgr, *outline) > 20


def test_the_faithfulness_readout_is_shown_held_and_turned_off_by_its_toggle(browser, server):
    socket = SocketLog()
    context, page = open_page(browser, server.path("/"), socket)
    try:
        page.wait_for_function("document.getElementById('faith').textContent !== ''", timeout=WAIT_MS)
        shown_text = page.text_content("#faith")
        sent = [m["faith_text"] for m in socket.received if m.get("faith_text")]
        wait_results(page, page.evaluate("livecam.results") + 2)  # answers without a readout keep it on screen
        held = page.text_content("#faith")
        press_like_a_person(page, "#faithfulness")
        socket.wait_sent(page, {"faithfulness": False})
        after = (page.text_content("#faith"), page.get_attribute("#faithfulness", "aria-pressed"))
    finally:
        context.close()
    assert re.fullmatch(r"hide the heat: (-\d+|0|\+\d+) % \(control (-\d+|0|\+\d+) %\)", shown_text), shown_text
    assert shown_text == sent[0] and held in sent
    assert after == ("", "false")
    assert not [m for m in socket.received if m["type"] == "control_error"]
