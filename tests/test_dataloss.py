"""Nothing a user owns is destroyed, and every recording survives any kill (issue 12, first part).

Outputs never replace inputs or each other; recordings are written under a temporary name and
renamed at the end; while recording the MP4 is fragmented, so that a file cut short by a kill or
a full disk still plays; a stuck encoder cannot hold the program; what a failure message says
was kept is what the file holds. Kills and stops use real processes; every wait is bounded.
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections import namedtuple
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
import psutil
import pytest

from helpers import read_frames, video_info
from livecam.cli import main
from livecam.errors import UserError
from livecam.viewer import outputs, recorder, safe_files
from livecam.viewer import stats as run_stats
from livecam.viewer.recorder import VideoWriter
from livecam.viewer.safe_files import SinkError

BOUND_S = 120  # deadlines on waiting for a child process, not measurements
ROOT = str(Path(__file__).resolve().parents[1])
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}
DEMO = ("--model", "demo", "--no-display", "--quiet")


def decodable(path: Path) -> int:
    """Frames that decode, counted by ffmpeg decoding every one (not from the container's index)."""
    done = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(path), "-map", "0:v:0", "-f", "null",
         "-progress", "pipe:1", "-"],
        capture_output=True, timeout=BOUND_S,
    )  # fmt: skip
    counts = re.findall(rb"^frame=(\d+)", done.stdout, re.MULTILINE)
    return int(counts[-1]) if counts else 0


def opencv_count(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def kept_in(message: str) -> int:
    return int(re.search(r"keeps the first (\d+) frames", message).group(1))


def noise(i: int, size=(320, 240)) -> np.ndarray:
    """A frame that compresses badly, so that files grow fast."""
    return np.random.default_rng(i).integers(0, 256, (size[1], size[0], 3), np.uint8)


def wait_for(condition, what: str, bound_s: float = BOUND_S) -> None:
    deadline = time.monotonic() + bound_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {bound_s} s")
        time.sleep(0.05)


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


# ---------------------------------------------------------------------- outputs never replace inputs


def test_stats_json_follows_the_overwrite_rule_of_output(tmp_path, make_video, capsys):
    clip = make_video(tmp_path / "clip.mp4", 6)
    old = tmp_path / "old.json"
    old.write_text('{"mine": 1}')
    assert main(["--source", str(clip), *DEMO, "--stats-json", str(old)]) == 2
    err = capsys.readouterr().err
    assert "old.json' already exists; pass --overwrite to replace it" in err and err.count("\n") == 1
    assert old.read_text() == '{"mine": 1}'


@pytest.mark.parametrize("link", ["same name", "symlink", "hard link"])
@pytest.mark.parametrize("flag", ["--output", "--stats-json"])
def test_no_output_is_ever_an_input_even_with_overwrite(tmp_path, make_video, capsys, flag, link):
    clip = make_video(tmp_path / "in.mp4", 6)
    before = clip.read_bytes()
    out = tmp_path / "alias.mp4"
    if link == "same name":
        out = clip
    elif link == "symlink":
        out.symlink_to(clip)
    else:
        os.link(clip, out)
    assert main(["--source", str(clip), *DEMO, flag, str(out), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert f"is the same file as the input '{clip}'" in err and "choose another name" in err and err.count("\n") == 1
    assert clip.read_bytes() == before


def test_stats_json_is_not_the_recording_and_not_the_labels(tmp_path, make_video, capsys):
    clip = make_video(tmp_path / "in.mp4", 6)
    out = tmp_path / "rec.mp4"
    assert main(["--source", str(clip), *DEMO, "-o", str(out), "--stats-json", str(out)]) == 2
    assert f"is the same file as --output '{out}'" in capsys.readouterr().err
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\n")
    assert main(["--source", str(clip), *DEMO, "--labels", str(labels), "--stats-json", str(labels), "--overwrite"]) == 2
    assert "is the same file as --labels" in capsys.readouterr().err
    assert labels.read_text() == "a\nb\n"


def test_an_image_of_an_input_folder_is_never_an_output(tmp_path, make_image_folder, capsys):
    folder = make_image_folder(tmp_path / "frames", 3)
    image = next(folder.iterdir())
    assert main(["--source", str(folder), *DEMO, "--stats-json", str(image), "--overwrite"]) == 2
    assert "is the same file as the input image" in capsys.readouterr().err


def test_a_file_in_an_input_folder_that_is_not_read_may_be_replaced(tmp_path, make_image_folder, capsys):
    """The folder source reads only its images: last run's recording beside them is no input."""
    folder = make_image_folder(tmp_path / "frames", 3)
    out, stats = folder / "out.mp4", folder / "stats.json"
    out.write_bytes(b"last run")
    stats.write_text("{}")
    assert main(["--source", str(folder), *DEMO, "-o", str(out), "--stats-json", str(stats), "--overwrite"]) == 0, (
        capsys.readouterr().err
    )
    assert decodable(out) == 3 and json.loads(stats.read_text())["frames"] == 3


def test_a_dangling_symlink_as_output_is_never_written_through(tmp_path, make_video, capsys):
    clip = make_video(tmp_path / "in.mp4", 4)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out.mp4"
    out.symlink_to(elsewhere / "target.mp4")
    assert main(["--source", str(clip), *DEMO, "-o", str(out)]) == 2
    assert "is a symbolic link to" in capsys.readouterr().err
    assert main(["--source", str(clip), *DEMO, "-o", str(out), "--overwrite"]) == 0, capsys.readouterr().err
    assert not (elsewhere / "target.mp4").exists(), "the link's target was created"
    assert not out.is_symlink() and decodable(out) == 4, "the link itself was replaced by the recording"


# ---------------------------------------------------------------------- recordings survive


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
        [sys.executable, "-m", "livecam", "--source", "synth:160x120,fps=15", "-o", str(out), *DEMO],
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
    assert main(["--source", str(clip), *DEMO, "-o", str(out)]) == 2
    assert "nothing was recorded" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [clip]


def test_stats_json_is_written_whole_or_not_at_all(tmp_path, make_video, capsys):
    clip = make_video(tmp_path / "in.mp4", 4)
    stats = tmp_path / "stats.json"
    link_target = tmp_path / "kept.json"
    link_target.write_text("precious")
    stats.symlink_to(link_target)
    assert main(["--source", str(clip), *DEMO, "--stats-json", str(stats), "--overwrite"]) == 0, capsys.readouterr().err
    assert link_target.read_text() == "precious", "the link was replaced, not written through"
    assert json.loads(stats.read_text())["frames"] == 4


def test_stats_json_gets_the_permissions_of_any_new_file(tmp_path):
    umask = os.umask(0o022)
    try:
        safe_files.write_file_atomic(tmp_path / "stats.json", b"{}")
    finally:
        os.umask(umask)
    assert (tmp_path / "stats.json").stat().st_mode & 0o777 == 0o644, "readable by others, as the recording is"
    assert [p.name for p in tmp_path.iterdir()] == ["stats.json"]


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
    done = subprocess.run([sys.executable, "-c", child_code, "--source", str(clip), *DEMO, "-o", str(out)],
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


# ---------------------------------------------------------------------- per-frame files, special files, full disks (issue 17)


def tree(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("link", ["symlink", "hard link"])
@pytest.mark.parametrize("flag, folder, name", [("-o", "out/", "frame_1.png"), ("--save-maps", "maps", "frame_1.npy")])
def test_per_frame_files_are_never_an_input_even_through_links(tmp_path, make_image_folder, capsys, link, flag, folder, name):
    images = make_image_folder(tmp_path / "in", 3)
    before = tree(images)
    out = tmp_path / folder
    out.mkdir()
    if link == "symlink":
        (out / name).symlink_to(images / "frame_1.png")
    else:
        os.link(images / "frame_1.png", out / name)
    assert main(["--source", str(images), *DEMO, flag, str(tmp_path / folder), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert f"is the same file as the input image '{images / 'frame_1.png'}'" in err, err
    assert f"choose another {flag} folder" in err and err.count("\n") == 1, err
    assert tree(images) == before


@pytest.mark.parametrize("flag, folder, name", [("-o", "out/", "frame_1.png"), ("--save-maps", "maps", "frame_1.npy")])
def test_a_link_in_an_output_folder_is_replaced_never_written_through(tmp_path, make_image_folder, capsys, flag, folder, name):
    images = make_image_folder(tmp_path / "in", 3)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "kept.bin").write_bytes(b"precious")
    (mine / "also kept.bin").write_bytes(b"precious too")
    out = tmp_path / folder
    out.mkdir()
    (out / name).symlink_to(mine / "kept.bin")
    other = name.replace("_1", "_2")
    os.link(mine / "also kept.bin", out / other)
    assert main(["--source", str(images), *DEMO, flag, str(tmp_path / folder), "--overwrite"]) == 0, capsys.readouterr().err
    assert tree(mine) == {"also kept.bin": b"precious too", "kept.bin": b"precious"}
    assert not (out / name).is_symlink() and (out / other).stat().st_ino != (mine / "also kept.bin").stat().st_ino
    assert sorted(p.name for p in out.iterdir()) == sorted(name.replace("_1", f"_{i}") for i in (1, 2, 3))
    if flag == "-o":
        assert cv2.imread(str(out / name)).shape == (120, 160, 3)
    else:
        assert np.load(out / name).dtype == np.float32


def special_file(path: Path, kind: str) -> Path:
    if kind == "fifo":
        os.mkfifo(path)
    else:  # a copy of /dev/null
        if os.geteuid() != 0:
            pytest.skip("making a device node needs root")
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    return path


@pytest.mark.timeout(60)  # before the fix, --results opened a FIFO and waited for a reader forever
@pytest.mark.parametrize("overwrite", [True, False])
@pytest.mark.parametrize("kind, said", [("fifo", "a named pipe (FIFO)"), ("device", "a character device")])
@pytest.mark.parametrize(
    "flag, name", [("--stats-json", "s.json"), ("--results", "r.jsonl"), ("--results", "r.csv"), ("-o", "o.mp4")]
)
def test_no_output_replaces_or_opens_a_fifo_or_a_device(tmp_path, make_video, capsys, flag, name, kind, said, overwrite):
    clip = make_video(tmp_path / "in.mp4", 4)
    target = special_file(tmp_path / name, kind)
    mode = os.lstat(target).st_mode
    assert main(["--source", str(clip), *DEMO, flag, str(target), *(["--overwrite"] if overwrite else [])]) == 2
    err = capsys.readouterr().err
    assert f"'{target}' is {said}, not a regular file" in err and err.count("\n") == 1, err
    assert "already exists" not in err
    assert os.lstat(target).st_mode == mode


@pytest.mark.parametrize("flag, folder, name", [("-o", "out/", "frame_2.png"), ("--save-maps", "maps", "frame_2.npy")])
def test_a_fifo_in_an_output_folder_is_never_replaced(tmp_path, make_image_folder, capsys, flag, folder, name):
    images = make_image_folder(tmp_path / "in", 3)
    (tmp_path / folder).mkdir()
    fifo = special_file(tmp_path / folder / name, "fifo")
    assert main(["--source", str(images), *DEMO, flag, str(tmp_path / folder), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert f"'{fifo}' is a named pipe (FIFO), not a regular file" in err and err.count("\n") == 1, err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_link_to_a_file_of_a_process_is_not_replaced(tmp_path, make_video, capsys):
    """/dev/stdout is such a link: as root, replacing it would replace the system's own."""
    clip = make_video(tmp_path / "in.mp4", 4)
    stdout = tmp_path / "stdout.json"
    stdout.symlink_to("/proc/self/fd/1")
    assert main(["--source", str(clip), *DEMO, "--stats-json", str(stdout), "--overwrite"]) == 2
    assert "an open file of a process, not a file of its own" in capsys.readouterr().err
    assert os.readlink(stdout) == "/proc/self/fd/1"


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
    argv = ["--source", str(images), *DEMO, "--results", str(results), "-o", str(tmp_path / "out") + "/"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    kept = int(re.search(r"it keeps (\d+) whole lines", err).group(1))
    assert (
        err.startswith(f"livecam: Stopped writing the results to {results} (No space left on device)") and err.count("\n") == 1
    ), err
    text = results.read_text()
    assert text.endswith("\n") and len(text) <= 1000
    lines = text.splitlines()[1:] if suffix == ".csv" else [json.loads(line) for line in text.splitlines()]
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
        *DEMO,
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
    assert len(results.read_text().splitlines()) == 6
    assert sorted(p.name for p in (tmp_path / "maps").iterdir()) == ["frame_1.npy", "frame_2.npy"]


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
    assert main(["--source", str(clip), *DEMO, "-o", str(out), "--results", str(results)]) == 1
    err = capsys.readouterr().err
    assert "livecam: recording stopped: Recording" in err and "No space left on device" in err and err.count("\n") == 1, err
    assert len(results.read_text().splitlines()) == 40
    assert decodable(out) == kept_in(err) <= 5


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
    sources = [json.loads(line)["source"] for line in jsonl.read_text(encoding="utf-8").splitlines()]
    assert len(sources) == 6 and os.fsencode(bad) in [os.fsencode(s) for s in sources]
    assert '"bad\\udcff\\udcfe.png"' in jsonl.read_text(encoding="utf-8"), "JSON's own escapes: the file stays UTF-8"
    rows = csv_path.read_text(encoding="utf-8").splitlines()
    assert len(rows) == 1 + 6 and any(row.split(",")[2] == "bad\\udcff\\udcfe.png" for row in rows)
    assert os.fsencode(bad) in os.listdir(os.fsencode(out))
