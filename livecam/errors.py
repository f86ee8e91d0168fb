"""The one exception type for mistakes a user can make, and the small checks shared by modules."""

from __future__ import annotations

import difflib
import re
import stat
from collections.abc import Iterable
from typing import Any

import numpy as np


class UserError(ValueError):
    """A mistake in what the user asked for: a missing file, a typo in a name, a bad number.

    The message is one sentence that says what was wrong and what to do. The CLI prints it
    and exits with code 2; library callers get an ordinary ``ValueError``.

    Where the fix is an argument, the message names it as Python callers pass it
    (``weights='file.weights.h5'``); ``cli`` is then the same sentence in the command line's words
    (``--weights PATH``), which the CLI prints instead.
    """

    def __init__(self, message: str, *, cli: str | None = None) -> None:
        super().__init__(message)
        self.cli: str = message if cli is None else cli


def close_matches(name: str, choices: Iterable[str], n: int = 3, cutoff: float = 0.5) -> str:
    """The choices that look like ``name``, as "'a' or 'b'" ("" when none does), for "did you mean"."""
    return " or ".join(repr(c) for c in difflib.get_close_matches(name, list(choices), n=n, cutoff=cutoff))


def check_bgr_image(image: Any, name: str = "frame_bgr") -> np.ndarray:
    """``image`` as a contiguous array if it is a non-empty uint8 (H, W, 3) BGR image, else a UserError."""
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 and image.size):
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise UserError(f"Expected {name} to be a uint8 BGR image of shape (height, width, 3). Received: {got}.")
    return np.ascontiguousarray(image)


def file_kind(mode: int) -> str:
    """What a name that is no regular file is, from its ``st_mode``: "a folder", "a named pipe (FIFO)"..."""
    kinds = [
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device (a disk)"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISSOCK, "a socket"),
    ]
    return next((name for test, name in kinds if test(mode)), "an unusual kind of file")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none), for one-line errors."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def counted(number: float, noun: str) -> str:
    """``number noun``, the noun plural unless the number is 1: "1 job", "2 workers", "0.5 CPUs"."""
    return f"{number:g} {noun}" + ("" if number == 1 else "s")


# Query parameters whose values are secrets: tokens, keys, passwords, signatures, sessions.
_SECRET_PARAM = re.compile(r"(?i)token|auth|key|pass|pwd|secret|sig|session|credential|jwt|bearer")
_URL = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)([^\s'\"<>]*)")
# Bidirectional-text controls can make a name read differently from what it is.
_BIDI = set(range(0x202A, 0x202F)) | set(range(0x2066, 0x206A))


def redact(text: str) -> str:
    """``text`` with the secrets of every URL in it replaced by ``***``.

    The user information (``user:password@``, up to the last ``@`` before the query, so a
    password holding ``@`` or ``/`` is hidden whole) and the values of query parameters whose
    names look like credentials (``token``, ``api_key``, ``password``, ``sig``...). Used for
    everything livecam prints or saves: console, HUD, stats, snapshot records, errors.
    """
    return _URL.sub(_redact_url, text)


def _redact_url(match: re.Match) -> str:
    scheme, rest = match.group(1), match.group(2)
    cut = _query_start(rest, 0)
    if "@" not in rest[:cut] and ":" in rest[:cut] and "/" not in rest[:cut]:
        # Still in "user:password" when a "?" or "#" came: a password may hold them too (pa?ss),
        # so the user information runs to the last "@" before the path.
        slash = rest.find("/", cut)
        at = rest.rfind("@", cut, slash if slash >= 0 else len(rest))
        if at >= 0:
            cut = _query_start(rest, at)
    head, tail = rest[:cut], rest[cut:]
    if "@" in head:
        head = "***@" + head[head.rindex("@") + 1 :]
    tail = re.sub(r"([?&;])([^=&;#]*)=([^&;#]*)", _redact_param, tail)
    return scheme + head + tail


def _query_start(rest: str, start: int) -> int:
    """Where the query or fragment of a URL's ``rest`` (after "scheme://") begins, looking from ``start``."""
    return min((i for i in (rest.find("?", start), rest.find("#", start)) if i >= 0), default=len(rest))


def _redact_param(match: re.Match) -> str:
    sep, name, value = match.groups()
    return f"{sep}{name}={'***' if _SECRET_PARAM.search(name) and value else value}"


def printable(text: str) -> str:
    """``text`` safe for a terminal: control characters (escape codes too), bidirectional
    controls and undecodable bytes written as Python escapes (``\\x1b``), the rest unchanged."""
    out = []
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # a byte of a file name that is not UTF-8 (os.fsdecode's surrogateescape)
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x20 or 0x7F <= code < 0xA0 or code in _BIDI or 0xD800 <= code < 0xE000:
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def shown(text: object) -> str:
    """What livecam prints for any text it did not write itself: secrets redacted, controls escaped."""
    return printable(redact(str(text)))
