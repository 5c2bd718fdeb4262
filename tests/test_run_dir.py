"""A run's folder is its own: a non-empty --out is refused or, with --force, moved aside whole; and the
command a run records never holds a secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.config.options import redact_argv
from bench.config.optiontable import OPTIONS
from bench.errors import UsageError
from bench.results.folder import new_run_dir


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in root.rglob("*") if p.is_file()}


def _old_run(out: Path) -> dict[str, str]:
    (out / "good").mkdir(parents=True)
    (out / "good" / ".go").write_text("")
    (out / "good" / "samples.jsonl").write_text('{"t": 1}\n')
    (out / "run.json").write_text("{}")
    return _tree(out)


def test_a_new_or_empty_out_is_used_as_it_is(tmp_path: Path) -> None:
    assert new_run_dir("s", tmp_path / "a" / "b") == tmp_path / "a" / "b" and (tmp_path / "a" / "b").is_dir()
    (tmp_path / "empty").mkdir()
    assert new_run_dir("s", tmp_path / "empty") == tmp_path / "empty"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "empty"]  # nothing moved aside


def test_a_non_empty_out_is_refused_and_left_alone(tmp_path: Path) -> None:
    out = tmp_path / "run"
    before = _old_run(out)
    with pytest.raises(UsageError, match=r"is not empty; pick a new folder, or add --force"):
        new_run_dir("s", out)
    assert _tree(out) == before and [p.name for p in tmp_path.iterdir()] == ["run"]
    (tmp_path / "hidden").mkdir()
    (tmp_path / "hidden" / ".go").write_text("")  # a lone go file is what made Locust start too early
    with pytest.raises(UsageError):
        new_run_dir("s", tmp_path / "hidden")


def test_force_moves_the_old_folder_aside_whole(tmp_path: Path) -> None:
    out = tmp_path / "run"
    before = _old_run(out)
    said: list[str] = []
    assert new_run_dir("s", out, force=True, notify=said.append) == out
    assert list(out.iterdir()) == []
    (aside,) = [p for p in tmp_path.iterdir() if p != out]
    assert aside.name.startswith("run.old-") and _tree(aside) == before
    assert said == [f"--force: moved what was in {out} to {aside}"]
    # Twice within one second: a second name, nothing overwritten.
    (out / "x").write_text("second")
    new_run_dir("s", out, force=True)
    asides = sorted(p for p in tmp_path.iterdir() if p != out)
    assert len(asides) == 2 and {"x": "second"} in [_tree(a) for a in asides] and before in [_tree(a) for a in asides]


def test_force_never_moves_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    here = tmp_path / "work" / "repo"
    here.mkdir(parents=True)
    (here / "file").write_text("x")
    monkeypatch.chdir(here)
    for out in (Path("."), tmp_path / "work"):
        with pytest.raises(UsageError, match="holds the current directory"):
            new_run_dir("s", out, force=True)
    assert (here / "file").read_text() == "x"


def test_force_is_not_recorded_in_the_config() -> None:
    from bench.config.catalog import get_scenario
    from bench.config.options import resolve_config

    scenario = get_scenario("long-session")
    assert resolve_config(scenario, {"force": True}).force and not resolve_config(scenario).force
    assert resolve_config(scenario, {"force": True}).to_json() == resolve_config(scenario).to_json()


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["run", "--pool-token", "abc", "--users", "5"], ["run", "--pool-token", "***", "--users", "5"]),
        (["run", "--pool-token=abc"], ["run", "--pool-token=***"]),
        (["run", "--db-password", "pw", "--api-secret=s", "--auth-token", "t"],
         ["run", "--db-password", "***", "--api-secret=***", "--auth-token", "***"]),
        (["run", "--dsn", "postgresql://u:pw@h/db"], ["run", "--dsn", "postgresql://u:***@h/db"]),
        (["run", "--dsn=postgresql://u:pw@h/db?password=pw"], ["run", "--dsn=postgresql://u:***@h/db?password=***"]),
        (["run", "--pool-token"], ["run", "--pool-token"]),  # no value given: nothing to mask
        (["run", "--out", "token-study", "--app-name", "secretary"], ["run", "--out", "token-study", "--app-name",
                                                                        "secretary"]),
    ],
)
def test_recorded_commands_mask_every_secret(argv: list[str], shown: list[str]) -> None:
    assert redact_argv(argv) == shown


def test_every_secret_option_is_masked() -> None:
    secret = {name for name, option in OPTIONS.items() if option.secret}
    assert secret == {"pool_token", "dsn"}
    for name in secret:
        flag = OPTIONS[name].flag
        assert "pw" not in " ".join(redact_argv([flag, "postgresql://u:pw@h/db" if name == "dsn" else "pw"]))
