"""``[market] convert`` changed on an existing database (issue 12): the quote currency is recorded in
the database at its first start, and another one refuses to start with one line saying what to do,
instead of putting USD and EUR prices into one candle series."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.processes import EXIT_TIMEOUT_S, command, environment
from ubot.models.db import redact
from ubot.models.schema import (
    QUOTE_CURRENCY,
    QuoteCurrencyError,
    ensure_quote_currency,
    recorded_quote_currency,
)
from ubot.models.tables import Meta, SnapshotRecord


def run(tmp_path: Path, *args: str, convert: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        command(*args),
        cwd=tmp_path,
        env=environment(tmp_path / "home", {"UBOT_MARKET_CONVERT": convert}),
        capture_output=True,
        text=True,
        timeout=EXIT_TIMEOUT_S,
    )


def test_the_first_start_records_the_currency_and_the_same_one_passes(db, database_url) -> None:
    assert recorded_quote_currency(db) is None
    ensure_quote_currency(db, "USD", database_url)
    assert Meta.get(Meta.key == QUOTE_CURRENCY).value == "USD"
    ensure_quote_currency(db, "USD", database_url)  # again: nothing to say


def test_another_currency_is_refused_with_what_to_do(db, database_url) -> None:
    ensure_quote_currency(db, "USD", "the-db")
    with pytest.raises(QuoteCurrencyError) as refused:
        ensure_quote_currency(db, "EUR", "the-db")
    line = str(refused.value)
    assert "\n" not in line
    assert "database the-db holds prices in USD but [market] convert = EUR" in line
    assert "set [market] convert = USD again, or use a new database (--db) for EUR" in line
    assert Meta.get(Meta.key == QUOTE_CURRENCY).value == "USD"


def test_a_database_of_an_older_ubot_takes_the_currency_of_its_newest_snapshot(db) -> None:
    """Before the currency was recorded, each snapshot row still said which it was in."""
    SnapshotRecord.insert(timestamp=1, source="simulated", convert="EUR", coin_count=0).execute()
    SnapshotRecord.insert(timestamp=2, source="simulated", convert="USD", coin_count=0).execute()
    assert recorded_quote_currency(db) == "USD"
    with pytest.raises(QuoteCurrencyError):
        ensure_quote_currency(db, "EUR", "x")
    ensure_quote_currency(db, "USD", "x")
    assert Meta.get(Meta.key == QUOTE_CURRENCY).value == "USD"


def test_run_and_check_refuse_another_currency_on_a_used_database(tmp_path, db, database_url) -> None:
    headless = ("--no-http", "--source", "simulated", "--limit", "5", "--interval", "0", "--db", database_url)
    first = run(tmp_path, *headless, "--ticks", "2", convert="USD")
    assert first.returncode == 0, first.stderr
    assert SnapshotRecord.select().count() == 2

    refused = run(tmp_path, *headless, "--ticks", "2", convert="EUR")
    assert refused.returncode == 2, refused.stderr
    lines = refused.stderr.splitlines()
    assert lines == [
        f"ubot: database {redact(database_url)} holds prices in USD but [market] convert = EUR: mixing "
        "them would corrupt the candles and fire false alerts; set [market] convert = USD again, or use "
        "a new database (--db) for EUR"
    ]
    assert SnapshotRecord.select().count() == 2  # nothing was stored in EUR

    checked = run(tmp_path, "check", *headless, convert="EUR")
    assert checked.returncode == 2
    assert checked.stderr.splitlines() == lines
    assert "prices in: USD (recorded in the database)" in checked.stdout

    again = run(tmp_path, *headless, "--ticks", "1", convert="USD")
    assert again.returncode == 0, again.stderr
    assert SnapshotRecord.select().count() == 3
