"""The run folder's readers (bench.results): every file name a run writes, damaged input, and rows that
cannot be read, which are counted rather than dropped in silence.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.errors import InfraError, UsageError
from bench.results import jsonlines
from bench.results.layout import AppFiles, RunFiles
from bench.results.locustfiles import read_locust_json, read_pacer
from bench.results.requestlog import RequestTail, read_requests
from bench.results.samples import SampleHistogram, read_samples
from bench.results.summaryfile import load_summary

HEADER = "start_epoch_s,request_type,name,response_time_ms,response_length,failed,error\n"
SUMMARY = Path(__file__).parent / "data" / "long-session-run" / "summary.json"


def _row(start: float, ms: float, failed: int = 0, name: str = "GET /x") -> str:
    return f'{start:.6f},GET,"{name}",{ms:.3f},12,{failed},"{"boom" if failed else ""}"\n'


def _worker_log(app_dir: Path, pid: int) -> Path:
    # The recorder fills in the template the harness gives it; it cannot import bench.
    return Path(AppFiles(app_dir).worker_request_log.replace("{worker}", str(pid)))


def test_request_log_reads_every_worker_and_counts_what_it_cannot_read(tmp_path: Path) -> None:
    _worker_log(tmp_path, 101).write_text(HEADER + _row(100.0, 5) + _row(100.5, 7, failed=1))
    _worker_log(tmp_path, 202).write_text(HEADER + _row(101.0, 9) + "garbled,GET,\"GET /x\",not-a-number,1,0,\"\"\n"
                                          + '101.9,GET,"GET /x')  # killed mid-write: a torn last line
    (tmp_path / "requests_old.csv").write_text(HEADER + _row(1.0, 1))  # not a name the recorder writes
    log = read_requests(tmp_path)
    assert [p.name for p in log.files] == ["requests-101.csv", "requests-202.csv"]
    assert sorted(log.frame["start_epoch_s"]) == [100.0, 100.5, 101.0]
    assert log.frame["failed"].tolist().count(1) == 1 and log.frame["error"].tolist().count("") == 2
    assert log.unreadable == 2


def test_single_process_log_and_empty_folder(tmp_path: Path) -> None:
    assert read_requests(tmp_path).frame.empty and read_requests(tmp_path).unreadable == 0
    AppFiles(tmp_path).request_log.write_text(HEADER + _row(5.0, 1) + _row(6.0, 2))
    log = read_requests(tmp_path)
    assert log.frame["response_time_ms"].tolist() == [1.0, 2.0] and log.unreadable == 0


def test_a_file_that_is_not_a_request_log_is_a_one_line_usage_error(tmp_path: Path) -> None:
    AppFiles(tmp_path).request_log.write_text("a,b\n1,2\n")
    with pytest.raises(UsageError, match=re.escape("requests.csv is not a requests log")) as caught:
        read_requests(tmp_path)
    assert "\n" not in str(caught.value)


def test_request_tail_follows_every_worker_log_as_it_grows(tmp_path: Path) -> None:
    tail = RequestTail(tmp_path)
    first = _worker_log(tmp_path, 7)
    first.write_text(HEADER + _row(50.0, 1) + '51.0,GET,"GET')
    tail.poll()
    assert (tail.requests, tail.failures, tail.first_start) == (1, 0, 50.0)
    with open(first, "a") as handle:
        handle.write(' /x",3.000,12,1,"boom"\n')  # the torn line completes
    _worker_log(tmp_path, 8).write_text(HEADER + _row(49.0, 1) + "??\n")
    tail.poll()
    assert (tail.requests, tail.failures, tail.first_start, tail.unreadable) == (3, 1, 49.0, 1)


def test_samples_are_sorted_typed_and_counted(tmp_path: Path) -> None:
    assert read_samples(tmp_path, ["phase"]).present is False
    lines = [{"t": 2.0, "phase": "load", "idle_in_tx": 3, "wait_hist": {"count": 1}}, "[1, 2]",
             {"t": 1.0, "phase": "warmup", "idle_in_tx": "?"}, {"phase": "load"}]
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    AppFiles(tmp_path).samples.write_text(text + '{"t": 3.0, "pha')
    log = read_samples(tmp_path, ["phase", "idle_in_tx", "wait_hist", "pool_size"])
    assert log.frame["t"].tolist() == [1.0, 2.0] and log.frame["phase"].tolist() == ["warmup", "load"]
    assert log.frame["idle_in_tx"].isna().tolist() == [True, False] and log.frame["pool_size"].isna().all()
    assert log.frame["wait_hist"].tolist() == [None, SampleHistogram(1, 0.0, 0.0, "", ())]
    assert log.unreadable == 3 and log.present


@pytest.mark.parametrize("values", [[1, 2, 3], [1.5, 2, None], [None, None], [], [1, "x", 2], ["1", "2"], [True, False],
                                    [2**70, 1], [float("nan"), 1], [{"a": 1}, 2], [[1], 2], [1, [2, 3]]])
def test_sample_numbers_are_what_pandas_makes_of_them(tmp_path: Path, values: list[Any]) -> None:
    """A numeric field is read by numpy when it can be, else by pandas: the same values and dtype either way."""
    import pandas as pd

    AppFiles(tmp_path).samples.write_text("".join(json.dumps({"t": float(i), "n": v}) + "\n"
                                                  for i, v in enumerate(values)).replace("NaN", "null"))
    read = read_samples(tmp_path, ["n"]).frame["n"]
    expected = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").reset_index(drop=True)
    assert read.dtype == expected.dtype and read.equals(expected.rename("n")), (read.tolist(), expected.tolist())


def test_sample_histograms_are_kept_compact_and_read_back_whole(tmp_path: Path) -> None:
    hist = {"count": 4, "sum_s": 0.5, "max_s": 0.25, "buckets": {"-1": 1, "900": 2, "1210": 1}}
    lines = [{"t": 1.0, "wait_hist": hist}, {"t": 2.0, "wait_hist": [1, 2]}, {"t": 3.0, "wait_hist": {"count": 0}}]
    AppFiles(tmp_path).samples.write_text("".join(json.dumps(line) + "\n" for line in lines))
    first, second, third = read_samples(tmp_path, ["wait_hist"]).frame["wait_hist"].tolist()
    assert first == SampleHistogram(4, 0.5, 0.25, "-1 900 1210", (1, 2, 1)) and first.to_json() == hist
    assert second is None  # not a histogram object: nothing to merge
    assert third.to_json() == {"count": 0, "sum_s": 0.0, "max_s": 0.0, "buckets": {}}


def test_samples_with_no_readable_line_are_damage(tmp_path: Path) -> None:
    AppFiles(tmp_path).samples.write_text("not json\n" * 3)
    with pytest.raises(UsageError, match="samples.jsonl holds no valid JSON line"):
        read_samples(tmp_path, ["phase"])


def test_locust_stats_and_pacer(tmp_path: Path) -> None:
    files = AppFiles(tmp_path)
    assert read_locust_json(tmp_path).entries == ()
    files.locust_json.write_text(json.dumps([{"name": "a", "num_requests": 3}, 7]))
    stats = read_locust_json(tmp_path)
    assert stats.entries == ({"name": "a", "num_requests": 3},) and stats.unreadable == 1
    files.locust_json.write_text('[{"name": "a"')
    assert read_locust_json(tmp_path).unreadable == 1
    with pytest.raises(InfraError, match="pacer.json is missing or torn"):
        read_pacer(tmp_path)
    files.pacer_json.write_text(json.dumps({"mode": "rate", "steps": []}))
    assert read_pacer(tmp_path)["mode"] == "rate"


def test_repeats_live_in_repeat_folders(tmp_path: Path) -> None:
    files = RunFiles(tmp_path)
    assert files.app("good").root == tmp_path / "good"
    assert files.app("good", 2).root == tmp_path / "good" / "repeat-3"


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda s: {**s, "repeats": {"good": [1]}}, "repeats.good is not a JSON array of objects"),
    (lambda s: {**s, "checks": {}}, "'checks' is not a JSON array"),
    (lambda s: {k: v for k, v in s.items() if k != "schema_version"}, "not a scopebench summary (no schema_version)"),
])
def test_summary_loader_refuses_damage_in_one_line(tmp_path: Path, mutate: object, message: str) -> None:
    data = json.loads(SUMMARY.read_text())
    RunFiles(tmp_path).summary_json.write_text(json.dumps(mutate(data)))  # type: ignore[operator]
    with pytest.raises(UsageError, match=re.escape(message)) as caught:
        load_summary(tmp_path)
    assert "\n" not in str(caught.value)


def test_summary_loader_names_a_folder_as_a_run_folder_and_a_file_by_its_path(tmp_path: Path) -> None:
    assert load_summary(SUMMARY.parent)["schema_version"] == 1 and load_summary(SUMMARY)["apps"]
    data = {**json.loads(SUMMARY.read_text()), "apps": {}}
    RunFiles(tmp_path).summary_json.write_text(json.dumps(data))
    assert load_summary(tmp_path)["apps"] == {}
    with pytest.raises(UsageError, match="holds no app results"):
        load_summary(tmp_path, require_apps=True)
    with pytest.raises(UsageError, match=re.escape(f"run folder {tmp_path / 'nope'} does not exist")):
        load_summary(tmp_path / "nope")


def test_results_readme_names_every_file_of_the_layout() -> None:
    """results/README.md is the users' map of a run folder: it may not miss a name bench writes."""
    from bench.results import layout

    readme = (Path(__file__).parents[1] / "results" / "README.md").read_text()
    internal = {layout.GO_FILE, layout.WRITE_PROBE, layout.DEFAULT_FOLDER, layout.TAKEN_SUFFIX}
    names = [v for k, v in vars(layout).items() if k.isupper() and isinstance(v, str) and v not in internal]
    assert len(names) > 15
    missing = [n for n in names if re.sub(r"\{(\w+)\}", r"<\1>", n) not in readme]
    assert missing == []


def test_samples_an_older_writer_left_read_as_before(tmp_path: Path) -> None:
    # orjson refuses NaN and Infinity (the standard library wrote them) and a character torn in two: those lines are
    # read as the standard library reads them, not dropped.
    text = '{"t": 1.0, "pool_wait_p95_ms": NaN}\n{"t": 2.0, "pool_wait_p95_ms": Infinity}\n'
    AppFiles(tmp_path).samples.write_bytes(text.encode() + b'{"t": 3.0, "phase": "lo\xe2\x82"}\n')
    log = read_samples(tmp_path, ["pool_wait_p95_ms", "phase"])
    assert log.frame["t"].tolist() == [1.0, 2.0, 3.0] and log.unreadable == 0
    assert math.isnan(log.frame["pool_wait_p95_ms"][0]) and log.frame["pool_wait_p95_ms"][1] == math.inf
    assert log.frame["phase"][2] == "lo\ufffd"


def test_sample_lines_are_the_json_the_standard_library_reads() -> None:
    sample = {"t": 1796296083.6353948, "phase": "load", "pool_size": 5, "pool_wait_p95_ms": None, "ratio": 0.1 + 0.2,
              "numpy": np.float64(2.5), "count": np.int64(7), "wait_hist": {"count": 1, "buckets": {"-1": 1}}}
    written = jsonlines.line(sample)
    assert written.endswith(b"\n") and written.count(b"\n") == 1
    assert json.loads(written) == {**sample, "numpy": 2.5, "count": 7}  # every float exact, as repr writes it
    assert jsonlines.line({"gap": math.nan}) == b'{"gap":null}\n'  # a number that is not finite reads as missing
    with pytest.raises(TypeError, match="not JSON serializable"):
        jsonlines.line({"x": {1}})
