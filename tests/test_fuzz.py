"""Property tests of the parsers users type into: durations, gates, checks, DSNs, the catalog.

Whatever the input, the answer is a value or a one-line UsageError (exit 2), never another exception,
and a DSN's password never shows in an error.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bench.analysis.summary import Check
from bench.config.catalog import load_catalog
from bench.config.gates import Gate
from bench.config.options import parse_duration
from bench.db.server import parse_dsn, redact
from bench.errors import BenchError, UsageError

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)


def _one_line(err: BaseException) -> None:
    assert isinstance(err, BenchError) and err.exit_code == 2 and "\n" not in str(err)


@given(TEXT)
def test_durations(text: str) -> None:
    try:
        seconds = parse_duration(text)
    except UsageError as err:
        _one_line(err)
    else:
        assert seconds >= 0


@given(st.integers(0, 99), st.integers(0, 59), st.integers(0, 59))
def test_durations_roundtrip(h: int, m: int, s: int) -> None:
    assert parse_duration(f"{h}h{m}m{s}s") == h * 3600 + m * 60 + s


@given(TEXT)
def test_gates(text: str) -> None:
    try:
        gate = Gate.parse(text)
    except UsageError as err:
        _one_line(err)
    else:
        assert gate.metric and (gate.sign or gate.op)
        assert Gate.parse(gate.text) == gate  # the text bench compare shows reads back as the same gate
        if gate.sign:  # moving the bad way past the limit fails; standing still never does
            bad = 1.0 + (1.5 * gate.limit + 0.01) * (1 if gate.sign == "+" else -1)
            assert gate.fails(1.0, bad) and not gate.fails(1.0, 1.0)


@given(TEXT)
def test_checks(text: str) -> None:
    try:
        Check.parse(text)
    except UsageError as err:
        _one_line(err)


PASSWORDS = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters="@/#?:%"), min_size=6, max_size=20
)


@given(PASSWORDS, TEXT)
def test_dsns_never_leak_their_password(password: str, tail: str) -> None:
    assume(password not in tail and password not in "postgresql://user:")
    dsn = f"postgresql://user:{password}@{tail}"
    try:
        parsed = parse_dsn(dsn)
    except BenchError as err:
        assert password not in str(err) and "\n" not in str(err)
    else:
        assert password not in parsed.server.safe_dsn(parsed.database)
    # The password is told apart from the message's own words by where it would stand: right after "user:".
    assert ":" + password + "@" not in redact(f"connecting to {dsn} failed")
    assert password not in redact(f"connecting to {dsn}").removeprefix("connecting to postgresql://user:")


@settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow], max_examples=60, deadline=None
)
@given(
    st.dictionaries(
        st.sampled_from(
            ["locustfile", "users", "duration_s", "write_routes", "checks", "app_env", "pool_size", "nonsense"]
        ),
        st.one_of(
            st.integers(-5, 500),
            st.text(max_size=10),
            st.lists(st.text(max_size=5), max_size=2),
            st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
        ),
        max_size=6,
    )
)
def test_catalog_entries(tmp_path: Path, entry: dict[str, object]) -> None:
    path = tmp_path / "catalog.toml"
    lines = ["[s]"]
    for key, value in entry.items():
        if isinstance(value, dict):
            inner = ", ".join(f"{_toml_str(k)} = {_toml_str(v)}" for k, v in value.items())
            lines.append(f"{key} = {{ {inner} }}")
        elif isinstance(value, list):
            lines.append(f"{key} = [{', '.join(_toml_str(v) for v in value)}]")
        elif isinstance(value, str):
            lines.append(f"{key} = {_toml_str(value)}")
        else:
            lines.append(f"{key} = {value}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    # Every generated entry reaches the loader: the file is TOML and reads back as the entry itself.
    assert tomllib.loads(path.read_text(encoding="utf-8")) == {"s": entry}
    try:
        catalog = load_catalog(path)
    except UsageError as err:
        _one_line(err)
    else:
        assert set(catalog) == {"s"}


def _toml_str(value: str) -> str:
    """A TOML basic string: quote and backslash escaped, control characters as \\uXXXX (TOML allows no
    other raw control character than tab)."""
    out = []
    for char in value:
        if char in '"\\':
            out.append("\\" + char)
        elif (ord(char) < 0x20 and char != "\t") or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'
