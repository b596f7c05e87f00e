"""Scanner processes split the strategies (scan/assign.py): rendezvous hashing over each tick's view
of the live scanners. Plain logic: no threads, no bus, no clock."""

from __future__ import annotations

from tests.scan.support import spec
from ubot.scan.assign import Pass, Shares, handed_over, owner, passes
from ubot.scan.planner import ScanPlanner
from ubot.scan.spec import UserStrategies

IDS = range(1, 301)


def everyone() -> list[UserStrategies]:
    """Three users' strategies, 300 in all."""
    return [UserStrategies(u, tuple(spec(i, user_id=u) for i in IDS if i % 3 == u % 3)) for u in (1, 2, 3)]


def started(*names: str) -> dict[str, Shares]:
    shares = {name: Shares(name) for name in names}
    for share in shares.values():
        share.set_all(everyone())
    return shares


def owned(share: Shares) -> set[int]:
    return {i for ids in share.owned.values() for i in ids}


def test_each_strategy_has_one_owner_among_the_members_and_all_are_owned() -> None:
    view = ("scanner-a", "scanner-b", "scanner-c")
    shares = started(*view)
    for share in shares.values():
        share.view(view)
    parts = [owned(s) for s in shares.values()]
    assert sum(len(p) for p in parts) == len(IDS)  # none twice
    assert set().union(*parts) == set(IDS)  # none left out
    assert all(len(p) > 50 for p in parts)  # a fair split
    assert all(owner(i, view) in view for i in IDS)
    assert owner(7, view) == owner(7, tuple(reversed(view)))  # the order of the list does not matter
    assert owner(7, ()) is None


def test_a_scanner_not_in_the_ticks_view_owns_nothing() -> None:
    (share,) = started("scanner-new").values()
    assert share.view(("scanner-a", "scanner-b")) == []
    assert owned(share) == set() and len(share) == 0


def test_when_one_dies_only_its_share_moves_each_to_one_survivor() -> None:
    shares = started("a", "b", "c")
    for share in shares.values():
        share.view(("a", "b", "c"))
    before = {name: owned(s) for name, s in shares.items()}
    changes = {name: shares[name].view(("a", "b")) for name in ("a", "b")}
    after = {name: owned(shares[name]) for name in ("a", "b")}
    assert after["a"] | after["b"] == set(IDS) and not after["a"] & after["b"]
    for name in ("a", "b"):
        assert before[name] <= after[name]  # the survivors keep what they had
        gained = {s.id for c in changes[name] for s in c.specs} - before[name]
        assert gained == after[name] - before[name] and gained <= before["c"]
        assert all(c.moved == () for c in changes[name])  # nothing moved away from them


def test_a_new_member_takes_a_share_and_the_others_are_told_what_moved() -> None:
    shares = started("a", "b")
    shares["a"].view(("a", "b"))
    before = owned(shares["a"])
    changes = shares["a"].view(("a", "b", "c"))
    moved = {i for c in changes for i in c.moved}
    assert moved and moved == before - owned(shares["a"])
    assert all(owner(i, ("a", "b", "c")) == "c" for i in moved)


def test_a_users_change_gives_this_scanners_share() -> None:
    (share,) = started("a").values()
    share.view(("a", "b"))
    mine = share.set_user(1, [spec(1000, user_id=1), spec(1001, user_id=1), spec(1002, user_id=1)])
    assert {s.id for s in mine} == {i for i in (1000, 1001, 1002) if owner(i, ("a", "b")) == "a"}
    assert share.set_user(1, []) == () and 1 not in share.users


def test_whom_to_wait_for_when_the_view_changes() -> None:
    assert handed_over(("a", "b"), ("a", "b"), "a") == ()  # same view: nothing moves
    assert handed_over(("a", "b", "c"), ("a", "b"), "a") == ("b",)  # c died: nothing to wait for
    assert handed_over(("a", "b"), ("a", "b", "c"), "c") == ("a", "b")  # c takes from a and b


def test_a_strategy_that_moves_away_keeps_its_saved_state() -> None:
    planner = ScanPlanner(2)
    planner.set_all([UserStrategies(1, (spec(1, user_id=1), spec(2, user_id=1)))])
    told = planner.set_user(1, [spec(2, user_id=1)], moved=[1])
    assert all(m.forget == () for m in told.values())  # moved: another scanner continues from it
    told = planner.set_user(1, [])
    assert [i for m in told.values() for i in m.forget] == [2]  # disabled or deleted: afresh


def test_strategies_taken_over_are_scanned_after_their_marks_and_never_at_or_before() -> None:
    """Strategy 5 was scanned up to snapshot 11, 6 up to 13, 7 up to 15 (the tick itself: its
    previous owner scanned it already); snapshot 12 was skipped by this scanner (its whole share)."""
    found = passes(15, {5: 11, 6: 13, 7: 15}, skipped=[12], stored=[12, 13, 14])
    assert found == [
        Pass(12, None, frozenset({6, 7})),
        Pass(13, frozenset({5})),
        Pass(14, frozenset({5, 6})),
        Pass(15, None, frozenset({7})),
    ]
    assert passes(15, {}) == [Pass(15)]
    assert passes(15, {5: 11}, stored=[12, 13, 14], limit=1) == [Pass(14, frozenset({5})), Pass(15)]


def test_a_takeover_names_the_strategies_gained() -> None:
    shares = started("a", "b")
    for share in shares.values():
        share.view(["a", "b"])
    before = owned(shares["b"])
    gained = {i for change in shares["b"].view(["b"]) for i in change.gained}
    assert gained == owned(shares["b"]) - before and gained == set(IDS) - before


def test_a_view_change_plans_every_users_share_at_once() -> None:
    """Half of each user's strategies move away: ``set_users`` (one pass, one replan, one message
    per worker) ends where ``set_user`` per user does, their saved state kept (nothing forgotten)."""
    each, once = ScanPlanner(3), ScanPlanner(3)
    for planner in (each, once):
        planner.set_all(everyone())
    kept = {u.user_id: tuple(s for s in u.specs if s.id % 2) for u in everyone()}
    moved = {u.user_id: tuple(s.id for s in u.specs if not s.id % 2) for u in everyone()}
    for user_id, specs in kept.items():
        each.set_user(user_id, specs, moved[user_id])
    told = once.set_users((user_id, specs, moved[user_id]) for user_id, specs in kept.items())
    assert once.specs == each.specs and set(once.specs) == {i for i in IDS if i % 2}
    planned = lambda p: sorted(i for g in p.plan.groups for i in g.ids.tolist())  # noqa: E731
    assert planned(once) == planned(each)
    assert all(set(m.users) == {1, 2, 3} and m.forget == () for m in told.values())
    assert {s.id for m in told.values() for specs in m.users.values() for s in specs} == set(once.specs)
