"""Records that cross from the run layer to analysis and rendering: what the collector measured.

bench.run.collector fills a ``DbFigures``; bench.analysis.summary turns it into summary.json's ``db`` block.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DbFigures:
    """What the collector measured for one app; names follow summary.json's ``db`` block.

    Mutable on purpose: the collector adds to it on every tick and hands it over when the run ends.
    """

    samples: int = 0
    idle_in_tx_max: int = 0
    idle_in_tx_mean: float = 0.0
    idle_in_tx_oldest_s: float = 0.0
    idle_in_tx_seconds_sampled: float = 0.0
    # Spells the server never adds to idle_in_transaction_time (their session ended abnormally, or they were still
    # open when sampling stopped), from their ages; and spells whose session ended normally right after them,
    # which it counted unless a graceful close cut the transaction (bench.run.spells).
    idle_in_tx_unreported_s: float = 0.0
    idle_in_tx_unresolved_s: float = 0.0
    idle_in_tx_long_seconds: float = 0.0
    idle_in_tx_after_load: int = 0
    connections_max: int = 0
    xact_oldest_s: float = 0.0
    server: dict[str, float] = field(default_factory=dict)
    # connection-seconds idle in transaction past the threshold, by the route (or statement) that left it so
    idle_in_tx_long_by_route: dict[str, float] = field(default_factory=dict)
    # the same, by the app's line that checked the connection out (the statement tag's site)
    idle_in_tx_long_by_site: dict[str, float] = field(default_factory=dict)
