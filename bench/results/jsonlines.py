"""JSON where the harness handles a lot of it: samples.jsonl (written 10 to 20 times a second, an hour read back as
72,000 lines) and the pool endpoint's answers. orjson does both about three times as fast as the standard library.

What orjson will not read, a NaN or a character torn in two, is read as the standard library reads it: a file an
older version wrote, or a damaged one, reads as it did. orjson writes a number that is not finite as null, which
reads back as missing, as a NaN did.
"""

from __future__ import annotations

import json
import numbers
from typing import Any

import orjson


def loads(data: bytes | str) -> Any:
    """One JSON document; ``ValueError`` (as ``json.loads``) when neither reader takes it."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data)


def line(value: Any) -> bytes:
    """``value`` as one line of JSON lines, newline included."""
    return orjson.dumps(value, default=_number, option=orjson.OPT_APPEND_NEWLINE)


def _number(value: Any) -> Any:
    # orjson writes int and float themselves, not their subclasses or numpy's numbers: a number is a number.
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
