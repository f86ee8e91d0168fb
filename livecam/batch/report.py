"""report.html: one self-contained page over a batch run, for a person hunting a classifier's shortcuts.

It opens offline: no script, no CDN; thumbnails are inside it (JPEG data URIs) and each links to
its overlay in DIR by a relative link. It says how many inputs, frames and images, with which
model and settings, in how long; with labels, the accuracy and a confusion table; with
``--save-maps``, each class's mean map; and three galleries, each sorted so the worst comes first:

- confident and right, but the heat is outside the box (lowest ``box_energy``, rows with a box);
- the map does not explain the answer (hiding the hot part barely lowers the probability:
  smallest ``faith_shown - faith_hot_hidden``);
- the most confident mistakes.

A gallery whose fields the rows lack says which run would fill it.
"""

from __future__ import annotations

import base64
import collections
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from livecam.viewer.safe_files import write_file_atomic

GALLERY_SIZE = 12
THUMB_WIDTH = 192
CONFIDENT = 0.5  # "confident": the explained class's probability at least this
MAX_CONFUSION_CLASSES = 20
MAX_MAPS_PER_CLASS = 200


def write_report(
    out: Path, rows: Sequence[dict], errors: Sequence[dict], *, inputs: Sequence, settings: dict, seconds: float
) -> Path:
    """Writes DIR/report.html (beside its name, then renamed) and returns its path."""
    out = Path(out)
    videos = sum(1 for item in inputs if item.kind == "video")
    images = len(inputs) - videos
    sections = [
        _summary(rows, errors, videos, images, settings, seconds),
        _accuracy(rows),
        _mean_maps(out, rows),
        _gallery(out, "Confident and right, but the heat is outside the box", *_outside_box(rows)),
        _gallery(out, "The map does not explain the answer", *_unexplained(rows)),
        _gallery(out, "Most confident mistakes", *_mistakes(rows)),
        _errors(errors),
    ]
    page = _PAGE.format(body="\n".join(s for s in sections if s))
    path = out / "report.html"
    write_file_atomic(path, page.encode("utf-8", "backslashreplace"))
    return path


# ---------------------------------------------------------------------- the galleries' choices


def _correct(row: dict) -> bool | None:
    if row.get("label") is None or row.get("class_id") is None:
        return None
    return row["class_id"] == row["label"]


def _outside_box(rows: Sequence[dict]) -> tuple[list[dict], str, str]:
    what = "Right answers with probability at least 50 %, least of the map's energy inside the labelled box first."
    if not any(row.get("box_energy") is not None for row in rows):
        return [], what, "No row has box_energy: give boxes in the manifest (a box column) with a livecam that scores them."
    chosen = [r for r in rows if r.get("box_energy") is not None and _correct(r) and (r.get("probability") or 0) >= CONFIDENT]
    return sorted(chosen, key=lambda r: r["box_energy"])[:GALLERY_SIZE], what, "No confident right answer has a box."


def _faith_drop(row: dict) -> float | None:
    shown, hidden = row.get("faith_shown"), row.get("faith_hot_hidden")
    return None if shown is None or hidden is None else shown - hidden


def _unexplained(rows: Sequence[dict]) -> tuple[list[dict], str, str]:
    what = "Hiding the map's hottest part barely changes the answer: smallest drop of the probability first."
    chosen = [r for r in rows if _faith_drop(r) is not None]
    if not chosen:
        return [], what, "No row has the faithfulness fields (faith_shown, faith_hot_hidden): run with --faithfulness 1."
    return sorted(chosen, key=_faith_drop)[:GALLERY_SIZE], what, ""


def _mistakes(rows: Sequence[dict]) -> tuple[list[dict], str, str]:
    what = "Wrong answers, the most confident first."
    if not any(r.get("label") is not None for r in rows):
        return [], what, "No row has a label: give a manifest with a label column."
    chosen = [r for r in rows if _correct(r) is False]
    return sorted(chosen, key=lambda r: -(r.get("probability") or 0))[:GALLERY_SIZE], what, "No mistakes."


# ---------------------------------------------------------------------- sections


def _summary(rows, errors, videos: int, images: int, settings: dict, seconds: float) -> str:
    frames = sum(1 for r in rows if not str(r.get("overlay", "")).endswith(".mp4"))
    engine = settings.get("engine", {})
    stamp = ", ".join(f"{k} {v}" for k, v in engine.items() if v not in (None, False))
    first = rows[0] if rows else {}
    return (
        "<h1>livecam batch report</h1>"
        f"<p id='counts'>{videos + images} inputs ({videos} videos, {images} images): {len(rows)} rows "
        f"({len(rows) - frames} video frames, {frames} images); {len(errors)} inputs with errors. "
        f"Time taken by the last run: {seconds:.1f} s.</p>"
        f"<p id='settings'>livecam {_e(settings.get('livecam', ''))}; layer {_e(first.get('layer') or '?')}; {_e(stamp)}</p>"
    )


def _accuracy(rows: Sequence[dict]) -> str:
    labelled = [r for r in rows if _correct(r) is not None]
    if not labelled:
        return "<h2>Accuracy</h2><p>No labels (give a manifest with a label column).</p>"
    right = sum(1 for r in labelled if _correct(r))
    truth = collections.Counter(r["label_name"] for r in labelled)
    guessed = collections.Counter(r["class_name"] for r in labelled)
    classes = [name for name, _ in (truth + guessed).most_common(MAX_CONFUSION_CLASSES)]
    counts = collections.Counter((r["label_name"], r["class_name"]) for r in labelled)
    head = "".join(f"<th>{_e(c)}</th>" for c in classes)
    body = "".join(
        f"<tr><th>{_e(t)}</th>" + "".join(f"<td>{counts[(t, p)] or ''}</td>" for p in classes) + "</tr>" for t in classes
    )
    more = f" (the {MAX_CONFUSION_CLASSES} commonest classes)" if len(set(truth) | set(guessed)) > MAX_CONFUSION_CLASSES else ""
    return (
        f"<h2>Accuracy</h2><p id='accuracy'>{right} of {len(labelled)} right: {100 * right / len(labelled):.1f} %</p>"
        f"<table id='confusion'><caption>Confusion: rows the label, columns the answer{more}</caption>"
        f"<tr><th></th>{head}</tr>{body}</table>"
    )


def _mean_maps(out: Path, rows: Sequence[dict]) -> str:
    with_maps = [r for r in rows if r.get("map") and r.get("class_name") is not None]
    if not with_maps:
        return "<h2>Mean map per class</h2><p>No maps saved (run with --save-maps).</p>"
    by_class: dict[str, list[dict]] = collections.defaultdict(list)
    for row in with_maps:
        by_class[row["class_name"]].append(row)
    cells = []
    for name, members in sorted(by_class.items(), key=lambda kv: -len(kv[1]))[:MAX_CONFUSION_CLASSES]:
        maps = [np.load(out / r["map"]) for r in members[:MAX_MAPS_PER_CLASS] if (out / r["map"]).is_file()]
        if not maps:
            continue
        size = maps[0].shape[::-1]
        mean = np.mean([cv2.resize(m, size) if m.shape != maps[0].shape else m for m in maps], axis=0)
        heat = cv2.applyColorMap(np.uint8(255 * np.clip(mean / max(float(mean.max()), 1e-6), 0, 1)), cv2.COLORMAP_JET)
        heat = cv2.resize(heat, (128, 128), interpolation=cv2.INTER_CUBIC)
        cells.append(f"<figure class='mean'>{_img(heat)}<figcaption>{_e(name)} ({len(members)})</figcaption></figure>")
    return "<h2>Mean map per class</h2><div class='grid' id='mean-maps'>" + "".join(cells) + "</div>"


def _gallery(out: Path, title: str, chosen: list[dict], what: str, empty: str) -> str:
    slug = "-".join(title.lower().replace(",", "").split()[:4])
    if not chosen:
        return f"<h2>{_e(title)}</h2><p>{_e(what)}</p><p class='empty' id='{slug}'>{_e(empty)}</p>"
    cells = []
    for row in chosen:
        link = row["overlay"] + (
            f"#t={row['source_time_s']:.3f}" if row["overlay"].endswith(".mp4") and row.get("source_time_s") is not None else ""
        )
        facts = [f"{row.get('class_name')} {100 * (row.get('probability') or 0):.0f} %"]
        if row.get("label_name") is not None:
            facts.append(f"label {row['label_name']}")
        if row.get("box_energy") is not None:
            facts.append(f"in box {100 * row['box_energy']:.0f} %")
        if _faith_drop(row) is not None:
            facts.append(f"hide the heat {-100 * _faith_drop(row):+.0f} pts")
        where = row.get("input", "") + (f" frame {row['frame_index']}" if row["overlay"].endswith(".mp4") else "")
        cells.append(
            f"<figure data-input='{_e(row.get('input', ''))}'><a href='{_e(link)}'>{_thumb(out, row)}</a>"
            f"<figcaption>{_e(where)}<br>{_e(', '.join(facts))}</figcaption></figure>"
        )
    return f"<h2>{_e(title)}</h2><p>{_e(what)}</p><div class='grid gallery' id='{slug}'>" + "".join(cells) + "</div>"


def _errors(errors: Sequence[dict]) -> str:
    if not errors:
        return ""
    items = "".join(f"<li>{_e(e.get('input', ''))}: {_e(e.get('error', ''))}</li>" for e in errors[:100])
    return f"<h2>Errors</h2><p>{len(errors)} in errors.jsonl.</p><ul id='errors'>{items}</ul>"


# ---------------------------------------------------------------------- pictures


def _thumb(out: Path, row: dict) -> str:
    path = out / row["overlay"]
    picture = None
    if path.suffix == ".mp4":
        capture = cv2.VideoCapture(str(path))
        capture.set(cv2.CAP_PROP_POS_FRAMES, int(row.get("frame_index") or 0))
        ok, picture = capture.read()
        capture.release()
        picture = picture if ok else None
    elif path.is_file():
        picture = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
    if picture is None:
        return "<span class='missing'>(no picture)</span>"
    height = max(1, round(picture.shape[0] * THUMB_WIDTH / picture.shape[1]))
    return _img(cv2.resize(picture, (THUMB_WIDTH, height), interpolation=cv2.INTER_AREA))


def _img(picture_bgr: np.ndarray) -> str:
    ok, data = cv2.imencode(".jpg", picture_bgr, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return f"<img alt='' src='data:image/jpeg;base64,{base64.b64encode(data.tobytes()).decode()}'>" if ok else ""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>livecam batch report</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 2px 6px; text-align: right; }}
.grid {{ display: flex; flex-wrap: wrap; gap: 12px; }} figure {{ margin: 0; width: 192px; }}
figcaption {{ font-size: 12px; overflow-wrap: anywhere; }} img {{ display: block; max-width: 100%; }}
.empty {{ color: #777; }}
</style></head><body>
{body}
</body></html>
"""
