"""The CoinMarketCap client against a fake CMC over real sockets: wire format, paging, every fault.

Time is a FakeClock; backoff sleeps advance it instead of waiting. The only real wait is the
slow-answer case, bounded by a 0.2 s client timeout (only there: elsewhere a loaded machine could
make a normal answer miss so short a timeout, and the retry would add a call).
"""

from __future__ import annotations

import email.utils
import json
import logging
from datetime import UTC, datetime

import pytest

from tests.fakecmc import (
    KEY,
    T0_MS,
    Close,
    Error,
    FakeCmc,
    Html,
    Ok,
    Raw,
    Reset,
    Slow,
    Truncated,
    TruncatedJson,
    rate_limited,
)
from tests.support.ports import refused_port
from ubot.clocks import FakeClock
from ubot.market.coinmarketcap import (
    GLOBAL_PATH,
    KEY_INFO_PATH,
    KEY_SETTING,
    LISTINGS_PATH,
    CmcBadResponse,
    CmcClient,
    CmcError,
    CmcFatalError,
    CmcRateLimited,
    CmcTransientError,
)
from ubot.market.credits import UsageTracker, listings_credits, parse_key_info
from ubot.market.snapshot import parse_global, parse_listings
from ubot.timeutil import parse_iso_ms

T0 = T0_MS / 1000


@pytest.fixture
def fake():
    server = FakeCmc().start()
    yield server
    server.stop()


@pytest.fixture
def clock():
    return FakeClock(T0)


class Sleeps(list):
    """The injected sleeper: records each backoff and moves the fake clock by it."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        self.clock.advance(seconds)


@pytest.fixture
def sleeps(clock):
    return Sleeps(clock)


@pytest.fixture
def client(fake, clock, sleeps, request):
    slow = request.node.name.endswith("[slow]")  # the TRANSIENT case that waits for the timeout
    cmc = CmcClient(
        KEY,
        fake.base_url,
        timeout=0.2 if slow else 10,
        clock=clock,
        sleeper=sleeps,
        max_attempts=3,
        backoff_s=1.0,
        usage=UsageTracker(),
    )
    yield cmc
    cmc.close()


def iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


# -- the wire format ------------------------------------------------------------------------------


def test_listings_sends_the_key_header_and_cmc_parameters(fake, client):
    doc = client.listings(100, "USD")
    [seen] = fake.calls()
    assert seen.path == LISTINGS_PATH
    assert seen.query == {"start": "1", "limit": "100", "convert": "USD"}
    assert seen.headers["X-CMC_PRO_API_KEY"] == KEY
    assert seen.headers["Accept"] == "application/json"
    assert seen.headers["Accept-Encoding"] == "deflate, gzip"
    assert "CMC_PRO_API_KEY" not in seen.query  # the key travels in the header only
    snapshot = parse_listings(doc, "USD")
    assert len(snapshot) == 100 and snapshot.dropped == 0
    assert doc["status"]["credit_count"] == 1
    assert client.usage.today(T0) == 1


def test_one_session_reuses_its_connection(fake, client):
    client.listings(10)
    client.global_metrics()
    client.key_info()
    ports = {seen.peer_port for seen in fake.calls()}
    assert len(fake.calls()) == 3 and len(ports) == 1


def test_global_metrics_and_key_info(fake, client):
    doc = client.global_metrics("EUR")
    assert fake.calls(GLOBAL_PATH)[0].query == {"convert": "EUR"}
    assert parse_global(doc, "EUR").values["total_market_cap"] > 0
    info = parse_key_info(client.key_info())
    assert info.credit_limit_monthly == 10_000 and info.rate_limit_minute == 30
    assert fake.calls(KEY_INFO_PATH)[0].query == {}
    assert client.usage.today(T0) == 1  # global: 1 credit; key info: free


@pytest.fixture
def roomy_client(fake, clock, sleeps):
    """Like ``client`` with a timeout that thousands of coins fit in even on a loaded machine (the
    0.2 s of ``client`` is for the slow-answer cases; here a timeout would retry and add a call)."""
    cmc = CmcClient(KEY, fake.base_url, timeout=30, clock=clock, sleeper=sleeps, usage=UsageTracker())
    yield cmc
    cmc.close()


@pytest.mark.parametrize("limit", [5000, 5001, 7500, 10_000])
def test_listings_beyond_5000_are_paged_and_merged(fake, roomy_client, limit):
    client = roomy_client
    fake.total_coins = 20_000
    doc = client.listings(limit)
    queries = [(s.query["start"], s.query["limit"]) for s in fake.calls(LISTINGS_PATH)]
    expected = [("1", "5000")] + ([("5001", str(limit - 5000))] if limit > 5000 else [])
    assert queries == expected
    ids = [item["id"] for item in doc["data"]]
    assert len(ids) == limit == len(set(ids))
    assert [item["cmc_rank"] for item in doc["data"]] == list(range(1, limit + 1))
    assert doc["status"]["credit_count"] == listings_credits(limit)
    assert doc["status"]["timestamp"] == "2026-11-24T08:31:00.000Z"
    assert doc["status"]["total_count"] == 9915
    assert client.usage.today(T0) == listings_credits(limit)
    assert len(parse_listings(doc)) == limit


def test_paging_stops_at_the_end_of_the_market(fake, roomy_client):
    client = roomy_client
    fake.total_coins = 5100
    doc = client.listings(10_000)
    assert [s.query["start"] for s in fake.calls(LISTINGS_PATH)] == ["1", "5001"]
    assert len(doc["data"]) == 5100
    assert doc["status"]["credit_count"] == 25 + 1


def test_a_coin_that_moved_across_the_page_boundary_is_kept_once(fake, roomy_client):
    client = roomy_client
    first = fake.listings_doc(1, 5000)
    second = fake.listings_doc(5001, 10)
    second["data"] = [first["data"][-1], *second["data"][:9]]  # rank 5000 slipped to 5001
    fake.script(LISTINGS_PATH, Ok(first), Ok(second))
    doc = client.listings(5010)
    assert len(doc["data"]) == 5009
    assert len({item["id"] for item in doc["data"]}) == 5009


def test_a_failing_page_names_itself(fake, roomy_client):
    client = roomy_client
    fake.script(LISTINGS_PATH, Ok(), Error(1008))
    with pytest.raises(CmcRateLimited, match=r"^listings page 2 \(start=5001\): rate limited"):
        client.listings(5001)
    assert client.usage.today(T0) == 25  # page 1 was charged all the same


# -- fatal ----------------------------------------------------------------------------------------

KEY_PROBLEM = f"set a valid key in {KEY_SETTING}"


@pytest.mark.parametrize(
    ("code", "http", "says"),
    [
        (1001, 401, "CoinMarketCap says the API key is invalid; " + KEY_PROBLEM),
        (1002, 401, f"CoinMarketCap received no API key; set one in {KEY_SETTING}"),
        (1003, 402, "the API key's plan must be activated at https://pro.coinmarketcap.com/account/plan"),
        (1004, 402, "the API key's subscription plan has expired; renew it at https://pro.coinmarketcap"),
        (1005, 403, f"CoinMarketCap requires an API key for this call; set one in {KEY_SETTING}"),
        (1006, 403, "the API key's plan does not include this endpoint; upgrade the plan at https://pro"),
        (1007, 403, "the API key has been disabled by CoinMarketCap (contact their support); set another"),
    ],
)
def test_key_and_plan_errors_are_fatal_and_name_the_fix(fake, client, code, http, says):
    fake.script(LISTINGS_PATH, Error(code))
    with pytest.raises(CmcFatalError) as caught:
        client.listings(100)
    message = str(caught.value)
    assert message.startswith(says)
    assert f"(listings: HTTP {http}, CoinMarketCap error {code}: " in message
    assert (caught.value.http_status, caught.value.error_code) == (http, code)
    assert len(fake.calls()) == 1  # never retried


def test_the_real_key_check_of_the_fake(fake, clock):
    wrong = CmcClient("not-the-key", fake.base_url, clock=clock)
    with pytest.raises(CmcFatalError, match="CoinMarketCap says the API key is invalid"):
        wrong.key_info()
    wrong.close()


@pytest.mark.parametrize("http", [401, 402, 403])
def test_bare_http_auth_statuses_are_fatal(fake, client, http):
    fake.script(LISTINGS_PATH, Raw('{"message":"denied"}', http=http))
    with pytest.raises(CmcFatalError, match=f"HTTP {http}") as caught:
        client.listings(100)
    assert "pro.coinmarketcap.com/account/plan" in str(caught.value)
    assert len(fake.calls()) == 1


def test_error_code_is_checked_on_http_200(fake, client):
    body = json.dumps({"status": {"error_code": 1001, "error_message": "This API Key is invalid."}})
    fake.script(LISTINGS_PATH, Raw(body, http=200))
    with pytest.raises(CmcFatalError, match=r"\(listings: HTTP 200, CoinMarketCap error 1001: "):
        client.listings(100)


def test_a_rejected_parameter_is_fatal_and_names_the_settings(fake, client):
    fake.script(LISTINGS_PATH, Error(400))
    with pytest.raises(CmcFatalError) as caught:
        client.listings(100, "XYZ")
    assert str(caught.value) == (
        "CoinMarketCap rejected the request (listings: HTTP 400, CoinMarketCap error 400: Invalid value "
        'for "convert": "XYZ"); check [market] convert and limit'
    )


def test_a_wrong_base_url_is_fatal(fake, clock):
    cmc = CmcClient(KEY, fake.base_url + "/api", clock=clock)
    with pytest.raises(
        CmcFatalError, match=r"/api/v1/key/info is not CoinMarketCap's API .*check \[coinmarketcap\] base_url"
    ):
        cmc.key_info()
    cmc.close()


def test_redirects_are_not_followed(fake, client):
    fake.script(LISTINGS_PATH, Raw("", http=301, headers={"Location": "http://elsewhere.invalid/"}))
    with pytest.raises(CmcFatalError, match="redirected to http://elsewhere.invalid/"):
        client.listings(100)
    assert len(fake.calls()) == 1


@pytest.mark.parametrize("key", ["", "   ", "two words", "tab\there", "caf\u00e9"])
def test_an_unusable_key_is_refused_before_any_call(key):
    with pytest.raises(
        CmcFatalError, match="UBOT_COINMARKETCAP_API_KEY or \\[coinmarketcap\\] api_key"
    ) as caught:
        CmcClient(key, "http://127.0.0.1:9")
    if key.strip():
        assert key not in str(caught.value)


# -- rate limits ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("behaviour", "limit", "resume"),
    [
        (rate_limited(1008), "minute request limit (1008)", T0 + 60),
        (rate_limited(1009), "daily credit limit (1009)", parse_iso_ms("2026-11-25T00:00:00Z") / 1000),
        (rate_limited(1010), "monthly credit limit (1010)", parse_iso_ms("2026-12-01T00:00:00Z") / 1000),
        (rate_limited(1011), "IP rate limit (1011)", T0 + 60),
        (Error(429, 429, "Too Many Requests"), "HTTP 429", T0 + 60),
        (Raw("Too Many Requests", http=429, content_type="text/plain"), "HTTP 429", T0 + 60),
        (rate_limited(1008, 17), "minute request limit (1008)", T0 + 17),
        (rate_limited(1009, 120), "daily credit limit (1009)", T0 + 120),
        (rate_limited(1008, 0), "minute request limit (1008)", T0 + 1),  # clamped to >= 1 s
        (rate_limited(1008, "soon"), "minute request limit (1008)", T0 + 60),  # unusable: ignored
        (
            rate_limited(1008, email.utils.formatdate(T0 + 300, usegmt=True)),
            "minute request limit (1008)",
            T0 + 300,
        ),
        (
            rate_limited(1008, email.utils.formatdate(T0 - 300, usegmt=True)),
            "minute request limit (1008)",
            T0 + 1,
        ),
        (  # "-0000" (no zone) is UTC, the shared Retry-After rule; in the past: at least 1 s
            rate_limited(1008, email.utils.formatdate(T0 - 300)),
            "minute request limit (1008)",
            T0 + 1,
        ),
        (
            rate_limited(1008, email.utils.formatdate(T0 + 300)),
            "minute request limit (1008)",
            T0 + 300,
        ),
    ],
)
def test_rate_limits_say_when_they_reset_and_are_not_retried(fake, client, behaviour, limit, resume):
    fake.script(LISTINGS_PATH, behaviour)
    with pytest.raises(CmcRateLimited) as caught:
        client.listings(100)
    assert caught.value.limit == limit
    assert caught.value.resume_at == resume
    assert str(caught.value).startswith(
        f"listings: rate limited by CoinMarketCap, {limit}, until {iso(resume)}"
    )
    assert len(fake.calls()) == 1


def test_a_rate_limit_code_on_http_200_is_a_rate_limit(fake, client):
    body = json.dumps({"status": {"error_code": 1008, "error_message": "slow down", "credit_count": 0}})
    fake.script(LISTINGS_PATH, Raw(body))
    with pytest.raises(CmcRateLimited, match=r"minute request limit \(1008\)"):
        client.listings(100)


# -- transient faults and retries -----------------------------------------------------------------

TRANSIENT = [
    pytest.param(
        Error(500),
        "server error (HTTP 500, CoinMarketCap error 500: An internal server error occurred)",
        id="500",
    ),
    pytest.param(
        Error(503, 503, "Service Unavailable"),
        "server error (HTTP 503, CoinMarketCap error 503: Service Unavailable)",
        id="503",
    ),
    pytest.param(
        Html(502),
        "server error (HTTP 502, expected JSON, got an HTML page titled '502 Bad Gateway')",
        id="html-502",
    ),
    pytest.param(Reset(), "the connection was reset", id="reset"),
    pytest.param(Close(), "the server closed the connection without answering", id="closed"),
    pytest.param(Slow(), "no answer within 0.2 s (timed out)", id="slow"),
]


@pytest.mark.parametrize(("behaviour", "says"), TRANSIENT)
def test_transient_faults_are_retried_then_succeed(fake, client, sleeps, behaviour, says):
    fake.script(LISTINGS_PATH, behaviour, behaviour)
    doc = client.listings(100, deadline=T0 + 30)
    assert len(doc["data"]) == 100
    assert len(fake.calls()) == 3
    assert sleeps == [1.0, 2.0]  # exponential backoff, on the injected sleeper


@pytest.mark.parametrize(("behaviour", "says"), TRANSIENT)
def test_transient_faults_give_up_after_max_attempts(fake, client, sleeps, behaviour, says):
    fake.script(LISTINGS_PATH, behaviour, behaviour, behaviour)
    with pytest.raises(CmcTransientError) as caught:
        client.listings(100, deadline=T0 + 30)
    assert str(caught.value) == f"listings: {says} (gave up after 3 attempts)"
    assert caught.value.attempts == 3
    assert len(fake.calls()) == 3
    assert sleeps == [1.0, 2.0]


@pytest.mark.parametrize(
    ("deadline", "requests"),
    [
        (None, 3),  # no budget: max_attempts
        (T0 + 30, 3),
        (T0 + 4, 3),  # 1 s backoff, 2 s backoff, 1 s left for the last attempt
        (T0 + 3.9, 2),  # the third attempt would have less than min_attempt_s left
        (T0 + 2, 2),
        (T0 + 1.9, 1),
        (T0 - 10, 1),  # a late tick: one attempt, no retry
    ],
)
def test_retries_stay_within_the_tick_budget(fake, client, sleeps, deadline, requests):
    fake.script(LISTINGS_PATH, Error(500), Error(500), Error(500))
    with pytest.raises(CmcTransientError):
        client.listings(100, deadline=deadline)
    assert len(fake.calls()) == requests
    assert len(sleeps) == requests - 1
    if deadline is not None:
        assert sum(sleeps) == 0 or T0 + sum(sleeps) <= deadline - client.min_attempt_s


def test_a_refused_connection_is_transient(clock, sleeps):
    with refused_port() as port:
        cmc = CmcClient(KEY, f"http://127.0.0.1:{port}", clock=clock, sleeper=sleeps, max_attempts=2)
        with pytest.raises(
            CmcTransientError, match=r"^global metrics: connection refused \(gave up after 2 attempts\)$"
        ):
            cmc.global_metrics()
    cmc.close()


# -- bad responses --------------------------------------------------------------------------------

BAD = [
    pytest.param(
        Html(200, "Just a moment..."),
        "expected JSON, got an HTML page titled 'Just a moment...' (HTTP 200)",
        id="html-200",
    ),
    pytest.param(
        Truncated(),
        "truncated body (the connection closed after {half} bytes, {rest} more were announced)",
        id="truncated",
    ),
    pytest.param(
        TruncatedJson(),
        "truncated JSON: the body ends after {half} bytes in the middle of a value (HTTP 200)",
        id="truncated-json",
    ),
    pytest.param(
        Raw('{"status": {"error_code": 0}, "data": [1, }'),
        "invalid JSON at line 1 column 43: Expecting value (HTTP 200)",
        id="invalid-json",
    ),
    pytest.param(Raw(""), "empty body (HTTP 200)", id="empty"),
    pytest.param(Raw(b"\xff\xfe{}"), "body is not UTF-8 (byte 0) (HTTP 200)", id="not-utf8"),
    pytest.param(Raw("[1, 2]"), "expected a JSON object, got an array", id="array"),
    pytest.param(Raw('{"data": []}'), "no 'status' object", id="no-status"),
    pytest.param(Raw('{"status": {"error_code": 0}}'), "no 'data' in a successful answer", id="no-data"),
    pytest.param(
        Raw('{"status": {"error_code": 0}, "data": {"1": {}}}'),
        "'data' must be an array of coins, got an object",
        id="data-object",
    ),
    pytest.param(
        Raw('{"status": {"error_code": 0}, "data": null}'),
        "'data' must be an array of coins, got null",
        id="data-null",
    ),
    pytest.param(
        Raw('{"status": {"error_code": 777, "error_message": "odd"}}', http=418),
        "unexpected error (HTTP 418, CoinMarketCap error 777: odd)",
        id="unknown-error",
    ),
]


@pytest.mark.parametrize(("behaviour", "says"), BAD)
def test_bad_responses_say_precisely_what_was_wrong_and_are_not_retried(fake, client, behaviour, says):
    fake.script(LISTINGS_PATH, behaviour)
    with pytest.raises(CmcBadResponse) as caught:
        client.listings(100)
    if "{half}" in says:
        body = json.dumps(fake.listings_doc(1, 100), separators=(",", ":")).encode()
        says = says.format(half=len(body) // 2, rest=len(body) - len(body) // 2)
    assert str(caught.value) == f"listings: {says}"
    assert len(fake.calls()) == 1
    assert len(str(caught.value)) < 200  # a message, not a body dump


def test_global_metrics_must_be_an_object(fake, client):
    fake.script(GLOBAL_PATH, Raw('{"status": {"error_code": 0}, "data": []}'))
    with pytest.raises(CmcBadResponse, match=r"^global metrics: 'data' must be an object, got an array$"):
        client.global_metrics()


# -- the key stays secret -------------------------------------------------------------------------


def test_the_key_never_appears_in_logs_messages_or_reprs(fake, clock, sleeps, caplog):
    caplog.set_level(logging.DEBUG)
    cmc = CmcClient(KEY, fake.base_url, timeout=0.2, clock=clock, sleeper=sleeps, max_attempts=2)
    assert KEY not in repr(cmc) and "***" in repr(cmc)
    fake.script(
        LISTINGS_PATH,
        Error(1001, message=f"This API Key is invalid: {KEY}"),  # a server that echoes the key
        Error(500, message=f"boom {KEY}"),
        Error(500),
        rate_limited(1008),
        Html(),
        Html(),
        Raw(f"{{not json {KEY}"),
        Reset(),
        Slow(),
        Ok(),
    )
    errors: list[CmcError] = []
    for _ in range(6):
        try:
            cmc.listings(100)
        except CmcError as exc:
            errors.append(exc)
    assert [type(e) for e in errors] == [
        CmcFatalError,
        CmcTransientError,
        CmcRateLimited,
        CmcTransientError,
        CmcBadResponse,
        CmcTransientError,
    ]
    assert "***" in str(errors[0])
    for exc in errors:
        assert KEY not in str(exc) and KEY not in repr(exc) and KEY not in repr(exc.args)
    assert caplog.records, "the client logs its calls and retries"
    assert KEY not in caplog.text
    cmc.close()
