"""Screenshots of report.html for the README: long-session and mixed, whole pages at 1400 px and 900 px wide.

Run by hand after a change to the report (``python docs/report_screenshots.py``): it runs both scenarios (about two
minutes), renders their reports and writes docs/report-<scenario>-<width>.png. ``--run long-session=DIR`` reuses a
finished run folder instead. Needs Chromium (Debian's ``chromium``); it drives it over the DevTools protocol to
measure the page's height, so each PNG holds the whole page and nothing below it.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.render.run_report import render_report

SCENARIOS = ("long-session", "mixed")
WIDTHS = (1400, 900)
OUT = ROOT / "docs"


class Page:
    """One Chromium tab over the DevTools protocol: just enough to load a file and photograph all of it."""

    def __init__(self, socket: ClientConnection, session: str) -> None:
        self.socket, self.session, self.next_id = socket, session, 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params,
                                     "sessionId": self.session}))
        while True:
            message = json.loads(self.socket.recv(timeout=60))
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))

    def screenshot(self, html: Path, png: Path, width: int) -> None:
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=900, deviceScaleFactor=1, mobile=False)
        self.call("Page.navigate", url=html.resolve().as_uri())
        self.call("Runtime.evaluate", expression="document.fonts.ready", awaitPromise=True)
        height = int(self.call("Page.getLayoutMetrics")["cssContentSize"]["height"])
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": width, "height": height, "scale": 1})
        png.write_bytes(base64.b64decode(shot["data"]))
        print(f"{png.relative_to(ROOT) if png.is_relative_to(ROOT) else png}: {width}x{height}")


@contextmanager
def chromium() -> Iterator[Page]:
    binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if binary is None:
        sys.exit("no Chromium found; install Debian's chromium (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="sb-shots-") as profile:
        proc = subprocess.Popen([binary, "--headless", "--no-sandbox", "--hide-scrollbars", "--disable-gpu",
                                 f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
                                stderr=subprocess.PIPE, text=True)
        try:
            url = _devtools_url(proc)
            with connect(url, max_size=2**28) as socket:
                socket.send(json.dumps({"id": 1, "method": "Target.createTarget", "params": {"url": "about:blank"}}))
                target = _reply(socket, 1)["targetId"]
                socket.send(json.dumps({"id": 2, "method": "Target.attachToTarget",
                                        "params": {"targetId": target, "flatten": True}}))
                yield Page(socket, _reply(socket, 2)["sessionId"])
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def _devtools_url(proc: subprocess.Popen[str]) -> str:
    assert proc.stderr is not None
    for line in proc.stderr:
        found = re.search(r"DevTools listening on (ws://\S+)", line)
        if found:
            return found.group(1)
    sys.exit("Chromium exited before it opened its DevTools port")


def _reply(socket: ClientConnection, wanted: int) -> dict[str, Any]:
    while True:
        message = json.loads(socket.recv(timeout=60))
        if message.get("id") == wanted:
            return dict(message["result"])


def run_scenario(scenario: str, folder: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "bench.cli", "run", scenario, "--out", str(folder), "--quiet"],
                          cwd=ROOT, check=False)
    if done.returncode not in (0, 1):  # 1: a check failed, which a screenshot may well show
        sys.exit(f"bench run {scenario} failed (exit {done.returncode})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", action="append", default=[], metavar="SCENARIO=DIR",
                        help="use this finished run folder instead of running the scenario")
    parser.add_argument("--out", type=Path, default=OUT, help="where the PNGs go (default: docs/)")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="run the scenarios into DIR and keep them there")
    args = parser.parse_args()
    given = dict(item.split("=", 1) for item in args.run)
    with tempfile.TemporaryDirectory(prefix="sb-shots-runs-") as scratch:
        folders = {}
        for scenario in SCENARIOS:
            folder = Path(given[scenario]) if scenario in given else (args.keep or Path(scratch)) / scenario
            if scenario not in given:
                run_scenario(scenario, folder)
            folders[scenario] = folder
            render_report(folder)
        with chromium() as page:
            for scenario, folder in folders.items():
                for width in WIDTHS:
                    page.screenshot(folder / "report.html", args.out / f"report-{scenario}-{width}.png", width)


if __name__ == "__main__":
    main()
