"""The one exception type for mistakes a user can make, and the small checks shared by modules."""

from __future__ import annotations

import difflib
from typing import Any, Iterable

import numpy as np


class UserError(ValueError):
    """A mistake in what the user asked for: a missing file, a typo in a name, a bad number.

    The message is one sentence that says what was wrong and what to do. The CLI prints it
    and exits with code 2; library callers get an ordinary ``ValueError``.
    """


def close_matches(name: str, choices: Iterable[str], n: int = 3, cutoff: float = 0.5) -> str:
    """The choices that look like ``name``, as "'a' or 'b'" ("" when none does), for "did you mean"."""
    return " or ".join(repr(c) for c in difflib.get_close_matches(name, list(choices), n=n, cutoff=cutoff))


def check_bgr_image(image: Any, name: str = "frame_bgr") -> np.ndarray:
    """``image`` as a contiguous array if it is a non-empty uint8 (H, W, 3) BGR image, else a UserError."""
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 and image.size):
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise UserError(f"Expected {name} to be a uint8 BGR image of shape (height, width, 3). Received: {got}.")
    return np.ascontiguousarray(image)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none), for one-line errors."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
