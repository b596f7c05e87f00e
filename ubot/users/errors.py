"""The ways a user request fails: domain exceptions, raised by the plain logic and by the actor
(through the proxy's future) up to the gateway, which maps each class to an HTTP answer in one place
(``ubot/http/errors.py``). Nothing here knows HTTP.

Every one carries a short ``title``, a ``description`` for people, and when a request field is at
fault its name (``field``).
"""

from __future__ import annotations


class UserError(Exception):
    title = "Refused"

    def __init__(self, description: str, *, field: str | None = None, title: str | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.field = field
        if title is not None:
            self.title = title


class ValidationError(UserError, ValueError):
    """``field``: what is wrong (``message``); ``column``: 1-based position in a condition or a
    message template."""

    def __init__(self, field: str, message: str, column: int | None = None) -> None:
        title = {"condition": "Invalid condition", "template": "Invalid template"}.get(field, "Invalid field")
        super().__init__(f"{field}: {message}", field=field, title=title)
        self.message = message
        self.column = column


class BadCredentials(UserError):
    """A login with a wrong username or password."""

    title = "Invalid credentials"


class WrongPassword(UserError):
    """The current password given to change it is not the current one."""

    title = "Wrong password"


class Throttled(UserError):
    """Too many failed attempts: ``retry_after_s`` seconds to wait."""

    title = "Too many attempts"

    def __init__(self, description: str, retry_after_s: int) -> None:
        super().__init__(description)
        self.retry_after_s = retry_after_s


class NotFound(UserError):
    title = "Not found"


class Conflict(UserError):
    """Well formed, but in conflict with what exists: a name taken, a limit reached, a target in use."""

    title = "Conflict"


class OverBudget(UserError):
    """A strategy would take its owner's enabled strategies, or everyone's, past the Scanner's budget
    (``ubot/scan/cost.py``): ``budget`` names the setting, ``cost`` is the strategy's."""

    title = "Over the scan budget"

    def __init__(self, description: str, *, field: str, budget: str, cost: int) -> None:
        super().__init__(description, field=field)
        self.budget = budget
        self.cost = cost


class Busy(UserError):
    """Every argon2 thread is busy and the queue in front of them is full: nothing was done; try
    again in ``retry_after_s`` seconds (``ubot/users/hashing.py``)."""

    title = "Busy"

    def __init__(self, description: str, retry_after_s: int) -> None:
        super().__init__(description)
        self.retry_after_s = retry_after_s


class InProgress(UserError):
    """A bound on work in progress reached (a user's dry runs at once): the description names it."""

    title = "Too many at once"


class NotVerified(UserError):
    """The destination has not been verified by its owner: nothing but a verification goes there
    (``ubot/users/destinations.py``)."""

    title = "Destination not verified"
