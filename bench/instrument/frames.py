"""Where in the app's code a pool connection is held: the app's frames at checkout, kept as (code, offset) pairs,
a suspended task's chain of frames, and a code position resolved to file:line. ``holds`` and ``pool`` call it.

The app's code is every frame outside the standard library (asyncio, contextlib...), SQLAlchemy and the database
drivers, the ASGI stack (Starlette, FastAPI, anyio, uvicorn and what runs it) and this package. The app's middleware
is its frames whose function takes an ASGI call's ``(scope, receive, send)`` or a ``dispatch``'s
``(request, call_next)``.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import linecache
import os
import sys
import sysconfig
import types
from collections.abc import Iterable
from dataclasses import dataclass

# Packages whose frames are never "the app's code"; ``DATABASE`` ones mean the task is in the database.
DATABASE: tuple[str, ...] = (
    "sqlalchemy",
    "asyncpg",
    "psycopg",
    "psycopg2",
    "psycopg_pool",
    "aiomysql",
    "asyncmy",
    "aiosqlite",
    "oracledb",
)
# The ASGI stack, with the command line and protocols uvicorn runs the app under (click, h11, websockets): none of
# them is the app's code, so none of them is a line a hold site's stack shows.
LIBRARIES: tuple[str, ...] = (*DATABASE, "greenlet", "starlette", "fastapi", "anyio", "sniffio", "uvicorn", "uvloop",
                              "click", "h11", "websockets", "wsproto")

APP, LIBRARY, DB = 0, 1, 2  # what a file is
CodePosition = tuple[types.CodeType, int]  # a frame's code and its last instruction's offset (f_lasti)
Stack = tuple[CodePosition, ...]  # innermost first
_MAX_STEPS = 160  # frames looked at per walk: a request's whole stack, uvicorn to SQLAlchemy, is about 60
_GAP = 3  # library frames between two of the app's that still count as one call chain
_MAX_CHAIN = 256  # awaitables followed down one task's chain
# The parameters of the app's middleware, after ``self``: a pure ASGI one, and Starlette's ``dispatch``.
_MIDDLEWARE = (("scope", "receive", "send"), ("request", "call_next"))
# SQLAlchemy's scoped-session proxies: a checkout through one belongs to the registry's scope, not to its caller.
_SCOPING = ("sqlalchemy.ext.asyncio.scoping", "sqlalchemy.orm.scoping")


@dataclass(frozen=True)
class Site:
    """One line of the app's code: ``path`` relative to the sys.path entry it was imported from."""

    path: str
    line: int
    function: str
    code: str  # the source line, stripped ("" when the file cannot be read)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def describe(self) -> str:
        return f"{self.where} in {self.function}"


class Classifier:
    """Tells the app's files from the libraries', by path prefix; each file is looked at once."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        self.kinds: dict[str, int] = {}
        self._prefixes: list[tuple[str, int]] = [(os.path.dirname(os.path.abspath(__file__)) + os.sep, LIBRARY)]
        for name in (*LIBRARIES, *extra):
            kind = DB if name in DATABASE else LIBRARY
            self._prefixes += [(folder, kind) for folder in _package_folders(name)]
        self._stdlib = tuple({os.path.abspath(sysconfig.get_paths()[k]) + os.sep for k in ("stdlib", "platstdlib")})
        self.scoping = frozenset(path for name in _SCOPING for path in _package_folders(name))

    def kind(self, filename: str) -> int:
        kind = self.kinds.get(filename)
        if kind is None:
            kind = self.kinds[filename] = self._classify(filename)
        return kind

    def _classify(self, filename: str) -> int:
        if filename.startswith("<"):  # frozen modules, generated code: nothing to point at
            return LIBRARY
        for prefix, kind in self._prefixes:
            if filename.startswith(prefix):
                return kind
        packaged = "site-packages" in filename or "dist-packages" in filename
        return LIBRARY if filename.startswith(self._stdlib) and not packaged else APP


def _package_folders(name: str) -> list[str]:
    """Where a package lives, without importing it (a package the app does not use has no folder)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return []
    if spec is None:
        return []
    if spec.submodule_search_locations:
        return [os.path.abspath(p) + os.sep for p in spec.submodule_search_locations]
    return [os.path.abspath(spec.origin)] if spec.origin else []


def _caller(depth: int) -> types.FrameType | None:
    """Where the app's frames start: under SQLAlchemy's asyncio layer a checkout runs in a greenlet whose frames
    are all SQLAlchemy's (or a ``run_sync`` callable's), and the app's are in the parent greenlet, which waits
    in ``greenlet_spawn`` (so a ``run_sync`` checkout is found at its ``await``)."""
    module = sys.modules.get("greenlet")  # SQLAlchemy's asyncio layer imports it; this package never does
    parent = module.getcurrent().parent if module is not None else None
    return parent.gr_frame if parent is not None else sys._getframe(depth + 1)


def checkout_frame(classifier: Classifier) -> tuple[CodePosition | None, int]:
    """The app's frame nearest the running code (the checkout line), as code and offset, and a key for its call
    path: that line and its caller's (a helper shared by two callers is two paths). Nothing resolved, and no frame
    past the caller looked at (each costs a frame object); the key is made of identities, as hashing a code object
    hashes its contents. Runs at every checkout: the loop reads the classifier's table itself."""
    kinds = classifier.kinds
    frame = _caller(1)
    for _ in range(_MAX_STEPS):
        if frame is None:
            break
        code = frame.f_code
        filename = code.co_filename
        kind = kinds.get(filename)
        if kind is None:
            kind = classifier.kind(filename)
        if kind == APP:
            back = frame.f_back
            offset = frame.f_lasti
            if back is None:
                return (code, offset), hash((id(code), offset, 0, 0))
            return (code, offset), hash((id(code), offset, id(back.f_code), back.f_lasti))
        frame = frame.f_back
    return None, 0


@dataclass(frozen=True)
class CallPath:
    """The app's frames on a checkout's whole stack, innermost first, middleware included: ``run`` of them make
    the checkout's own run of calls; ``owner``, when the checkout went through a scoped session's proxy, is the
    index of the innermost middleware frame (the request scope the registry's session belongs to), else -1."""

    stack: Stack
    run: int
    owner: int = -1


def call_path(classifier: Classifier, limit: int) -> CallPath:
    """The app's frames on the whole stack, innermost first, up to ``limit``, middleware included; and how many
    of them make the first run of calls: the checkout's own code (a helper, the route that called it), up to
    the framework, with at most ``_GAP`` library frames between two of them (a context manager, a decorator)."""
    found: list[CodePosition] = []
    run = 0
    gap = -1  # library frames since the last of the app's (-1: none of the app's yet)
    scoped = False
    frame = _caller(1)
    steps = 0
    while frame is not None and steps < _MAX_STEPS and len(found) < limit:
        code = frame.f_code
        if classifier.kind(code.co_filename) == APP:
            found.append((code, frame.f_lasti))
            if run == len(found) - 1 and gap <= _GAP:  # the run goes on
                run = len(found)
            gap = 0
        elif gap >= 0:
            gap += 1
        elif code.co_filename in classifier.scoping:
            scoped = True
        frame = frame.f_back
        steps += 1
    owner = next((i for i, (code, _) in enumerate(found) if is_middleware(code)), -1) if scoped else -1
    return CallPath(tuple(found), run, owner)


def is_middleware(code: types.CodeType) -> bool:
    """A function taking an ASGI call's parameters or a ``dispatch``'s (a method's ``self`` aside): by name, as
    Starlette and its users write them. A helper that takes the app as well is not one."""
    params = code.co_varnames[: code.co_argcount]
    if params[:1] == ("self",):
        params = params[1:]
    return params in _MIDDLEWARE


def task_chain(task: asyncio.Task[object]) -> list[types.FrameType]:
    """The frames of a suspended task, outermost first, following awaits into coroutines, generators, async
    generators (a ``StreamingResponse``'s body) and awaited tasks. Call it only between task steps."""
    frames: list[types.FrameType] = []
    node: object = task.get_coro()
    for _ in range(_MAX_CHAIN):
        if node is None:
            break
        if isinstance(node, types.CoroutineType):
            frame, node = node.cr_frame, node.cr_await
        elif isinstance(node, types.GeneratorType):
            frame, node = node.gi_frame, node.gi_yieldfrom
        elif isinstance(node, types.AsyncGeneratorType):
            frame, node = node.ag_frame, node.ag_await
        elif isinstance(node, asyncio.Task):
            frame, node = None, node.get_coro()
        elif type(node).__name__ in ("async_generator_asend", "async_generator_athrow"):
            # ``await agen.__anext__()``: the wrapper does not expose its generator, but refers to it.
            frame, node = (
                None,
                next((r for r in gc.get_referents(node) if isinstance(r, types.AsyncGeneratorType)), None),
            )
        else:  # a Future or a C awaitable: the bottom of the chain
            break
        if frame is not None:
            frames.append(frame)
    return frames


class Resolver:
    """Turns code positions into ``Site``s, each position once."""

    def __init__(self) -> None:
        self._sites: dict[CodePosition, Site] = {}
        self._paths: dict[str, str] = {}

    def site(self, position: CodePosition) -> Site:
        site = self._sites.get(position)
        if site is None:
            code, offset = position
            line = _line_at(code, offset)
            text = linecache.getline(code.co_filename, line).strip() if line else ""
            site = Site(self.path(code.co_filename), line, code.co_qualname, text[:160])
            if len(self._sites) > 10_000:  # code generated at run time must not grow this for ever
                self._sites.clear()
            self._sites[position] = site
        return site

    def path(self, filename: str) -> str:
        """The file relative to the longest sys.path entry holding it: the path it is imported by."""
        shown = self._paths.get(filename)
        if shown is None:
            best = ""
            for entry in sys.path:
                folder = os.path.abspath(entry or os.getcwd()) + os.sep
                if filename.startswith(folder) and len(folder) > len(best):
                    best = folder
            shown = self._paths[filename] = filename[len(best) :] if best else filename
        return shown


RESOLVER = Resolver()  # one per process: a file's place on sys.path and its lines are the same for every pool


def _line_at(code: types.CodeType, offset: int) -> int:
    line = 0
    for start, end, number in code.co_lines():
        if start <= offset < end:
            return number or line
        if number:
            line = number
    return line or code.co_firstlineno
