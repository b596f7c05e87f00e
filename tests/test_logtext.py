"""User text in a log line never splits it: one helper escapes it, for every log call that includes
text from a user, a client or a provider."""

from __future__ import annotations

import logging

from ubot.http.accesslog import escape
from ubot.logtext import printable
from ubot.notify.channel import FAILED, Outcome
from ubot.notify.channels.http import log_outcome
from ubot.notify.messages import Alert
from ubot.notify.words import log_line

FORGED = "rsi(14) < 30\r\n2024-10-16 00:00:00 INFO forged line\u2028and\x1b[31mred"


def test_control_characters_and_line_separators_are_escaped() -> None:
    assert printable(FORGED) == (
        "rsi(14) < 30\\x0d\\x0a2024-10-16 00:00:00 INFO forged line\\u2028and\\x1b[31mred"
    )
    assert printable("a\\nb") == "a\\\\nb"  # a backslash is doubled: an escape cannot be forged either
    assert printable("Zürich 東京 ok") == "Zürich 東京 ok"
    assert printable(42) == "42"
    assert escape('say "hi"\n') == 'say \\"hi\\"\\x0a'


def alert(**changes: object) -> Alert:
    fields = {
        "strategy_id": 4,
        "user_id": 9,
        "strategy_name": "oversold",
        "coin_id": 1,
        "symbol": "BTC",
        "timeframe": "1h",
        "fired_at_ms": 1_700_000_000_000,
        "bar_open_ms": 1_700_000_000_000,
        "condition": "rsi(14) < 30",
        "values": {"rsi(14)": 28.4},
        "subject": "BTC: rsi(14) < 30",
        "text": "BTC 1h: rsi(14) 28.4",
        "deliveries": (),
    }
    return Alert(**(fields | changes))


def test_the_alert_log_line_stays_one_line_whatever_the_user_and_the_market_wrote() -> None:
    line = log_line(5, alert(strategy_name="it's\nme", symbol="BT\rC", condition=FORGED))

    assert "\n" not in line and "\r" not in line and "\u2028" not in line
    assert line.startswith(
        "alert 5: user 9, strategy 'it\\'s\\x0ame' (#4): BT\\x0dC on 1h: 'rsi(14) < 30\\x0d\\x0a"
    )


def test_a_delivery_line_escapes_the_destination_and_the_receiver_answer(caplog) -> None:
    log = logging.getLogger("test.logtext")
    with caplog.at_level(logging.INFO, logger="test.logtext"):
        log_outcome(log, "webhook", "https://hook.example/\nx", Outcome(FAILED, "HTTP 500: oops\r\nforged"))

    assert caplog.messages == [
        "webhook to https://hook.example/\\x0ax: failed (HTTP 500: oops\\x0d\\x0aforged)"
    ]
