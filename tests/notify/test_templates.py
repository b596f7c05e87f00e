"""Message templates (ubot/notify/templates.py, written by ubot/notify/words.py): what a template may
say, the column and reason of what it may not, and the text each placeholder becomes, for one coin
and per coin in a batch, within the channels' limits. Plain functions: no thread, no socket."""

from __future__ import annotations

import pytest

from tests.notify.test_batches import STYLE, TARGETS, never, no_caps
from tests.notify.test_words import AT, shib
from ubot.notify.batches import batched
from ubot.notify.channels.text import sms_segments, utf16_len
from ubot.notify.templates import MAX_LENGTH, Placeholder, TemplateError, parse
from ubot.notify.words import Style, batch_text, short, text, worded

INPUTS = ("price", "percent_change_24h", "rsi(14)", "bb_upper(20, 2)")


def test_a_template_is_its_text_and_placeholders_in_order() -> None:
    template = parse("{symbol} at {price:,.2f} {{RSI}} {value:rsi( 14 ):.1f}\n{time}", INPUTS)

    assert template.parts == (
        Placeholder("symbol"),
        " at ",
        Placeholder("price", spec=",.2f"),
        " {RSI} ",
        Placeholder("value", key="rsi(14)", spec=".1f"),  # as the alert's values name it
        "\n",
        Placeholder("time"),
    )
    assert parse("{value:bb_upper(20,2)}", INPUTS).placeholders == (
        Placeholder("value", key="bb_upper(20, 2)"),
    )


@pytest.mark.parametrize(
    ("template", "column", "why"),
    [
        ("{price.__class__}", 7, "attribute access ('.') is not allowed"),
        ("{price.__class__.__init__.__globals__}", 7, "attribute access"),
        ("at {x[0]}", 6, "index access ('[') is not allowed"),
        ("{price!r}", 7, "a conversion ('!') is not allowed"),
        ("{price!s:>10}", 7, "a conversion"),
        ("{price:>1000000}", 8, "format '>1000000' is not a plain number format"),
        ("{price:.2e}", 8, "is not a plain number format"),
        ("{price:.20f}", 8, "0 to 12 decimals"),
        ("{price:{symbol}}", 8, "a placeholder cannot contain '{'"),
        ("{symbol:.2f}", 9, "{symbol} takes no format"),
        ("{coin}", 2, "unknown placeholder {coin}: use one of {symbol}, {name}, {price}"),
        ("{ price }", 2, "unknown placeholder { price }"),
        ("{}", 2, "empty placeholder"),
        ("{0}", 2, "unknown placeholder {0}"),
        ("price {symbol", 7, "'{' is never closed: write '{{' for a brace"),
        ("{symbol\n}", 1, "'{' is never closed"),
        ("price} up", 6, "'}' closes no placeholder: write '}}' for a brace"),
        ("{value}", 2, "{value} needs the field or indicator"),
        (
            "{value:sma(50)}",
            8,
            "sma(50) is not in the condition; a template shows the values the condition computes",
        ),
        ("{value:rsi(14) + 1}", 8, "not a calculation"),
        ("{value:abs(price)}", 8, "not a calculation"),
        ("{value:rsi(14)[0]}", 15, "there are no lists or subscripts"),
        ("{value:__import__('os')}", 19, "the language has no text strings"),
        ("{value:rsi(14):x}", 16, "is not a plain number format"),
        ("bell \x07", 6, "control character U+0007"),
    ],
)
def test_what_a_template_may_not_say_is_refused_with_its_column_and_why(template, column, why) -> None:
    with pytest.raises(TemplateError) as caught:
        parse(template, INPUTS)

    assert why in caught.value.message, caught.value.message
    assert caught.value.column == column, caught.value


def test_a_template_has_a_length_limit() -> None:
    parse("x" * MAX_LENGTH)
    with pytest.raises(TemplateError, match="too long: 1,001 characters, at most 1,000"):
        parse("x" * (MAX_LENGTH + 1))
    with pytest.raises(TemplateError, match="too many placeholders: 51"):
        parse("{symbol}" * 51)


def test_the_placeholders_are_written_by_ubots_rules() -> None:
    template = (
        "{symbol} ({name}) {price} {currency} | {price:,.2f} | {value:percent_change_24h} | "
        "{value:percent_change_24h:+.1f}% | {strategy} {timeframe} | {time} | {link} | {condition}"
    )
    alert = shib(template=template)
    style = Style(public_url="https://ubot.example.com", simulated=True)

    assert text(alert, style) == (
        "SHIB (Shiba Inu) 0.00002613 USD | 0.00 | -2.92% | -2.9% | tg test 1m | "
        "2026-12-04 20:21:35 CET | https://ubot.example.com/v1/coins/5994/candles?timeframe=1m | "
        "price > 0 and percent_change_24h > -100\n"
        "Simulated market: these prices are not real."  # said under any template
    )


def test_what_a_placeholder_says_is_never_read_as_a_template() -> None:
    alert = shib(
        strategy_name="{price.__class__} {value:price}", name="{{x}}", template="{strategy} / {name}"
    )

    assert text(alert, Style()) == "{price.__class__} {value:price} / {{x}}"


def test_a_value_the_alert_lacks_is_na_and_a_template_saved_by_another_version_falls_back() -> None:
    assert text(shib(template="rsi {value:rsi(14)} {value:rsi(14):.1f}"), Style()) == "rsi n/a n/a"
    unreadable = shib(template="{volume}")  # not a placeholder (any more): uBot's own words
    assert text(unreadable, Style()) == text(shib(), Style())


def test_a_templated_sms_keeps_to_three_segments_and_says_the_market_is_simulated() -> None:
    alert = shib(template="{symbol} {price}: " + "long words " * 60)

    said = short(alert, Style(simulated=True))

    assert said.startswith("SHIB 0.00002613: long words") and said.endswith("...\nSimulated market")
    assert sms_segments(said) == 3
    assert short(shib(template="{symbol} up"), Style()) == "SHIB up"


def test_a_templated_telegram_message_is_cut_to_4096_utf16_units() -> None:
    condition = " or ".join(["price > 0"] * 20)  # 2 UTF-16 units an emoji
    alert = worded(
        shib(template="🚀 {symbol} {condition}\n" * 24, condition=condition, deliveries=TARGETS), STYLE
    )
    assert utf16_len(alert.text) > 4096

    [lead] = batched([alert], STYLE, no_caps(), never(), AT).alerts
    out = batch_text([lead], STYLE, limit=4096, measure=utf16_len)

    assert utf16_len(out) <= 4096 and out.endswith("…") and out.startswith("🚀 SHIB price > 0 or")


def batch(template: str, count: int) -> list:
    return [
        worded(
            shib(
                coin_id=n, symbol=f"C{n}", name=f"Coin {n}", price=100.0 / n, rank=n, template=template,
                values={"percent_change_24h": float(n)}, deliveries=TARGETS,
            ),
            STYLE,
        )
        for n in range(count, 0, -1)
    ]  # fmt: skip


def test_a_batch_says_the_template_once_per_coin_most_significant_first() -> None:
    coins = batch("{symbol} {price} ({value:percent_change_24h})", 3)

    [lead, *_] = batched(coins, STYLE, no_caps(), never(), AT).alerts
    telegram, sms = lead.deliveries[:2]

    assert telegram.text == (
        'Your strategy "tg test" fired on 1m for 3 coins:\n'
        "C1 100.00 (+1.00%)\n"
        "C2 50.00 (+2.00%)\n"
        "C3 33.33 (+3.00%)\n"
        "Simulated market: these prices are not real."
    )
    assert (
        sms.text
        == 'uBot: "tg test" 1m: C1 100.00 (+1.00%); C2 50.00 (+2.00%); C3 33.33 (+3.00%), 20:21 CET. Simulated market'
    )


def test_a_large_templated_batch_lists_what_fits_and_counts_the_rest() -> None:
    coins = batch("{symbol} ({name}) is at {price} {currency}\n{link}", 1000)

    [lead, *_] = batched(coins, STYLE, no_caps(), never(), AT).alerts
    telegram, sms, email, _ = lead.deliveries

    assert utf16_len(telegram.text) <= 4096
    listed = telegram.text.count(" is at ")
    assert 10 < listed < 1000 and f"…and {1000 - listed:,} more coins" in telegram.text
    assert telegram.text.endswith("Simulated market: these prices are not real.")
    assert sms_segments(sms.text) == 1 and "more" in sms.text
    assert email.text.count(" is at ") == 1000
