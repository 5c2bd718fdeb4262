"""What the flow walk knows about each session name at a point of a function: where it was opened, whether its
connection is checked out (held), whether its block ended. ``flow`` and ``calls`` read and update it.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

# Session methods that check a connection out (``commit`` flushes first), that end its transaction and give the
# connection back, and that close the session (its later use then checks out a new connection).
CHECKOUT_OPS = frozenset(
    {
        "execute",
        "scalar",
        "scalars",
        "get",
        "get_one",
        "flush",
        "refresh",
        "stream",
        "stream_scalars",
        "merge",
        "delete",
        "run_sync",
        "connection",
        "commit",
    }
)
RELEASE_OPS = frozenset({"commit", "rollback", "close", "reset", "invalidate", "remove"})
CLOSE_OPS = frozenset({"close", "reset", "invalidate", "remove"})


@dataclass(eq=False)
class Origin:
    """One session, shared by every path's ``Var`` of it: facts that hold whichever path ran."""

    name: str
    kind: str  # "with" (async with), "created" (a bare call), "param" (an argument), "depends" (FastAPI Depends)
    node: ast.AST  # where it was opened
    end_line: int  # the end of its block, or of the function
    closed: bool = False  # closed, or managed by an ``async with`` / ``begin()`` block
    escaped: bool = False  # stored, returned or passed where the walk cannot follow: SB004 says nothing
    first_use: ast.AST | None = None  # the first statement that checked its connection out
    borrowed: bool = False  # a helper's parameter bound by its caller: the caller reports its misuse
    dependency: str = ""  # the Depends(...) function's name
    yield_dependency: bool = False  # that function yields: its exit runs after the response
    function_scope: bool = False  # Depends(..., scope="function")
    reported: set[str] = field(default_factory=set)

    @property
    def line(self) -> int:
        return getattr(self.node, "lineno", 0)


@dataclass(eq=False)
class Var:
    origin: Origin
    held: bool = False  # a connection is checked out and its transaction open
    ended_at: int | None = None  # the line its ``async with`` block ended at


State = dict[str, Var]


def copy_state(state: State) -> State:
    """A copy for one branch; two names of one session stay one ``Var``."""
    copies: dict[int, Var] = {}
    result: State = {}
    for name, var in state.items():
        if id(var) not in copies:
            copies[id(var)] = replace(var)
        result[name] = copies[id(var)]
    return result


def merge(states: Iterable[State]) -> State | None:
    """Where paths join: held if held on any path, ended only if ended on every path that binds it."""
    paths = list(states)
    if not paths:
        return None
    result = copy_state(paths[0])
    for other in paths[1:]:
        for name, var in other.items():
            mine = result.get(name)
            if mine is None:
                result[name] = replace(var)
            elif mine.origin is var.origin:
                mine.held = mine.held or var.held
                if var.ended_at is None:
                    mine.ended_at = None
            else:  # two sessions under one name: keep what is certain of both
                mine.held = mine.held and var.held
                mine.ended_at = mine.ended_at if var.ended_at is not None else None
    return result


def open_vars(state: State) -> list[tuple[str, Var]]:
    """Each session once (the first name it is bound to), if its block has not ended."""
    seen: set[int] = set()
    found = []
    for name, var in state.items():
        if id(var.origin) not in seen and var.ended_at is None:
            seen.add(id(var.origin))
            found.append((name, var))
    return found


def names_in(node: ast.AST, keep: Callable[[str], bool]) -> list[ast.Name]:
    """Every loaded name under ``node`` that ``keep`` accepts, lambdas and nested functions included."""
    return [n for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and keep(n.id)]


def own_nodes(body: list[ast.stmt]) -> Iterable[ast.AST]:
    """The nodes of a body without descending into nested functions, classes or lambdas."""
    stack: list[ast.AST] = list(reversed(body))
    while stack:
        node = stack.pop()
        yield node
        for child in reversed(list(ast.iter_child_nodes(node))):
            if not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
                stack.append(child)
