"""Tests for livecam.viewer.recorder: the video writer, and what becomes of a recording however the run ends.

Nothing a user owns is destroyed, and every recording survives any kill: recordings are written
under a temporary name and renamed at the end; while recording the MP4 is fragmented, so that a
file cut short by a kill or a full disk still plays; a stuck encoder cannot hold the program;
what a failure message says was kept is what the file holds. Kills and stops use real
processes; every wait is bounded.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import textwrap
import time
from collections import namedtuple
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import psutil
import pytest

from helpers import (
    BOUND_S,
    DEMO,
    DEMO_QUIET,
    ENV,
    VFR_TIMES,
    decodable,
    kept_in,
    opencv_count,
    read_frames,
    unwritable_folder,
    vfr_video,
    video_info,
    wait_for,
)
from livecam.cli import main
from livecam.errors import UserError
from livecam.viewer import encoders, recorder, safe_files
from livecam.viewer.recorder import VideoWriter
from livecam.viewer.sinks import SinkError


def decoded_indices(path, index_of) -> list[int]:
    return [index_of(image.astype(np.uint8)) for image in read_frames(path)]


def write_frames(writer: VideoWriter, make_video, indices, size=(160, 120), timestamps=None) -> None:
    for k, i in enumerate(indices):
        writer.write(make_video.frame(i, size), None if timestamps is None else timestamps[k])


# ---------------------------------------------------------------------- writing


def test_file_mode_writes_every_frame_once_as_h264(tmp_path, make_video):
    path = tmp_path / "out.mp4"
    with VideoWriter(path, fps=12.5) as writer:
        write_frames(writer, make_video, range(37))
    assert writer.backend == "ffmpeg" and writer.frames_written == 37
    info = video_info(path)
    assert info["codec"] == "h264" and info["pix_fmt"].startswith("yuv420p")
    assert (info["size"], info["fps"], info["frames"]) == ((160, 120), 12.5, 37)
    assert decoded_indices(path, make_video.index_of) == list(range(37))


def test_odd_sizes_are_padded_by_one_pixel(tmp_path, make_video):
    path = tmp_path / "odd.mp4"
    with VideoWriter(path, fps=15) as writer:
        write_frames(writer, make_video, range(20), size=(161, 121))
    info = video_info(path)
    assert (info["size"], info["frames"]) == ((162, 122), 20)


def test_frames_of_another_size_are_fitted(tmp_path, make_video):
    path = tmp_path / "fit.mp4"
    with VideoWriter(path, fps=15, size=(160, 120)) as writer:
        writer.write(make_video.frame(0, (160, 120)))
        writer.write(make_video.frame(1, (64, 96)))
        writer.write(make_video.frame(2, (320, 240)))
    info = video_info(path)
    assert (info["size"], info["frames"]) == ((160, 120), 3)


def test_live_mode_follows_capture_timestamps(tmp_path, make_video):
    path = tmp_path / "live.mp4"
    timestamps = [100.0, 100.1, 100.2, 100.21, 101.0]  # a 0.01 s pair, then a 0.79 s gap
    with VideoWriter(path, fps=10, live=True) as writer:
        write_frames(writer, make_video, range(5), timestamps=timestamps)
    # Slot n = round((t - 100) * 10): 0, 1, 2, 2 (the later wins), 10; the gap repeats frame 3.
    assert decoded_indices(path, make_video.index_of) == [0, 1, 3, 3, 3, 3, 3, 3, 3, 3, 4]
    assert (writer.frames_received, writer.frames_written, writer.repeated, writer.dropped) == (5, 11, 7, 1)
    assert video_info(path)["duration"] == pytest.approx(1.1, abs=0.05)


def test_no_frames_no_file(tmp_path):
    path = tmp_path / "empty.mp4"
    VideoWriter(path, fps=30).close()
    assert not path.exists()


def test_existing_file_needs_overwrite(tmp_path, make_video):
    path = tmp_path / "out.mp4"
    path.write_bytes(b"old")
    with pytest.raises(UserError, match=r"out.mp4' already exists; pass --overwrite to replace it, or choose another name\.$"):
        VideoWriter(path, fps=30)
    with VideoWriter(path, fps=30, overwrite=True) as writer:
        write_frames(writer, make_video, range(3))
    assert video_info(path)["frames"] == 3


def test_bad_output_paths(tmp_path):
    with pytest.raises(UserError, match=r"The folder '.*missing' for 'out.mp4' does not exist; create it first"):
        VideoWriter(tmp_path / "missing" / "out.mp4", fps=30)
    with pytest.raises(UserError, match=r"Expected an output file ending in .mp4 \(or .mov, .m4v, .mkv\). Received: '.*out.avi'"):
        VideoWriter(tmp_path / "out.avi", fps=30)
    (tmp_path / "dir.mp4").mkdir()
    with pytest.raises(UserError, match=r"is a folder; give a file name, such as"):
        VideoWriter(tmp_path / "dir.mp4", fps=30)
    with pytest.raises(UserError, match=r"^Cannot write to the folder '.*' \(.*\); choose another folder"):
        VideoWriter(os.path.join(unwritable_folder(tmp_path), "out.mp4"), fps=30)
    with pytest.raises(UserError, match=r"Expected fps > 0 for the video. Received: fps=0"):
        VideoWriter(tmp_path / "out.mp4", fps=0)


def test_bad_frames_and_writes_after_close(tmp_path, make_video):
    writer = VideoWriter(tmp_path / "out.mp4", fps=30)
    with pytest.raises(
        ValueError, match=r"Expected frame_bgr to be a uint8 BGR image of shape \(height, width, 3\). Received: float32"
    ):
        writer.write(np.zeros((120, 160, 3), np.float32))
    writer.write(make_video.frame(0))
    writer.close()
    writer.close()  # idempotent
    with pytest.raises(SinkError, match=r"is closed; open a new VideoWriter"):
        writer.write(make_video.frame(1))


def test_exit_does_not_swallow_exceptions_and_keeps_the_file(tmp_path, make_video):
    path = tmp_path / "out.mp4"
    with pytest.raises(ZeroDivisionError):
        with VideoWriter(path, fps=30) as writer:
            write_frames(writer, make_video, range(4))
            raise ZeroDivisionError
    assert video_info(path)["frames"] == 4


def write_until_it_fails(writer: VideoWriter, make_video, start: int, bound_s: float = 60.0) -> SinkError:
    """Keep writing (the encoder's failure shows at a later write) until SinkError, at most ``bound_s``."""
    deadline = time.monotonic() + bound_s
    i = start
    while time.monotonic() < deadline:
        try:
            writer.write(make_video.frame(i))
        except SinkError as error:
            return error
        i += 1
        time.sleep(0.01)
    raise AssertionError(f"no SinkError within {bound_s} s")


def wait_handed_over(writer: VideoWriter, n: int, bound_s: float = 60.0) -> None:
    """Wait (bounded) until the writer thread gave ``n`` frames to ffmpeg."""
    deadline = time.monotonic() + bound_s
    while writer.frames_written < n and time.monotonic() < deadline:
        time.sleep(0.01)
    assert writer.frames_written >= n


def test_ffmpeg_killed_mid_recording_keeps_what_decodes_and_says_exactly_how_much(tmp_path, make_video):
    path = tmp_path / "out.mp4"
    writer = VideoWriter(path, fps=15)
    write_frames(writer, make_video, range(40))
    wait_handed_over(writer, 40)
    time.sleep(1.0)  # ffmpeg encodes and writes the fragments of the frames it has
    os.kill(writer._feed.encoder.pid, signal.SIGKILL)
    error = write_until_it_fails(writer, make_video, 40)
    message = str(error)
    assert "ffmpeg was stopped by signal 9" in message
    kept = int(re.search(r"keeps the first (\d+) frames", message).group(1))
    assert writer.saved_path == path and 15 <= kept <= 40
    # The number said is the number that decodes, by ffmpeg and by OpenCV, in order from the first.
    assert video_info(path)["frames"] == kept
    assert decoded_indices(path, make_video.index_of) == list(range(kept))
    writer.close()  # after a failure: nothing more to do, no second error
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"], "no temporary file is left behind"


def test_low_disk_space_stops_recording_with_a_playable_file(tmp_path, make_video, monkeypatch):
    path = tmp_path / "out.mp4"
    Usage = namedtuple("Usage", "total used free")
    free = [10 * 2**30]
    monkeypatch.setattr(safe_files.shutil, "disk_usage", lambda folder: Usage(20 * 2**30, 0, free[0]))
    writer = VideoWriter(path, fps=10)  # checks once every 10 frames
    write_frames(writer, make_video, range(15))
    free[0] = 5 * 2**20
    with pytest.raises(
        SinkError,
        match=r"Stopped recording .*out.mp4: only 5 MB left on the disk; .*out.mp4 keeps the first 20 frames \(2.0 s; checked by decoding it\)\.$",
    ):
        write_frames(writer, make_video, range(15, 30))
    writer.close()
    assert video_info(path)["frames"] == 20


def test_falls_back_to_opencv_when_ffmpeg_cannot_start(tmp_path, make_video, monkeypatch):
    def no_ffmpeg():
        raise RuntimeError("No ffmpeg exe could be found")

    monkeypatch.setattr(encoders.imageio_ffmpeg, "get_ffmpeg_exe", no_ffmpeg)
    path = tmp_path / "out.mp4"
    with VideoWriter(path, fps=15) as writer:
        with pytest.warns(RuntimeWarning, match=r"Could not start ffmpeg .*OpenCV's mp4v codec instead"):
            writer.write(make_video.frame(0))
        write_frames(writer, make_video, range(1, 12))
    assert writer.backend == "opencv" and len(writer.warnings) == 1
    assert decoded_indices(path, make_video.index_of) == list(range(12))


CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from livecam.viewer.recorder import VideoWriter

    path, n = sys.argv[1], int(sys.argv[2])
    with VideoWriter(path, fps=15) as writer:
        for i in range(n):
            writer.write(np.full((120, 160, 3), 10 * i, np.uint8))
        deadline = time.monotonic() + 60
        while writer.frames_written < n and time.monotonic() < deadline:
            time.sleep(0.01)  # the writer thread hands them to ffmpeg
        print("written", flush=True)
        time.sleep(120)
    """
)


@pytest.mark.subprocess
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_recording_survives_the_process_being_stopped(tmp_path, signum):
    path = tmp_path / "out.mp4"
    # Its own process group, like a program in a terminal; the signal goes to the whole group.
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), "12"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env=ENV,
    )
    try:
        ready, _, _ = select.select([child.stdout], [], [], 60)
        assert ready and child.stdout.readline() == b"written\n", child.stderr.read().decode()
        os.killpg(child.pid, signum)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    stderr = child.stderr.read().decode()
    if signum == signal.SIGINT:
        # Python stopped on the KeyboardInterrupt and closed the writer; ffmpeg never saw the signal.
        assert "KeyboardInterrupt" in stderr and "SinkError" not in stderr, stderr
        assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]
    else:
        # Python died at once: ffmpeg, orphaned, sees the end of its input and finishes the file,
        # which stays under its temporary name beside the target (nobody is left to rename it).
        assert not path.exists()
        (partial,) = tmp_path.glob("out.partial-*.mp4")
        path = partial
    deadline = time.monotonic() + 30
    while True:
        try:
            frames = imageio_ffmpeg.count_frames_and_secs(str(path))[0]
        except (RuntimeError, OSError):
            frames = None
        if frames == 12 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert frames == 12


# ---------------------------------------------------------------------- recordings survive (kills, full disks, stuck encoders)


def noise(i: int, size=(320, 240)) -> np.ndarray:
    """A frame that compresses badly, so that files grow fast."""
    return np.random.default_rng(i).integers(0, 256, (size[1], size[0], 3), np.uint8)


def record_then_kill_both(out: Path, *, fps: int, frames: int) -> Path:
    """A child process records ``frames`` frames to ``out``; once ffmpeg has had time to write
    them, the child and its ffmpeg are killed at once (a container or cgroup kill). The partial file."""
    child_code = textwrap.dedent(
        f"""
        import sys, time
        import numpy as np
        from livecam.viewer.recorder import VideoWriter

        writer = VideoWriter(sys.argv[1], fps={fps})
        for i in range({frames}):
            writer.write(np.full((120, 160, 3), (3 * i) % 256, np.uint8))
        deadline = time.monotonic() + 60
        while writer.frames_written < {frames} and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(2.0)  # ffmpeg encodes what it has and writes the complete fragments
        print(writer._feed.encoder.pid, flush=True)
        time.sleep(120)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", child_code, str(out)], stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        ffmpeg_pid = int(child.stdout.readline())  # the child prints within its own bounds, or dies
        for pid in (child.pid, ffmpeg_pid):
            os.kill(pid, signal.SIGKILL)
        child.wait(timeout=BOUND_S)
        psutil.Process(ffmpeg_pid).wait(timeout=BOUND_S) if psutil.pid_exists(ffmpeg_pid) else None
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    (partial,) = out.parent.glob(f"{out.stem}.partial-*{out.suffix}")
    return partial


@pytest.mark.parametrize(
    "suffix", [".mp4", pytest.param(".mkv", marks=pytest.mark.slow), pytest.param(".mov", marks=pytest.mark.slow)]
)
def test_ffmpeg_and_livecam_killed_together_leave_a_playable_file(tmp_path, suffix):
    """A container or cgroup kill: both processes die at once; nobody finishes the file."""
    out = tmp_path / f"out{suffix}"
    partial = record_then_kill_both(out, fps=15, frames=60)
    # Keyframes every 15 frames: at least the 3 complete seconds (45 frames) are in the file.
    frames = decodable(partial)
    assert frames >= 45
    assert opencv_count(partial) == frames
    assert video_info(partial)["codec"] == "h264"


def test_disk_filled_by_another_program_keeps_what_was_recorded(tmp_path):
    """ffmpeg fails writing between livecam's free-space checks; the file plays and the count is true."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs that can be filled up")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)], capture_output=True, timeout=60)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        out = mount / "out.mp4"
        writer = VideoWriter(out, fps=10, min_free_bytes=0)  # livecam's own check never fires
        for i in range(25):
            writer.write(noise(i))
        wait_for(lambda: writer.frames_written == 25, "handing 25 frames to ffmpeg")
        wait_for(lambda: sum(p.stat().st_size for p in mount.iterdir()) > 200_000, "two fragments on the disk")
        with open(mount / "hog", "wb") as hog:  # another program takes the rest of the disk
            while True:
                try:
                    hog.write(bytes(2**16))
                    hog.flush()
                except OSError:
                    break
        error = None
        deadline = time.monotonic() + BOUND_S
        i = 25
        while error is None and time.monotonic() < deadline:
            try:
                writer.write(noise(i))
                i += 1
                time.sleep(0.02)
            except SinkError as exc:
                error = exc
        assert error is not None, "the failure was never reported"
        message = str(error)
        assert "No space left on device" in message, message
        kept = kept_in(message)
        assert kept >= 10
        assert writer.saved_path == out and decodable(out) == kept and opencv_count(out) == kept
        writer.close()
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=60)


def test_two_writers_on_one_path_both_keep_their_recording(tmp_path, make_video):
    out = tmp_path / "out.mp4"
    first = VideoWriter(out, fps=15, overwrite=True)
    second = VideoWriter(out, fps=15, overwrite=True)
    for i in range(10):
        first.write(make_video.frame(i))
        second.write(make_video.frame(100 + i))
    first.close()
    second.close()
    assert first.saved_path == out and second.saved_path == tmp_path / "out-2.mp4"
    assert second.warnings == [f"Another program wrote {out} during this recording; it was left as it is, and this "
                               f"recording was saved as {tmp_path / 'out-2.mp4'}."]  # fmt: skip
    assert [make_video.index_of(f.astype(np.uint8)) for f in read_frames(out)] == list(range(10))
    assert [make_video.index_of(f.astype(np.uint8)) for f in read_frames(second.saved_path)] == list(range(100, 110))


def test_overwrite_replaces_the_old_file_in_one_step(tmp_path, make_video):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"old recording")
    writer = VideoWriter(out, fps=15, overwrite=True)
    for i in range(5):
        writer.write(make_video.frame(i))
    assert out.read_bytes() == b"old recording", "the old file stays whole while recording"
    writer.close()
    assert decodable(out) == 5 and sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


@pytest.mark.parametrize("suffix", [".mov", ".m4v", ".mkv"])
def test_every_container_is_finished_and_renamed(tmp_path, make_video, suffix):
    out = tmp_path / f"out{suffix}"
    with VideoWriter(out, fps=15) as writer:
        for i in range(20):
            writer.write(make_video.frame(i))
    assert writer.saved_path == out and [p.name for p in tmp_path.iterdir()] == [out.name]
    assert decodable(out) == 20 and opencv_count(out) == 20


def test_the_finished_file_is_an_ordinary_fast_start_h264_mp4(tmp_path, make_video):
    out = tmp_path / "out.mp4"
    with VideoWriter(out, fps=15) as writer:
        for i in range(31):
            writer.write(make_video.frame(i))
    data = out.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat"), "the index comes first: browsers start playing at once"
    assert b"moof" not in data, "no fragments left"
    info = video_info(out)
    assert info["codec"] == "h264" and info["pix_fmt"].startswith("yuv420p") and info["frames"] == 31


def test_stuck_encoder_stops_the_recording_within_bounds_and_says_what_was_kept(tmp_path, make_video):
    out = tmp_path / "out.mp4"
    writer = VideoWriter(out, fps=15, stall_s=1.0)
    for i in range(30):
        writer.write(make_video.frame(i))
    wait_for(lambda: writer.frames_written == 30, "handing 30 frames to ffmpeg")
    time.sleep(1.0)
    ffmpeg = psutil.Process(writer._feed.encoder.pid)
    ffmpeg.suspend()  # SIGSTOP: a hung disk looks the same from here
    try:
        error = None
        for i in range(30, 100_000):  # the pipe and the queue fill up, then the writer gives up
            try:
                writer.write(make_video.frame(i))
            except SinkError as exc:
                error = exc
                break
        assert "The encoder took no frame for 1 s" in str(error)
        kept = kept_in(str(error))
        assert 15 <= kept and decodable(out) == kept
    finally:
        if ffmpeg.is_running():
            ffmpeg.kill()


@pytest.mark.slow
def test_ctrl_c_ends_the_run_whatever_the_encoder_does(tmp_path):
    """ffmpeg stopped (as on a hung disk), then Ctrl-C: livecam ends by itself, with the file it has."""
    out = tmp_path / "out.mp4"
    proc = subprocess.Popen(
        [sys.executable, "-m", "livecam", "--source", "synth:160x120,fps=15", "-o", str(out), *DEMO_QUIET],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, start_new_session=True,
    )  # fmt: skip
    ffmpeg = None
    try:

        def recording() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"livecam ended early: {proc.stderr.read()}")
            return any(p.stat().st_size > 4096 for p in tmp_path.glob("out.partial-*.mp4"))

        wait_for(recording, "the recording growing")
        (ffmpeg,) = [c for c in psutil.Process(proc.pid).children() if "ffmpeg" in c.name()]
        ffmpeg.suspend()
        time.sleep(1.0)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole group (ffmpeg has its own)
        _, err = proc.communicate(timeout=60)  # without the fix it waits for a second Ctrl-C forever
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if ffmpeg is not None and ffmpeg.is_running():
            ffmpeg.kill()
    assert proc.returncode == 130, err
    assert "took no frame" in err and "keeps the first" in err, err
    assert decodable(out) == kept_in(err) > 0


def test_low_disk_at_the_start_records_nothing_and_says_so(tmp_path, monkeypatch, make_video, capsys):
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(safe_files.shutil, "disk_usage", lambda folder: Usage(2**30, 2**30, 10 * 2**20))
    out = tmp_path / "out.mp4"
    with pytest.raises(UserError, match=r"^Only 10 MB are free on the disk of .*, and recording needs 64 MB; nothing "
                                        r"was recorded\. Free some space or record to another disk\.$"):  # fmt: skip
        VideoWriter(out, fps=15)
    clip = make_video(tmp_path / "in.mp4", 4)
    assert main(["--source", str(clip), *DEMO_QUIET, "-o", str(out)]) == 2
    assert "nothing was recorded" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [clip]


@pytest.mark.slow
def test_a_recording_without_ffmpeg_is_said_once_and_plainly(tmp_path, make_video):
    """In a child process: pytest records warnings instead of printing them as Python does."""
    child_code = textwrap.dedent(
        """
        import sys
        from livecam import cli
        from livecam.viewer import recorder

        class NoFfmpeg(recorder.FfmpegEncoder):
            def __init__(self, *args, **kwargs):
                raise OSError(2, "No such file or directory: 'ffmpeg'")

        recorder.FfmpegEncoder = NoFfmpeg
        sys.exit(cli.main(sys.argv[1:]))
        """
    )
    clip = make_video(tmp_path / "in.mp4", 4)
    out = tmp_path / "out.mp4"
    done = subprocess.run([sys.executable, "-c", child_code, "--source", str(clip), *DEMO_QUIET, "-o", str(out)],
                          capture_output=True, text=True, env=ENV, timeout=BOUND_S)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("Could not start ffmpeg") == 1 and "livecam: Could not start ffmpeg" in done.stderr, done.stderr
    assert opencv_count(out) == 4


PLAY_IN_PAGE = """async (src) => {
  const video = document.createElement('video');
  video.muted = true;
  video.src = src;
  document.body.appendChild(video);
  return await new Promise((done) => {
    video.onerror = () => done({error: video.error ? video.error.message || String(video.error.code) : 'error'});
    video.onended = () => done({width: video.videoWidth, frames: video.getVideoPlaybackQuality().totalVideoFrames});
    video.onloadeddata = () => video.play().catch((e) => done({error: String(e)}));
    setTimeout(() => done({error: 'timeout', time: video.currentTime}), 30000);
  });
}"""


@pytest.mark.slow
def test_finished_and_cut_short_recordings_play_in_chromium(tmp_path):
    """What a browser does with them: the fast-start file and a fragmented file cut by a kill both play to the end."""
    import functools
    import shutil
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from conftest import require_tool

    chromium = shutil.which("chromium") or require_tool("chromium-browser", "apt-get install chromium")
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    with VideoWriter(tmp_path / "final.mp4", fps=30) as writer:
        for i in range(60):
            writer.write(noise(i, (160, 120)))
    cut = record_then_kill_both(tmp_path / "cut.mp4", fps=30, frames=75)

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            try:
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{server.server_port}/")
                played = {path.name: page.evaluate(PLAY_IN_PAGE, f"/{path.name}") for path in (tmp_path / "final.mp4", cut)}
            finally:
                browser.close()
    finally:
        server.shutdown()
        server.server_close()
    assert played["final.mp4"] == {"width": 160, "frames": 60}
    assert played[cut.name] == {"width": 160, "frames": decodable(cut)} and decodable(cut) >= 60


def test_a_folder_that_takes_no_new_file_at_the_end_keeps_the_recording_and_says_where(tmp_path, make_video, monkeypatch):
    """The folder turns read-only during the recording: the finished recording stays under its
    temporary name, the writer says where, and nobody is told that it failed."""
    out = tmp_path / "out.mp4"
    writer = VideoWriter(out, fps=15)
    for i in range(12):
        writer.write(make_video.frame(i))
    read_only = PermissionError(30, "Read-only file system")
    real_open = os.open

    def refuse_new_files(path, flags, *args, **kwargs):
        if flags & os.O_CREAT:
            raise read_only
        return real_open(path, flags, *args, **kwargs)

    def refuse(*args, **kwargs):
        raise read_only

    monkeypatch.setattr(os, "open", refuse_new_files)
    monkeypatch.setattr(os, "link", refuse)
    monkeypatch.setattr(os, "rename", refuse)
    writer.close()  # no error: every frame is in the file
    monkeypatch.undo()
    assert writer.saved_path != out and writer.saved_path.name.startswith("out.partial-")
    assert writer.warnings == [f"Could not rename the recording to {out} (Read-only file system); it is in {writer.saved_path}."]
    assert [p.name for p in tmp_path.iterdir()] == [writer.saved_path.name]
    assert decodable(writer.saved_path) == 12


def test_a_full_recording_disk_stops_the_recording_and_the_headless_run_goes_on(tmp_path, make_video, monkeypatch, capsys):
    """The README's promise (a full disk stops the recording, the rest goes on) holds headless too."""
    clip = make_video(tmp_path / "in.mp4", 40)
    real_write = recorder.FfmpegEncoder.write
    frames = []

    def pipe_fills(self, image):
        if len(frames) == 5:  # ffmpeg's disk is full: it dies, and its input with it
            raise SinkError("the encoder's input closed (No space left on device)")
        real_write(self, image)
        frames.append(image)

    monkeypatch.setattr(recorder.FfmpegEncoder, "write", pipe_fills)
    results, out = tmp_path / "r.jsonl", tmp_path / "out.mp4"
    assert main(["--source", str(clip), *DEMO_QUIET, "-o", str(out), "--results", str(results)]) == 1
    err = capsys.readouterr().err
    assert "livecam: recording stopped: Recording" in err and "No space left on device" in err and err.count("\n") == 1, err
    assert len(results.read_text().splitlines()) == 1 + 40  # the header (made_with), then every frame
    assert decodable(out) == kept_in(err) <= 5


@pytest.mark.slow
def test_ffmpeg_is_started_with_an_argument_list_never_a_shell(tmp_path, monkeypatch):
    calls = []
    real_popen = subprocess.Popen

    def spy(args, *rest, **kwargs):
        calls.append((args, kwargs))
        return real_popen(args, *rest, **kwargs)

    monkeypatch.setattr(encoders.subprocess, "Popen", spy)
    with VideoWriter(tmp_path / "x.mp4", fps=10.0) as writer:
        writer.write(np.zeros((32, 32, 3), np.uint8))
    assert calls, "the writer must have started ffmpeg"
    for args, kwargs in calls:
        assert isinstance(args, list) and all(isinstance(a, str) for a in args)
        assert not kwargs.get("shell", False)


def test_writer_scales_frames_beyond_level_5_2(tmp_path, make_video):
    with VideoWriter(tmp_path / "out.mp4", fps=15, size=(12000, 9000)) as writer:
        writer.write(make_video.frame(0))
    assert writer.size == encoders.playable_size((12000, 9000)) and writer.size != (12000, 9000)
    assert writer.warnings == [f"Recording out.mp4 at {writer.size[0]}x{writer.size[1]} instead of 12000x9000: larger H.264 "
                               f"video does not play in browsers and most players."]  # fmt: skip
    assert encoders.playable_size((4096, 2304)) == (4096, 2304) and encoders.playable_size((16000, 200))[0] <= 8688


# ---------------------------------------------------------------------- what a run records: timing and size


def test_variable_frame_rate_video_keeps_its_timing_in_the_recording(tmp_path, make_video, capsys):
    clip = vfr_video(make_video, tmp_path / "vfr.mkv")
    out, stats_path = tmp_path / "out.mp4", tmp_path / "stats.json"
    code = main(
        ["--source", str(clip), *DEMO, "--quiet", "--alpha", "0", "--no-hud", "-o", str(out), "--stats-json", str(stats_path)]
    )
    assert code == 0, capsys.readouterr().err

    stats = json.loads(stats_path.read_text())
    assert (stats["frames"], stats["corrupt"]) == (60, 0)
    # 10 fps: the frame shown at output frame k is the last input frame whose time is <= k / 10.
    shown = [make_video.index_of(f.astype(np.uint8)) for f in read_frames(out)]
    expected = [max(i for i, t in enumerate(VFR_TIMES) if t <= k / 10 + 1e-6) for k in range(len(shown))]
    assert len(shown) == 176 and shown == expected  # 17.5 s and the last frame's 0.1 s


@pytest.mark.slow
def test_folder_of_mixed_sizes_records_at_the_most_common_size_or_size(tmp_path, make_image_folder, capsys):
    folder = make_image_folder(tmp_path / "mixed", 5, sizes=[(1, 1), (160, 120), (96, 64), (160, 120), (160, 120)])
    out = tmp_path / "out.mp4"
    assert main(["--source", str(folder), *DEMO, "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "3 different sizes; a recording is 160x120" in err
    info = video_info(out)
    assert (info["size"], info["frames"]) == ((160, 120), 5)
    assert main(["--source", str(folder), *DEMO, "--quiet", "-o", str(tmp_path / "big.mp4"), "--size", "320x240"]) == 0
    assert video_info(tmp_path / "big.mp4")["size"] == (320, 240)


@pytest.mark.slow
def test_recordings_larger_than_players_accept_are_scaled_down_once(tmp_path, make_video, capsys):
    clip = make_video(tmp_path / "in.mp4", 4)
    out = tmp_path / "out.mp4"
    assert main(["--source", str(clip), *DEMO, "--quiet", "-o", str(out), "--size", "12000x9000"]) == 0
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if "instead of 12000x9000" in line]
    assert len(notes) == 1 and "does not play in browsers" in notes[0], err
    width, height = video_info(out)["size"]
    assert abs(width / height - 4 / 3) < 0.01
    assert -(-width // 16) * -(-height // 16) <= 36_864, "within H.264 level 5.2: 4096x2304 worth of macroblocks"
