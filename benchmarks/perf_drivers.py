"""Load drivers (wrk, Locust) and meters (CPU of process trees, request counters) for ``harness_perf``.

The measuring modules start a driver here and read one window of steady load: wrk counts its own
requests, Locust runs are counted by the server (a counter route), so Locust's spawn time stays out.
"""

from __future__ import annotations

import json
import re
import resource
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.run.processes import Child

LOCUSTFILE = Path(__file__).with_name("perf_locustfile.py")
RESPONDER = Path(__file__).with_name("trivial_responder.py")
WRK_INSTALL = "apt-get install -y wrk"
# wrk's Lua hook: a random seeded item per request, as the Locust user does.
ITEMS_LUA = 'request = function() return wrk.format(nil, "/items/" .. math.random(1, 1000)) end\n'
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def wrk_path() -> str | None:
    return shutil.which("wrk")


def have_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


@dataclass(frozen=True, kw_only=True)
class Window:
    """One measured window: completed requests per second, failures, and CPU cores used per process."""

    rps: float
    requests: int
    seconds: float
    failures: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    cores: dict[str, float] = field(default_factory=dict)

    def figures(self, prefix: str = "") -> dict[str, float | None]:
        out: dict[str, float | None] = {f"{prefix}rps": self.rps, f"{prefix}failures": float(self.failures),
                                        f"{prefix}p50_ms": self.p50_ms, f"{prefix}p99_ms": self.p99_ms}
        out.update({f"{prefix}cpu_{name}": cores for name, cores in self.cores.items()})
        return out


class CpuMeter:
    """CPU seconds per wall second (cores) of named process trees between ``start`` and ``stop``."""

    def __init__(self, pids: dict[str, int | None], include_children: bool = True) -> None:
        self.pids = {name: pid for name, pid in pids.items() if pid is not None}
        self.include_children = include_children
        self._start: dict[str, dict[int, float]] = {}
        self._machine = 0.0
        self._t0 = 0.0

    def _tree(self, pid: int) -> dict[int, float]:
        try:
            root = psutil.Process(pid)
            procs = [root, *(root.children(recursive=True) if self.include_children else [])]
        except psutil.Error:
            return {}
        out: dict[int, float] = {}
        for proc in procs:
            try:
                times = proc.cpu_times()
            except psutil.Error:  # exited between listing and reading
                continue
            out[proc.pid] = times.user + times.system
        return out

    def start(self) -> None:
        self._start = {name: self._tree(pid) for name, pid in self.pids.items()}
        self._machine = _busy_seconds()
        self._t0 = time.monotonic()

    def stop(self) -> dict[str, float]:
        wall = max(1e-9, time.monotonic() - self._t0)
        cores: dict[str, float] = {}
        for name, pid in self.pids.items():
            before, after = self._start.get(name, {}), self._tree(pid)
            # A process born inside the window (a new backend) spent all its CPU inside it.
            used = sum(t - before.get(p, 0.0) for p, t in after.items())
            cores[name] = round(max(0.0, used) / wall, 4)
        # The whole machine too: other people's load tests share these cores, and the table says so.
        cores["machine"] = round((_busy_seconds() - self._machine) / wall, 4)
        return cores


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by a process and everything under it."""
    return sum(CpuMeter({}, include_children=True)._tree(pid).values())


def _busy_seconds() -> float:
    t = psutil.cpu_times()
    # guest time is already inside user; steal and iowait are not work done here.
    return float(t.user + t.system + getattr(t, "nice", 0.0) + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0))


# --- wrk ------------------------------------------------------------------------------------------

def run_wrk(url: str, *, seconds: float, connections: int, lua: Path | None = None, threads: int = 1,
            cpu: CpuMeter | None = None) -> Window:
    """Run wrk for ``seconds`` and read its own count; ``cpu`` is metered around it."""
    wrk = wrk_path()
    if wrk is None:
        raise RuntimeError(f"wrk is not installed ({WRK_INSTALL})")
    argv = [wrk, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", url]
    if lua is not None:
        argv[1:1] = ["-s", str(lua)]
    if cpu is not None:
        cpu.start()
    # wrk's own CPU: the only child this process reaps while it runs.
    before, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=False)
    after, wall = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic() - t0
    cores = cpu.stop() if cpu is not None else {}
    cores["wrk"] = round((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / wall, 4)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    return parse_wrk(done.stdout, cores)


def parse_wrk(text: str, cores: dict[str, float] | None = None) -> Window:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", text)
    if rps is None or total is None:
        raise RuntimeError(f"cannot read wrk's output: {text.strip()[:200]}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    failures = int(non_2xx.group(1)) if non_2xx else 0
    failures += sum(int(g) for g in errors.groups()) if errors else 0
    return Window(rps=float(rps.group(1)), requests=int(total.group(1)),
                  seconds=float(total.group(2)) * _UNITS[total.group(3)] / 1000, failures=failures,
                  p50_ms=_wrk_percentile(text, "50%"), p99_ms=_wrk_percentile(text, "99%"), cores=cores or {})


def _wrk_percentile(text: str, label: str) -> float | None:
    match = re.search(rf"^\s+{re.escape(label)}\s+([\d.]+)(us|ms|s|m)\s*$", text, re.MULTILINE)
    return float(match.group(1)) * _UNITS[match.group(2)] if match else None


# --- Locust ---------------------------------------------------------------------------------------

def locust_child(host: str, user_class: str, *, users: int, processes: int, run_time_s: float,
                 folder: Path) -> Child:
    argv = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), user_class, "--headless",
            "--users", str(users), "--spawn-rate", str(users), "--run-time", f"{round(run_time_s)}s",
            "--host", host, "--only-summary", "--stop-timeout", "0", "--loglevel", "WARNING",
            "--exit-code-on-error", "0"]
    if processes > 1:
        argv += ["--processes", str(processes)]
    return Child(name=f"locust {user_class}", argv=argv, log_path=folder / f"locust-{user_class}.log")


def measure_counted(counter: Callable[[], int], driver: Child, cpu: CpuMeter, *, warmup_s: float,
                    seconds: float, start_timeout_s: float = 30.0) -> Window:
    """Wait for ``driver`` to send load, let it settle, then count served requests over ``seconds``."""
    first = counter()
    deadline = time.monotonic() + start_timeout_s
    while counter() == first:
        if driver.exit_code() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{driver.name} sent no request: {driver.log_tail()}")
        time.sleep(0.05)
    time.sleep(warmup_s)
    cpu.start()
    before, t0 = counter(), time.monotonic()
    time.sleep(seconds)
    after, t1 = counter(), time.monotonic()
    cores = cpu.stop()
    if driver.exit_code() is not None:
        raise RuntimeError(f"{driver.name} ended inside the window: {driver.log_tail()}")
    return Window(rps=(after - before) / (t1 - t0), requests=after - before, seconds=t1 - t0, cores=cores)


def get_json(url: str, token: str | None = None) -> dict[str, object]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=5.0) as response:
        data: dict[str, object] = json.loads(response.read())
        return data


def get_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5.0) as response:
        return str(response.read().decode())
