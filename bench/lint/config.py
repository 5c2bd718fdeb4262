"""``[tool.scopebench.lint]`` in pyproject.toml: which rules run and what counts as slow work or a session factory.

``linter`` and the ``bench lint`` command read it once per run; a mistake in it is a usage error naming the key.
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass
from pathlib import Path

from bench.errors import UsageError
from bench.lint.rules import RULES

TABLE = "[tool.scopebench.lint]"
_KEYS = ("select", "ignore", "slow-calls", "session-factories", "exclude", "per-file-ignores")


@dataclass(frozen=True)
class LintConfig:
    """``slow_calls``: dotted (``myapp.payments.charge``) or bare (``charge``) names whose await is slow
    non-database work, besides the built-in ones (sleeps, HTTP clients, threads, subprocesses).
    ``session_factories``: names whose call makes a session, besides SQLAlchemy's and the usual names."""

    select: frozenset[str] = frozenset(RULES)
    slow_calls: tuple[str, ...] = ()
    session_factories: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    per_file_ignores: tuple[tuple[str, frozenset[str]], ...] = ()
    source: str = "defaults"  # the file the settings came from, for messages

    def enabled(self, rule: str, path: str) -> bool:
        if rule not in self.select:
            return False
        return not any(rule in rules and _matches(path, pattern) for pattern, rules in self.per_file_ignores)

    def excluded(self, path: str) -> bool:
        return any(_matches(path, pattern) for pattern in self.exclude)


def _matches(path: str, pattern: str) -> bool:
    posix = path.replace("\\", "/")
    return fnmatch.fnmatch(posix, pattern) or fnmatch.fnmatch(posix, f"*/{pattern}")


def find_pyproject(start: Path) -> Path | None:
    """The nearest pyproject.toml at or above ``start`` that has the table."""
    for folder in [start.resolve(), *start.resolve().parents]:
        candidate = folder / "pyproject.toml"
        if candidate.is_file() and "scopebench" in _tool(candidate):
            return candidate
    return None


def _tool(path: Path) -> dict[str, object]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise UsageError(f"cannot read {path}: {err}; fix the file or pass --config") from None
    tool = data.get("tool", {})
    return tool if isinstance(tool, dict) else {}


def load_config(path: Path | None) -> LintConfig:
    """The settings in ``path`` (a pyproject.toml), or the defaults when it is None or has no table."""
    if path is None:
        return LintConfig()
    if not path.is_file():
        raise UsageError(f"no such config file: {path}")
    table = _tool(path).get("scopebench", {})
    table = table.get("lint", {}) if isinstance(table, dict) else {}
    if not isinstance(table, dict):
        raise UsageError(f"{TABLE} in {path} must be a table")
    unknown = sorted(set(table) - set(_KEYS))
    if unknown:
        raise UsageError(f"unknown key {unknown[0]!r} in {TABLE} of {path}; known: {', '.join(_KEYS)}")
    return _parse(table, str(path))


def _parse(table: dict[str, object], source: str) -> LintConfig:
    select = set(_rules(table, "select", source) or RULES)
    select -= set(_rules(table, "ignore", source))
    per_file = table.get("per-file-ignores", {})
    if not isinstance(per_file, dict):
        raise UsageError(f"'per-file-ignores' in {TABLE} of {source} must be a table of glob = [rule ids]")
    ignores = tuple(
        (str(glob), frozenset(_rule_list(rules, f"per-file-ignores.{glob}", source)))
        for glob, rules in per_file.items()
    )
    return LintConfig(
        select=frozenset(select),
        slow_calls=_strings(table, "slow-calls", source),
        session_factories=_strings(table, "session-factories", source),
        exclude=_strings(table, "exclude", source),
        per_file_ignores=ignores,
        source=source,
    )


def _strings(table: dict[str, object], key: str, source: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise UsageError(f"{key!r} in {TABLE} of {source} must be a list of non-empty strings")
    return tuple(value)


def _rules(table: dict[str, object], key: str, source: str) -> list[str]:
    return _rule_list(table.get(key, []), key, source)


def _rule_list(value: object, key: str, source: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f'{key!r} in {TABLE} of {source} must be a list of rule ids such as "SB001"')
    return parse_rule_ids(value, f"{key!r} in {TABLE} of {source}")


def parse_rule_ids(values: list[str], where: str) -> list[str]:
    """Rule ids, upper-cased; a prefix such as ``SB00`` selects every rule it starts."""
    chosen: list[str] = []
    for value in values:
        prefix = value.strip().upper()
        matched = [rule for rule in RULES if rule.startswith(prefix)] if prefix else []
        if not matched:
            raise UsageError(f"{where}: no rule {value!r}; rules are {', '.join(RULES)}")
        chosen += matched
    return chosen
