"""What the flow walk learns of the functions a call runs: which one it is (this module, a method, a project
module), whether awaiting it is slow non-database work, which sessions a nested helper reads. ``calls`` asks.
"""

from __future__ import annotations

import ast
from collections.abc import Callable

from bench.lint.names import FunctionNode
from bench.lint.project import Module, Project
from bench.lint.state import State, own_nodes

MAX_DEPTH = 4  # helpers followed from one function: route → service → repository → ...
Target = tuple[Module, FunctionNode, ast.ClassDef | None]
Emit = Callable[[str, Module, ast.AST, int, str], None]
Summary = dict[str, tuple[bool, bool, bool, bool]]  # parameter → held at exit, used, closed, escaped


class Context:
    """One lint run's shared state: where findings go, and what was learnt of helpers."""

    def __init__(self, project: Project, emit: Emit) -> None:
        self.project = project
        self.emit = emit
        self.active: set[int] = set()  # functions being walked: a recursive helper is not followed again
        self.helpers: dict[tuple[object, ...], Summary] = {}
        self.slow: dict[int, str | None] = {}
        self.free: dict[int, frozenset[str]] = {}  # a function's free names, by id (its tree lives as long)


def yields(func: FunctionNode) -> bool:
    return any(isinstance(node, ast.Yield | ast.YieldFrom) for node in own_nodes(func.body))


def free_names(ctx: Context, func: FunctionNode, state: State) -> list[str]:
    """Names of the caller's sessions a nested function reads without binding them itself."""
    free = ctx.free.get(id(func))
    if free is None:
        params = {a.arg for a in [*func.args.posonlyargs, *func.args.args, *func.args.kwonlyargs]}
        names = [n for n in ast.walk(func) if isinstance(n, ast.Name)]
        stored = {n.id for n in names if isinstance(n.ctx, ast.Store)}
        free = ctx.free[id(func)] = frozenset(n.id for n in names) - stored - params
    return sorted(name for name in free if name in state)


def resolve(
    ctx: Context, module: Module, defs: dict[str, FunctionNode], cls: ast.ClassDef | None, call: ast.Call
) -> Target | None:
    """The function a call runs, when it is in this module (nested, module-level, a method of ``cls``) or in a
    project module an import names."""
    func = call.func
    names = module.names
    if isinstance(func, ast.Name):
        if func.id in defs:
            return module, defs[func.id], None
        if func.id in names.functions:
            return module, names.functions[func.id], None
        dotted = names.imports.get(func.id)
        found = ctx.project.function(module, dotted) if dotted else None
        return (found[0], found[1], None) if found is not None else None
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        if func.value.id == "self" and cls is not None:
            for node in cls.body:
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == func.attr:
                    return module, node, cls
            return None
        if func.value.id in names.imports:
            found = ctx.project.function(module, names.dotted(func) or "")
            return (found[0], found[1], None) if found is not None else None
    return None


def slow_helper(ctx: Context, target: Target, depth: int) -> str | None:
    """Why awaiting this helper is slow non-database work (it awaits a sleep, an HTTP call, a slow helper...)."""
    module, func, cls = target
    key = id(func)
    if key in ctx.slow:
        return ctx.slow[key]
    ctx.slow[key] = None  # a recursive helper is not slow through itself
    clients = {
        n.optional_vars.id
        for n in own_nodes(func.body)
        if isinstance(n, ast.withitem)
        and isinstance(n.optional_vars, ast.Name)
        and module.names.is_client_call(n.context_expr)
    }
    reason = None
    for node in own_nodes(func.body):
        call = node.value if isinstance(node, ast.Await) and isinstance(node.value, ast.Call) else None
        if call is None:
            continue
        reason = module.names.slow_call(call, clients)
        inner = resolve(ctx, module, {}, cls, call) if reason is None and depth < MAX_DEPTH else None
        reason = reason or (slow_helper(ctx, inner, depth + 1) if inner is not None else None)
        if reason is not None:
            break
    ctx.slow[key] = f"{func.name}(), {reason}" if reason is not None else None
    return ctx.slow[key]
