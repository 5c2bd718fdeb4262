"""What a run imports before its first request: pandas (0.3 s) and numpy only once a load is over and its data is
read, SQLAlchemy only once the app is starting, beside it (a --dsn is read with it, before)."""

from __future__ import annotations

import subprocess
import sys

# bench run's path up to Locust's first request: the CLI, the runner, the driver, the collector, the console.
BEFORE_LOAD = (
    "bench.cli",
    "bench.cli.load",
    "bench.run.runner",
    "bench.run.drive",
    "bench.run.collector",
    "bench.render.terminal",
)
LATER = ("pandas", "pyarrow", "numpy", "sqlalchemy")


def test_the_data_libraries_are_not_imported_before_the_load() -> None:
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in BEFORE_LOAD)
        + f"print(','.join(sorted(m for m in {LATER!r} if m in sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "", f"imported before the load: {done.stdout.strip()}"


def test_reading_a_request_log_still_imports_it() -> None:
    # The other side: the lazy import is where the data is read, so post-processing works without a caller's help.
    code = (
        "import sys, tempfile, pathlib\nfrom bench.results.requestlog import read_requests\n"
        "log = read_requests(pathlib.Path(tempfile.mkdtemp()))\nprint(type(log.frame).__module__.split('.')[0])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "pandas"
