"""The report's opening and its headline as a person reads them: the story first (the scenario, its code, a verdict
from the figures), checks in the registry's words, no false drama (a model bound is no regression, one write route
is not listed twice), the run's parameters last. Real run folders: tests/data/long-session-run and mixed-run.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from bench.render.run_report import render_report
from tests.reportpage import Page

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "run"
    shutil.copytree(DATA / "long-session-run", folder)
    return folder


@pytest.fixture
def mixed_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "mixed"
    shutil.copytree(DATA / "mixed-run", folder)
    return folder


@pytest.fixture
def summary() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / "long-session-run" / "summary.json").read_text())
    return data


def _parse(html_text: str) -> Page:
    return Page(html_text)


def _row(rows: list[list[str]], first: str, second: str | None = None) -> list[str]:
    return next(r for r in rows if r[0] == first and (second is None or r[1] == second))


def test_the_story_comes_first_and_the_parameters_last(run_dir: Path) -> None:
    md_path, html_path = render_report(run_dir)
    page = _parse(html_path.read_text())
    assert page.sections[0] == "story" and page.sections[-1] == "parameters"
    assert page.sections.index("headline") < page.sections.index("plots") < page.sections.index("percentiles")
    md = md_path.read_text()
    assert md.index("## What this run shows") < md.index("## Headline") < md.index("## Run parameters")


def test_the_story_names_the_code_and_a_verdict_from_the_figures(run_dir: Path, summary: dict[str, Any]) -> None:
    md_path, html_path = render_report(run_dir)
    story, md = _parse(html_path.read_text()).text["story"], md_path.read_text()
    assert "one session held across a slow upstream call vs two short sessions around it" in story  # the catalog
    for app, marker in (("bad", "ANTI-PATTERN(long-session)"), ("good", "CORRECT(long-session)")):
        where = re.search(rf"target_apps/{app}/long_session\.py:(\d+)", story)
        assert where, app
        line = (ROOT / "target_apps" / app / "long_session.py").read_text().splitlines()[int(where.group(1)) - 1]
        assert marker in line and f"`{where.group(0)}`" in md
    good, bad = summary["apps"]["good"], summary["apps"]["bad"]
    verdict = (
        f"bad holds a connection {bad['pool']['hold_ms_per_request']:,.1f} ms per request (good "
        f"{good['pool']['hold_ms_per_request']:,.1f} ms) → pool at "
        f"{100 * bad['pool']['ceiling_utilisation']:.0f}% of its Little's-law ceiling "
        f"({bad['pool']['littles_law_ceiling_rps']:,.1f} req/s) → "
        f"{_times(good['throughput_rps'] / bad['throughput_rps'])}x less throughput than good"
    )
    assert verdict in story and f"**Verdict:** {verdict}" in md


def test_a_mixed_runs_story_names_each_routes_anti_pattern(mixed_dir: Path) -> None:
    _, html_path = render_report(mixed_dir)
    story = _parse(html_path.read_text()).text["story"]
    routes = json.loads((mixed_dir / "summary.json").read_text())["apps"]["bad"]["endpoints"]
    named = 0
    for path in sorted((ROOT / "target_apps" / "bad").glob("*.py")):
        source = path.read_text()
        served = [r for r in routes if f'@router.{r.split()[0].lower()}("{r.split()[1]}")' in source]
        if not served:
            continue
        named += 1
        marker = re.search(r"ANTI-PATTERN\(([\w-]+)\)", source)
        assert marker and f"{marker.group(1)}{served[0]}".replace(" ", "") in story.replace(" ", "")  # id, route
        line = source[: marker.start()].count("\n") + 1
        assert f"target_apps/bad/{path.name}:{line}" in story
    assert named == 4  # checkout, accept, price, repeat; the plain read is served by the common app
    good, bad = (json.loads((mixed_dir / "summary.json").read_text())["apps"][a] for a in ("good", "bad"))
    top, share = next(iter(bad["pool"]["hold_share_by_route"].items()))
    # The cause is the leaks and the timeouts they bring, not how full the pool's ceiling ran (a leak is out of it).
    assert (
        f"bad holds a connection {bad['pool']['hold_ms_per_request']:,.1f} ms per request (good "
        f"{good['pool']['hold_ms_per_request']:,.1f} ms; {top} holds {100 * share:.0f}% of bad's connection "
        f"time) → bad leaks connections: {bad['pool']['reclaimed']} connections reclaimed by the GC, "
        f"{bad['db']['idle_in_tx_after_load']} idle in tx after load → {bad['pool']['timeouts']} checkout "
        f"timeouts → {_times(good['throughput_rps'] / bad['throughput_rps'])}x less throughput than good"
    ) in story
    assert "Little's-law ceiling" not in story
    counts = f"{bad['failures']} failures, {bad['integrity']['lost_writes']} lost writes"
    assert bad["failures"] and bad["integrity"]["lost_writes"]  # the counts that should be 0 and are not
    assert f"also {counts}" in story and story.count(counts) == 1  # the chain's counts are not said twice


def _apps(folder: str, **bad_pool: float) -> dict[str, Any]:
    apps: dict[str, Any] = json.loads((DATA / folder / "summary.json").read_text())["apps"]
    apps["bad"]["pool"].update(bad_pool)
    return apps


def test_the_verdict_names_the_cause_the_figures_show() -> None:
    from bench.render.story import verdict

    # mixed, its pool at 35% of a ceiling that leaves the leaked connections out: the leaks and timeouts are named.
    mixed = _apps("mixed-run")
    bad = mixed["bad"]
    reclaimed, timeouts = bad["pool"]["reclaimed"], bad["pool"]["timeouts"]
    less = f"{_times(mixed['good']['throughput_rps'] / bad['throughput_rps'])}x less"
    assert reclaimed and timeouts and bad["db"]["idle_in_tx_after_load"]  # the fixture leaks, and times out
    text = verdict(_apps("mixed-run", ceiling_utilisation=0.35))
    assert f"leaks connections: {reclaimed} connections reclaimed by the GC" in text
    assert f"→ {timeouts} checkout timeouts →" in text
    assert "35%" not in text and "ceiling" not in text
    # Without leaks, timeouts with the pool below its ceiling are the cause; at its ceiling, the pool is.
    no_leak = {"reclaimed": 0}
    apps = _apps("mixed-run", ceiling_utilisation=0.35, **no_leak)
    apps["bad"]["db"]["idle_in_tx_after_load"] = 0
    text = verdict(apps)
    assert "leaks" not in text and "ceiling" not in text and f"→ {timeouts} checkout timeouts → {less}" in text
    apps["bad"]["pool"]["ceiling_utilisation"] = 0.97
    text = verdict(apps)
    ceiling = f"({bad['pool']['littles_law_ceiling_rps']:,.1f} req/s)"
    assert f"→ pool at 97% of its Little's-law ceiling {ceiling} → {timeouts} checkout timeouts → {less}" in text
    # Neither: how full the pool ran, as before (long-session).
    long = _apps("long-session-run")
    text = verdict(long)
    assert (
        f"→ pool at {100 * long['bad']['pool']['ceiling_utilisation']:.0f}% of its Little's-law ceiling "
        f"({long['bad']['pool']['littles_law_ceiling_rps']:,.1f} req/s) → "
        f"{_times(long['good']['throughput_rps'] / long['bad']['throughput_rps'])}x less"
    ) in text
    assert "timeouts" not in text


def _times(value: float) -> str:
    """A ratio as the story and the checks write it: 3 significant digits, whole from 1,000."""
    return f"{value:,.3g}" if value < 1000 else f"{value:,.0f}"


def _with_infinite_ratio(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary with its idle ratio check as evaluate writes one whose denominator was 0 (good idled none)."""
    checks = [{**c, "value": "inf"} if c["name"] == "bad/good: db.idle_in_tx_long_seconds >= 10" else c
              for c in summary["checks"]]
    return {**summary, "checks": checks}


def _value(summary: dict[str, Any], name: str) -> float:
    return float(next(c["value"] for c in summary["checks"] if c["name"] == name))


def test_checks_use_the_registry_labels_with_the_raw_check_on_hover(run_dir: Path, summary: dict[str, Any]) -> None:
    (run_dir / "summary.json").write_text(json.dumps(_with_infinite_ratio(summary)))
    md_path, html_path = render_report(run_dir)
    page = _parse(html_path.read_text())
    checks, titles = page.tables["checks"][1:], page.titles["checks"][1:]
    assert [(r[0], r[1]) for r in checks] == [
        ("✓", "good: failures = 0"),
        ("✓", "good: checkout timeouts = 0"),
        ("✓", "good/bad: throughput ≥ 3×"),
        ("✓", "bad/good: pool wait p50 ≥ 5×"),
        ("✓", "bad: pool wait p50 (ms) ≥ 300"),
        ("✓", "bad/good: idle in tx past threshold ≥ 10×"),
        ("✓", "bad: idle in tx past threshold per request (ms) ≥ 40"),
        ("✓", "bad: ceiling utilisation (fraction) ≥ 0.9"),
        ("✓", "good: stalls = 0"),
        ("✓", "bad: stalls = 0"),
    ]
    assert [t[1] for t in titles] == [c["name"] for c in summary["checks"]]  # the raw check, on hover
    idle = summary["apps"]["bad"]["db"]["idle_in_tx_long_seconds"]
    assert _row(checks, "✓", "bad/good: idle in tx past threshold ≥ 10×")[2] == f"∞× (bad {idle:,} vs good 0 conn-s)"
    throughput = _value(summary, "good/bad: throughput_rps >= 3")
    assert _row(checks, "✓", "good/bad: throughput ≥ 3×")[2] == f"{throughput:.2f}×"
    md = md_path.read_text()
    used = _value(summary, "bad: pool.ceiling_utilisation >= 0.9")
    assert f"## Checks: {len(checks)} of {len(checks)} passed" in md
    assert f"| ✓ | bad: ceiling utilisation (fraction) ≥ 0.9 | {used:.3f} |" in md
    assert "throughput_rps" not in page.text["checks"] and "pool.wait_ms.p95" not in md.split("## Checks")[1]


def test_a_huge_ratio_shows_the_two_figures_it_divides(run_dir: Path, summary: dict[str, Any], tmp_path: Path) -> None:
    """A pair check past 1,000× (good's pool wait p50 is a 4 µs bucket: it never queued) shows both apps' figures in
    the report, the terminal and a JUnit failure. They are summary.json's figures, every digit, and their quotient is
    the check's value; a ratio under 1,000× shows none."""
    from bench.render.junit import checks_junit
    from bench.render.terminal import render_summary

    _, html_path = render_report(run_dir)
    rows = _parse(html_path.read_text()).tables["checks"][1:]
    huge = next(c for c in summary["checks"] if c["name"] == "bad/good: pool.wait_ms.p50 >= 5")
    bad, good = (summary["apps"][app]["pool"]["wait_ms"]["p50"] for app in ("bad", "good"))
    assert huge["value"] >= 1000 and good > 0
    shown = _row(rows, "✓", "bad/good: pool wait p50 ≥ 5×")[2]
    assert shown == f"{huge['value']:,.0f}× (bad {bad:,} vs good {good:,} ms)", shown
    figures = [float(x.replace(",", "")) for x in re.findall(r"(?:bad|good) ([\d.,]+)", shown)]
    assert figures[0] / figures[1] == pytest.approx(huge["value"], rel=1e-8)
    assert "(" not in _row(rows, "✓", "good/bad: throughput ≥ 3×")[2]
    assert f"(bad {bad:,} vs good {good:,} ms)" in render_summary(summary, tmp_path)
    failing = {**summary, "checks": [{**huge, "passed": False}]}
    assert f"measured {huge['value']:,.0f}× (bad {bad:,} vs good {good:,} ms)" in checks_junit(failing)


def test_the_littles_law_ceiling_is_a_bound_not_a_regression(run_dir: Path) -> None:
    _, html_path = render_report(run_dir)
    page = _parse(html_path.read_text())
    row = _row(page.tables["headline"], "Little's-law ceiling (req/s)")
    assert row[3].endswith("×") and "worse" not in row[3] and "better" not in row[3]
    assert "not a measured outcome: its ratio carries no verdict" in page.text["headline"]


def test_one_write_route_is_not_shown_twice_and_several_are_split(run_dir: Path, mixed_dir: Path) -> None:
    _, html_path = render_report(run_dir)
    page = _parse(html_path.read_text())
    assert "integrity-routes" not in page.sections and len(page.tables["integrity"]) == 3  # header, good, bad
    _, html_path = render_report(mixed_dir)
    rows = _parse(html_path.read_text()).tables["integrity"][1:]
    summary = json.loads((mixed_dir / "summary.json").read_text())
    for app in ("good", "bad"):
        assert _row(rows, app, "all write routes")[2:] == [
            f"{summary['apps'][app]['integrity'][k]:,}" for k in ("acknowledged_writes", "rows_written", "lost_writes")
        ]
        for route, figures in summary["apps"][app]["integrity"]["by_route"].items():
            assert _row(rows, app, route)[2:] == [
                f"{figures[k]:,}" for k in ("acknowledged_writes", "rows_written", "lost_writes")
            ]


def test_the_terminal_names_checks_as_the_report_does(summary: dict[str, Any], tmp_path: Path) -> None:
    from bench.render.terminal import render_summary

    text = render_summary(_with_infinite_ratio(summary), tmp_path).split("\nchecks\n")[1]
    throughput = _value(summary, "good/bad: throughput_rps >= 3")
    assert "✓ good/bad: throughput ≥ 3×" in text and f"{throughput:.2f}×" in text and "∞×" in text
    assert "throughput_rps" not in text and "pool.wait_ms.p95" not in text


def test_the_terminal_closes_with_how_many_checks_failed(summary: dict[str, Any], tmp_path: Path) -> None:
    from bench.render.terminal import render_summary

    checks = summary["checks"]
    assert all(c["passed"] for c in checks) and "checks failed" not in render_summary(summary, tmp_path)
    failing = [{**c, "passed": i % 3 == 0} for i, c in enumerate(checks)]
    text = render_summary({**summary, "checks": failing}, tmp_path)
    marked = text.split("\nchecks\n")[1].count("  ✗ ")
    assert marked == sum(not c["passed"] for c in failing) > 0
    assert f"\n{marked} of {len(checks)} checks failed\n" in text


def test_the_header_shows_pool_settings_only_for_the_paired_apps(tmp_path: Path) -> None:
    import io
    from dataclasses import replace

    from bench.config.catalog import get_scenario
    from bench.config.options import resolve_config
    from bench.render.terminal import Console

    scenario = get_scenario("long-session")
    paired = resolve_config(scenario, {"pool_size": "7", "upstream_latency_ms": "150"})
    lines = []
    for config in (
        paired,
        replace(paired, apps=("target",), target="http://127.0.0.1:8000"),
        replace(paired, apps=("target",), serve="uvicorn myapp:app --port {port}"),
    ):
        err = io.StringIO()
        Console(out=io.StringIO(), err=err).header(config, scenario, tmp_path)
        lines.append(err.getvalue().splitlines()[0])
    assert "pool 7+0" in lines[0] and "upstream 150 ms" in lines[0]
    for line, how in zip(lines[1:], ("--target", "--serve"), strict=True):
        assert "pool" not in line and "upstream" not in line and line.endswith(f"your service ({how})"), line


@pytest.mark.parametrize("how", ["serve", "target", None])
def test_the_reports_show_pool_and_upstream_only_for_the_paired_apps(how: str | None) -> None:
    """The run report's heading and the capacity report's subtitle, from the config as run.json keeps it."""
    from bench.render.capacity_report import _subtitle
    from bench.render.run_report import heading
    from bench.results.summaryfile import RunFolder

    config = {"apps": ["target"] if how else ["good", "bad"], "users": 5, "duration_s": 10, "cooldown_s": 3,
              "pool_size": 7, "max_overflow": 0, "upstream_latency_ms": 150.0,
              **({how: "uvicorn app:app --port {port}" if how == "serve" else "http://127.0.0.1:8000"} if how else {})}
    run_line = heading(RunFolder(path=Path("x"), summary={"config": config}, run={})).subtitle
    capacity_line = _subtitle({"scenario": "s", "config": {**config, "pool_sizes": [7], "slo": {"text": "p95<1s"}}})
    for line in (run_line, capacity_line):
        if how:
            assert "upstream" not in line and f"your service (--{how})" in line, line
        else:
            assert "upstream 150" in line and "your service" not in line, line


def test_the_terminal_names_the_route_idle_longest_with_its_time_per_request(tmp_path: Path) -> None:
    """From the mixed run's bad app: its longest-idle route, and that route's seconds over its own requests, in ms
    with two significant digits below 10 (a 0.14 ms figure read '0 ms' before)."""
    from bench.render.terminal import render_summary

    summary = json.loads((ROOT / "tests" / "data" / "mixed-run" / "summary.json").read_text())
    bad = summary["apps"]["bad"]
    route, seconds = next(iter(bad["db"]["idle_in_tx_long_by_route"].items()))
    per_ms = seconds / bad["endpoints"][route]["requests"] * 1000
    line = next(x for x in render_summary(summary, tmp_path).splitlines() if "left connections idle" in x and "bad" in x)
    shown = f"{per_ms:.0f}" if per_ms >= 10 else f"{per_ms:.2g}"
    assert line.strip() == f"bad: {route} left connections idle in transaction {seconds:.1f} s, {shown} ms per request"
    small = json.loads(json.dumps(summary))
    small["apps"]["bad"]["db"]["idle_in_tx_long_by_route"] = {route: 0.0014 * bad["endpoints"][route]["requests"]}
    assert "1.4 ms per request" in render_summary(small, tmp_path)


def test_a_figure_that_is_not_0_never_reads_0(summary: dict[str, Any], tmp_path: Path) -> None:
    """Good's pool wait p95 of 0.004 ms once read "0.0" in the headline beside a ratio of a million; a figure that
    is not 0 gets two significant digits where its format would show none. The terminal's table likewise."""
    from bench.render.report_tables import figure_text
    from bench.render.terminal import render_summary

    assert [figure_text(v, "{:.1f}") for v in (0.003967, 0.0, 6.64, -0.0004)] == ["0.004", "0.0", "6.6", "-0.0004"]
    tiny = json.loads(json.dumps(summary))
    tiny["apps"]["good"]["pool"]["wait_ms"]["p95"] = 0.003967
    row = next(line for line in render_summary(tiny, tmp_path).splitlines() if "pool wait p95 (ms)" in line)
    assert row.split()[4] == "0.004", row
