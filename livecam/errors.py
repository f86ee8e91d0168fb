"""The one exception type for mistakes a user can make."""

from __future__ import annotations

import difflib
from typing import Iterable


class UserError(ValueError):
    """A mistake in what the user asked for: a missing file, a typo in a name, a bad number.

    The message is one sentence that says what was wrong and what to do. The CLI prints it
    and exits with code 2; library callers get an ordinary ``ValueError``.
    """


def close_matches(name: str, choices: Iterable[str], n: int = 3, cutoff: float = 0.5) -> str:
    """The choices that look like ``name``, as "'a' or 'b'" ("" when none does), for "did you mean"."""
    return " or ".join(repr(c) for c in difflib.get_close_matches(name, list(choices), n=n, cutoff=cutoff))
