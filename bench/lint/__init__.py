"""``bench lint``: static rules SB001-SB008 for database-session scoping in async Python code.

Imports nothing from bench but ``bench.errors``; ``bench.cli`` calls ``lint_command``.
"""

from bench.lint.command import lint_command
from bench.lint.config import LintConfig, find_pyproject, load_config
from bench.lint.finding import Finding, Rule
from bench.lint.linter import LintResult, lint_paths
from bench.lint.rules import RULES

__all__ = [
    "RULES",
    "Finding",
    "LintConfig",
    "LintResult",
    "Rule",
    "find_pyproject",
    "lint_command",
    "lint_paths",
    "load_config",
]
