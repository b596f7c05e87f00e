"""Every field rule: what passes (normalized), and what fails with the field named and the reason.

The domain rules are ``validation``'s own; the rules a schema states are the shapes' (``shapes.py``):
a mapping given to ``settings``/``strategy`` is converted to its shape first, so those fail here too,
naming the member."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.users import fake_analyze
from ubot.users import validation as v
from ubot.users.errors import ValidationError

NOW_MS = 1_700_000_000_000
DAY_MS = 86_400_000
ALL_TARGETS = {
    "webhook_url": "https://example.com/hook",
    "telegram_chat_id": "12345",
    "sms_to": "+14155552671",
    "whatsapp_to": "+14155552671",
    "email_to": "me@example.com",
}


def fails(check: Any, value: Any, field: str, reason: str, **kwargs: Any) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        check(value, **kwargs)
    assert caught.value.field == field
    assert reason in caught.value.message, caught.value.message
    assert str(caught.value) == f"{field}: {caught.value.message}"
    return caught.value


# --- username and e-mail -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("alice", "alice"),
        ("Alice.B-C_9", "alice.b-c_9"),
        ("abc", "abc"),
        ("a" * 32, "a" * 32),
        ("9lives", "9lives"),
    ],
)
def test_a_username_is_stored_lower_case(given, stored) -> None:
    assert v.username(given) == stored


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("ab", "3 to 32 characters"),
        ("a" * 33, "3 to 32 characters"),
        ("al ice", "may contain only"),
        ("alice!", "may contain only"),
        ("ålice", "may contain only"),
        ("_alice", "must start with a letter or digit"),
        (".alice", "must start with a letter or digit"),
        (42, "must be a string"),
        (None, "must be a string"),
    ],
)
def test_a_bad_username_says_why(value, reason) -> None:
    fails(v.username, value, "username", reason)


@pytest.mark.parametrize(
    "address",
    ["a@b.co", "first.last+tag@mail.example.org", "O'Brien@Example.COM", f"{'x' * 64}@example.com"],
)
def test_ordinary_e_mail_addresses_pass_as_typed(address) -> None:
    assert v.email(address) == address


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("plainaddress", "is not an e-mail address"),
        ("a@b", "is not an e-mail address"),  # no top-level domain
        ("a@@b.com", "is not an e-mail address"),
        ("a b@c.com", "is not an e-mail address"),
        ("a@b.com ", "is not an e-mail address"),
        (".a@b.com", "is not an e-mail address"),
        ("a..b@c.com", "is not an e-mail address"),
        ("a@-b.com", "is not an e-mail address"),
        ("a@b.1com", "is not an e-mail address"),
        ("é@b.com", "is not an e-mail address"),
        (f"{'x' * 65}@example.com", "before '@' must be at most 64"),
        (f"a@{'b' * 60}.{'c' * 60}.{'d' * 60}.{'e' * 60}.{'f' * 60}.com", "at most 254"),
        (["a@b.com"], "must be a string"),
    ],
)
def test_a_bad_e_mail_address_says_why(address, reason) -> None:
    fails(v.email, address, "email", reason)


def test_the_e_mail_field_name_is_the_callers() -> None:
    fails(lambda value: v.email(value, "email_to"), "nope", "email_to", "is not an e-mail address")


# --- notification targets ------------------------------------------------------------------


@pytest.mark.parametrize("number", ["+14155552671", "+33612345678", "+12345678", "+123456789012345"])
def test_e164_numbers_pass(number) -> None:
    assert v.phone(number, "sms_to") == number


@pytest.mark.parametrize(
    "number",
    ["14155552671", "+1234567", "+1234567890123456", "+04155552671", "+1 415 555 2671", "+1-415-5552671", ""],
)
def test_other_phone_numbers_fail_on_their_field(number) -> None:
    fails(lambda value: v.phone(value, "whatsapp_to"), number, "whatsapp_to", "E.164")


@pytest.mark.parametrize(
    ("number", "kind"),
    [
        ("+19005550199", "NANP 900"),
        ("+14159765555", "NANP 976"),
        ("+449098790000", "UK 09"),
        ("+4487112345678", "UK 087"),
        ("+4990012345678", "German 0900"),
        ("+979123456789", "international premium"),
        ("+881612345678", "satellite"),
    ],
)
def test_premium_rate_numbers_are_refused_naming_the_field(number, kind) -> None:
    fails(lambda value: v.phone(value, "sms_to"), number, "sms_to", kind)
    fails(lambda value: v.phone(value, "whatsapp_to"), number, "whatsapp_to", "premium-rate")


@pytest.mark.parametrize("number", ["+14155559760", "+19175550199", "+447700900123", "+4915112345678"])
def test_ordinary_mobile_numbers_near_premium_ranges_pass(number) -> None:
    assert v.phone(number, "sms_to") == number


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("123456789", "123456789"),
        ("-1001234567890", "-1001234567890"),
        (-1001234567890, "-1001234567890"),
        (42, "42"),
    ],
)
def test_telegram_chat_ids_pass_as_text(value, stored) -> None:
    assert v.telegram_chat_id(value) == stored


@pytest.mark.parametrize(
    "value",
    [
        "0",
        "-0",
        "007",
        "12345678901234567",
        "@abcd",
        "@my_channel",  # nobody proves to own a channel by its name: chats are linked by deep link
        "@abcde",
        "@1channel",
        "@" + "a" * 33,
        "@my-channel",
        "me",
        " 42",
        "4.2",
    ],
)
def test_bad_telegram_chat_ids_fail(value) -> None:
    fails(v.telegram_chat_id, value, "telegram_chat_id", "chat id")


def test_a_telegram_chat_id_is_not_a_boolean() -> None:
    fails(v.telegram_chat_id, True, "telegram_chat_id", "must be a chat id")


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/hook",
        "https://hooks.example.com:8443/a/b?token=x&y=1",
        "HTTPS://Example.com/",
        "https://93.184.216.34/hook",
        "https://[2606:4700::1111]/hook",
        "https://my_host.example.com/",
    ],
)
def test_https_webhook_urls_pass(url) -> None:
    assert v.webhook_url(url) == url


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://example.com/hook", "must be an https:// URL"),
        ("ftp://example.com/hook", "must be an https:// URL"),
        ("example.com/hook", "must be an https:// URL"),
        ("javascript:alert(1)", "must be an https:// URL"),
        ("https://user:pass@example.com/hook", "must not contain a user name or password"),
        ("https://token@example.com/hook", "must not contain a user name or password"),
        ("https:///hook", "has no host name"),
        ("https://exa$mple.com/", "has an invalid host name"),
        ("https://example.com:99999/", "has an invalid port"),
        ("https://example.com:port/", "has an invalid port"),
        ("https://localhost/hook", "must not point to localhost or a private network"),
        ("https://api.localhost/hook", "must not point to localhost or a private network"),
        ("https://127.0.0.1/hook", "must not point to localhost or a private network"),
        ("https://10.1.2.3/hook", "must not point to localhost or a private network"),
        ("https://192.168.0.10/hook", "must not point to localhost or a private network"),
        ("https://169.254.169.254/latest/meta-data", "must not point to localhost or a private network"),
        ("https://0.0.0.0/", "must not point to localhost or a private network"),
        ("https://[::1]/hook", "must not point to localhost or a private network"),
        ("https://[::ffff:127.0.0.1]/hook", "must not point to localhost or a private network"),
        ("https://[fd00::1]/hook", "must not point to localhost or a private network"),
        ("https://2130706433/hook", "four decimal numbers"),
        ("https://0x7f.1/hook", "four decimal numbers"),
        ("https://127.1/hook", "four decimal numbers"),
        ("https://exämple.com/hook", "must be ASCII"),
        ("https://example.com/a b", "must be ASCII without spaces"),
        ("https://example.com/\x00", "must be ASCII without spaces"),
        ("https://example.com/" + "a" * 2048, "at most 2048"),
    ],
)
def test_bad_webhook_urls_say_why(url, reason) -> None:
    fails(v.webhook_url, url, "webhook_url", reason)


@pytest.mark.parametrize(
    "url",
    ["http://localhost:9000/hook", "http://127.0.0.1/hook", "https://localhost/hook", "http://[::1]:80/"],
)
def test_local_webhooks_pass_only_when_allowed(url) -> None:
    assert v.webhook_url(url, allow_local=True) == url
    with pytest.raises(ValidationError):
        v.webhook_url(url)


@pytest.mark.parametrize("url", ["http://example.com/hook", "http://10.0.0.1/hook", "https://192.168.1.1/"])
def test_allowing_local_webhooks_admits_loopback_only(url) -> None:
    with pytest.raises(ValidationError):
        v.webhook_url(url, allow_local=True)


@pytest.mark.parametrize("secret", ["a" * 16, "x" * 128, "s3cr3t!#$%&()*+,-./:;<=>?@[]^_{|}~"])
def test_webhook_secrets_of_16_to_128_printable_characters_pass(secret) -> None:
    assert v.webhook_secret(secret) == secret


@pytest.mark.parametrize(
    "secret", ["a" * 15, "x" * 129, "with a space in it!", "tab\there-and-more-chars", "é" * 20]
)
def test_bad_webhook_secrets_fail(secret) -> None:
    fails(v.webhook_secret, secret, "webhook_secret", "16 to 128 printable ASCII")


@pytest.mark.parametrize("hours", ["22:00-07:00", "00:00-23:59", "12:30-13:45", "23:59-00:00"])
def test_quiet_hours_pass(hours) -> None:
    assert v.quiet_hours(hours) == hours


@pytest.mark.parametrize(
    "hours", ["22-07", "24:00-07:00", "22:60-07:00", "7:00-08:00", "22:00 - 07:00", "22:00"]
)
def test_bad_quiet_hours_fail(hours) -> None:
    fails(v.quiet_hours, hours, "quiet_hours", "HH:MM-HH:MM")


def test_quiet_hours_must_not_be_empty() -> None:
    fails(v.quiet_hours, "08:00-08:00", "quiet_hours", "same time")


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "America/Argentina/Buenos_Aires", "Etc/GMT+5"])
def test_iana_time_zones_pass(zone) -> None:
    assert v.timezone(zone) == zone


@pytest.mark.parametrize(
    "zone", ["Mars/Olympus", "europe/paris ", "../../etc/passwd", "/etc/localtime", "localtime", "", "A" * 65]
)
def test_unknown_time_zones_fail(zone) -> None:
    fails(v.timezone, zone, "timezone", "IANA time zone")


def test_the_quote_currency_is_one_the_market_is_fetched_in() -> None:
    assert v.quote_currency("eur", ("USD", "EUR")) == "EUR"
    fails(v.quote_currency, "GBP", "quote_currency", "must be one of USD, EUR", allowed=("USD", "EUR"))


# --- settings as a whole -------------------------------------------------------------------


def test_empty_settings_are_all_cleared_with_defaults() -> None:
    values = v.settings({}, currencies=("EUR", "USD"))

    assert values == {name: None for name in v.SETTINGS_FIELDS} | {"timezone": "UTC", "quote_currency": "EUR"}


def test_settings_are_normalized() -> None:
    values = v.settings(
        {"telegram_chat_id": -100123, "quote_currency": "usd", "sms_to": None, "timezone": "Asia/Tokyo"}
    )

    assert values["telegram_chat_id"] == "-100123"
    assert values["quote_currency"] == "USD"
    assert values["sms_to"] is None
    assert values["timezone"] == "Asia/Tokyo"


def test_an_unknown_settings_field_is_named() -> None:
    fails(v.settings, {"fax": "+1234"}, "fax", "unknown field")


def test_each_settings_field_is_checked() -> None:
    fails(v.settings, {"sms_to": "12"}, "sms_to", "does not have the expected format")
    fails(v.settings, {"email_to": "x"}, "email_to", "does not have the expected format")
    fails(v.settings, {"email_to": "a" * 65 + "@example.com"}, "email_to", "at most 64")
    fails(v.settings, {"webhook_url": "http://x.com"}, "webhook_url", "https")


@pytest.mark.parametrize("url", ["https://[::1", "https://[zz]/hook"])
def test_a_url_python_cannot_split_is_named(url) -> None:
    fails(v.settings, {"webhook_url": url, "webhook_secret": "k" * 16}, "webhook_url", "not a valid URL")


def test_a_webhook_url_needs_its_secret() -> None:
    fails(
        v.settings, {"webhook_url": "https://example.com/h"}, "webhook_secret", "is required with webhook_url"
    )
    assert v.settings({"webhook_url": "https://example.com/h", "webhook_secret": "k" * 16})["webhook_url"]


def test_settings_admit_local_webhooks_when_told() -> None:
    fields = {"webhook_url": "http://localhost:8000/h", "webhook_secret": "k" * 16}

    assert v.settings(fields, allow_local=True)["webhook_url"] == "http://localhost:8000/h"
    fails(v.settings, fields, "webhook_url", "must not point to localhost")


# --- conditions ----------------------------------------------------------------------------


def test_a_condition_gives_its_indicators_and_fields_sorted_without_duplicates() -> None:
    info = v.condition("sma(50) > sma(200) and rsi(14) < 30 and sma(50) > price", fake_analyze)

    assert info.indicators == ("rsi(14)", "sma(200)", "sma(50)")
    assert info.fields == ("price",)


def test_a_condition_error_carries_the_message_and_column() -> None:
    error = fails(v.condition, "rsi(14) ? 3", "condition", "unexpected '?'", analyze=fake_analyze)

    assert error.column == 9


def test_a_condition_must_be_text() -> None:
    fails(v.condition, 42, "condition", "must be a string", analyze=fake_analyze)


def test_an_analyzer_bug_is_not_passed_off_as_a_condition_error() -> None:
    def broken(text: str) -> Any:
        raise ValueError("internal detail")

    with pytest.raises(ValueError, match="internal detail") as caught:
        v.condition("x", broken)
    assert not isinstance(caught.value, ValidationError)


# --- strategies ----------------------------------------------------------------------------


def base(**changes: Any) -> dict[str, Any]:
    fields = {
        "name": "Oversold",
        "condition": "rsi(14) < 30",
        "timeframe": "1h",
        "top_n": 50,
        "channels": ["email"],
    }
    fields.update(changes)
    return {k: val for k, val in fields.items() if val is not ...}


def check(fields: dict[str, Any], *, targets: dict[str, Any] = ALL_TARGETS) -> dict[str, Any]:
    return v.strategy(fields, targets=targets, now_ms=NOW_MS, analyze=fake_analyze)


def strategy_fails(fields: dict[str, Any], field: str, reason: str, targets=ALL_TARGETS) -> None:
    with pytest.raises(ValidationError) as caught:
        check(fields, targets=targets)
    assert (caught.value.field, reason in caught.value.message) == (field, True), caught.value


def test_a_minimal_strategy_gets_the_defaults_and_its_indicators() -> None:
    assert check(base()) == {
        "name": "Oversold",
        "condition": "rsi(14) < 30",
        "indicators": ["rsi(14)"],
        "timeframe": "1h",
        "symbols": None,
        "top_n": 50,
        "channels": ["email"],
        "frequency": "once_per_crossing",
        "cooldown_s": 0,
        "expires_at": None,
        "enabled": True,
        "template": None,
    }


def test_a_full_strategy_is_normalized() -> None:
    values = check(
        base(
            top_n=None,
            symbols=["btc", "ETH", "Btc", "1INCH"],
            channels=["sms", "telegram", "sms"],
            frequency="once_per_bar_close",
            cooldown_s=3600,
            expires_at="2023-12-01T00:00:00Z",
            enabled=False,
            id=7,
            indicators=["ignored"],
            created_at=1,
            updated_at=2,
        ),
    )

    assert values["symbols"] == ["BTC", "ETH", "1INCH"]
    assert values["top_n"] is None
    assert values["channels"] == ["sms", "telegram"]
    assert values["frequency"] == "once_per_bar_close"
    assert values["cooldown_s"] == 3600
    assert values["expires_at"] == 1_701_388_800_000
    assert values["enabled"] is False
    assert values["indicators"] == ["rsi(14)"]


@pytest.mark.parametrize("name", ["name", "condition", "timeframe"])
def test_required_strategy_fields(name) -> None:
    strategy_fails(base(**{name: ...}), name, "is required")
    strategy_fails(base(**{name: None}), name, "got null")


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"colour": "red"}, "colour", "unknown field"),
        ({"name": ""}, "name", "length >= 1"),
        ({"name": "   "}, "name", "expected format"),
        ({"name": "x" * 65}, "name", "length <= 64"),
        ({"name": "a\nb"}, "name", "expected format"),
        ({"name": "a\u2028b"}, "name", "control characters"),
        ({"name": 5}, "name", "Expected str, got int"),
        ({"condition": "rsi(14) ?"}, "condition", "unexpected '?'"),
        ({"timeframe": "2h"}, "timeframe", "must be one of 1m, 5m, 15m, 1h, 4h, 1d"),
        ({"top_n": None}, "symbols", "give either symbols"),
        ({"symbols": ["BTC"]}, "top_n", "not both"),
        ({"top_n": 0}, "top_n", ">= 1"),
        ({"top_n": 1001}, "top_n", "<= 1000"),
        ({"top_n": 5.0}, "top_n", "got float"),
        ({"top_n": True}, "top_n", "got bool"),
        ({"top_n": None, "symbols": []}, "symbols", "length >= 1"),
        ({"top_n": None, "symbols": [f"C{i}" for i in range(51)]}, "symbols", "length <= 50"),
        ({"top_n": None, "symbols": "BTC"}, "symbols", "got str"),
        ({"top_n": None, "symbols": ["BT C"]}, "symbols[0]", "expected format"),
        ({"top_n": None, "symbols": ["BTC", "-"]}, "symbols[1]", "expected format"),
        ({"top_n": None, "symbols": ["X" * 21]}, "symbols[0]", "length <= 20"),
        ({"top_n": None, "symbols": [1]}, "symbols[0]", "got int"),
        ({"channels": "email"}, "channels", "got str"),
        ({"channels": ["pigeon"]}, "channels[0]", "must be one of webhook, telegram"),
        ({"frequency": "always"}, "frequency", "must be one of once_per_crossing"),
        ({"cooldown_s": -1}, "cooldown_s", ">= 0"),
        ({"cooldown_s": 604801}, "cooldown_s", "<= 604800"),
        ({"cooldown_s": "60"}, "cooldown_s", "got str"),
        ({"expires_at": NOW_MS}, "expires_at", "in the future"),
        ({"expires_at": NOW_MS + 11 * 366 * DAY_MS}, "expires_at", "at most 10 years"),
        ({"expires_at": "tomorrow"}, "expires_at", "RFC3339"),
        ({"expires_at": "2030-01-01T00:00:00"}, "expires_at", "timezone"),
        ({"expires_at": 1.5e12}, "expires_at", "got float"),
        ({"enabled": "yes"}, "enabled", "got str"),
        ({"enabled": 1}, "enabled", "got int"),
        ({"frequency": None}, "frequency", "got null"),
    ],
)
def test_each_strategy_rule_names_its_field(changes, field, reason) -> None:
    strategy_fails(base(**changes), field, reason)


def test_long_values_are_cut_short_in_messages() -> None:
    with pytest.raises(ValidationError) as caught:
        check(base(channels=["x" * 1000]))
    assert len(caught.value.message) < 120


@pytest.mark.parametrize(("channel", "target"), list(v.CHANNEL_TARGETS.items()))
def test_each_channel_needs_its_target_in_the_settings(channel, target) -> None:
    targets = {k: val for k, val in ALL_TARGETS.items() if k != target}

    strategy_fails(base(channels=[channel]), "channels", f"{channel} needs {target}", targets=targets)
    assert check(base(channels=[channel]))["channels"] == [channel]


def test_a_left_out_optional_field_takes_its_default() -> None:
    values = check(base(frequency=..., cooldown_s=..., enabled=..., expires_at=None))

    assert (values["frequency"], values["cooldown_s"], values["enabled"], values["expires_at"]) == (
        "once_per_crossing",
        0,
        True,
        None,
    )


def test_no_channels_means_the_alert_log_only() -> None:
    values = check(base(channels=...))
    assert values["channels"] == []
    assert check(base(channels=[]))["channels"] == []
