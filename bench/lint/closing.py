"""SB006: a hand-written ``__aexit__`` (or the ``finally`` of a hand-written session context) that awaits the
session's close without a shield. ``linter`` runs it on every module.

SQLAlchemy's own ``AsyncSession.__aexit__`` shields its close; code that closes a session itself must too, or the
cancellation of a request (a client hanging up) cuts the ROLLBACK and the pool drops the connection.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator

from bench.lint.names import FunctionNode, ModuleNames
from bench.lint.project import Module
from bench.lint.state import own_nodes

_CLOSING = frozenset({"close", "rollback", "aclose", "invalidate"})
_SHIELDS = ("CancelScope", "move_on_after", "move_on_at", "fail_after", "fail_at")
Report = Callable[[ast.AST, int, str], None]


def check_closes(module: Module, report: Report) -> None:
    names = module.names
    for node in module.statements():
        if isinstance(node, ast.ClassDef):
            for method in node.body:
                if isinstance(method, ast.AsyncFunctionDef) and method.name == "__aexit__":
                    _check_exit(names, node, method, report)
        elif isinstance(node, ast.AsyncFunctionDef):
            _check_finally(names, node, report)


def _check_exit(names: ModuleNames, cls: ast.ClassDef, method: ast.AsyncFunctionDef, report: Report) -> None:
    """A session class's own ``__aexit__``, or a wrapper's that closes the session it holds."""
    is_session = cls.name in names.session_classes
    for await_node, call in _awaited_closes(method.body):
        receiver = call.func.value if isinstance(call.func, ast.Attribute) else None
        on_self = isinstance(receiver, ast.Name) and receiver.id == "self" and is_session
        on_attribute = (
            isinstance(receiver, ast.Attribute)
            and isinstance(receiver.value, ast.Name)
            and receiver.value.id == "self"
            and "session" in receiver.attr.lower()
        )
        if (on_self or on_attribute) and not _shielded(method, await_node):
            report(
                await_node,
                await_node.end_lineno or await_node.lineno,
                f"`{ast.unparse(await_node)}` in {cls.name}.__aexit__ has no shield: a cancellation (a client "
                f"hanging up mid-stream) cuts its ROLLBACK and the pool drops the connection; await it inside "
                f"`with anyio.CancelScope(shield=True):`",
            )


def _check_finally(names: ModuleNames, func: FunctionNode, report: Report) -> None:
    """A hand-written session context (an ``@asynccontextmanager`` or a yield dependency) closing in ``finally``."""
    made: set[str] = set()
    tries: list[ast.Try | ast.TryStar] = []
    generator = False
    for node in own_nodes(func.body):  # one pass: this runs on every async function
        if isinstance(node, ast.Yield | ast.YieldFrom):
            generator = True
        elif isinstance(node, ast.Try | ast.TryStar) and node.finalbody:
            tries.append(node)
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and names.is_factory(node.value.func):
            made |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    if not (generator and made and tries):
        return
    for node in tries:
        for await_node, call in _awaited_closes(node.finalbody):
            receiver = call.func.value if isinstance(call.func, ast.Attribute) else None
            if isinstance(receiver, ast.Name) and receiver.id in made and not _shielded(func, await_node):
                report(
                    await_node,
                    await_node.end_lineno or await_node.lineno,
                    f"`{ast.unparse(await_node)}` in the finally of {func.name} has no shield: a cancelled request "
                    f"cuts its ROLLBACK and the pool drops the connection; use `async with` on the session (its "
                    f"__aexit__ shields the close) or `with anyio.CancelScope(shield=True):`",
                )


def _awaited_closes(body: list[ast.stmt]) -> Iterator[tuple[ast.Await, ast.Call]]:
    for node in own_nodes(body):
        if isinstance(node, ast.Await) and isinstance(node.value, ast.Call):
            func = node.value.func
            if isinstance(func, ast.Attribute) and func.attr in _CLOSING:
                yield node, node.value


def _shielded(func: FunctionNode, target: ast.Await) -> bool:
    """Inside a shielded cancel scope, or awaited through ``asyncio.shield``."""
    value = target.value
    if isinstance(value, ast.Call) and ast.unparse(value.func).endswith("shield"):
        return True
    scopes = [n for n in own_nodes(func.body) if isinstance(n, ast.With | ast.AsyncWith)]
    shielded = [n for n in scopes if any(_is_shield(item.context_expr) for item in n.items)]
    return any(any(child is target for child in own_nodes(n.body)) for n in shielded)


def _is_shield(node: ast.expr) -> bool:
    if not isinstance(node, ast.Call) or not ast.unparse(node.func).endswith(_SHIELDS):
        return False
    return any(k.arg == "shield" and isinstance(k.value, ast.Constant) and k.value.value is True for k in node.keywords)
