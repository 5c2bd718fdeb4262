"""The paired apps: same routes and shapes, each anti-pattern marked and twinned."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from target_apps.bad.app import create as create_bad
from target_apps.good.app import create as create_good

APPS = Path(__file__).resolve().parent.parent / "target_apps"


@pytest.fixture(autouse=True)
def _settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Creating an app reads its BENCH_APP_* settings; the engine (and so the database) only comes at start-up.
    monkeypatch.setenv("BENCH_APP_DSN", "postgresql+asyncpg://nobody@127.0.0.1:1/never")
    yield


def _routes(app_factory: object) -> dict[str, set[str]]:
    spec = app_factory().openapi()  # type: ignore[operator]
    return {path: set(ops) for path, ops in spec["paths"].items()}


def test_good_and_bad_expose_the_same_routes() -> None:
    good, bad = _routes(create_good), _routes(create_bad)
    assert good == bad
    assert "/orders/{item_id}/checkout" in good and "/items/{item_id}" in good


def test_every_anti_pattern_has_a_correct_twin() -> None:
    def markers(variant: str, word: str) -> set[str]:
        found = set()
        for path in (APPS / variant).glob("*.py"):
            found |= set(re.findall(rf"# {word}\(([a-z-]+)\)", path.read_text()))
        return found

    anti, correct = markers("bad", "ANTI-PATTERN"), markers("good", "CORRECT")
    assert "long-session" in anti
    assert anti == correct
    assert (APPS / "bad").glob("*.py") and {p.name for p in (APPS / "bad").glob("*.py")} == {
        p.name for p in (APPS / "good").glob("*.py")
    }
