"""Password strength rules and argon2id hashing."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from tests.support.users import cheap_hasher
from ubot.users.errors import ValidationError
from ubot.users.passwords import HASHER, Passwords, check_strength

USER, EMAIL = "alice", "alice.smith@example.com"


def weak(password: object, reason: str, username: str = USER, email: str = EMAIL) -> None:
    with pytest.raises(ValidationError) as caught:
        check_strength(password, username=username, email=email)
    assert caught.value.field == "password"
    assert reason in caught.value.message, caught.value.message


@pytest.mark.parametrize(
    "password",
    [
        "correct horse 42",
        "Tr0ub4dor&3x",
        "zebra-umbrella",
        "ÉtéÀParis2024",
        "x" * 200 + "Y1234",
        "Sunshine-Over-The-Hills",  # a common word, but not padded: fine
    ],
)
def test_strong_passwords_pass(password) -> None:
    assert check_strength(password, username=USER, email=EMAIL) == password


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("Short1!", "at least 10 characters"),
        ("a1" * 128 + "b", "at most 256 characters"),
        ("abcdefghijkl", "two kinds of characters"),
        ("ABCDEFGHIJKL", "two kinds of characters"),
        ("918273645091", "two kinds of characters"),
        ("!@#$%^&*()_+", "two kinds of characters"),
        ("aaaaaaaaaA1", "at least 5 different characters"),
        ("12121212aa", "at least 5 different characters"),
        ("my-alice-pw-99", "must not contain your username"),
        ("xx ALICE yy 1", "must not contain your username"),
        ("..alice.smith..", "must not contain your username"),
        ("Password123!", "most common passwords"),
        ("qwerty2024!!", "most common passwords"),
        ("!!iloveyou99", "most common passwords"),
        ("1q2w3e4r5t", "most common passwords"),
        ("P@ssw0rd123", "most common passwords"),
        ("Trustno1234", "most common passwords"),
        (None, "must be a string"),
    ],
)
def test_weak_passwords_say_why(password, reason) -> None:
    weak(password, reason)


def test_the_e_mail_local_part_is_refused_when_long_enough() -> None:
    weak(
        "bob.marley 1977", "must not contain your e-mail", username="someone", email="bob.marley@example.com"
    )
    weak("Zq", "at least 10", email="zq@example.com")  # (length rule first)
    # a two-letter local part is only refused as the whole password, not as a part of one
    assert check_strength("zq-and-more-7", username="someone", email="zq@example.com")


def test_the_field_name_is_the_callers() -> None:
    with pytest.raises(ValidationError) as caught:
        check_strength("short", username=USER, email=EMAIL, field="new_password")
    assert caught.value.field == "new_password"


def test_the_default_hasher_is_argon2id_with_rfc_9106_parameters() -> None:
    encoded = Passwords().hash("correct horse 42")

    assert encoded.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert (HASHER.time_cost, HASHER.memory_cost, HASHER.parallelism) == (3, 65536, 4)


def test_a_hash_verifies_its_password_only() -> None:
    passwords = Passwords(cheap_hasher())
    encoded = passwords.hash("correct horse 42")

    assert "correct horse 42" not in encoded
    assert passwords.verify(encoded, "correct horse 42")
    assert not passwords.verify(encoded, "correct horse 43")
    assert not passwords.verify(encoded, "")
    assert passwords.hash("correct horse 42") != encoded  # salted


def test_a_broken_hash_verifies_nothing_and_needs_rehash() -> None:
    passwords = Passwords(cheap_hasher())

    assert not passwords.verify("not-a-hash", "x")
    assert passwords.needs_rehash("not-a-hash")


def test_passwords_are_nfkc_normalized() -> None:
    passwords = Passwords(cheap_hasher())
    composed = "caf\u00e9 au lait 9"
    decomposed = "cafe\u0301 au lait 9"

    assert passwords.verify(passwords.hash(composed), decomposed)


def test_a_hash_with_weaker_parameters_needs_rehash() -> None:
    weak_hash = Passwords(cheap_hasher()).hash("correct horse 42")
    stronger = Passwords(PasswordHasher(time_cost=2, memory_cost=16, parallelism=1))

    assert stronger.verify(weak_hash, "correct horse 42")  # still accepted...
    assert stronger.needs_rehash(weak_hash)  # ...and due for a new hash
    assert not stronger.needs_rehash(stronger.hash("correct horse 42"))


def test_verifying_for_nobody_is_always_false() -> None:
    passwords = Passwords(cheap_hasher())

    assert passwords.verify_nothing("not a password: no user has this hash") is False
    assert passwords.verify_nothing("anything") is False
