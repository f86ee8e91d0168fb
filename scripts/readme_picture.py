"""Makes the README's picture and animated preview with livecam itself: `livecam --demo` recorded.

    python scripts/readme_picture.py [--frames 180] [--out docs/demo.jpg] [--gif docs/demo.gif]

The picture is the frame of the recording where the model is surest of the object (from
livecam's own ``--results``), drawn with the window's full HUD (recordings get it with
``--hud full``); the GIF is the first seconds, 320 px wide at 8 fps, under 1 MB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import cv2
import imageio_ffmpeg

from livecam.cli import main as livecam_main

DOCS = Path(__file__).resolve().parents[1] / "docs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=180, help="frames to record")
    parser.add_argument("--out", type=Path, default=DOCS / "demo.jpg")
    parser.add_argument("--gif", type=Path, default=DOCS / "demo.gif", help="the animated preview ('' for none)")
    parser.add_argument("--gif-seconds", type=float, default=5.0)
    parser.add_argument("--hud", default="full", help="the HUD level drawn (default: full, as in the window)")
    parser.add_argument("--blend", default=None, help="heat or uniform (default: livecam's default)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        video, results = Path(tmp) / "demo.mp4", Path(tmp) / "results.jsonl"
        argv = ["--demo", "--no-display", "--quiet", "--max-frames", str(args.frames), "--output", str(video), "--hud", args.hud]
        code = livecam_main(argv + ["--results", str(results)] + (["--blend", args.blend] if args.blend else []))
        if code != 0:
            raise SystemExit(code)
        rows = [json.loads(line) for line in results.read_text().splitlines()]
        # The surest frame after the first second (the smoothing has settled by then).
        best = max(range(min(30, len(rows) - 1), len(rows)), key=lambda i: rows[i]["probability"] or 0.0)
        capture = cv2.VideoCapture(str(video))
        frame = None
        for _ in range(best + 1):  # decode in order: seeking in H.264 may land on another frame
            ok, frame = capture.read()
            if not ok:
                raise SystemExit(f"could not read frame {best} of the recording")
        capture.release()
        print(f"frame {best}: {rows[best]['class_name']} {rows[best]['probability']:.3f}")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(args.out), frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
        print(f"wrote {args.out}")
        if args.gif and str(args.gif):
            _gif(video, args.gif, args.gif_seconds)
            print(f"wrote {args.gif} ({args.gif.stat().st_size / 1e6:.2f} MB)")


def _gif(video: Path, out: Path, seconds: float) -> None:
    """A small GIF: 8 fps, 320 px wide, one 64-colour palette made for the clip."""
    graph = (
        "fps=8,scale=320:-1:flags=lanczos,split[a][b];[a]palettegen=max_colors=64[p];[b][p]paletteuse=dither=bayer:bayer_scale=5"
    )
    command = [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-loglevel",
        "error",
        "-y",
        "-t",
        str(seconds),
        "-i",
        str(video),
        "-vf",
        graph,
        "-loop",
        "0",
        str(out),
    ]
    subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
