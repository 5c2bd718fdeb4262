"""The ``bench`` command line: thin commands that parse, call a plain function and print.

Exit codes: 0 ok · 1 a gate or check failed · 2 bad usage or input · 3 the harness or its infrastructure failed.
One module per kind of command (load: run, ab, capacity; results: report, compare; scenarios; lint); importing them
registers them on ``app`` (bench.cli.root), whose ``main`` is the console script.
"""

from __future__ import annotations

from bench.cli import lint, load, results, scenarios  # noqa: F401 - importing a command module registers its commands
from bench.cli.flags import given_from
from bench.cli.root import app, main

__all__ = ["app", "given_from", "main"]
