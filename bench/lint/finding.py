"""What ``bench lint`` reports: one frozen record per finding, and the rule it comes from.

``linter`` makes them, ``output`` prints them; a run's hold site (``file:line``) can be matched to a finding later.
"""

from __future__ import annotations

from dataclasses import dataclass

README = "README.md"


@dataclass(frozen=True)
class Rule:
    """One seed rule: its id, what it catches in one line, and the scenario that measures what it costs."""

    id: str
    name: str  # kebab-case, as SARIF wants a rule's name
    summary: str
    scenario: str  # the catalog scenario whose bad app does this
    cost: str  # what that scenario measured, good → bad, as the README's scenario table says it

    @property
    def anchor(self) -> str:
        """The README row of the scenario (an ``id`` in the scenario table)."""
        return f"{README}#scenario-{self.scenario}"


@dataclass(frozen=True)
class Finding:
    """One place in the code: ``path`` as given on the command line (relative when under the working folder).

    ``line``/``col`` are 1-based and point at the expression that decides (the slow await, the unclosed session);
    ``end_line`` closes the span a runtime hold site of the same cause may fall in (the session's whole scope).
    """

    rule: str
    path: str
    line: int
    col: int
    end_line: int
    message: str
    scenario: str
    cost: str
    anchor: str

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def covers(self, path: str, line: int) -> bool:
        """Whether a hold site ``path:line`` (relative to its sys.path entry) falls in this finding's span."""
        mine = self.path.replace("\\", "/")
        theirs = path.replace("\\", "/")
        same = mine == theirs or mine.endswith("/" + theirs) or theirs.endswith("/" + mine)
        return same and self.line <= line <= max(self.line, self.end_line)
