"""kb's small exception family: the CLI turns any KbError into one line and exit status 1."""

from __future__ import annotations

__all__ = ["KbError", "ReportError", "RuleError", "FixError", "StoreError"]


class KbError(Exception):
    """Root of every error kb reports to a user (no traceback unless --debug)."""


class ReportError(KbError):
    """A test report could not be read: names the file and the reason."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class RuleError(KbError):
    """A rule pack or rule is invalid (file, path inside it, reason)."""


class FixError(KbError):
    """A fix could not be planned, applied or verified."""


class StoreError(KbError):
    """The knowledge base could not be opened, migrated or written."""
