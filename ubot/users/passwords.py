"""Password hashing (argon2id) and the strength rules a new password must pass.

Hashing: argon2-cffi's ``PasswordHasher`` with RFC 9106's second recommended parameter set, spelled
out below (argon2id, 3 passes over 64 MiB, 4 lanes, 16-byte salt, 32-byte tag): about 140 ms per
hash on the development container, slow enough for an attacker holding the database, fast enough
for a login. The parameters live in the PHC string of each hash, so raising them later only means
``needs_rehash`` is true at the user's next login, and the login stores a new hash. Passwords are
NFKC-normalized first (NIST SP 800-63B), so the same password typed on two keyboards matches.

Strength (NIST SP 800-63B spirit: length over composition rules, plus a blocklist):

* 10..256 characters (the maximum bounds the work a login request can cause);
* not made of a single class (only lower-case letters, only digits, ...) and at least 5 different
  characters, which rules out ``aaaaaaaaaa1`` and ``1234512345``;
* not the username, nor containing it; not the e-mail's local part, nor containing it when it has 3
  characters or more;
* not one of the most common passwords, nor a common word padded with digits or symbols
  (``Password123!``, ``qwerty2024``), case-insensitively.
"""

from __future__ import annotations

import unicodedata

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from ubot.users.errors import ValidationError

PASSWORD_MIN = 10
PASSWORD_MAX = 256
DISTINCT_MIN = 5

#: RFC 9106 section 4, second recommended option ("memory-constrained environments").
HASHER = PasswordHasher(
    time_cost=3, memory_cost=64 * 1024, parallelism=4, hash_len=32, salt_len=16, type=Type.ID
)

#: Whole passwords from the top of public breach corpora that pass the length and class rules.
COMMON_PASSWORDS = frozenset(
    {
        "1q2w3e4r5t",
        "1q2w3e4r5t6y",
        "1qaz2wsx3edc",
        "zaq12wsxcde3",
        "q1w2e3r4t5",
        "q1w2e3r4t5y6",
        "a1b2c3d4e5",
        "1a2b3c4d5e",
        "qazwsx123456",
        "123456789a",
        "1234567890q",
        "123qweasdzxc",
        "qweasdzxc123",
        "asdf1234asdf",
        "abcd1234abcd",
        "1234qwer!@#$",
        "!qaz2wsx3edc",
        "1qaz@wsx3edc",
        "p@ssw0rd123",
        "p@$$w0rd123",
        "passw0rd123",
    }
)

#: Words that, padded with digits or symbols before or after, make most of the rest.
COMMON_WORDS = frozenset(
    {
        "abc",
        "abcd",
        "abcdef",
        "admin",
        "administrator",
        "asdf",
        "asdfgh",
        "asdfghjkl",
        "baseball",
        "bitcoin",
        "changeme",
        "charlie",
        "crypto",
        "dragon",
        "football",
        "freedom",
        "hello",
        "iloveyou",
        "letmein",
        "login",
        "master",
        "monkey",
        "p@ssw0rd",
        "p@ssword",
        "passw0rd",
        "password",
        "princess",
        "qwe",
        "qwer",
        "qwerty",
        "qwertyui",
        "qwertyuiop",
        "secret",
        "shadow",
        "starwars",
        "sunshine",
        "superman",
        "test",
        "trustno",
        "welcome",
        "whatever",
        "zxcvbnm",
    }
)


def normalize(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


def _classes(password: str) -> int:
    kinds = set()
    for char in password:
        if char.isdigit():
            kinds.add("digit")
        elif char.isalpha():
            kinds.add("upper" if char.isupper() else "lower")
        else:
            kinds.add("other")
    return len(kinds)


def _core(password: str) -> str:
    """The password without leading and trailing digits and symbols: ``"!!password123"`` ->
    ``"password"``. Letters inside (``p@ssw0rd``) stay."""
    start, end = 0, len(password)
    while start < end and not password[start].isalpha():
        start += 1
    while end > start and not password[end - 1].isalpha():
        end -= 1
    return password[start:end]


def check_strength(password: object, *, username: str, email: str, field: str = "password") -> str:
    """The password if it passes every rule; otherwise :class:`ValidationError` on ``field``."""
    if not isinstance(password, str):
        raise ValidationError(field, "must be a string")
    if len(password) < PASSWORD_MIN:
        raise ValidationError(field, f"must be at least {PASSWORD_MIN} characters long")
    if len(password) > PASSWORD_MAX:
        raise ValidationError(field, f"must be at most {PASSWORD_MAX} characters long")
    if _classes(password) < 2:
        raise ValidationError(
            field, "mix at least two kinds of characters (lower case, upper case, digits, symbols)"
        )
    if len(set(password)) < DISTINCT_MIN:
        raise ValidationError(field, f"must use at least {DISTINCT_MIN} different characters")
    folded = normalize(password).casefold()
    name = username.casefold()
    local = email.rsplit("@", 1)[0].casefold()
    if name and name in folded:
        raise ValidationError(field, "must not contain your username")
    if local and (folded == local or (len(local) >= 3 and local in folded)):
        raise ValidationError(field, "must not contain your e-mail address")
    if folded in COMMON_PASSWORDS or _core(folded) in COMMON_WORDS:
        raise ValidationError(field, "is one of the most common passwords; choose another")
    return password


class Passwords:
    """Hash and verify with one argon2id hasher (tests pass a cheap one)."""

    def __init__(self, hasher: PasswordHasher = HASHER) -> None:
        self.hasher = hasher
        self._dummy: str | None = None

    def hash(self, password: str) -> str:
        return self.hasher.hash(normalize(password))

    def verify(self, password_hash: str, password: str) -> bool:
        """Whether ``password`` matches. argon2 compares the tags in constant time."""
        try:
            return self.hasher.verify(password_hash, normalize(password))
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether the hash was made with other parameters than this hasher's (rehash at login)."""
        try:
            return self.hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    def verify_nothing(self, password: str) -> bool:
        """Spend the time of one verification, for a user who does not exist: a login then takes
        as long whether the username exists or not. Always ``False``."""
        if self._dummy is None:
            self._dummy = self.hash("not a password: no user has this hash")
        self.verify(self._dummy, password)
        return False
