"""The package's imports run one way: cli → run → render → analysis → config → results → db → errors.

The instrumentation runs inside users' apps and imports nothing else from bench; the Locust plugins run only
inside Locust (gevent) and nothing imports them. Read from the source with ``ast``, so it costs no imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "bench"
# Higher layers may import lower ones, never the other way; a layer may import itself.
# config's gates and SLOs name results' figures (bench.results.metrics), so results sit below config.
LAYERS = {"cli": 8, "run": 7, "render": 6, "analysis": 5, "config": 4, "results": 3, "db": 2, "errors": 1}
ISOLATED = ("instrument", "locust_plugins")  # import nothing else from bench
# Side packages: the only parts of bench each may import, and the only zones that may import it (analysis matches
# lint findings to a run's hold sites). The pytest plugin is loaded by pytest, never imported.
SIDE = {"lint": (("errors",), ("cli", "analysis")), "pytest_plugin": (("instrument",), ())}


def _zone(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "bench" and len(parts) > 1 else None


def _imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "bench":
                found += [f"bench.{alias.name}" for alias in node.names]
            else:
                found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
    return [name for name in found if name == "bench" or name.startswith("bench.")]


def _sources(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _violations() -> list[str]:
    bad = []
    for path in _sources(PACKAGE):
        zone = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        for module in _imports(path):
            target = _zone(module)
            if target is None or target == zone:
                continue
            if zone in SIDE:
                if target not in SIDE[zone][0]:
                    bad.append(f"{path.relative_to(ROOT)} imports {module}: {zone} imports only {SIDE[zone][0]}")
            elif target in SIDE and zone not in SIDE[target][1]:
                bad.append(f"{path.relative_to(ROOT)} imports {module}: only {SIDE[target][1]} may import {target}")
            elif zone in ISOLATED:
                bad.append(f"{path.relative_to(ROOT)} imports {module}: {zone} imports nothing else from bench")
            elif target == "locust_plugins":
                bad.append(f"{path.relative_to(ROOT)} imports {module}: the Locust plugins run only inside Locust")
            elif target in LAYERS and LAYERS[target] >= LAYERS.get(zone, 0):
                bad.append(f"{path.relative_to(ROOT)} ({zone}) imports {module} ({target}): against the layering")
    return bad


def test_imports_run_one_way() -> None:
    assert _violations() == []


@pytest.mark.parametrize("folder", ["target_apps", "scenarios"])
def test_apps_and_scenarios_use_only_the_instrumentation_and_the_app_contract(folder: str) -> None:
    allowed = ("bench.instrument", "bench.config.appenv")
    bad = [f"{path.relative_to(ROOT)}: {module}" for path in _sources(ROOT / folder) for module in _imports(path)
           if not module.startswith(allowed)]
    assert bad == []


def test_the_check_sees_a_violation(tmp_path: Path) -> None:
    """The test above can fail: an upward import written into a scratch copy of the rules is found."""
    sample = tmp_path / "x.py"
    sample.write_text("from bench.run.runner import run_scenario\nimport bench.locust_plugins.recorder\n")
    modules = _imports(sample)
    assert modules == ["bench.run.runner", "bench.locust_plugins.recorder"]
    assert LAYERS[_zone(modules[0]) or ""] > LAYERS["analysis"]
