"""The flow walk of one function: statement by statement, which sessions are open and which hold a connection;
``calls`` judges each call on the way. ``linter`` walks every function of a module through ``check_module``.

Branches are walked apart and joined (held if held on a path, ended if ended on all), loop bodies twice (the
second pass sees what the first left held), helpers of the same module or project are walked with the
sessions their caller passes. What the walk cannot follow it leaves alone: no finding rests on a guess.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from bench.lint.calls import Calls
from bench.lint.helpers import Context, free_names
from bench.lint.names import WEBSOCKET_ITERS, WEBSOCKET_RECEIVES, FunctionNode
from bench.lint.project import Module
from bench.lint.state import CHECKOUT_OPS, Origin, State, Var, copy_state, merge, names_in, open_vars, own_nodes


class Walk(Calls):
    """One walk of ``func`` from an entry state; ``run`` returns the state at its exits."""

    def statements(self, body: list[ast.stmt], state: State) -> tuple[State, bool]:
        """The state after ``body``, and whether every path through it returned or raised."""
        for node in body:
            state, done = self.statement(node, state)
            if done:
                return state, True
        return state, False

    def statement(self, node: ast.stmt, state: State) -> tuple[State, bool]:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            self.defs[node.name] = node
        elif isinstance(node, ast.Return):
            self.returned(node, state)
            return state, True
        elif isinstance(node, ast.Raise):
            self.expr(node.exc, state)
            return state, True
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            self.assign(node, state)
        elif isinstance(node, ast.If):
            return self.branches(node.test, [node.body, node.orelse], state)
        elif isinstance(node, ast.Match):
            return self.branches(node.subject, [case.body for case in node.cases] + [[]], state)
        elif isinstance(node, ast.While | ast.For | ast.AsyncFor):
            return self.loop(node, state), False
        elif isinstance(node, ast.With | ast.AsyncWith):
            return self.with_block(node, state)
        elif isinstance(node, ast.Try | ast.TryStar):
            return self.try_block(node, state)
        elif isinstance(node, ast.Delete):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    state.pop(target.id, None)
        elif not isinstance(node, ast.ClassDef):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.expr):
                    self.expr(child, state)
        return state, False

    def branches(self, test: ast.expr, bodies: list[list[ast.stmt]], state: State) -> tuple[State, bool]:
        self.expr(test, state)
        outs = []
        for body in bodies:
            out, done = self.statements(body, copy_state(state))
            if not done:
                outs.append(out)
        joined = merge(outs)
        return (joined, False) if joined is not None else (state, True)

    def loop(self, node: ast.While | ast.For | ast.AsyncFor, state: State) -> State:
        self.expr(node.iter if isinstance(node, ast.For | ast.AsyncFor) else node.test, state)
        if state and self.receives(node):
            self.websocket_loop(node, state)
        first, _ = self.statements(node.body, copy_state(state))
        if not state and not first:  # no session before the loop or after its body: a second pass adds nothing
            out, _ = self.statements(node.orelse, state)
            return out
        again = merge([state, first]) or state
        second, _ = self.statements(node.body, again)
        after = merge([state, second]) or state
        out, _ = self.statements(node.orelse, after)
        return out

    def with_block(self, node: ast.With | ast.AsyncWith, state: State) -> tuple[State, bool]:
        opened: list[tuple[str, bool]] = []
        for item in node.items:
            opened += self.enter(item, node, state, awaited=isinstance(node, ast.AsyncWith))
        out, done = self.statements(node.body, state)
        for name, ends in opened:
            var = out.get(name)
            if var is not None:
                var.held = False
                if ends:
                    var.ended_at = node.end_lineno
        return out, done

    def try_block(self, node: ast.Try | ast.TryStar, state: State) -> tuple[State, bool]:
        before = copy_state(state)
        body, done = self.statements(node.body, state)
        outs: list[State] = []
        if not done:
            after_else, else_done = self.statements(node.orelse, body)
            outs += [] if else_done else [after_else]
        for handler in node.handlers:
            start = merge([before, copy_state(body)]) or before
            out, handled_done = self.statements(handler.body, start)
            outs += [] if handled_done else [out]
        joined = merge(outs)
        final_start = joined if joined is not None else merge([before, body]) or before
        final, final_done = self.statements(node.finalbody, final_start)
        return final, final_done or joined is None

    # --- bindings -------------------------------------------------------------------------------------------------

    def assign(self, node: ast.Assign | ast.AnnAssign | ast.AugAssign, state: State) -> None:
        value = node.value
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        if value is None:
            return
        creates = isinstance(value, ast.Call) and self.is_factory_call(value)
        if creates and isinstance(value, ast.Call):
            self.parts(value, state)
        else:
            self.expr(value, state)
        if isinstance(node, ast.AugAssign):
            return
        for target in targets:
            if isinstance(target, ast.Name):
                self.bind(target.id, value, creates, state)
            else:  # stored in an attribute, a container: beyond the walk
                for name in names_in(value, lambda n: n in state):
                    state[name.id].origin.escaped = True

    def bind(self, name: str, value: ast.expr, creates: bool, state: State) -> None:
        state.pop(name, None)
        self.factories.discard(name)
        if creates:
            origin = Origin(name, "created", value, self.func.end_lineno or 0)
            self.created.append(origin)
            state[name] = Var(origin)
        elif isinstance(value, ast.Name) and value.id in state:
            state[name] = state[value.id]
        elif isinstance(value, ast.Name | ast.Attribute) and self.names.is_factory(value):
            self.factories.add(name)
        elif self.names.is_client_call(value):
            self.clients.add(name)

    def enter(
        self, item: ast.withitem, node: ast.With | ast.AsyncWith, state: State, awaited: bool
    ) -> list[tuple[str, bool]]:
        """One context manager entered: the names whose sessions the block ends (or commits, for ``begin()``)."""
        context, target = item.context_expr, item.optional_vars
        name = target.id if isinstance(target, ast.Name) else None
        if name is not None:
            state.pop(name, None)
        if isinstance(context, ast.Call) and self.is_factory_call(context):
            self.parts(context, state)
            if name is None:
                return []
            state[name] = Var(Origin(name, "with", node, node.end_lineno or node.lineno))
            return [(name, True)]
        if isinstance(context, ast.Name) and context.id in state:
            state[context.id].origin.closed = True
            if name is not None:
                state[name] = state[context.id]
            return [(context.id, True)]
        func = context.func if isinstance(context, ast.Call) else None
        if (
            isinstance(func, ast.Attribute)
            and func.attr in ("begin", "begin_nested")
            and isinstance(func.value, ast.Name)
            and func.value.id in state
        ):
            state[func.value.id].origin.closed = True  # the block commits: nothing stays checked out after it
            return [(func.value.id, False)]
        if name is not None and self.names.is_client_call(context):
            self.clients.add(name)
        elif awaited and isinstance(context, ast.Call):
            self.parts(context, state)
            self.call(context, state, context)
        else:
            self.expr(context, state)
        return []

    def returned(self, node: ast.Return, state: State) -> None:
        value = node.value
        self.expr(value, state)
        if isinstance(value, ast.Call) and self.names.is_streaming_response(value.func):
            self.streaming(node, value, state)
        elif isinstance(value, ast.Name) and value.id in state:
            state[value.id].origin.escaped = True
        self.exits.append(copy_state(state))

    # --- streaming responses (SB008) ---------------------------------------------------------------------------

    def streaming(self, node: ast.Return, response: ast.Call, state: State) -> None:
        content = (
            response.args[0]
            if response.args
            else next((k.value for k in response.keywords if k.arg == "content"), None)
        )
        in_stream = self.stream_uses(content, state)
        for name, var in open_vars(state) + [(n, v) for n, v in state.items() if v.ended_at is not None]:
            origin = var.origin
            if "SB008" in origin.reported or origin.borrowed:
                continue
            if (
                origin.kind == "depends"
                and origin.yield_dependency
                and not origin.function_scope
                and origin.first_use is not None
            ):
                origin.reported.add("SB008")
                self.report(
                    "SB008",
                    origin.first_use,
                    node.end_lineno or node.lineno,
                    f"the request's session `{name}` (Depends({origin.dependency}), a yield dependency) "
                    f"checks out a connection here that stays out, idle in transaction, until the streaming "
                    f"response returned at line {node.lineno} has sent its last chunk; read in a short "
                    f"`async with` session before the stream",
                )
            elif name in in_stream:
                origin.reported.add("SB008")
                self.report(
                    "SB008",
                    in_stream[name],
                    node.end_lineno or node.lineno,
                    f"the streaming generator uses session `{name}` (line {origin.line}), opened outside it: "
                    f"its connection stays out, idle in transaction, while the response streams; open a "
                    f"short `async with` session inside the generator where it writes",
                )

    def stream_uses(self, content: ast.expr | None, state: State) -> dict[str, ast.AST]:
        """The outer sessions a streaming generator uses, by name, at their first use in it."""
        if not isinstance(content, ast.Call) or not isinstance(content.func, ast.Name):
            return {}
        gen = self.defs.get(content.func.id) or self.names.functions.get(content.func.id)
        if gen is None:
            return {}
        aliases = {name: name for name in free_names(self.ctx, gen, state)} if self.defs.get(gen.name) is gen else {}
        params = [a.arg for a in [*gen.args.posonlyargs, *gen.args.args]]
        for param, arg in zip(params, content.args, strict=False):
            if isinstance(arg, ast.Name) and arg.id in state:
                aliases[param] = arg.id
        found: dict[str, ast.AST] = {}
        for sub in own_nodes(gen.body):
            func = sub.func if isinstance(sub, ast.Call) else None
            if (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.value.id in aliases
                and (func.attr in CHECKOUT_OPS or func.attr == "add")
            ):
                found.setdefault(aliases[func.value.id], sub)
        return found

    # --- websocket loops (SB003) -------------------------------------------------------------------------------

    def receives(self, node: ast.While | ast.For | ast.AsyncFor) -> bool:
        """Whether the loop waits for websocket messages."""
        if isinstance(node, ast.AsyncFor) and isinstance(node.iter, ast.Call):
            func = node.iter.func
            if isinstance(func, ast.Attribute) and func.attr in WEBSOCKET_ITERS and self.is_websocket(func.value):
                return True
        for child in own_nodes(node.body):
            if isinstance(child, ast.Await) and isinstance(child.value, ast.Call):
                func = child.value.func
                if (
                    isinstance(func, ast.Attribute)
                    and func.attr in WEBSOCKET_RECEIVES
                    and self.is_websocket(func.value)
                ):
                    return True
        return False

    def websocket_loop(self, node: ast.While | ast.For | ast.AsyncFor, state: State) -> None:
        for name, var in open_vars(state):
            origin = var.origin
            if origin.kind not in ("with", "created", "depends") or origin.borrowed:
                continue
            if var.held or self.used_in(node.body, {n for n, v in state.items() if v.origin is origin}):
                self.report(
                    "SB003",
                    origin.node,
                    origin.end_line,
                    f"session `{name}` is opened around a websocket receive loop (line {node.lineno}): its "
                    f"connection stays checked out, idle in transaction, for the socket's life; open a "
                    f"session per message inside the loop",
                )

    def used_in(self, body: list[ast.stmt], names: set[str]) -> bool:
        for node in own_nodes(body):
            if isinstance(node, ast.Call):
                func = node.func
                if (
                    isinstance(func, ast.Attribute)
                    and func.attr in CHECKOUT_OPS
                    and isinstance(func.value, ast.Name)
                    and func.value.id in names
                ):
                    return True
                if any(isinstance(a, ast.Name) and a.id in names for a in node.args):
                    return True
        return False

    def sub_walk(self, module: Module, func: FunctionNode, entry: State, cls: ast.ClassDef | None) -> State:
        return Walk(self.ctx, module, func, depth=self.depth + 1, defs={}, cls=cls).run(entry)


def check_module(ctx: Context, module: Module) -> None:
    """Walk every function of the module, nested ones and methods included, from what its parameters say."""
    names = module.names
    makers = [name for name in names.assigned if names.is_factory(ast.Name(id=name))]
    words = ("ession", *ctx.project.config.session_factories, *makers, *names.session_classes)
    for func, enclosing, cls in _functions(module.tree.body, {}, None):
        # A function whose text names no session, factory or session class has nothing to walk.
        text = "\n".join(module.lines[func.lineno - 1 : func.end_lineno])
        if any(word in text for word in words):
            walk = Walk(ctx, module, func, depth=0, defs=dict(enclosing), cls=cls)
            walk.run(walk.entry_state())


def _functions(
    body: list[ast.stmt], enclosing: dict[str, FunctionNode], cls: ast.ClassDef | None
) -> Iterator[tuple[FunctionNode, dict[str, FunctionNode], ast.ClassDef | None]]:
    local = dict(enclosing)
    local.update({n.name: n for n in body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)})
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node, local, cls
            yield from _functions(node.body, local, None)
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node.body, {}, node)
        elif isinstance(node, ast.If | ast.Try):
            yield from _functions([c for c in ast.iter_child_nodes(node) if isinstance(c, ast.stmt)], local, cls)
