"""How the flow walk judges a call: a session's own method, a helper it hands a session to, slow non-database work,
a task or thread it spawns, a streaming response it returns. ``flow.Walk`` adds the statements around them.
"""

from __future__ import annotations

import ast

from bench.lint.helpers import MAX_DEPTH, Context, Target, free_names, resolve, slow_helper, yields
from bench.lint.names import SPAWN_METHODS, SPAWNERS, FunctionNode
from bench.lint.project import Module
from bench.lint.state import CHECKOUT_OPS, CLOSE_OPS, RELEASE_OPS, Origin, State, Var, merge, open_vars


class Calls:
    """The call half of a function's walk; ``flow.Walk`` provides ``statements`` and ``sub_walk``."""

    def __init__(
        self,
        ctx: Context,
        module: Module,
        func: FunctionNode,
        depth: int,
        defs: dict[str, FunctionNode],
        cls: ast.ClassDef | None,
    ) -> None:
        self.ctx, self.module, self.names, self.func = ctx, module, module.names, func
        self.depth, self.defs, self.cls = depth, defs, cls
        self.clients: set[str] = set()
        self.factories: set[str] = set()
        self.websockets: set[str] = set()
        self.created: list[Origin] = []
        self.exits: list[State] = []

    def statements(self, body: list[ast.stmt], state: State) -> tuple[State, bool]:
        raise NotImplementedError

    def sub_walk(self, module: Module, func: FunctionNode, entry: State, cls: ast.ClassDef | None) -> State:
        raise NotImplementedError

    def report(self, rule: str, node: ast.AST, end_line: int, message: str) -> None:
        self.ctx.emit(rule, self.module, node, end_line, message)

    def run(self, entry: State) -> State:
        self.ctx.active.add(id(self.func))
        try:
            state, done = self.statements(self.func.body, entry)
        finally:
            self.ctx.active.discard(id(self.func))
        final = merge(self.exits + ([] if done else [state])) or state
        for origin in self.created:
            if not (origin.closed or origin.escaped or origin.borrowed):
                self.report(
                    "SB004",
                    origin.node,
                    origin.end_line,
                    f"session `{origin.name}` is created here without `async with` and never closed: its "
                    f"connection stays checked out after its last use, until the garbage collector finds it; "
                    f"use `async with ... as {origin.name}:`",
                )
        return final

    # --- the entry: what the parameters are --------------------------------------------------------------------

    def entry_state(self) -> State:
        state: State = {}
        args = self.func.args
        positional = [*args.posonlyargs, *args.args]
        defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
        pairs = [*zip(positional, defaults, strict=True), *zip(args.kwonlyargs, args.kw_defaults, strict=True)]
        for param, default in pairs:
            self.parameter(param, default, state)
        return state

    def parameter(self, param: ast.arg, default: ast.expr | None, state: State) -> None:
        name, annotation = param.arg, param.annotation
        kind = self.names.annotation_kind(annotation)
        depends = self.names.depends_of(default, annotation)
        dependency = self.dependency(depends)
        if kind == "factory":
            self.factories.add(name)
        elif kind == "websocket":
            self.websockets.add(name)
        elif self.names.client_annotation(annotation):
            self.clients.add(name)
        if kind != "session" and not (dependency is not None and yields(dependency)):
            return
        origin = Origin(name, "depends" if depends is not None else "param", param, self.func.end_lineno or 0)
        if depends is not None:
            origin.dependency = ast.unparse(depends.args[0]) if depends.args else "?"
            origin.yield_dependency = dependency is not None and yields(dependency)
            origin.function_scope = any(
                k.arg == "scope" and isinstance(k.value, ast.Constant) and k.value.value == "function"
                for k in depends.keywords
            )
        state[name] = Var(origin)

    def dependency(self, depends: ast.Call | None) -> FunctionNode | None:
        if depends is None or not depends.args:
            return None
        target = resolve(self.ctx, self.module, {}, None, ast.Call(func=depends.args[0], args=[], keywords=[]))
        return target[1] if target is not None and target[0] is self.module else None

    # --- expressions --------------------------------------------------------------------------------------------

    def expr(self, node: ast.expr | None, state: State) -> None:
        if node is None or isinstance(node, ast.Lambda):
            return
        if isinstance(node, ast.Await) and isinstance(node.value, ast.Call):
            self.parts(node.value, state)
            self.call(node.value, state, node)
        elif isinstance(node, ast.Call):
            self.parts(node, state)
            self.call(node, state, None)
        else:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.expr):
                    self.expr(child, state)
                elif isinstance(child, ast.comprehension):
                    self.expr(child.iter, state)
                    for condition in child.ifs:
                        self.expr(condition, state)
                elif isinstance(child, ast.keyword):
                    self.expr(child.value, state)

    def parts(self, call: ast.Call, state: State) -> None:
        if isinstance(call.func, ast.Attribute):
            self.expr(call.func.value, state)
        for arg in call.args:
            self.expr(arg, state)
        for keyword in call.keywords:
            self.expr(keyword.value, state)

    def call(self, call: ast.Call, state: State, awaited: ast.expr | None) -> None:
        func = call.func
        if isinstance(func, ast.Attribute):
            receiver = func.value
            if isinstance(receiver, ast.Name) and receiver.id in state:
                self.session_op(state[receiver.id], func.attr, call)
                return
            if isinstance(receiver, ast.Call) and self.is_factory_call(receiver) and func.attr in CHECKOUT_OPS:
                self.report(
                    "SB004",
                    receiver,
                    call.end_lineno or call.lineno,
                    f"session made by `{ast.unparse(receiver)}` is used and never closed: its connection "
                    f"stays checked out until the garbage collector finds it; use `async with`",
                )
                return
        if not state or self.is_factory_call(call) or self.spawned(call, state) or self.contextvar_set(call):
            return
        passes = self.passes_sessions(call, state)
        held = awaited is not None and any(var.held for _, var in open_vars(state))
        if not (passes or held):  # nothing to decide: no session goes in, none is held across it
            return
        target = resolve(self.ctx, self.module, self.defs, self.cls, call)
        bound = self.bindings(call, target, state) if target is not None and passes else {}
        if target is not None and bound:
            self.helper(call, target, bound)
            return
        if held and awaited is not None:
            reason = self.names.slow_call(call, self.clients)
            if reason is None and target is not None:
                reason = slow_helper(self.ctx, target, self.depth)
            if reason is not None:
                self.slow(awaited, reason, state)
        self.escape(call, state, awaited is not None)

    def passes_sessions(self, call: ast.Call, state: State) -> bool:
        """Whether a session goes into the call: as an argument, or read by a nested function it calls."""
        for arg in [*call.args, *(k.value for k in call.keywords)]:
            inner = arg.value if isinstance(arg, ast.Starred) else arg
            if isinstance(inner, ast.Name) and inner.id in state:
                return True
        func = call.func
        return (
            isinstance(func, ast.Name)
            and func.id in self.defs
            and bool(free_names(self.ctx, self.defs[func.id], state))
        )

    def session_op(self, var: Var, op: str, call: ast.Call) -> None:
        origin = var.origin
        if op in CHECKOUT_OPS:
            if var.ended_at is not None and not origin.borrowed and "SB005" not in origin.reported:
                self.report(
                    "SB005",
                    call,
                    call.end_lineno or call.lineno,
                    f"session `{origin.name}` is used after its `async with` block ended at line "
                    f"{var.ended_at}: this checks out a new connection and begins a transaction that nothing "
                    f"ends; move the use inside the block",
                )
                origin.reported.add("SB005")
            origin.first_use = origin.first_use or call
            var.held = True
        if op in RELEASE_OPS:
            var.held = False
        if op in CLOSE_OPS:
            origin.closed = True

    def slow(self, awaited: ast.expr, reason: str, state: State) -> None:
        held = [(name, var) for name, var in open_vars(state) if var.held]
        if not held:
            return
        name, var = held[0]
        since = var.origin.first_use
        where = f"since line {since.lineno}" if isinstance(since, ast.stmt | ast.expr) else "from its caller"
        self.report(
            "SB001",
            awaited,
            awaited.end_lineno or awaited.lineno,
            f"session `{name}` holds a connection ({where}), idle in transaction, across this await of "
            f"{reason}; end its transaction (commit, or leave its block) before the await, or open it after",
        )

    def escape(self, call: ast.Call, state: State, awaited: bool) -> None:
        """A session passed where the walk cannot follow: SB004 says nothing of it, and after an awaited call
        whether it still holds a connection is unknown (so it is taken as not)."""
        for arg in [*call.args, *(k.value for k in call.keywords)]:
            inner = arg.value if isinstance(arg, ast.Starred) else arg
            if isinstance(inner, ast.Name) and inner.id in state:
                state[inner.id].origin.escaped = True
                if awaited:
                    state[inner.id].held = False

    # --- sessions handed on ---------------------------------------------------------------------------------------

    def spawned(self, call: ast.Call, state: State) -> bool:
        """SB002: a session handed to something that runs it apart from the request."""
        func = call.func
        what = SPAWNERS.get(self.names.dotted(func) or "")
        if what is None and isinstance(func, ast.Attribute) and func.attr in SPAWN_METHODS:
            receiver = ast.unparse(func.value).lower()
            if func.attr != "submit" or "executor" in receiver or "pool" in receiver:
                what = SPAWN_METHODS[func.attr]
        if what is None:
            return False
        found = self.session_refs(call, state)
        for name in found:
            origin = state[name].origin
            origin.escaped = True
            kind = {"depends": f"the request's session (Depends({origin.dependency}))", "with": "the session"}.get(
                origin.kind, "the session"
            )
            self.report(
                "SB002",
                call,
                call.end_lineno or call.lineno,
                f"{kind} `{name}` (line {origin.line}) is handed to {what}: the task uses it apart from the "
                f"request, its connection checked out and idle in transaction; pass ids and the sessionmaker, "
                f"and open a session in the task",
            )
        return bool(found)

    def session_refs(self, call: ast.Call, state: State) -> list[str]:
        found: dict[int, str] = {}
        for arg in [*call.args, *(k.value for k in call.keywords)]:
            for node in ast.walk(arg):
                if isinstance(node, ast.Name) and node.id in state:
                    found.setdefault(id(state[node.id].origin), node.id)
                elif isinstance(node, ast.Name) and node.id in self.defs:
                    for name in free_names(self.ctx, self.defs[node.id], state):
                        found.setdefault(id(state[name].origin), name)
        return list(found.values())

    def contextvar_set(self, call: ast.Call) -> bool:
        func = call.func
        if not (isinstance(func, ast.Attribute) and func.attr == "set" and isinstance(func.value, ast.Name)):
            return False
        value = self.names.assigned.get(func.value.id)
        return isinstance(value, ast.Call) and (self.names.dotted(value.func) or "").endswith("ContextVar")

    def bindings(self, call: ast.Call, target: Target, state: State) -> dict[str, tuple[str, Var]]:
        """The helper's parameters bound to the caller's sessions (closures of a nested helper included)."""
        module, func, cls = target
        params = [a.arg for a in [*func.args.posonlyargs, *func.args.args]]
        if cls is not None and params[:1] in (["self"], ["cls"]):
            params = params[1:]
        bound: dict[str, tuple[str, Var]] = {}
        for param, arg in zip(params, call.args, strict=False):
            if isinstance(arg, ast.Name) and arg.id in state:
                bound[param] = (arg.id, state[arg.id])
        for keyword in call.keywords:
            if keyword.arg and isinstance(keyword.value, ast.Name) and keyword.value.id in state:
                bound[keyword.arg] = (keyword.value.id, state[keyword.value.id])
        if module is self.module and self.defs.get(func.name) is func:
            for name in free_names(self.ctx, func, state):
                bound.setdefault(name, (name, state[name]))
        return bound

    def helper(self, call: ast.Call, target: Target, bound: dict[str, tuple[str, Var]]) -> None:
        module, func, cls = target
        if self.depth >= MAX_DEPTH or id(func) in self.ctx.active:
            for _, var in bound.values():
                var.held, var.origin.escaped = False, True
            return
        key = (id(func), tuple(sorted((p, v.held, v.ended_at is not None) for p, (_, v) in bound.items())))
        summary = self.ctx.helpers.get(key)
        if summary is None:
            entry = {
                p: Var(Origin(p, "param", call, func.end_lineno or 0, borrowed=True), held=v.held, ended_at=v.ended_at)
                for p, (_, v) in bound.items()
            }
            out = self.sub_walk(module, func, entry, cls)
            summary = self.ctx.helpers[key] = {p: _summary(var.origin, out) for p, var in entry.items()}
        for param, (name, var) in bound.items():
            held, used, closed, escaped = summary[param]
            if used and var.ended_at is not None and "SB005" not in var.origin.reported:
                self.report(
                    "SB005",
                    call,
                    call.end_lineno or call.lineno,
                    f"session `{name}` is used (by {func.name}) after its `async with` block ended at line "
                    f"{var.ended_at}: this checks out a new connection that nothing returns; call it inside "
                    f"the block",
                )
                var.origin.reported.add("SB005")
            if used:
                var.origin.first_use = var.origin.first_use or call
            var.held = held
            var.origin.closed = var.origin.closed or closed
            var.origin.escaped = var.origin.escaped or escaped

    def is_factory_call(self, call: ast.Call) -> bool:
        func = call.func
        return self.names.is_factory(func) or (isinstance(func, ast.Name) and func.id in self.factories)

    def is_websocket(self, node: ast.expr) -> bool:
        if isinstance(node, ast.Name):
            return node.id in self.websockets or node.id in ("websocket", "ws")
        return isinstance(node, ast.Attribute) and node.attr.endswith("websocket")


def _summary(origin: Origin, out: State) -> tuple[bool, bool, bool, bool]:
    held = any(var.held for var in out.values() if var.origin is origin)
    return held, origin.first_use is not None, origin.closed, origin.escaped
