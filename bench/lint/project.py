"""The modules of one lint run, each parsed once: the files linted, and project modules their imports name.

``linter`` asks for the files it lints; ``flow`` asks for an imported helper's module to learn whether awaiting it
is slow work (``from app.upstream import charge``). A module outside the linted file's package root is not read.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

from bench.lint.config import LintConfig
from bench.lint.names import FunctionNode, ModuleNames


@dataclass
class Module:
    """One parsed file: ``shown`` is its path as findings print it."""

    path: Path
    shown: str
    tree: ast.Module
    names: ModuleNames
    lines: list[str]
    _nodes: list[ast.AST] = field(default_factory=list)
    _statements: list[ast.stmt] = field(default_factory=list)

    def nodes(self) -> list[ast.AST]:
        """Every node of the tree, walked once for the rules that look at the whole module."""
        if not self._nodes:
            self._nodes = list(ast.walk(self.tree))
        return self._nodes

    def statements(self) -> list[ast.stmt]:
        """Every statement, nested ones included, without the expressions (a tenth of the nodes)."""
        if not self._statements:
            stack: list[ast.stmt] = list(reversed(self.tree.body))
            while stack:
                node = stack.pop()
                self._statements.append(node)
                for name in ("body", "orelse", "finalbody", "handlers", "cases"):
                    for child in reversed(getattr(node, name, ())):
                        stack += [child] if isinstance(child, ast.stmt) else list(reversed(getattr(child, "body", [])))
        return self._statements


class Project:
    """Parses on demand and keeps every module it parsed, by resolved path."""

    def __init__(self, config: LintConfig, cwd: Path) -> None:
        self.config = config
        self.cwd = cwd.resolve()
        self._modules: dict[Path, Module | None] = {}
        self._texts: dict[Path, str | None] = {}
        self._roots: dict[Path, Path] = {}
        self._shown: dict[Path, str] = {}
        self._words = ("ession", *config.session_factories)

    def relevant(self, path: Path) -> bool | None:
        """Whether the file can hold a finding at all: every rule needs a session, and every way of naming one
        (a class, a factory, a scoped registry, a configured factory) spells it. None: the file cannot be read."""
        text = self._text(path.resolve())
        return None if text is None else any(word in text for word in self._words)

    def load(self, path: Path) -> Module | None:
        """The module at ``path``; None when it cannot be read or parsed."""
        key = path.resolve()
        if key not in self._modules:
            self._modules[key] = self._parse(key)
        return self._modules[key]

    def _text(self, path: Path) -> str | None:
        if path not in self._texts:
            try:
                self._texts[path] = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                self._texts[path] = None
        return self._texts[path]

    def _parse(self, path: Path) -> Module | None:
        text = self._text(path)
        if text is None:
            return None
        try:
            tree = ast.parse(text, filename=str(path))
        except (SyntaxError, ValueError):
            return None
        root = self.root(path)
        module = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        return Module(path, self.shown(path), tree, ModuleNames(tree, module, self.config), text.splitlines())

    def shown(self, path: Path) -> str:
        shown = self._shown.get(path)
        if shown is None:
            try:
                shown = path.resolve().relative_to(self.cwd).as_posix()
            except ValueError:
                shown = path.as_posix()
            self._shown[path] = shown
        return shown

    def root(self, path: Path) -> Path:
        """The folder a file's top package sits in: the first parent without an ``__init__.py``."""
        folder = path.parent
        if folder not in self._roots:
            top = folder
            while (top / "__init__.py").is_file() and top.parent != top:
                top = top.parent
            self._roots[folder] = top
        return self._roots[folder]

    def function(self, near: Module, dotted: str) -> tuple[Module, FunctionNode] | None:
        """The module-level function ``dotted`` names (``pkg.mod.func``), when its file is in ``near``'s project."""
        if "." not in dotted:
            return None
        module_name, name = dotted.rsplit(".", 1)
        if module_name == near.names.module:
            found = near.names.functions.get(name)
            return (near, found) if found is not None else None
        root = self.root(near.path)
        base = root.joinpath(*module_name.split("."))
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                other = self.load(candidate)
                found = other.names.functions.get(name) if other is not None else None
                return (other, found) if other is not None and found is not None else None
        return None
