"""The one exception type for mistakes a user can make."""

from __future__ import annotations


class UserError(ValueError):
    """A mistake in what the user asked for: a missing file, a typo in a name, a bad number.

    The message is one sentence that says what was wrong and what to do. The CLI prints it
    and exits with code 2; library callers get an ordinary ``ValueError``.
    """
