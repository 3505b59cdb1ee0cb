"""The two kinds of failure (DESIGN.md section 7): a user's mistake, reported in one line that
names the problem and the fix, and everything else (a bug), which keeps its traceback."""

from __future__ import annotations


class UserError(ValueError):
    """A mistake in what the user asked for; the message is one line that says what to do."""


def one_line(e: BaseException) -> str:
    """The first line of an exception's message (its type name if it has none)."""
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


__all__ = ["UserError", "one_line"]
