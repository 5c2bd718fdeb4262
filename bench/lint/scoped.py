"""SB007: an ``async_scoped_session`` whose scope is shared by requests, or whose request scope ends without
``remove()`` in a ``finally``. ``linter`` runs it on every module; registry and middleware must share the module.
"""

from __future__ import annotations

import ast
from collections.abc import Callable

from bench.lint.names import ModuleNames
from bench.lint.project import Module
from bench.lint.state import own_nodes

Report = Callable[[ast.AST, int, str], None]
_PER_THREAD = ("threading.get_ident", "threading.current_thread", "_thread.get_ident")


def check_scoped(module: Module, report: Report) -> None:
    names = module.names
    if not any(value.endswith("scoped_session") for value in names.imports.values()):
        return
    scopes: set[str] = set()
    for node in module.nodes():
        if not isinstance(node, ast.Call) or not names.is_scoped_registry(node):
            continue
        scopefunc = next((k.value for k in node.keywords if k.arg == "scopefunc"), None)
        if scopefunc is None and len(node.args) > 1:
            scopefunc = node.args[1]
        if scopefunc is not None:
            _judge(names, scopefunc, scopes, report)
    if scopes:
        _check_scope_ends(module, scopes, report)


def _judge(names: ModuleNames, scopefunc: ast.expr, scopes: set[str], report: Report) -> None:
    """A constant or per-thread scope is reported; a ContextVar's ``get`` makes that variable a request scope."""
    shared = None
    if isinstance(scopefunc, ast.Lambda) and isinstance(scopefunc.body, ast.Constant):
        shared = f"`{ast.unparse(scopefunc)}` returns one value for every request"
    elif (names.dotted(scopefunc) or "") in _PER_THREAD:
        shared = f"`{ast.unparse(scopefunc)}` is per thread, and every request of the event loop shares its thread"
    elif isinstance(scopefunc, ast.Attribute) and scopefunc.attr == "get" and isinstance(scopefunc.value, ast.Name):
        scopes.add(scopefunc.value.id)
    elif isinstance(scopefunc, ast.Name) and scopefunc.id in names.functions:
        func = names.functions[scopefunc.id]
        returns = [n for n in own_nodes(func.body) if isinstance(n, ast.Return)]
        if returns and all(isinstance(r.value, ast.Constant) for r in returns):
            shared = f"`{scopefunc.id}()` returns one value for every request"
        for node in own_nodes(func.body):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get"
                and isinstance(node.func.value, ast.Name)
            ):
                scopes.add(node.func.value.id)
    if shared is not None:
        report(
            scopefunc,
            scopefunc.end_lineno or scopefunc.lineno,
            f"async_scoped_session scope {shared}: concurrent requests share one session and interleave on its "
            f"transaction; key the scope on a ContextVar set per request",
        )


def _check_scope_ends(module: Module, scopes: set[str], report: Report) -> None:
    """Every function that sets a request's scope must ``remove()`` the registry's session in a ``finally``."""
    for func in module.nodes():
        if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        calls = [n for n in own_nodes(func.body) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)]
        sets = [c for c in calls if _on(c, "set", scopes)]
        if not sets:
            continue
        finals = [
            n for t in own_nodes(func.body) if isinstance(t, ast.Try | ast.TryStar) for n in own_nodes(t.finalbody)
        ]
        removes = [c for c in calls if isinstance(c.func, ast.Attribute) and c.func.attr == "remove"]
        if any(any(r is n for n in finals) for r in removes):
            continue
        if removes:
            where: ast.AST = removes[0]
            message = "`remove()` is not in a `finally`: a request that raises keeps its session and connection"
        else:
            resets = [c for c in finals if isinstance(c, ast.Call) and _on(c, "reset", scopes)]
            where = resets[0] if resets else sets[0]
            name = (
                sets[0].func.value.id
                if isinstance(sets[0].func, ast.Attribute) and isinstance(sets[0].func.value, ast.Name)
                else "the scope"
            )
            message = (
                f"the request scope `{name}` ends here without `remove()` of its async_scoped_session: the "
                f"registry keeps every request's session, its connection idle in transaction"
            )
        report(
            where,
            getattr(where, "end_lineno", None) or func.lineno,
            f"{message}; call `await registry.remove()` in the `finally`",
        )


def _on(call: ast.Call, method: str, scopes: set[str]) -> bool:
    func = call.func
    return (
        isinstance(func, ast.Attribute)
        and func.attr == method
        and isinstance(func.value, ast.Name)
        and func.value.id in scopes
    )
