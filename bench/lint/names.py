"""What a module's names are: imports resolved to dotted names, and which names make sessions, are sessions, are
slow non-database work or spawn tasks. ``flow`` and the class and scope rules ask it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from bench.lint.config import LintConfig

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef

_SESSION_CLASSES = ("AsyncSession", "Session")
_MAKERS = ("async_sessionmaker", "sessionmaker")
_SCOPED = ("async_scoped_session", "scoped_session")
# Call names that usually make a session (SQLAlchemy's docs and FastAPI's tutorials name them so).
_FACTORY_NAME = re.compile(
    r"(?:^|_)sessions$|session_?(?:factory|maker|local)$|^(?:async_|db_|new_|make_)session$"
    r"|^(?:Async)?SessionLocal$",
    re.IGNORECASE,
)
# Packages whose "sessions" are not database sessions.
_NOT_DATABASE = (
    "aiohttp",
    "requests",
    "httpx",
    "boto3",
    "aioboto3",
    "botocore",
    "aiobotocore",
    "urllib3",
    "niquests",
    "starlette",
    "fastapi",
)
_HTTP_CLIENTS = ("httpx.AsyncClient", "aiohttp.ClientSession")
HTTP_METHODS = frozenset({"get", "post", "put", "patch", "delete", "head", "options", "request", "send", "stream"})
_SLOW = {
    "asyncio.sleep": "a sleep",
    "anyio.sleep": "a sleep",
    "trio.sleep": "a sleep",
    "asyncio.to_thread": "work in a thread",
    "anyio.to_thread.run_sync": "work in a thread",
    "asyncio.create_subprocess_exec": "a subprocess",
    "asyncio.create_subprocess_shell": "a subprocess",
    "asyncio.open_connection": "a network connection",
    "anyio.connect_tcp": "a network connection",
    "httpx.AsyncClient": "an HTTP request",
    "aiohttp.request": "an HTTP request",
}
_WRAPPERS = ("asyncio.wait_for", "asyncio.shield", "asyncio.gather", "asyncio.wait", "anyio.fail_after")
SPAWNERS = {
    "asyncio.create_task": "asyncio.create_task",
    "asyncio.ensure_future": "asyncio.ensure_future",
    "asyncio.to_thread": "a thread",
    "anyio.to_thread.run_sync": "a thread",
    "threading.Thread": "a thread",
}
SPAWN_METHODS = {
    "add_task": "BackgroundTasks.add_task",
    "create_task": "create_task",
    "start_soon": "start_soon",
    "run_in_executor": "a thread",
    "submit": "a thread pool",
}
WEBSOCKET_RECEIVES = frozenset({"receive", "receive_text", "receive_json", "receive_bytes"})
WEBSOCKET_ITERS = frozenset({"iter_text", "iter_json", "iter_bytes"})


class ModuleNames:
    """Module-level bindings, resolved once: imports, functions, classes, session factories and HTTP clients."""

    def __init__(self, tree: ast.Module, module: str, config: LintConfig) -> None:
        self.tree = tree
        self.module = module
        self.config = config
        self.imports: dict[str, str] = {}
        self.functions: dict[str, FunctionNode] = {}
        self.classes: dict[str, ast.ClassDef] = {}
        self.assigned: dict[str, ast.expr] = {}
        for node in tree.body:
            self._bind(node)
        self.session_classes = self._session_classes()

    def _bind(self, node: ast.stmt) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                self.imports[alias.asname or alias.name.split(".")[0]] = (
                    alias.name if alias.asname else alias.name.split(".")[0]
                )
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                self.imports[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            self.functions[node.name] = node
        elif isinstance(node, ast.ClassDef):
            self.classes[node.name] = node
        elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                if isinstance(target, ast.Name):
                    self.assigned[target.id] = node.value
        elif isinstance(node, ast.If | ast.Try):  # TYPE_CHECKING blocks, optional imports
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    self._bind(child)

    def _session_classes(self) -> set[str]:
        found: set[str] = set()
        changed = True
        while changed:  # a subclass of a subclass, in any order
            changed = False
            for name, cls in self.classes.items():
                if name not in found and any(self.is_session_class(base, found) for base in cls.bases):
                    found.add(name)
                    changed = True
        return found

    # --- resolving ---------------------------------------------------------------------------------------------

    def dotted(self, node: ast.expr) -> str | None:
        """``asyncio.sleep`` for ``asyncio.sleep`` or ``from asyncio import sleep; sleep``; None for other shapes."""
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        head = self.imports.get(node.id, node.id)
        return ".".join([head, *reversed(parts)])

    def is_sqlalchemy(self, node: ast.expr, names: tuple[str, ...]) -> bool:
        dotted = self.dotted(node)
        return dotted is not None and dotted.startswith("sqlalchemy.") and dotted.rsplit(".", 1)[-1] in names

    def is_session_class(self, node: ast.expr, local: set[str] | None = None) -> bool:
        if isinstance(node, ast.Subscript):
            node = node.value
        if isinstance(node, ast.Name) and node.id in (local if local is not None else self.session_classes):
            return True
        return self.is_sqlalchemy(node, _SESSION_CLASSES)

    def not_database(self, node: ast.expr) -> bool:
        dotted = self.dotted(node) or ""
        return dotted.split(".")[0] in _NOT_DATABASE

    # --- sessions and their factories --------------------------------------------------------------------------

    def is_factory(self, node: ast.expr) -> bool:
        """Whether calling ``node`` makes a new session (not a scoped registry's current one)."""
        if self.is_session_class(node):
            return True
        if isinstance(node, ast.Name) and node.id in self.assigned:
            value = self.assigned[node.id]
            if isinstance(value, ast.Call) and self.is_sqlalchemy(value.func, _SCOPED):
                return False
            if isinstance(value, ast.Call) and self.is_sqlalchemy(value.func, _MAKERS):
                return True
        if self.not_database(node) or self.is_sqlalchemy(node, _SCOPED):
            return False
        last = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""
        dotted = self.dotted(node) or last
        extra = self.config.session_factories
        return bool(last) and (bool(_FACTORY_NAME.search(last)) or last in extra or dotted in extra)

    def is_scoped_registry(self, node: ast.expr) -> bool:
        return isinstance(node, ast.Call) and self.is_sqlalchemy(node.func, _SCOPED)

    def annotation_kind(self, node: ast.expr | None) -> str | None:
        """What a parameter's annotation says it is: "session", "factory" or "websocket", else None
        (``Annotated``, ``| None`` and a module-level alias followed)."""
        for part in self._annotation_parts(node, 0):
            if self.is_session_class(part) or self.is_sqlalchemy(part, _SCOPED):
                return "session"
            if self.is_sqlalchemy(part, _MAKERS):
                return "factory"
            dotted = self.dotted(part) or ""
            if dotted.rsplit(".", 1)[-1] == "WebSocket" and dotted.split(".")[0] in ("fastapi", "starlette"):
                return "websocket"
        return None

    def annotation_is(self, node: ast.expr | None, dotted_names: tuple[str, ...]) -> bool:
        return any((self.dotted(part) or "") in dotted_names for part in self._annotation_parts(node, 0))

    def _annotation_parts(self, node: ast.expr | None, depth: int) -> Iterator[ast.expr]:
        if node is None or depth > 4:
            return
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            try:
                node = ast.parse(node.value, mode="eval").body
            except SyntaxError:
                return
        if isinstance(node, ast.Subscript):
            yield node.value
            inner = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            for part in inner[:1] if self.dotted(node.value) in ("typing.Annotated", "Annotated") else inner:
                yield from self._annotation_parts(part, depth + 1)
        elif isinstance(node, ast.BinOp):
            yield from self._annotation_parts(node.left, depth + 1)
            yield from self._annotation_parts(node.right, depth + 1)
        elif isinstance(node, ast.Name) and node.id in self.assigned and node.id not in self.imports:
            yield from self._annotation_parts(self.assigned[node.id], depth + 1)  # SessionDep = Annotated[...]
        else:
            yield node

    def depends_of(self, default: ast.expr | None, annotation: ast.expr | None) -> ast.Call | None:
        """The ``Depends(...)`` call behind a parameter, in its default or its ``Annotated`` metadata."""
        candidates: list[ast.expr] = [default] if default is not None else []
        node = annotation
        if isinstance(node, ast.Name) and node.id in self.assigned:
            node = self.assigned[node.id]
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Tuple):
            candidates += node.slice.elts[1:]
        for candidate in candidates:
            if isinstance(candidate, ast.Call) and (self.dotted(candidate.func) or "").endswith("Depends"):
                return candidate
        return None

    # --- slow work ---------------------------------------------------------------------------------------------

    def slow_call(self, call: ast.Call, clients: set[str]) -> str | None:
        """What a call's await waits for when it is known slow non-database work, else None. ``clients``: local
        names bound to HTTP clients."""
        dotted = self.dotted(call.func) or ""
        if dotted in _SLOW:
            return f"{_SLOW[dotted]} ({dotted})"
        if dotted in _WRAPPERS:
            for arg in call.args:
                reason = self.slow_call(arg, clients) if isinstance(arg, ast.Call) else None
                if reason is not None:
                    return reason
        if self._configured_slow(dotted):
            return f"slow work ({dotted}, configured)"
        func = call.func
        if isinstance(func, ast.Attribute) and func.attr == "run_in_executor":
            return "work in a thread (run_in_executor)"
        if isinstance(func, ast.Attribute) and func.attr in HTTP_METHODS and self._is_client(func.value, clients):
            return f"an HTTP request ({self.dotted(func) or func.attr})"
        return None

    def _configured_slow(self, dotted: str) -> bool:
        last = dotted.rsplit(".", 1)[-1]
        return any(name == dotted or ("." not in name and name == last) for name in self.config.slow_calls)

    def _is_client(self, node: ast.expr, clients: set[str]) -> bool:
        if isinstance(node, ast.Call):
            return (self.dotted(node.func) or "") in _HTTP_CLIENTS
        if isinstance(node, ast.Name):
            if node.id in clients:
                return True
            value = self.assigned.get(node.id)
            return isinstance(value, ast.Call) and (self.dotted(value.func) or "") in _HTTP_CLIENTS
        return False

    def is_client_call(self, node: ast.expr) -> bool:
        return isinstance(node, ast.Call) and (self.dotted(node.func) or "") in _HTTP_CLIENTS

    def client_annotation(self, node: ast.expr | None) -> bool:
        return self.annotation_is(node, _HTTP_CLIENTS)

    def is_streaming_response(self, node: ast.expr) -> bool:
        dotted = self.dotted(node) or ""
        return dotted.endswith(("StreamingResponse", "EventSourceResponse"))
