"""The gateway against its own OpenAPI document, fuzzed by schemathesis with every check.

The app is the real one (``create_app``, without the rate limits) over a real actor system and
database (SQLite, or PostgreSQL with ``UBOT_TEST_DATABASE_URL``) that has played the test replay to
its end, with the UserManager, the Notifier and a StreamHub wired as in production. schemathesis
loads the document from ``GET /openapi.json`` and calls the ASGI app directly (through a small WSGI
adapter, ``tests/support/asgi_wsgi.py``: schemathesis' ASGI loader needs a package uBot does not install).

For every operation (HEAD ones included) it runs schemathesis' coverage phase (boundary values, each
required member left out, repeated query parameters, methods the path does not serve), then
generates requests that fit the document (positive) and requests that do not (negative), and runs
every check schemathesis has (``--checks all``) on each answer: no
5xx; status code, content type, headers and body as documented; a request that breaks the document
is refused (negative data rejection), one that fits it is accepted (positive data acceptance: not a
400; a 422 only where the document declares the rule a schema cannot state); a private operation
refuses a request without its token (ignored auth). Then a few requests with real values: a coin
of the replay, the test user's strategy and the document's example body. Private operations get a
live bearer token of a user registered (with a strategy the replay fires, so the alert list is not
empty) before the system starts; the operations that revoke tokens get a token of their own for
each request, and ``PUT /v1/me/password`` (whose failures lock the account) runs last. Passwords are
hashed by argon2id at its minimum cost (``cheap_hasher``): the same code path, no part of the contract.

``GET /v1/stream`` is an endless body, so it is not fuzzed: every event the replay published is
checked against the shape the document declares for it instead (and tests/http/test_stream.py
covers the stream itself).

Bounded: a few examples per operation, derandomized (the same examples every run), no shrinking.
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import hypothesis
import msgspec
import pytest
import schemathesis
from falcon.testing import TestClient
from hypothesis import HealthCheck, Phase, given
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import SchemathesisConfig

from tests.http.support import DEADLINE_S, gateway_of
from tests.replayfiles import write_replay
from tests.support.asgi_wsgi import AsgiAsWsgi
from tests.support.users import cheap_hasher
from tests.support.waits import wait_until
from ubot.bus import InProcessBus
from ubot.clocks import SystemClock
from ubot.http import openapi
from ubot.http.app import create_app
from ubot.http.shapes import EVENTS
from ubot.market.replay import ReplaySource
from ubot.models.users import UserStore
from ubot.stream.events import snapshot_event
from ubot.stream.hub import StreamHub
from ubot.stream.publisher import EventPublisher
from ubot.system import AlertOptions, start_system, stop_system
from ubot.users.manager import UserManager
from ubot.users.passwords import Passwords

EXAMPLES = {GenerationMode.POSITIVE: 12, GenerationMode.NEGATIVE: 8}
FIXED_EXAMPLES = 4  # per operation, with real path values and the documented example body
#: The operations are fuzzed in this many tests, each over a system of its own: pytest-xdist runs
#: them side by side (together they were the suite's longest test by far).
PARTS = 4
NOT_FUZZED = {("GET", "/v1/stream")}  # an endless body: its events are checked below
#: Each request of these revokes the token it sends (or every token): each gets a token of its own.
REVOKING = {
    ("DELETE", "/v1/sessions/current"),
    ("DELETE", "/v1/me/sessions"),
    ("DELETE", "/v1/me/sessions/{session_id}"),
}
#: Wrong old passwords count as failed logins: the account is soon locked. Fuzzed last.
LOCKING = {("PUT", "/v1/me/password")}
PASSWORD = "fuzzing the gateway, 2 times"  # not the document's example: that one is sent
USERNAME = "contract-user"
POSITIVE_STATUSES = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]  # schemathesis' own


#: Answers a request that fits the schema may get where the document declares them: a 422 (a rule a
#: schema cannot state, given in words), a 426 (GET /v1/ws: a WebSocket, which plain HTTP cannot open).
DECLARED_REFUSALS = ("422", "426")


def config_of(document: Mapping[str, Any]) -> SchemathesisConfig:
    """schemathesis' defaults, but where the document declares one of :data:`DECLARED_REFUSALS`, a
    request that fits the schema may get it."""
    operations = [
        {
            "include-name": f"{method.upper()} {path}",
            "checks": {"positive_data_acceptance": {"expected-statuses": [*POSITIVE_STATUSES, *declared]}},
        }
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if (declared := [status for status in DECLARED_REFUSALS if status in operation["responses"]])
    ]
    return SchemathesisConfig.from_dict({"operations": operations})


@dataclass
class Contract:
    app: Any
    client: TestClient
    strategy_id: int  # the test user's
    _addresses: Iterator[int]
    published: list[tuple[str, Any]]  # (event, data) of every stream event

    def token(self) -> str:
        """A fresh session of the test user, logged in from an address of its own (the fuzzed
        ``POST /v1/sessions`` fails logins from the test client's address, which get throttled)."""
        n = next(self._addresses)
        address = f"10.0.{n // 250}.{n % 250 + 1}"
        answer = self.client.simulate_post(
            "/v1/sessions", json={"username": USERNAME, "password": PASSWORD}, remote_addr=address
        )
        assert answer.status_code == 201, answer.text
        return answer.json["token"]


def _sign_up(db, passwords: Passwords) -> int:
    """The test user, with a strategy that the replay's BTC crosses (one alert, whose webhook
    delivery fails at once: no channel is configured), before the system starts. -> its id."""
    manager = UserManager(UserStore(db), SystemClock(), passwords=passwords)
    user = manager.register(USERNAME, "fuzzer@example.com", PASSWORD)
    manager.put_settings(
        user.id, {"webhook_url": "https://example.com/hook", "webhook_secret": "s3cret-s3cret-s3cret"}
    )
    strategy = manager.create_strategy(
        user.id,
        {
            "name": "BTC over 67400",
            "condition": "price > 67400",
            "timeframe": "1m",
            "symbols": ["BTC"],
            "channels": ["webhook"],
        },
    )
    return strategy.id


@pytest.fixture
def contract(db, tmp_path) -> Iterator[Contract]:
    # every revoking request logs in afresh: with the production cost, argon2 was most of the test's time
    passwords = Passwords(cheap_hasher())
    strategy_id = _sign_up(db, passwords)
    replay = write_replay(tmp_path / "replay")
    bus = InProcessBus()
    hub = StreamHub(bus).start()
    publisher = EventPublisher(bus)
    published: list[tuple[str, Any]] = []

    def publish(event: str, data: Any, user_id: int | None = None) -> int:
        published.append((event, data))
        return publisher.publish(event, data, user_id)

    done = threading.Event()
    actors = start_system(
        db,
        ReplaySource(replay.directory),
        interval_s=0,
        on_finished=lambda why: done.set(),
        deliver_replayed=True,  # the replay stands for a live market: its alert has a delivery
        alerts=AlertOptions(
            workers=2,
            publish=publish,
            publish_tick=lambda candled, view: publish(
                "snapshot", snapshot_event(candled.snapshot, etag=view.etag)
            ),
        ),
    )
    try:
        assert done.wait(DEADLINE_S), "the replay did not finish"
        gateway = gateway_of(
            actors,
            users=actors.users,
            notifier=actors.notifier,
            dry_runs=actors.dry_runs,
            passwords=passwords,
        )
        app = create_app(gateway, hub=hub)
        contract = Contract(app, TestClient(app), strategy_id, itertools.count(), published)
        auth = {"Authorization": f"Bearer {contract.token()}"}
        wait_until(
            lambda: contract.client.simulate_get("/v1/me/alerts", headers=auth).json["alerts"], "the alert"
        )
        yield contract
    finally:
        hub.close()
        stop_system(actors, timeout=10)


def _fuzz(
    operation, mode: GenerationMode, headers: Callable[[], dict], examples: int | None = None, **fixed
) -> list[str]:
    """Run ``operation``'s examples in ``mode`` with every check; the failures found, as text."""
    failures: list[str] = []
    checks = CHECKS.get_all()

    @hypothesis.settings(
        max_examples=examples or EXAMPLES[mode],
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode, **fixed))
    def run(case) -> None:
        try:
            case.call_and_validate(headers=headers(), checks=checks)
        except BaseException as error:  # noqa: BLE001 - collected, reported together below
            if not isinstance(error, Exception | BaseExceptionGroup):
                raise
            failures.append(f"{operation.label} ({mode}): {error}")

    try:
        run()
    except hypothesis.errors.Unsatisfiable:  # nothing to break: no parameters, no body
        assert mode is GenerationMode.NEGATIVE
    return failures


def _cover(operation, headers: Callable[[], dict]) -> list[str]:
    """schemathesis' coverage phase for ``operation``: boundary values, each required member left
    out, repeated query parameters, methods the path does not serve; every check on each."""
    schema = operation.schema
    failures: list[str] = []
    cases = schema.iter_coverage_cases(
        operation,
        generation_modes=list(GenerationMode),
        generation_config=schema.config.generation_for(operation=operation, phase="coverage"),
    )
    for case in cases:
        try:
            case.call_and_validate(headers=headers(), checks=CHECKS.get_all())
        except BaseException as error:  # noqa: BLE001 - collected, reported together below
            if not isinstance(error, Exception | BaseExceptionGroup):
                raise
            failures.append(f"{operation.label} (coverage): {error}")
    return failures


def _real_values(document: dict, operation, strategy_id: int) -> dict:
    """Values that reach past the 404s and 422s random ones get: a coin of the replay, the test
    user's strategy, and the document's own example body."""
    fixed: dict = {}
    path = {"key": "BTC", "strategy_id": strategy_id}
    path = {name: value for name, value in path.items() if f"{{{name}}}" in operation.path}
    if path:
        fixed["path_parameters"] = path
    body = document["paths"][operation.path][operation.method.lower()].get("requestBody")
    if body is not None:
        fixed["body"] = body["content"]["application/json"]["example"]
    return fixed


def _order(key: tuple[str, str]) -> int:
    return 2 if key in LOCKING else 1 if key in REVOKING else 0


@pytest.mark.parametrize("part", range(PARTS), ids=lambda part: f"part{part + 1}of{PARTS}")
def test_the_gateway_keeps_its_openapi_contract(contract, part) -> None:
    load_all_checks()
    document = contract.client.simulate_get("/openapi.json").json
    schema = schemathesis.openapi.from_wsgi(
        "/openapi.json", AsgiAsWsgi(contract.app), config=config_of(document)
    )
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = {(op.method.upper(), op.path) for op in operations}
    assert labels >= NOT_FUZZED | REVOKING | LOCKING
    # every operation (schemathesis leaves out the one that serves the document itself)
    described = {(m.upper(), path) for path, item in document["paths"].items() for m in item}
    assert labels == described - {("GET", "/openapi.json")}
    # schemathesis asks for gzip (requests' default headers) but does not decompress a WSGI answer.
    plain = {"Accept-Encoding": "identity"}
    shared = {**plain, "Authorization": f"Bearer {contract.token()}"}

    def own() -> dict:
        return {**plain, "Authorization": f"Bearer {contract.token()}"}

    part_of = {key: n % PARTS for n, key in enumerate(sorted(labels))}  # every PARTS-th one
    failures: list[str] = []
    # The shared token must live until the revoking operations, and logins work until the locking one.
    for operation in sorted(operations, key=lambda op: _order((op.method.upper(), op.path))):
        key = (operation.method.upper(), operation.path)
        if key in NOT_FUZZED or part_of[key] != part:
            continue
        if key in LOCKING:
            shared = own()  # the revoking operations revoked the first one
        headers = own if key in REVOKING else functools.partial(dict, shared)
        failures += _cover(operation, headers)
        for mode in EXAMPLES:
            failures += _fuzz(operation, mode, headers)
        fixed = _real_values(schema.raw_schema, operation, contract.strategy_id)
        if fixed:
            failures += _fuzz(operation, GenerationMode.POSITIVE, headers, FIXED_EXAMPLES, **fixed)
    assert not failures, "\n\n".join(failures)


def test_every_stream_event_fits_its_declared_shape(contract) -> None:
    """What ``/v1/stream`` carries, as published during the replay: each event's data, as JSON,
    decodes into the shape the document declares for it."""
    assert {event for event, _ in contract.published} == {"snapshot", "alert"}
    document = openapi.document()
    for event, data in contract.published:
        assert EVENTS[event].__name__ in document["components"]["schemas"]
        msgspec.json.decode(msgspec.json.encode(data), type=EVENTS[event])
