"""Settings: settings.ini in step with OPTIONS, precedence, one-line errors that name everything."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest

from ubot.config import OPTION_INDEX, OPTIONS, ConfigError, load_settings, resolved_source

SETTINGS_INI = Path(__file__).resolve().parent.parent / "settings.ini"
SECRET = "0a1b2c3d-sekrit-key-4e5f"


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "settings.ini"
    path.write_text(text, encoding="utf-8")
    return str(path)


def load(path=None, environ=None, overrides=None, **kwargs):
    return load_settings(path, environ={} if environ is None else environ, overrides=overrides, **kwargs)


def error_of(**kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        load(**kwargs)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message
    return message


# -- settings.ini documents OPTIONS ---------------------------------------------------------------


def test_settings_ini_documents_exactly_the_options_with_their_defaults():
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(SETTINGS_INI, encoding="utf-8")
    documented = {
        (section, name): value for section in parser.sections() for name, value in parser[section].items()
    }
    declared = {(o.section, o.name): o.default for o in OPTIONS}
    assert set(documented) - set(declared) == set(), "documented in settings.ini but not in OPTIONS"
    assert set(declared) - set(documented) == set(), "in OPTIONS but not documented in settings.ini"
    assert documented == declared


def test_settings_ini_has_a_comment_just_above_every_option():
    lines = SETTINGS_INI.read_text(encoding="utf-8").splitlines()
    seen = []
    for number, line in enumerate(lines):
        match = re.match(r"^([a-z_]+)\s*=", line)
        if match:
            seen.append(match.group(1))
            assert number > 0 and lines[number - 1].startswith(";"), f"no comment above {line!r}"
    assert sorted(seen) == sorted(o.name for o in OPTIONS)


def test_settings_ini_loads_to_the_defaults():
    from_file = load(str(SETTINGS_INI), required=True)
    defaults = load()
    for option in OPTIONS:
        assert getattr(getattr(from_file, option.section), option.name) == getattr(
            getattr(defaults, option.section), option.name
        )


def test_defaults_are_valid_and_parsed():
    settings = load()
    assert settings.market.source == "auto"
    assert settings.market.interval == 60.0
    assert settings.market.limit == 100
    assert settings.market.convert == "USD"
    assert settings.market.replay_dir == ""
    assert settings.coinmarketcap.timeout == 10.0
    assert settings.database.url == "sqlite:///ubot.db"
    assert settings.http.enabled is True
    assert settings.http.bind == ("127.0.0.1", 8080)
    assert settings.log.level == "INFO"


def test_option_env_names():
    assert OPTION_INDEX[("market", "interval")].env == "UBOT_MARKET_INTERVAL"
    assert OPTION_INDEX[("coinmarketcap", "api_key")].env == "UBOT_COINMARKETCAP_API_KEY"
    assert OPTION_INDEX[("database", "retention_days")].env == "UBOT_DATABASE_RETENTION_DAYS"


# -- precedence -----------------------------------------------------------------------------------


def test_file_then_environment_then_overrides(tmp_path):
    path = write(tmp_path, "[market]\ninterval = 30\nlimit = 200\nseed = 7\n")
    environ = {"UBOT_MARKET_LIMIT": "300", "UBOT_MARKET_SEED": "8"}
    overrides = {("market", "seed"): "9"}
    settings = load(path, environ, overrides)
    assert settings.market.interval == 30  # file over default
    assert settings.market.limit == 300  # environment over file
    assert settings.market.seed == 9  # flag over environment
    assert settings.market.ticks == 0  # default


def test_environment_is_read_from_os_environ_by_default(monkeypatch):
    monkeypatch.setenv("UBOT_SCANNER_WORKERS", "3")
    assert load_settings(None).scanner.workers == 3


def test_values_are_normalised():
    environ = {
        "UBOT_MARKET_SOURCE": " Simulated ",
        "UBOT_MARKET_CONVERT": "eur",
        "UBOT_LOG_LEVEL": "debug",
        "UBOT_HTTP_ENABLED": "off",
        "UBOT_HTTP_BIND": "[::1]:9000",
        "UBOT_COINMARKETCAP_BASE_URL": "https://sandbox-api.coinmarketcap.com/",
    }
    settings = load(environ=environ)
    assert settings.market.source == "simulated"
    assert settings.market.convert == "EUR"
    assert settings.log.level == "DEBUG"
    assert settings.http.enabled is False
    assert settings.http.bind == ("::1", 9000)
    assert settings.coinmarketcap.base_url == "https://sandbox-api.coinmarketcap.com"


@pytest.mark.parametrize(
    ("raw", "expected"), [("1", True), ("yes", True), ("ON", True), ("0", False), ("no", False)]
)
def test_booleans(raw, expected):
    assert load(environ={"UBOT_HTTP_ENABLED": raw}).http.enabled is expected


# -- invalid values -------------------------------------------------------------------------------

INVALID = [
    ("market", "source", "binance"),
    ("market", "interval", "-1"),
    ("market", "interval", "soon"),
    ("market", "interval", "inf"),
    ("market", "interval", "nan"),
    ("market", "limit", "0"),
    ("market", "limit", "5001"),
    ("market", "limit", "1.5"),
    ("market", "convert", "US D"),
    ("market", "convert", ""),
    ("market", "seed", "-1"),
    ("market", "ticks", "-1"),
    ("coinmarketcap", "base_url", "ftp://example.com"),
    ("coinmarketcap", "base_url", "pro-api.coinmarketcap.com"),
    ("coinmarketcap", "timeout", "0"),
    ("coinmarketcap", "timeout", "121"),
    ("coinmarketcap", "timeout", "inf"),
    ("database", "url", "mysql://localhost/ubot"),
    ("database", "url", "ubot.db"),
    ("database", "retention_days", "1"),
    ("http", "enabled", "maybe"),
    ("http", "bind", "8080"),
    ("http", "bind", "localhost:0"),
    ("http", "bind", "localhost:65536"),
    ("http", "bind", ":8080"),
    ("http", "threads", "0"),
    ("http", "threads", "257"),
    ("scanner", "workers", "0"),
    ("scanner", "workers", "65"),
    ("accounts", "hash_workers", "0"),
    ("accounts", "hash_queue", "-1"),
    ("accounts", "session_cache_s", "301"),
    ("log", "level", "VERBOSE"),
    ("notify", "telegram_bot_username", "1bot"),
    ("notify", "telegram_bot_username", "my-bot"),
]


def test_the_telegram_bot_username_is_kept_without_its_at() -> None:
    assert load(
        environ={"UBOT_NOTIFY_TELEGRAM_BOT_USERNAME": "@ubot_alerts_bot"}
    ).notify.telegram_bot_username == ("ubot_alerts_bot")


def _check_names_everything(message: str, section: str, name: str, origin: str, raw: str) -> None:
    option = OPTION_INDEX[(section, name)]
    assert f"[{section}] {name}" in message
    assert origin in message
    assert option.accepted in message
    assert repr(raw) in message


@pytest.mark.parametrize(("section", "name", "raw"), INVALID)
def test_invalid_value_in_the_file(tmp_path, section, name, raw):
    path = write(tmp_path, f"[{section}]\n{name} = {raw}\n")
    message = error_of(path=path)
    _check_names_everything(message, section, name, path, raw)


@pytest.mark.parametrize(("section", "name", "raw"), INVALID)
def test_invalid_value_in_the_environment(section, name, raw):
    variable = f"UBOT_{section}_{name}".upper()
    message = error_of(environ={variable: raw})
    _check_names_everything(message, section, name, f"environment {variable}", raw)


@pytest.mark.parametrize(("section", "name", "raw"), INVALID)
def test_invalid_value_of_an_override(section, name, raw):
    option = OPTION_INDEX[(section, name)]
    message = error_of(overrides={(section, name): raw})
    _check_names_everything(message, section, name, option.flag or f"[{section}] {name}", raw)


@pytest.mark.parametrize(
    ("section", "name", "flag"),
    [("market", "interval", "--interval"), ("database", "url", "--db"), ("log", "level", "--log-level")],
)
def test_override_errors_name_the_flag(section, name, flag):
    message = error_of(overrides={(section, name): "???"})
    assert message.startswith(f"{flag}: ")


def test_value_with_a_newline_stays_on_one_line(tmp_path):
    path = write(tmp_path, "[market]\nsource = simulated\n  and more\n")
    message = error_of(path=path)
    assert "[market] source" in message


def test_unknown_option_in_the_file_names_the_likely_one(tmp_path):
    path = write(tmp_path, "[market]\nintervall = 30\n")
    message = error_of(path=path)
    assert message == f"{path}: unknown option [market] intervall; did you mean interval?"


def test_unknown_option_in_the_file_lists_the_known_ones_when_none_is_close(tmp_path):
    path = write(tmp_path, "[market]\ncolour = blue\n")
    message = error_of(path=path)
    assert "unknown option [market] colour" in message
    assert (
        "known in [market]: source, interval, limit, convert, seed, replay_dir, record_dir, ticks" in message
    )


def test_an_option_in_the_wrong_section_names_its_section(tmp_path):
    path = write(tmp_path, "[market]\napi_key = x\n")
    assert error_of(path=path).endswith(
        "unknown option [market] api_key; did you mean [coinmarketcap] api_key?"
    )


def test_unknown_section_in_the_file_names_the_likely_one(tmp_path):
    path = write(tmp_path, "[markets]\ninterval = 30\n")
    assert error_of(path=path) == f"{path}: unknown section [markets]; did you mean [market]?"


def test_an_empty_unknown_section_is_refused_too(tmp_path):
    path = write(tmp_path, "[notfiy]\n")
    assert error_of(path=path) == f"{path}: unknown section [notfiy]; did you mean [notify]?"


def test_unknown_section_lists_the_known_sections_when_none_is_close(tmp_path):
    path = write(tmp_path, "[zzz]\n")
    message = error_of(path=path)
    assert "unknown section [zzz]" in message
    assert (
        "known sections: market, coinmarketcap, database, http, cluster, scanner, log, notify, limits"
        in message
    )


@pytest.mark.parametrize(
    ("variable", "expected"),
    [
        ("UBOT_MARKET_INTERVALL", "UBOT_MARKET_INTERVAL"),
        ("UBOT_MARKT_INTERVAL", "UBOT_MARKET_INTERVAL"),
        ("UBOT_COINMARKETCAP_KEY", "UBOT_COINMARKETCAP_API_KEY"),
        ("ubot_market_interval", "UBOT_MARKET_INTERVAL"),
        ("UBOT_NOTIFY_SMTP_PASS", "UBOT_NOTIFY_SMTP_PASSWORD"),
    ],
)
def test_an_unknown_variable_names_the_likely_one(variable, expected):
    message = error_of(environ={variable: "30"})
    assert message == f"environment {variable}: unknown setting; did you mean {expected}?"


def test_an_unknown_variable_far_from_any_setting_says_how_they_are_named():
    message = error_of(environ={"UBOT_FOO": "1"})
    assert message.startswith("environment UBOT_FOO: unknown setting; settings are UBOT_<SECTION>_<OPTION>")


def test_the_test_suites_variables_and_other_programs_variables_are_not_settings():
    environ = {
        "UBOT_TEST_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/test",
        "UBOT_TEST_POSTGRES_URL": "postgresql://postgres@127.0.0.1:5432/test",
        "UBOTX": "1",
        "HOME": "/home/someone",
        "UBOT_MARKET_LIMIT": "7",
    }
    assert load(environ=environ).market.limit == 7


def test_a_value_of_an_unknown_variable_is_not_shown():
    assert SECRET not in error_of(environ={"UBOT_COINMARKETCAP_APIKEY": SECRET})


# -- comments -------------------------------------------------------------------------------------


def test_inline_comments_after_whitespace(tmp_path):
    path = write(
        tmp_path,
        "; a full-line comment\n# another\n[market]\ninterval = 30 ; half a minute\n"
        "limit = 200\t; tab before it\nsource = simulated;\n",
    )
    message = error_of(path=path)  # "simulated;" (no space before ;) is the value, and it is invalid
    assert "invalid value 'simulated;' for [market] source" in message
    settings = load(write(tmp_path, "[market]\ninterval = 30 ; half a minute\nlimit = 200\t; tab\n"))
    assert (settings.market.interval, settings.market.limit) == (30, 200)


def test_a_semicolon_inside_a_value_is_kept(tmp_path):
    url = "postgresql://bob:pa;ss@db:5432/ubot"
    path = write(tmp_path, f"[database]\nurl = {url}   ; the production database\n")
    assert load(path).database.url == url


def test_an_option_emptied_by_its_comment_is_empty(tmp_path):
    path = write(tmp_path, "[market]\nreplay_dir = ; none\n")
    assert load(path).market.replay_dir == ""


def test_file_that_is_not_an_ini_file(tmp_path):
    path = write(tmp_path, "interval = 30\n")
    message = error_of(path=path)
    assert message.startswith(f"{path}: cannot read: ")


def test_missing_required_file():
    message = error_of(path="/nonexistent/ubot/settings.ini", required=True)
    assert message == "configuration file /nonexistent/ubot/settings.ini does not exist"


def test_missing_optional_file_gives_the_defaults():
    settings = load(path="/nonexistent/ubot/settings.ini")
    assert settings.market.interval == 60


# -- secrets --------------------------------------------------------------------------------------


def test_api_key_never_appears_in_describe():
    settings = load(environ={"UBOT_COINMARKETCAP_API_KEY": SECRET})
    assert settings.coinmarketcap.api_key == SECRET
    text = settings.describe()
    assert SECRET not in text
    assert "coinmarketcap.api_key=(set)" in text
    assert "coinmarketcap.api_key=(unset)" in load().describe()


def test_describe_names_every_option_on_one_line():
    text = load().describe()
    assert "\n" not in text
    for option in OPTIONS:
        assert f"{option.section}.{option.name}=" in text


def test_database_password_never_appears_in_describe_or_errors():
    settings = load(environ={"UBOT_DATABASE_URL": "postgresql://bob:hunter2@db:5432/ubot"})
    assert settings.database.url == "postgresql://bob:hunter2@db:5432/ubot"
    assert "hunter2" not in settings.describe()
    assert "database.url=postgresql://bob:***@db:5432/ubot" in settings.describe()
    message = error_of(environ={"UBOT_DATABASE_URL": "mysql://bob:hunter2@db/ubot"})
    assert "hunter2" not in message and "mysql://bob:***@db/ubot" in message


def test_secrets_never_appear_in_errors(tmp_path):
    path = write(tmp_path, f"[coinmarketcap]\napi_key = {SECRET}\ntimeout = 0\n")
    assert SECRET not in error_of(path=path)
    environ = {"UBOT_COINMARKETCAP_API_KEY": SECRET}
    assert SECRET not in error_of(environ=environ, overrides={("market", "interval"): "0"})
    assert SECRET not in error_of(environ=environ, overrides={("market", "source"): "nope"})
    broken = write(tmp_path, f"[coinmarketcap]\napi_key = {SECRET}\napi_key = {SECRET}\n")
    assert SECRET not in error_of(path=broken)
    no_header = write(tmp_path, f"api_key = {SECRET}\n")
    assert SECRET not in error_of(path=no_header)


# -- options that go together ---------------------------------------------------------------------


def test_replay_needs_a_directory():
    message = error_of(overrides={("market", "source"): "replay"})
    assert "[market] source = replay" in message and "replay_dir" in message and "--replay-dir" in message
    settings = load(overrides={("market", "source"): "replay", ("market", "replay_dir"): "rec/"})
    assert resolved_source(settings) == "replay"
    assert settings.market.replay_dir == "rec/"


def test_cmc_needs_an_api_key():
    message = error_of(environ={"UBOT_MARKET_SOURCE": "cmc"})
    assert "[market] source = cmc" in message and "UBOT_COINMARKETCAP_API_KEY" in message


def test_cmc_needs_a_real_interval():
    environ = {"UBOT_COINMARKETCAP_API_KEY": SECRET}
    message = error_of(environ=environ, overrides={("market", "interval"): "0"})
    assert "[market] interval = 0" in message
    message = error_of(environ={**environ, "UBOT_MARKET_SOURCE": "cmc", "UBOT_MARKET_INTERVAL": "0"})
    assert "[market] interval = 0" in message


def test_auto_resolves_to_cmc_with_a_key_else_simulated():
    assert resolved_source(load()) == "simulated"
    assert resolved_source(load(environ={"UBOT_COINMARKETCAP_API_KEY": "  "})) == "simulated"
    assert resolved_source(load(environ={"UBOT_COINMARKETCAP_API_KEY": SECRET})) == "cmc"
    keyed = {"UBOT_COINMARKETCAP_API_KEY": SECRET, "UBOT_MARKET_SOURCE": "simulated"}
    assert resolved_source(load(environ=keyed)) == "simulated"


def test_back_to_back_ticks_are_fine_without_cmc():
    assert load(environ={"UBOT_MARKET_INTERVAL": "0"}).market.interval == 0
    settings = load(
        overrides={("market", "source"): "replay", ("market", "replay_dir"): "d", ("market", "interval"): "0"}
    )
    assert settings.market.interval == 0


def test_streams_hold_no_thread_so_they_may_outnumber_the_threads():
    assert load(overrides={("http", "threads"): "4", ("http", "stream_max"): "2000"}).http.stream_max == 2000
    assert "[http] stream_max" in error_of(overrides={("http", "stream_max"): "100001"})
    assert "[http] request_timeout" in error_of(overrides={("http", "request_timeout"): "0"})


def test_logins_must_leave_threads_for_requests():
    message = error_of(
        overrides={("http", "threads"): "4", ("http", "stream_max"): "3", ("accounts", "hash_queue"): "3"}
    )
    assert "[accounts] hash_workers + hash_queue (4) must be below [http] threads (4)" in message
    settings = load(overrides={("http", "threads"): "4", ("http", "stream_max"): "3"})
    assert (settings.accounts.hash_workers, settings.accounts.hash_queue) == (1, 1)
    assert load(environ={"UBOT_ACCOUNTS_SESSION_CACHE_S": "0"}).accounts.session_cache_s == 0


# -- protection: CORS, proxies, HSTS, rate limits -------------------------------------------------


def test_protection_defaults():
    settings = load()
    assert settings.http.cors_origins == ()
    assert settings.http.trusted_proxies == ()  # trust nobody
    assert settings.http.hsts is False
    limits = settings.limits
    assert limits.enabled is True
    assert (limits.per_client_rate, limits.per_client_burst) == (20, 40)
    assert (limits.per_user_rate, limits.per_user_burst) == (10, 20)
    assert (limits.login_per_minute, limits.login_burst) == (5, 10)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", ()),
        ("  ", ()),
        ("*", ("*",)),
        ("https://App.Example.com", ("https://app.example.com",)),
        ("https://app.example.com:443/", ("https://app.example.com",)),
        ("http://localhost:5173, https://a.example.com,", ("http://localhost:5173", "https://a.example.com")),
        ("http://[::1]:8080", ("http://[::1]:8080",)),
        ("http://127.0.0.1:80, http://127.0.0.1", ("http://127.0.0.1",)),
    ],
)
def test_cors_origins_are_normalised_as_browsers_send_them(raw, expected):
    assert load(environ={"UBOT_HTTP_CORS_ORIGINS": raw}).http.cors_origins == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", ()),
        ("10.0.0.1", ("10.0.0.1/32",)),
        ("10.1.2.3/8, ::1, fd00::/8", ("10.0.0.0/8", "::1/128", "fd00::/8")),
    ],
)
def test_trusted_proxies(raw, expected):
    assert load(environ={"UBOT_HTTP_TRUSTED_PROXIES": raw}).http.trusted_proxies == expected


INVALID_PROTECTION = [
    ("http", "cors_origins", "app.example.com"),
    ("http", "cors_origins", "ftp://app.example.com"),
    ("http", "cors_origins", "https://app.example.com/path"),
    ("http", "cors_origins", "https://app.example.com?x=1"),
    ("http", "cors_origins", "https://user@app.example.com"),
    ("http", "cors_origins", "https://app.example.com:99999"),
    ("http", "cors_origins", "https://app example.com"),
    ("http", "cors_origins", "*, https://app.example.com"),
    ("http", "trusted_proxies", "proxy.local"),
    ("http", "trusted_proxies", "10.0.0.0/33"),
    ("http", "hsts", "sometimes"),
    ("limits", "enabled", "maybe"),
    ("limits", "per_client_rate", "0"),
    ("limits", "per_client_rate", "fast"),
    ("limits", "per_client_burst", "0"),
    ("limits", "per_client_burst", "2.5"),
    ("limits", "per_user_rate", "-1"),
    ("limits", "per_user_burst", "100001"),
    ("limits", "login_per_minute", "0"),
    ("limits", "login_burst", "0"),
]


@pytest.mark.parametrize(("section", "name", "raw"), INVALID_PROTECTION)
def test_invalid_protection_value_in_the_file(tmp_path, section, name, raw):
    path = write(tmp_path, f"[{section}]\n{name} = {raw}\n")
    _check_names_everything(error_of(path=path), section, name, path, raw)


@pytest.mark.parametrize(("section", "name", "raw"), INVALID_PROTECTION)
def test_invalid_protection_value_in_the_environment(section, name, raw):
    variable = f"UBOT_{section}_{name}".upper()
    _check_names_everything(error_of(environ={variable: raw}), section, name, f"environment {variable}", raw)


def test_a_notifiers_lease_must_outlast_an_attempt() -> None:
    roles = {
        ("cluster", "role"): "notifier",
        ("database", "url"): "postgresql://u@127.0.0.1/x",
        ("cluster", "redis_url"): "redis://127.0.0.1:6379/0",
    }
    short = {("notify", "lease_s"): "10", ("notify", "attempt_deadline_s"): "10"}
    with pytest.raises(ConfigError) as refused:
        load(overrides=roles | short)
    assert str(refused.value) == (
        "[notify] lease_s (10) must be longer than [notify] attempt_deadline_s (10) for --role notifier: "
        "a claim must outlast the attempt it covers"
    )
    assert load(overrides=short).notify.lease_s == 10  # role all claims nothing: no lease to check
    assert load(overrides=roles | {("notify", "lease_s"): "11"}).notify.lease_s == 11


@pytest.mark.parametrize("name", ["scanners", "notifiers"])
def test_role_all_refuses_external_scanners_or_notifiers(name: str) -> None:
    with pytest.raises(ConfigError, match=rf"\[cluster\] {name} = external needs --role engine"):
        load(overrides={("cluster", name): "external"})


def test_metrics_address_for_the_roles_without_http() -> None:
    roles = {
        ("cluster", "role"): "scanner",
        ("database", "url"): "postgresql://u@127.0.0.1/x",
        ("cluster", "redis_url"): "redis://127.0.0.1:6379/0",
    }
    assert load(overrides=roles).cluster.metrics is None  # off by default
    assert load(overrides=roles | {("cluster", "metrics"): "127.0.0.1:9108"}).cluster.metrics == (
        "127.0.0.1",
        9108,
    )
    with pytest.raises(ConfigError, match=r"\[cluster\] metrics"):
        load(overrides=roles | {("cluster", "metrics"): "9108"})
    with pytest.raises(ConfigError) as refused:
        load(overrides={("cluster", "metrics"): "127.0.0.1:9108"})
    assert str(refused.value) == (
        "[cluster] metrics (--metrics) is for --role engine, scanner and notifier, which serve no HTTP; "
        "--role all serves GET /metrics on its own address ([http] metrics)"
    )
