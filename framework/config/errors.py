"""The one error the configuration layer raises, and the issue record it carries.

Validation never stops at the first mistake: every problem found in a file is collected as an
:class:`Issue` (file, line, field path, message) and raised together in one :class:`ConfigError`,
so an operator fixes a site file in one round instead of one error per run. ``str(error)`` prints
one issue per line in the compiler style editors understand::

    site.yaml:14: services.squid.autoscale.max: must be >= min (2), got 1
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["ConfigError", "Issue"]


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem in one place of a configuration file."""

    file: str
    """The file name as the user gave it (``<string>`` when parsing text)."""
    line: int
    """1-based line of the offending key or value; 0 when the problem is not on a line (unreadable file)."""
    path: str
    """Dotted field path such as ``services.squid.autoscale.max`` (list items as ``[i]``); empty for
    problems of the whole document (syntax errors, a non-mapping top level)."""
    message: str
    """What is wrong, phrased so the fix is obvious; never contains secret values."""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line > 0 else self.file
        if self.path:
            return f"{where}: {self.path}: {self.message}"
        return f"{where}: {self.message}"


class ConfigError(Exception):
    """A configuration file is unreadable or invalid; ``issues`` lists every problem found.

    Issues are sorted by file and line so the report reads top to bottom like the file.
    """

    def __init__(self, issues: Iterable[Issue]) -> None:
        self.issues: tuple[Issue, ...] = tuple(sorted(issues, key=lambda i: (i.file, i.line)))
        if not self.issues:
            raise ValueError("ConfigError needs at least one issue")
        super().__init__("\n".join(str(issue) for issue in self.issues))

    def __str__(self) -> str:
        return "\n".join(str(issue) for issue in self.issues)
