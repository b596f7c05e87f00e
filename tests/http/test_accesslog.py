"""The access log: Combined Log Format plus request id and duration, to ``ubot.access``, and never a
token from a query string."""

from __future__ import annotations

import logging
import re

import pytest

from tests.http.protection_app import AUTH_7, client
from ubot.clocks import FakeClock
from ubot.http.accesslog import clf_time, escape, redact_query
from ubot.users import tokens

START = 1_729_036_950.0  # 2024-10-16T00:02:30Z
# host ident user [time] "request" status bytes "referer" "agent" request-id duration
CLF = re.compile(
    r'(?P<host>\S+) - (?P<user>\S+) \[(?P<time>[^\]]+)\] "(?P<request>(?:[^"\\]|\\.)*)" (?P<status>\d{3}) '
    r'(?P<bytes>\d+|-) "(?P<referer>(?:[^"\\]|\\.)*)" "(?P<agent>(?:[^"\\]|\\.)*)" (?P<id>\S+) (?P<ms>\d+\.\d)ms'
)


def lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "ubot.access"]


def one_line(caplog) -> re.Match:
    (line,) = lines(caplog)
    match = CLF.fullmatch(line)
    assert match, line
    return match


@pytest.fixture
def caplog(caplog):
    caplog.set_level(logging.INFO, logger="ubot.access")
    return caplog


def test_a_request_is_one_combined_log_format_line(caplog):
    app = client(FakeClock(START))
    result = app.simulate_get(
        "/v1/global",
        query_string="symbols=BTC,ETH",
        headers={"Referer": "https://app.example.com/", "User-Agent": "curl/8.5.0", "X-Request-ID": "r-1"},
        remote_addr="203.0.113.9",
    )
    line = one_line(caplog)
    assert line["host"] == "203.0.113.9"
    assert line["user"] == "-"
    assert line["time"] == "16/Oct/2024:00:02:30 +0000"
    assert line["request"] == "GET /v1/global?symbols=BTC,ETH HTTP/1.1"
    assert line["status"] == "200"
    assert line["bytes"] == str(len(result.content))
    assert line["referer"] == "https://app.example.com/"
    assert line["agent"] == "curl/8.5.0"
    assert line["id"] == "r-1"
    assert line["ms"] == "0.0"  # the fake clock did not move


def test_the_user_and_the_status_of_an_authenticated_request(caplog):
    client().simulate_get("/v1/me/settings", headers=AUTH_7)
    line = one_line(caplog)
    assert (line["user"], line["status"], line["referer"]) == ("7", "200", "-")


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/v1/me/settings", "401"), ("GET", "/v1/nowhere", "404"), ("GET", "/v1/crash", "400")],
)
def test_errors_are_logged_with_their_final_status(caplog, method, path, status):
    result = client().simulate_request(method, path)
    line = one_line(caplog)
    assert line["status"] == status
    assert line["bytes"] == str(len(result.content))


def test_a_rate_limited_request_is_logged_as_429(caplog):
    app = client(UBOT_LIMITS_PER_CLIENT_RATE="1", UBOT_LIMITS_PER_CLIENT_BURST="1")
    app.simulate_get("/v1/global")
    app.simulate_get("/v1/global")
    assert [CLF.fullmatch(line)["status"] for line in lines(caplog)] == ["200", "429"]


def test_the_client_behind_a_trusted_proxy_is_logged(caplog):
    client(UBOT_HTTP_TRUSTED_PROXIES="10.0.0.0/8").simulate_get(
        "/v1/global", remote_addr="10.0.0.5", headers={"X-Forwarded-For": "203.0.113.9"}
    )
    assert one_line(caplog)["host"] == "203.0.113.9"


def test_bodiless_and_streamed_sizes(caplog):
    app = client()
    assert app.simulate_delete("/v1/me/settings", headers=AUTH_7).status_code == 204
    app.simulate_head("/v1/global")
    app.simulate_get("/v1/stream")
    sizes = [CLF.fullmatch(line)["bytes"] for line in lines(caplog)]
    assert sizes == ["0", "0", "-"]


def test_the_duration_is_measured_on_the_injected_clock(caplog):
    clock = FakeClock(START)

    class Slow:
        def on_get(self, req, resp):
            clock.advance(0.0123)
            resp.media = {}

    app = client(clock)
    app.app.add_route("/v1/slow", Slow())
    app.simulate_get("/v1/slow")
    assert one_line(caplog)["ms"] == "12.3"


def test_the_stream_query_string_is_never_logged(caplog):
    app = client()
    result = app.simulate_get("/v1/stream", query_string="access_token=token-of-7&last_event_id=5")
    assert result.status_code == 200
    app.simulate_get("/v1/stream/", query_string="access_token=token-of-7")
    app.simulate_get("/v1/stream", query_string="access_token=bogus-token")  # 401
    logged = "\n".join(lines(caplog))
    assert "token-of-7" not in logged and "bogus-token" not in logged and "access_token" not in logged
    assert [CLF.fullmatch(line)["request"] for line in lines(caplog)] == ["GET /v1/stream HTTP/1.1"] * 3
    assert [CLF.fullmatch(line)["status"] for line in lines(caplog)] == ["200", "200", "401"]


def test_the_stream_query_string_is_not_logged_when_rate_limited_either(caplog):
    app = client(UBOT_LIMITS_PER_CLIENT_RATE="1", UBOT_LIMITS_PER_CLIENT_BURST="1")
    app.simulate_get("/v1/global")
    assert app.simulate_get("/v1/stream", query_string="access_token=token-of-7").status_code == 429
    assert "token-of-7" not in "\n".join(lines(caplog))


def test_a_token_in_the_query_of_another_route_is_redacted(caplog):
    client().simulate_get("/v1/global", query_string="access_token=token-of-7&x=1")
    assert one_line(caplog)["request"] == "GET /v1/global?access_token=REDACTED&x=1 HTTP/1.1"


TOKEN = tokens.issue()


@pytest.mark.parametrize(
    ("query", "logged"),
    [
        (f"bearer={TOKEN}", "bearer=REDACTED"),
        (f"x=1;access_token={TOKEN}", "x=1;access_token=REDACTED"),
        (f"x={TOKEN}{TOKEN}&y=2", "x=REDACTED&y=2"),  # glued to more token characters: hidden whole
        (f"next=%2Fv1%2Fme%3Ft%3D{TOKEN}", "next=%2Fv1%2Fme%3Ft%REDACTED"),  # "3D" glued to it
        ("id=" + "a" * 42, "id=" + "a" * 42),  # shorter than a token: kept
    ],
    # ids without the (random) token: every pytest-xdist worker must collect the same test names
    ids=["bearer", "access_token", "glued", "percent-encoded", "short"],
)
def test_anything_shaped_like_a_token_is_redacted_whatever_its_name(caplog, query, logged):
    client().simulate_get("/v1/global", query_string=query)
    assert one_line(caplog)["request"] == f"GET /v1/global?{logged} HTTP/1.1"
    assert TOKEN not in caplog.text


def test_a_token_in_the_path_or_a_header_is_redacted(caplog):
    long_query = "x=" + "b." * 509 + "&t=" + TOKEN  # a token across the 1,024-character cut
    client().simulate_get(
        f"/v1/{TOKEN}",
        query_string=long_query,
        headers={"Referer": f"https://app.example/#access_token={TOKEN}", "User-Agent": f"bot {TOKEN}"},
    )
    line = one_line(caplog)
    assert line["request"].startswith("GET /v1/REDACTED?x=b.b.")
    assert line["referer"] == "https://app.example/#access_token=REDACTED"
    assert line["agent"] == "bot REDACTED"
    assert TOKEN[:20] not in caplog.text


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("a=1&b=2", "a=1&b=2"),
        ("a=1;password=x&b=2", "a=1;password=REDACTED&b=2"),
        ("access_token=s3cret", "access_token=REDACTED"),
        ("ACCESS_TOKEN=s3cret&a=1", "ACCESS_TOKEN=REDACTED&a=1"),
        ("access%5Ftoken=s3cret", "access%5Ftoken=REDACTED"),
        ("a=1&password=hunter2&token=t", "a=1&password=REDACTED&token=REDACTED"),
        ("access_token", "access_token"),
    ],
)
def test_redact_query(query, expected):
    assert redact_query(query) == expected


def test_no_request_can_forge_a_log_line(caplog):
    client().simulate_get(
        "/v1/a b\nGET /fake",
        headers={"User-Agent": 'evil" 200 "x', "Referer": "a\\b"},
    )
    (line,) = lines(caplog)
    assert "\n" not in line
    match = CLF.fullmatch(line)
    assert match["request"] == "GET /v1/a%20b%0AGET%20/fake HTTP/1.1"
    assert match["agent"] == 'evil\\" 200 \\"x'
    assert match["referer"] == "a\\\\b"


def test_escape():
    assert escape('a"b\\c\x00\x1b\x7f\u2028é') == 'a\\"b\\\\c\\x00\\x1b\\x7f\\u2028é'


def test_clf_time():
    assert clf_time(0) == "01/Jan/1970:00:00:00 +0000"
    assert clf_time(START + 0.9) == "16/Oct/2024:00:02:30 +0000"


def test_nothing_is_formatted_when_the_access_log_is_off(caplog):
    caplog.set_level(logging.WARNING, logger="ubot.access")
    assert client().simulate_get("/v1/global").status_code == 200
    assert lines(caplog) == []
