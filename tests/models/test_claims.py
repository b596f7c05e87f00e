"""The outbox shared by several notifiers (schema version 8): claims with a lease, renewal, takeover
after the lease, results ending the lease, and per-destination pacing across notifiers. Time is a
value passed in (no clock, no threads); both databases (UBOT_TEST_DATABASE_URL for PostgreSQL)."""

from __future__ import annotations

import pytest

from tests.models.test_alerts_store import NOW, make_alert, make_strategy, make_user, outcome
from ubot.models.alerts import AlertStore
from ubot.models.tables import Delivery

LEASE = 30_000


@pytest.fixture
def store(db) -> AlertStore:
    return AlertStore(db)


@pytest.fixture
def written(store):
    strategy = make_strategy(make_user())
    return store.record(outcome([make_alert(strategy, coin_id=c) for c in (1, 2)]), NOW)


def claimed_ids(claimed) -> list[int]:
    return sorted(d.id for w in claimed for d in w.deliveries)


def test_a_due_delivery_is_claimed_by_one_notifier_only(store, written) -> None:
    every = claimed_ids(written)
    first = store.claim("n1", NOW, LEASE, limit=3)
    second = store.claim("n2", NOW, LEASE, limit=10)
    assert len(claimed_ids(first)) == 3
    assert sorted(claimed_ids(first) + claimed_ids(second)) == every  # each once, none twice
    assert store.claim("n3", NOW + LEASE, LEASE, limit=10) == []  # the leases hold until then
    row = Delivery.get_by_id(claimed_ids(first)[0])
    assert (row.claimed_by, row.lease_until) == ("n1", NOW + LEASE)
    assert store.claims("n1", NOW) == 3 and store.claims("n2", NOW) == 1


def test_a_claim_comes_with_its_alert(store, written) -> None:
    (first,) = store.claim("n1", NOW, LEASE, limit=1)
    assert first.alert.symbol == "C1" and len(first.deliveries) == 1
    assert first.deliveries[0].key == written[0].deliveries[0].key


def test_not_due_yet_is_not_claimed(store, written) -> None:
    assert store.claim("n1", NOW - 1, LEASE, limit=10) == []


def test_a_dead_notifiers_claims_are_taken_over_after_the_lease(store, written) -> None:
    mine = claimed_ids(store.claim("dead", NOW, LEASE, limit=10))
    assert store.claim("live", NOW + LEASE - 1, LEASE, limit=10) == []
    taken = claimed_ids(store.claim("live", NOW + LEASE + 1, LEASE, limit=10))
    assert taken == mine
    # The dead one, back, holds nothing any more: its renewal names none.
    assert store.renew("dead", mine, NOW + 2 * LEASE) == set()
    assert store.renew("live", mine, NOW + 3 * LEASE) == set(mine)
    assert store.claim("other", NOW + 2 * LEASE + 1, LEASE, limit=10) == []  # renewed


def test_a_result_ends_the_lease(store, written) -> None:
    ids = claimed_ids(store.claim("n1", NOW, LEASE, limit=10))
    store.mark_sent(ids[0], NOW + 5)
    store.mark_retry(ids[1], 1, NOW + 1000, "503")
    store.mark_failed(ids[2], "gone")
    rows = {d.id: d for d in Delivery.select().where(Delivery.id.in_(ids))}
    assert all(rows[i].lease_until is None for i in ids[:3])
    assert rows[ids[0]].claimed_by == "n1"  # who sent it stays
    # The retried one is claimable again by anyone once due, the sent and failed ones never.
    assert claimed_ids(store.claim("n2", NOW + 1000, LEASE, limit=10)) == [ids[1]]


def test_pacing_is_shared_between_notifiers(store) -> None:
    assert store.pace("telegram", "42", NOW, 1000) == 0  # n1 takes the slot
    assert store.pace("telegram", "42", NOW + 400, 1000) == 600  # n2 must wait
    assert store.pace("telegram", "43", NOW + 400, 1000) == 0  # another destination: free
    assert store.pace("telegram", "42", NOW + 1000, 1000) == 0  # open again
    assert store.pace("webhook", "https://x", NOW, 0) == 0  # unpaced: always free


def test_a_notifier_that_stops_releases_its_claims(store, written) -> None:
    ids = claimed_ids(store.claim("n1", NOW, LEASE, limit=10))
    store.mark_sent(ids[0], NOW + 5)
    assert store.release("n1") == len(ids) - 1  # the sent one is not held any more
    assert claimed_ids(store.claim("n2", NOW + 1, LEASE, limit=10)) == ids[1:]  # at once
