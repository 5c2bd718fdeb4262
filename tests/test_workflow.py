"""The example GitHub Actions workflow: it fails on a failed gate, and no pipe in it can swallow an exit code.

GitHub's default shell for a ``run:`` step is ``bash -e {0}``: no pipefail, so ``bench ab ... | tee x`` reports
tee's 0. ``shell: bash`` runs ``bash --noprofile --norc -eo pipefail {0}``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

WORKFLOW = Path(__file__).resolve().parent.parent / ".github" / "workflows" / "scopebench.yml"
_QUOTED = re.compile(r"'[^']*'|\"(?:[^\"\\]|\\.)*\"")
_PIPE = re.compile(r"(?<!\|)\|(?!\|)")  # a pipe, not ||
_PIPEFAIL_SHELLS = ("bash",)  # GitHub runs shell: bash as bash -eo pipefail {0}


def _load() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    return data


def _shell(workflow: dict[str, Any], job: dict[str, Any], step: dict[str, Any]) -> str | None:
    """The shell a step runs in: its own, else its job's default, else the workflow's default."""
    for where in (step, job.get("defaults", {}).get("run", {}), workflow.get("defaults", {}).get("run", {})):
        if "shell" in where:
            return str(where["shell"])
    return None


def pipes_without_pipefail(workflow: dict[str, Any]) -> list[str]:
    """The ``run:`` steps that pipe one command into another in a shell without pipefail semantics."""
    found = []
    for job_name, job in workflow.get("jobs", {}).items():
        for step in job.get("steps", []):
            script = step.get("run")
            if script is None:
                continue
            unquoted = _QUOTED.sub("", str(script))
            if not _PIPE.search(unquoted):
                continue
            shell = _shell(workflow, job, step)
            if shell in _PIPEFAIL_SHELLS or "set -o pipefail" in script or "set -eo pipefail" in script:
                continue
            found.append(f"{job_name}: {step.get('name', script[:40])} (shell: {shell or 'default, no pipefail'})")
    return found


def _steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = workflow["jobs"]["bench"]["steps"]
    return steps


def test_every_piping_step_has_pipefail() -> None:
    assert pipes_without_pipefail(_load()) == []


def test_the_check_finds_a_tee_that_swallows_the_exit_code() -> None:
    """The check above can fail: the old example's compare step, piped into tee in the default shell."""
    old = {"jobs": {"bench": {"steps": [
        {"name": "Compare", "run": "bench compare a b --format md | tee -a \"$GITHUB_STEP_SUMMARY\""},
        {"name": "Or", "run": "bench run x || [ $? -eq 1 ]"},
        {"name": "Quoted", "run": "bench compare a b --fail-on 'x|y'"},
    ]}}}
    assert pipes_without_pipefail(old) == ["bench: Compare (shell: default, no pipefail)"]
    old["jobs"]["bench"]["defaults"] = {"run": {"shell": "bash"}}
    assert pipes_without_pipefail(old) == []
    old["jobs"]["bench"]["defaults"] = {"run": {"shell": "sh"}}
    assert len(pipes_without_pipefail(old)) == 1


def test_base_and_head_run_in_one_job_with_bench_ab() -> None:
    workflow = _load()
    steps = _steps(workflow)
    scripts = "\n".join(str(s.get("run", "")) for s in steps)
    assert list(workflow["jobs"]) == ["bench"]
    assert "git worktree add" in scripts and "pull_request.base.sha" in workflow["env"]["BASE_SHA"]
    ab = next(s for s in steps if "bench ab" in str(s.get("run", "")))
    assert "--serve " in ab["run"] and "--serve-b " in ab["run"] and "--junit scopebench-junit.xml" in ab["run"]
    assert "if" not in ab and "continue-on-error" not in ab  # its exit code (1: a gate failed) fails the job
    checkout = next(s for s in steps if str(s.get("uses", "")).startswith("actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0  # the base commit is there for the worktree


def test_summary_and_junit_are_published_and_a_failed_gate_fails_the_job() -> None:
    steps = _steps(_load())
    summary = next(s for s in steps if "GITHUB_STEP_SUMMARY" in str(s.get("run", "")))
    assert summary["if"] == "always()" and "comparison.md" in summary["run"]
    junit = next(s for s in steps if str(s.get("uses", "")).startswith("mikepenz/action-junit-report"))
    assert junit["if"] == "always()"
    assert junit["with"]["fail_on_failure"] is True and junit["with"]["report_paths"] == "scopebench-junit.xml"
