"""Errors the user can act on.

The CLI prints these as one line (no traceback unless ``--debug``) and maps them to exit codes:
:class:`SSPNetError` is fatal (exit 2); :class:`InputError` concerns one input and the run goes on
with the others (exit 1 at the end if any input failed).
"""
from __future__ import annotations


class SSPNetError(Exception):
    """A problem the user can fix (bad option, unreadable weights, unwritable output)."""


class InputError(SSPNetError):
    """One input (an image, an annotation file) could not be used; other inputs are unaffected."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
