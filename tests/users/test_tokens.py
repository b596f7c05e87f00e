"""Bearer tokens: random, stored as SHA-256, well-formedness, constant-time comparison, expiry."""

from __future__ import annotations

import hashlib

from ubot.users import tokens


def test_a_token_is_43_url_safe_characters_and_never_repeats() -> None:
    issued = {tokens.issue() for _ in range(100)}

    assert len(issued) == 100
    assert all(tokens.well_formed(t) for t in issued)


def test_only_the_sha256_hex_of_a_token_is_stored() -> None:
    token = tokens.issue()

    assert tokens.hash_token(token) == hashlib.sha256(token.encode()).hexdigest()
    assert len(tokens.hash_token(token)) == 64
    assert token not in tokens.hash_token(token)


def test_anything_else_is_not_a_token() -> None:
    token = tokens.issue()

    for other in (token[:-1], token + "A", token[:-1] + "=", token[:-1] + "é", "", None, 42, " " + token[1:]):
        assert not tokens.well_formed(other), other


def test_secrets_compare_equal_only_when_equal() -> None:
    assert tokens.same("abc", "abc")
    assert not tokens.same("abc", "abd")
    assert not tokens.same("abc", "abcd")
    assert tokens.same("ünïcode", "ünïcode")


def test_a_session_lasts_30_days() -> None:
    assert tokens.expiry(1_000) == 1_000 + 30 * 86_400_000
    assert tokens.expiry(1_000, 5) == 1_005
