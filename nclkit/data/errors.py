"""The one error type of the data layer.

Every message names the file involved and what was wrong with it, so that a user with a
broken download can fix it without reading nclkit's source.
"""
from __future__ import annotations

__all__ = ["DataError"]


class DataError(ValueError):
    """A data file or folder is missing, unreadable, malformed or inconsistent.

    A subclass of ValueError so that callers catching ValueError (bad user input) also catch it.
    """
