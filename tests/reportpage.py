"""Reads a rendered report.html back for the tests: table cells per section, each plot's series and hover titles.

tests/test_report.py and tests/test_report_figures.py parse the page with it, as a person reads the page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any


@dataclass
class Plot:
    title: str = ""
    series: list[str] = field(default_factory=list)
    points: list[int] = field(default_factory=list)  # points of each polyline and polygon
    hover: list[str] = field(default_factory=list)  # the <title> of each hover column, in order

    def value(self, column: str, name: str) -> float:
        """The number a hover column gives for one series: "good 172.0 req/s" -> 172.0 (commas dropped)."""
        text = next(h for h in self.hover if h.startswith(column))
        found = re.search(rf"(?:^|: | · ){re.escape(name)} (?:mean )?([-\d.,]+)", text)
        if found is None:
            raise KeyError(f"{name} not in {text!r}")
        return float(found.group(1).replace(",", ""))


class Page(HTMLParser):
    """Rows of cell text per <section id=...>, the cells' hover titles, and every plot."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.titles: dict[str, list[list[str]]] = {}
        self.plots: list[Plot] = []
        self.sections: list[str] = []
        self.text: dict[str, str] = {}  # all the text of each section
        self._section = ""
        self._cell: list[str] | None = None
        self._title: str | None = None  # "plot" or "hover" while inside such a <title>
        self._in_svg = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a: dict[str, Any] = dict(attrs)
        if tag == "section":
            self._section = a.get("id") or ""
            self.sections.append(self._section)
        elif tag == "tr":
            self.tables.setdefault(self._section, []).append([])
            self.titles.setdefault(self._section, []).append([])
        elif tag in ("td", "th"):
            self._cell = []
            self.titles[self._section][-1].append(a.get("title") or "")
        elif tag == "svg":
            self._in_svg = True
            self.plots.append(Plot())
        elif tag == "title" and self._in_svg:
            self._title = "plot" if not self.plots[-1].title else "hover"
            if self._title == "hover":
                self.plots[-1].hover.append("")
        elif tag == "g" and a.get("class") == "series":
            self.plots[-1].series.append(a.get("data-name") or "")
        elif tag in ("polyline", "polygon") and self._in_svg:
            self.plots[-1].points.append(len((a.get("points") or "").split()))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[self._section][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "title":
            self._title = None
        elif tag == "svg":
            self._in_svg = False

    def handle_data(self, data: str) -> None:
        self.text[self._section] = self.text.get(self._section, "") + data
        if self._cell is not None:
            self._cell.append(data)
        if self._title == "plot":
            self.plots[-1].title += data
        elif self._title == "hover":
            self.plots[-1].hover[-1] += data

    def plot(self, prefix: str) -> Plot:
        return next(p for p in self.plots if p.title.startswith(prefix))

    def row(self, section: str, *first: str) -> list[str]:
        return next(r for r in self.tables[section] if r[:len(first)] == list(first))
