"""How hard and how long ``harness_perf`` measures: repetitions, window lengths, concurrency.

``harness_perf`` builds one ``Options`` from its command line and passes it to every section.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, kw_only=True)
class Options:
    workdir: Path
    reps: int = 3
    window_s: float = 5.0
    warmup_s: float = 1.5
    # The harness's own default load (long-session: 50 users); wrk gets as many connections.
    users: int = 50
    # Checkouts per block in the instrumentation loop, and blocks per pool (interleaved).
    checkout_block: int = 2000
    checkout_blocks: int = 10
    # `bench run long-session` runs for start-up, teardown and the sampled share.
    cli_duration_s: int = 10
    cli_cooldown_s: int = 2
