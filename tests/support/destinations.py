"""Verified destinations in tests that are about something else: the user proves their targets
through the UserManager's own steps (a code given back, a webhook that answered), only the
provider's message is left out. Tests of verification itself send it (tests/users/test_destinations.py,
tests/http/test_destinations_api.py)."""

from __future__ import annotations

from ubot.users.manager import UserManager


def verify(manager: UserManager, user_id: int, *channels: str) -> None:
    """Verify the user's targets on ``channels`` (each must be in their settings): one verification
    message each, well within the throttle's sends per user (``USER_SENDS``) and per address."""
    for channel in channels:
        what = manager.begin_verification(user_id, channel)
        if what.code is not None:
            manager.confirm_destination(user_id, channel, what.code)
        else:
            manager.verification_answered(user_id, channel, what.target, True, "answered 200")
