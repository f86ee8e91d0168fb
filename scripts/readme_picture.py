"""Makes docs/demo.jpg, the README's picture, with livecam itself: `livecam --demo` recorded, one frame kept.

    python scripts/readme_picture.py [--frame 60] [--out docs/demo.jpg]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2

from livecam.cli import main as livecam_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frame", type=int, default=60)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "demo.jpg")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "demo.mp4"
        code = livecam_main(["--demo", "--no-display", "--quiet", "--max-frames", str(args.frame + 1), "--output", str(video)])
        if code != 0:
            raise SystemExit(code)
        capture = cv2.VideoCapture(str(video))
        capture.set(cv2.CAP_PROP_POS_FRAMES, args.frame)
        ok, frame = capture.read()
        capture.release()
    if not ok:
        raise SystemExit(f"could not read frame {args.frame} of the recording")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
