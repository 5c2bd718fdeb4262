"""A user's command line with placeholders (``--serve``, ``--migrate``): checked when given, filled in per run.

bench.config.options checks each with ``CommandTemplate.parse`` before anything runs; bench.run.serve fills it in.
"""

from __future__ import annotations

import shlex
import string
from dataclasses import dataclass

from bench.errors import UsageError

# What the harness fills in for every app run: the port it picked and the fresh database's URL, as libpq and
# psycopg take it (postgresql://) and as SQLAlchemy's async engine takes it (postgresql+asyncpg://); the run's
# --pool-size, so bench capacity can start the service once per pool size.
PLACEHOLDERS = ("port", "dsn", "sqlalchemy_url", "pool_size")


@dataclass(frozen=True)
class CommandTemplate:
    """``text`` split as a POSIX shell would (quotes kept together), never run through one: the service is
    the process the harness starts, so its parent-death signal and process group apply to it."""

    text: str
    argv: tuple[str, ...]
    uses: frozenset[str]

    @classmethod
    def parse(cls, text: str, source: str, needs: tuple[str, ...] = ()) -> CommandTemplate:
        """``text`` as given by ``source`` (the flag or variable its errors name); a UsageError when it is not
        a command line, names an unknown placeholder or lacks one of ``needs``."""
        try:
            argv = tuple(shlex.split(text))
        except ValueError as err:
            raise UsageError(f"{source} {text!r} is not a command line ({err}); quote it as a shell would") from None
        if not argv:
            raise UsageError(f"{source} is empty; give a command, e.g. 'uvicorn myapp.main:app --port {{port}}'")
        uses = frozenset(name for arg in argv for name in _fields(arg, source))
        for name in needs:
            if name not in uses:
                raise UsageError(f"{source} {text!r} has no {{{name}}}: the harness picks the port, so put it where "
                                 f"the service listens, e.g. 'uvicorn myapp.main:app --port {{port}}'")
        return cls(text=text, argv=argv, uses=uses)

    def expand(self, **values: str) -> list[str]:
        """The argv with every placeholder filled in (``{{`` and ``}}`` are literal braces)."""
        return [arg.format(**values) for arg in self.argv]


def _fields(arg: str, source: str) -> list[str]:
    try:
        names = [name for _text, name, _spec, _conv in string.Formatter().parse(arg) if name is not None]
    except ValueError as err:
        raise UsageError(f"{source}: {arg!r}: {err}; write a literal brace as {{{{ or }}}}") from None
    for name in names:
        if name not in PLACEHOLDERS:
            known = ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
            raise UsageError(f"{source}: unknown placeholder {{{name}}} in {arg!r}; the harness fills in {known}")
    return names
