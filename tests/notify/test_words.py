"""The words of an alert (ubot/notify/words.py): numbers by magnitude without scientific notation,
percentages, times in the user's zone without milliseconds, the coin's name and link, a simulated
market said, the price said once, an SMS that fits one segment."""

from __future__ import annotations

import pytest

from ubot.notify.channels.text import sms_encoding, sms_segments
from ubot.notify.messages import Alert
from ubot.notify.words import Style, local_time, log_line, number, short, subject, text, value_text, worded
from ubot.timeutil import parse_iso_ms

AT = parse_iso_ms("2026-12-04T19:21:35.000Z")


def shib(**overrides) -> Alert:
    """The alert measured in issue 13, as the Scanner raises it."""
    fields = {
        "strategy_id": 8,
        "user_id": 3,
        "strategy_name": "tg test",
        "coin_id": 5994,
        "symbol": "SHIB",
        "name": "Shiba Inu",
        "price": 2.61312e-05,
        "currency": "USD",
        "timeframe": "1m",
        "fired_at_ms": AT,
        "bar_open_ms": AT - AT % 60_000,
        "condition": "price > 0 and percent_change_24h > -100",
        "values": {"price": 2.61312e-05, "percent_change_24h": -2.916},
        "subject": "",
        "text": "",
        "deliveries": (),
        "timezone": "Europe/Berlin",
    }
    fields.update(overrides)
    return Alert(**fields)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (2.61312e-05, "0.00002613"),
        (67432.123, "67,432.12"),
        (1.23456, "1.235"),
        (123.456, "123.46"),
        (0.4567891, "0.4568"),
        (0.5, "0.50"),
        (1.0, "1.00"),
        (9.99996, "10.00"),
        (0.0, "0.00"),
        (-2.61312e-05, "-0.00002613"),
        (1e-15, "0.00"),  # below the last decimal shown (12)
        (1.5e-9, "0.0000000015"),
        (1234567.891, "1,234,567.89"),
        (None, "n/a"),
        (float("nan"), "n/a"),
    ],
)
def test_numbers_by_magnitude_never_in_scientific_notation(value, shown) -> None:
    assert number(value) == shown
    assert "e" not in number(value).replace("n/a", "")


def test_values_as_their_kind_is_read() -> None:
    assert value_text("percent_change_24h", -2.916) == "-2.92%"
    assert value_text("percent_change_1h", 0.5) == "+0.50%"
    assert value_text("btc_dominance", 54.321) == "+54.32%"
    assert value_text("volume_24h", 12_345_678_901.0) == "12.35 B"
    assert value_text("market_cap", 1.3e12) == "1.30 T"
    assert value_text("circulating_supply", 45_600_000.0) == "45.60 M"
    assert value_text("rank", 12.0) == "12"
    assert value_text("num_market_pairs", 12345.0) == "12,345"
    assert value_text("rsi(14)", 28.4123) == "28.41"
    assert value_text("price", 1_234_567.0) == "1,234,567.00"  # a price is never shortened
    assert value_text("sma(20)", None) == "n/a"


def test_times_in_the_users_zone_without_milliseconds() -> None:
    assert local_time(AT + 999, "Europe/Berlin") == "2026-12-04 20:21:35 CET"
    assert local_time(parse_iso_ms("2026-07-04T19:21:35Z"), "Europe/Berlin") == "2026-07-04 21:21:35 CEST"
    assert local_time(AT, "UTC") == "2026-12-04 19:21:35 UTC"
    assert local_time(AT, "America/New_York", seconds=False) == "14:21 EST"
    assert local_time(AT, "Not/AZone") == "2026-12-04 19:21:35 UTC"  # cannot happen (validated): UTC


def test_the_issues_alert_as_a_person_reads_it() -> None:
    alert = shib()
    style = Style(public_url="https://ubot.example.com", simulated=True)

    assert subject(alert, style) == 'uBot: "tg test" fired for SHIB (Shiba Inu) (simulated market)'
    assert text(alert, style) == (
        'SHIB (Shiba Inu) is at 0.00002613 USD: your strategy "tg test" fired on 1m.\n'
        "percent_change_24h = -2.92%\n"
        "Condition: price > 0 and percent_change_24h > -100\n"
        "Time: 2026-12-04 20:21:35 CET (Europe/Berlin)\n"
        "Chart: https://ubot.example.com/v1/coins/5994/candles?timeframe=1m\n"
        "Simulated market: these prices are not real."
    )
    assert short(alert, style) == (
        'uBot: SHIB 0.00002613 USD, percent_change_24h -2.92%. "tg test" 1m, 20:21 CET. Simulated market'
    )
    assert log_line(17, alert) == (
        "alert 17: user 3, strategy 'tg test' (#8): SHIB at 0.00002613 USD on 1m: "
        "'price > 0 and percent_change_24h > -100' [price=0.00002613, percent_change_24h=-2.92%]"
    )


def test_the_price_is_said_once() -> None:
    words = worded(shib(), Style())
    for said in (words.text, words.short):
        assert said.count("0.00002613") == 1, said
    # Without a price of its own (a missing quote), the condition's price value is kept.
    assert "price = 0.00002613" in text(shib(price=None), Style())


def test_without_a_public_url_no_link_and_a_live_market_says_nothing_of_it() -> None:
    said = text(shib(), Style())
    assert "Chart:" not in said and "imulated" not in said
    assert "imulated" not in subject(shib(), Style()) + short(shib(), Style())
    assert "Replayed from recorded data" in text(shib(replayed=True), Style())


def test_a_name_equal_to_its_symbol_is_not_repeated() -> None:
    assert subject(shib(name="SHIB"), Style()) == 'uBot: "tg test" fired for SHIB'
    assert subject(shib(name=""), Style()) == 'uBot: "tg test" fired for SHIB'


def test_an_sms_fits_one_segment_dropping_the_least_useful_parts_first() -> None:
    plain = short(shib(), Style())
    assert sms_encoding(plain) == "GSM-7" and sms_segments(plain) == 1

    long_name = shib(strategy_name="x" * 64, values={"percent_change_24h": -2.9, "rsi(14)": 28.4})
    fitted = short(long_name, Style(simulated=True))
    assert sms_segments(fitted) == 1
    assert "percent_change_24h" not in fitted and "CET" in fitted  # the values went first

    emoji = short(shib(strategy_name="🚀 moon " * 6), Style())  # UCS-2: 70 units a segment
    assert sms_encoding(emoji) == "UCS-2"
    assert emoji.startswith("uBot: SHIB 0.00002613 USD")  # the rest is cut by the SMS channel


def test_user_text_cannot_break_the_log_line() -> None:
    line = log_line(1, shib(strategy_name="evil\nalert 2: forged", condition="price > 0\r\n"))
    assert "\n" not in line and "\r" not in line
