"""The simulated slow upstream (a payment provider): slow non-DB work a route awaits.

Both apps await the same call; only where the session lives around it differs.
"""

from __future__ import annotations

import asyncio
import uuid


async def charge(amount_cents: int, latency_s: float) -> str:
    """Pretend to call an external HTTP API that takes ``latency_s``; return its reference."""
    await asyncio.sleep(latency_s)
    return f"pay_{uuid.uuid4().hex[:16]}"
