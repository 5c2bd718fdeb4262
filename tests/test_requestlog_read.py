"""requests.csv read in one typed pass when every field fits, and through the tolerant pass when one does not:
the same rows, the same types, and text as categories either way."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.results.requestlog import COLUMNS, read_requests

HEADER = ",".join(COLUMNS) + "\n"
ROWS = [
    '1796201560.1,"GET","GET /items/{item_id}",96.4,46,0,""\n',
    '1796201560.2,"POST","POST /orders/{item_id}/checkout",120.5,12,1,"HTTPError(\'500\')"\n',
    '1796201560.3,"GET","GET /items/{item_id}",80.0,46,0,""\n',
]


def _read(folder: Path, lines: list[str]) -> tuple[pd.DataFrame, int]:
    folder.mkdir()
    (folder / "requests.csv").write_text(HEADER + "".join(lines), encoding="utf-8")
    log = read_requests(folder)
    return log.frame, log.unreadable


def test_clean_and_garbled_logs_read_alike(tmp_path: Path) -> None:
    clean, lost = _read(tmp_path / "clean", ROWS)
    # A garbled number and a short row send the read through the tolerant pass, which drops just those rows.
    garbled, dropped = _read(tmp_path / "garbled", [*ROWS, '1796201560.4,"GET","GET /x",abc,1,0,""\n', "17962,\n"])
    assert (lost, dropped) == (0, 2)
    assert list(clean.columns) == list(COLUMNS) and len(clean) == 3
    pd.testing.assert_frame_equal(clean, garbled, check_categorical=False)
    for column in ("request_type", "name", "error"):
        assert isinstance(clean[column].dtype, pd.CategoricalDtype), column
    assert str(clean["failed"].dtype) == "int64" and str(clean["response_time_ms"].dtype) == "float64"
    assert int((clean["name"] == "GET /items/{item_id}").sum()) == 2
