"""Class names: read from a labels file, and a class found by id or name."""

from __future__ import annotations

import difflib
import itertools
import json
import re
import stat
from pathlib import Path
from typing import Any

from livecam.errors import UserError, file_kind

__all__ = ["MAX_LABELS_BYTES", "class_index", "load_labels"]

# ImageNet-21k's names take about 0.5 MiB: no labels file comes near this.
MAX_LABELS_BYTES = 16 * 2**20


def load_labels(path: str | Path) -> tuple[str, ...]:
    """Class names from a file: one per line, or a JSON list, or a JSON object {"0": name, ...}.

    A JSON object must name every class id from 0 up, each once: a gap or a negative id would
    shift every name after it onto the wrong class. A byte-order mark at the start is dropped.
    """
    path = Path(path)
    where = f"Labels file {str(path)!r}"
    try:
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):  # a folder; or a FIFO, which would block, or a device, which may never end
            raise UserError(f"{where} is {file_kind(mode)}; give a text file with one class name per line.")
        # Even a regular file can be endless (/proc): read no more than any labels file needs.
        with path.open("rb") as file:
            raw = file.read(MAX_LABELS_BYTES + 1)
    except FileNotFoundError:
        raise UserError(f"{where} does not exist; pass a text file with one class name per line.") from None
    except OSError as exc:
        raise UserError(f"{where} cannot be read ({exc.strerror}); check the path and its permissions.") from None
    if len(raw) > MAX_LABELS_BYTES:
        raise UserError(
            f"{where} is larger than {MAX_LABELS_BYTES // 2**20} MiB, far more than class names take; "
            f"give a text file with one class name per line."
        )
    try:
        text = raw.decode("utf-8-sig")  # -sig: Windows editors start UTF-8 files with a BOM
    except UnicodeDecodeError:
        raise UserError(f"Labels file {str(path)!r} is not UTF-8 text; save it as UTF-8, one class name per line.") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"Labels file {str(path)!r} is not valid JSON ({exc.msg} at line {exc.lineno}).") from None
        if isinstance(data, dict):
            data = _names_by_id(path, data)
        if not isinstance(data, list) or not all(isinstance(n, str) for n in data):
            raise UserError(f"Labels file {str(path)!r} must hold a JSON list of class names.")
        names = data
    else:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise UserError(f"Labels file {str(path)!r} holds no class names.")
    return tuple(names)


def _names_by_id(path: Path, data: dict) -> list:
    """The names of a JSON object {"0": name, "1": name, ...} in id order; Keras' own class index
    file gives each class as ["n01440764", "tench"], of which the name is the last item."""
    by_id: dict[int, Any] = {}
    for key, value in data.items():
        if not re.fullmatch(r"[0-9]+", key):
            raise UserError(
                f"Labels file {str(path)!r} has the key {key!r}; it must map class ids 0, 1, 2, ... to names, "
                'for example {"0": "cat", "1": "dog"}.'
            )
        class_id = int(key)
        if class_id in by_id:
            raise UserError(f"Labels file {str(path)!r} names class {class_id} twice; give each class id one name.")
        if isinstance(value, list):
            if not value or not isinstance(value[-1], str):
                raise UserError(
                    f"Labels file {str(path)!r} gives class {class_id} no name ({json.dumps(value)}); give it a name."
                )
            value = value[-1]
        if not isinstance(value, str):
            raise UserError(f"Labels file {str(path)!r} gives class {class_id} the name {json.dumps(value)}; names must be text.")
        by_id[class_id] = value
    n_missing = max(by_id, default=-1) + 1 - len(by_id)
    if n_missing:
        missing = [str(i) for i in itertools.islice((i for i in range(max(by_id)) if i not in by_id), 5)]
        shown = ", ".join(missing) + (f" and {n_missing - 5} more" if n_missing > 5 else "")
        raise UserError(
            f"Labels file {str(path)!r} has class ids up to {max(by_id)} but none for {shown}; "
            f"name every class from 0 up, so that no name lands on the wrong class."
        )
    return [by_id[i] for i in range(len(by_id))]


def class_index(class_names: tuple[str, ...] | list[str], query: str | int) -> int:
    """The class id for ``query``: an id ("207") or a name ("golden retriever", any case)."""
    text = str(query).strip()
    if re.fullmatch(r"-?[0-9]+", text):  # ASCII digits only: "²" is a name, and int() refuses it
        class_id = int(text)
        if not 0 <= class_id < len(class_names):
            raise UserError(f"Expected a class id in [0, {len(class_names) - 1}]. Received: {class_id}")
        return class_id
    folded = [name.lower() for name in class_names]
    matches = [i for i, name in enumerate(folded) if name == text.lower()]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise UserError(f"Class name {text!r} is ambiguous (ids {', '.join(map(str, matches))}); pass the id instead.")
    close = difflib.get_close_matches(text.lower(), folded, n=3, cutoff=0.6)
    hint = (
        "did you mean " + " or ".join(f"{class_names[folded.index(c)]!r} ({folded.index(c)})" for c in close) + "? "
        if close
        else ""
    )
    raise UserError(f"Unknown class {text!r}: {hint}Pass a class id or one of the model's class names.")
