"""The two ways a user request fails, and how each becomes a :class:`~ubot.users.messages.Rejected`.

:class:`ValidationError`: a field's value breaks a rule (422). :class:`Refused`: the request is well
formed but cannot be carried out (wrong password 401, throttled 429, not found 404, conflict 409).
The plain logic raises them; the actor returns them as values, so the gateway never guesses.
"""

from __future__ import annotations

from ubot.users.messages import Rejected


class ValidationError(ValueError):
    """``field``: what is wrong (``message``); ``column``: 1-based position in a condition."""

    def __init__(self, field: str, message: str, column: int | None = None) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.column = column


class Refused(Exception):
    def __init__(
        self,
        status: int,
        title: str,
        description: str,
        *,
        field: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(f"{status} {title}: {description}")
        self.status = status
        self.title = title
        self.description = description
        self.field = field
        self.retry_after = retry_after


def rejected(error: ValidationError | Refused) -> Rejected:
    if isinstance(error, ValidationError):
        title = "Invalid condition" if error.field == "condition" else "Invalid field"
        return Rejected(422, title, str(error), field=error.field, column=error.column)
    return Rejected(
        error.status, error.title, error.description, field=error.field, retry_after=error.retry_after
    )
