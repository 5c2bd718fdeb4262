"""The ``scopebench`` pytest plugin: fails a test that holds a database connection across non-database work, leaks
one or leaves one idle in transaction, naming the line. Registered as the ``pytest11`` entry point ``scopebench``.

Off until asked for (``-p scopebench``, ``--scopebench`` or ``scopebench = true`` in the ini file): loaded but off,
it only adds its options. On, it imports ``bench.instrument.watch``, which watches every SQLAlchemy pool.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from bench.instrument.watch import PoolWatch, Problem

NAME = "scopebench"
_HOLD_MS = 50.0


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(NAME, "scopebench: database connections held, leaked or left idle in transaction")
    group.addoption(
        "--scopebench",
        action="store_true",
        default=False,
        help="Fail tests whose code holds, leaks or leaves idle in transaction a SQLAlchemy connection.",
    )
    group.addoption(
        "--scopebench-hold-ms",
        type=float,
        default=None,
        metavar="MS",
        help=f"A connection held past MS while its task awaits other work fails the test "
        f"(default: the ini value scopebench_hold_ms, else {_HOLD_MS:g}).",
    )
    parser.addini(NAME, type="bool", default=False, help="Turn the scopebench checks on for every run.")
    parser.addini("scopebench_hold_ms", default=str(_HOLD_MS), help="The hold threshold in ms (default 50).")
    parser.addini(
        "scopebench_library",
        type="linelist",
        default=[],
        help="More packages whose frames are not the code under test (a shared session helper).",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "scopebench(hold_ms=None, off=False): this test's hold threshold, or no scopebench checks for it"
    )
    plugins = getattr(config.known_args_namespace, "plugins", None) or []
    asked = NAME in plugins or __name__ in plugins
    if not (asked or config.getoption("scopebench") or config.getini(NAME)):
        return
    from bench.instrument.watch import PoolWatch

    hold_ms = config.getoption("scopebench_hold_ms") or float(config.getini("scopebench_hold_ms"))
    watch = PoolWatch(hold_ms, config.getini("scopebench_library"))
    watch.start()
    config.pluginmanager.register(Watcher(watch, hold_ms), f"{NAME}-watcher")


class Watcher:
    """The hooks that run only when the checks are on."""

    def __init__(self, watch: PoolWatch, hold_ms: float) -> None:
        self.watch = watch
        self.hold_ms = hold_ms

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, Any, Any]:
        marker = item.get_closest_marker(NAME)
        if marker is not None and marker.kwargs.get("off"):
            return (yield)
        self.watch.set_threshold(float(marker.kwargs.get("hold_ms") or self.hold_ms) if marker else self.hold_ms)
        self.watch.begin(item.nodeid)
        return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef: pytest.FixtureDef[Any]) -> Generator[None, Any, Any]:
        """A fixture wider than the test (a session's engine, say) owns what it checks out, not the test."""
        if fixturedef.scope == "function" or self.watch.owner is None:
            return (yield)
        owner, self.watch.owner = self.watch.owner, None
        try:
            return (yield)
        finally:
            self.watch.owner = owner

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, Any, Any]:
        result = yield  # a failing test raises here and keeps its own failure
        if self.watch.owner == item.nodeid:
            _fail(self.watch.problems(item.nodeid), "")
        return result

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, Any, Any]:
        result = yield
        if self.watch.owner == item.nodeid:
            _fail(self.watch.outstanding(item.nodeid), " (after its fixtures were torn down)")
        return result

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.watch.stop()


def _fail(problems: list[Problem], when: str) -> None:
    if problems:
        lines = [f"scopebench: {len(problems)} connection problem{'s' if len(problems) > 1 else ''}{when}"]
        lines += [f"  {problem.describe()}" for problem in problems]
        pytest.fail("\n".join(lines), pytrace=False)
