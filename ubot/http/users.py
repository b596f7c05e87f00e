"""HTTP resources for accounts, sessions, settings, strategies and condition checks.

Each responder declares its body and answers (:func:`~ubot.http.api.operation`): the body is decoded
into a shape of ``ubot/users/shapes.py`` (400 naming the member), handed to one call of the
UserManager (through the :class:`Gateway`), and its value is the answer. A domain exception it
raises becomes the matching error (``ubot/http/errors.py``): 422 names the field (and the column in
a condition), 409 a conflict, 404 what is not there.
"""

from __future__ import annotations

from datetime import datetime
from html import escape

import falcon

from ubot.http import browser
from ubot.http.api import operation
from ubot.http.clientaddr import client_address
from ubot.http.gateway import Gateway
from ubot.http.shapes import BrowserSession, ChannelInfo, Channels, ChannelTest, LinkQuery
from ubot.notify.channel import SENT
from ubot.notify.registry import not_configured
from ubot.notify.words import test_message, verification_message
from ubot.timeutil import iso_from_ms
from ubot.users import destinations as dest
from ubot.users import shapes as s
from ubot.users import tokens
from ubot.users.errors import NotFound, ValidationError
from ubot.users.manager import MAX_STRATEGIES, TEST_MESSAGES, TEST_WINDOW_MS
from ubot.users.manager import UserManager as U
from ubot.users.validation import CHANNEL_TARGETS

UNAVAILABLE = "the UserManager did not answer in time, or accounts are not enabled"
HASHING_BUSY = (
    "every password check is taken (the argon2 pool and its queue are full; wait Retry-After "
    "seconds), the UserManager did not answer in time, or accounts are not enabled"
)
STRATEGY_RULES = (
    "a value breaks a rule the schema cannot state: the condition (``column`` says where), symbols "
    "and top_n both given or neither, a channel whose target is not in the settings, a channel this "
    "server has not configured (the setting is named), symbols not in the market fetched (named), "
    "top_n above the coins fetched, an expiry in the past or more than 10 years ahead, a name of "
    "spaces only; or, enabled, it would take your strategies past [scanner] user_budget or "
    "everyone's past server_budget (the budget, its use and the strategy's cost are named)"
)
SETTINGS_RULES = (
    "a value breaks a rule the schema cannot state: a webhook host that is local or private, a time "
    "zone that does not exist, quiet hours that start and end together, a currency the market is not "
    "fetched in, a webhook_url without webhook_secret, a muted_until in the past or more than 7 days "
    "ahead"
)
STRATEGY_EXAMPLE = {
    "name": "BTC breakout",
    "condition": "price > 67400 and rsi(14) < 70",
    "timeframe": "1h",
    "symbols": ["BTC"],
    "channels": [],
    "frequency": "once_per_crossing",
    "cooldown_s": 3600,
}
SETTINGS_EXAMPLE = {
    "webhook_url": "https://example.com/hook",
    "webhook_secret": "s3cret-s3cret-s3cret",
    "quiet_hours": "22:00-07:00",
    "timezone": "Europe/Paris",
}
_STRATEGY_WRITE = {
    200: ("the strategy as saved", s.StrategyView),
    404: "no such strategy of yours",
    409: "another strategy of yours has this name",
    422: STRATEGY_RULES,
    503: UNAVAILABLE,
}


class _Resource:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.ask = gateway.ask_users


class UsersResource(_Resource):
    @operation(
        "Create an account",
        {
            201: ("the account", s.UserView),
            409: "the username or the e-mail address is taken",
            422: "the password is too weak (``field`` says why), or the e-mail's local part is too long",
            503: HASHING_BUSY,
        },
        body=s.Registration,
        example={"username": "ada", "email": "ada@example.com", "password": "correct horse battery staple"},
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = req.context.body
        resp.status = falcon.HTTP_201
        resp.media = self.gateway.accounts.register(body.username, body.email, body.password)


class SessionsResource(_Resource):
    @operation(
        "Log in: a bearer token valid for 30 days",
        {
            201: ("the token", s.LoginToken),
            401: "wrong username or password",
            429: "too many failed logins (wait Retry-After seconds), or over the rate limit",
            503: HASHING_BUSY,
        },
        body=s.Credentials,
        example={"username": "ada", "password": "correct horse battery staple"},
        headers={201: {"Cache-Control": {"schema": {"type": "string"}}}},
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = req.context.body
        login = self.gateway.accounts.login(
            body.username, body.password, client_address(req), "program", req.user_agent
        )
        resp.status = falcon.HTTP_201
        resp.cache_control = ["no-store"]
        resp.media = login


class BrowserSessionResource(_Resource):
    """``POST /v1/sessions/browser``: log in the dashboard with a session cookie (ubot/http/browser.py)."""

    @operation(
        "Log in a browser: the session in an HttpOnly, SameSite=Strict cookie",
        {
            201: ("the CSRF token to send back, and the session's expiry", BrowserSession),
            401: "wrong username or password",
            429: "too many failed logins (wait Retry-After seconds), or over the rate limit",
            503: HASHING_BUSY,
        },
        body=s.Credentials,
        example={"username": "ada", "password": "correct horse battery staple"},
        headers={201: {**browser.SET_COOKIE_HEADER, "Cache-Control": {"schema": {"type": "string"}}}},
        description=f"Sets the cookies {browser.SESSION_COOKIE} (HttpOnly) and {browser.CSRF_COOKIE}; "
        f"requests authenticated by the cookie that change something send {browser.CSRF_HEADER} "
        f"(the csrf_token). DELETE /v1/sessions/current logs out and clears them.",
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = req.context.body
        login = self.gateway.accounts.login(
            body.username, body.password, client_address(req), "browser", req.user_agent
        )
        expires_s = datetime.fromisoformat(login.expires_at).timestamp()
        max_age = max(1, int(expires_s - self.gateway.now()))
        csrf = browser.set_session(req, resp, login.token, max_age)
        resp.status = falcon.HTTP_201
        resp.cache_control = ["no-store"]
        resp.media = BrowserSession(csrf, login.expires_at)


class CurrentSessionResource(_Resource):
    auth_required = True

    @operation(
        "Log out: revoke the token sent (or the session cookie, which is cleared)",
        {204: ("revoked", None), 503: UNAVAILABLE},
        headers={204: browser.SET_COOKIE_HEADER},
    )
    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.gateway.accounts.logout(req.context.token)
        if req.context.via_cookie:
            browser.clear_session(resp)
        resp.status = falcon.HTTP_204


class AllSessionsResource(_Resource):
    """``GET /v1/me/sessions``: the user's live sessions; ``DELETE``: log out everywhere (every token
    of this user)."""

    auth_required = True

    @operation(
        "Your live sessions, the most recently used first (the one of this request is current)",
        {200: ("the sessions", s.Sessions), 503: UNAVAILABLE},
        description="Each login is a session: a browser's (the dashboard's cookie) or a program's "
        "(a bearer token). DELETE /v1/me/sessions/{id} logs one out.",
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.ask(U.list_sessions, req.context.user_id, req.context.token)

    @operation(
        "Log out everywhere: revoke every token of the user (a session cookie sent is cleared)",
        {200: ("how many were revoked", s.Revoked), 503: UNAVAILABLE},
        headers={200: browser.SET_COOKIE_HEADER},
    )
    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = s.Revoked(self.gateway.accounts.logout_everywhere(req.context.user_id))
        if req.context.via_cookie:
            browser.clear_session(resp)


class SessionResource(_Resource):
    """``DELETE /v1/me/sessions/{session_id}``: log out one session (another device, a program)."""

    auth_required = True

    @operation(
        "Log out one of your sessions (this one too: a session cookie sent is then cleared)",
        {204: ("revoked", None), 404: "no live session of yours has this id", 503: UNAVAILABLE},
        headers={204: browser.SET_COOKIE_HEADER},
    )
    def on_delete(self, req: falcon.Request, resp: falcon.Response, session_id: int) -> None:
        revoked = self.gateway.accounts.end_session(req.context.user_id, session_id)
        if req.context.via_cookie and revoked.token_hash == tokens.hash_token(req.context.token):
            browser.clear_session(resp)
        resp.status = falcon.HTTP_204


class PasswordResource(_Resource):
    """``PUT /v1/me/password``: change it; every session (this one too) is revoked."""

    auth_required = True

    @operation(
        "Change the password; every session is revoked (a session cookie sent is cleared)",
        {
            204: ("changed", None),
            403: "old_password is not the current password",
            422: "the new password is too weak, or the same as the old one (``field`` says why)",
            429: "too many wrong passwords (wait Retry-After seconds), or over the rate limit",
            503: HASHING_BUSY,
        },
        body=s.PasswordChange,
        example={
            "old_password": "correct horse battery staple",
            "new_password": "a new and longer passphrase",
        },
        headers={204: browser.SET_COOKIE_HEADER},
    )
    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = req.context.body
        self.gateway.accounts.change_password(req.context.user_id, body.old_password, body.new_password)
        if req.context.via_cookie:
            browser.clear_session(resp)
        resp.status = falcon.HTTP_204


class SettingsResource(_Resource):
    auth_required = True

    @operation("Your settings", {200: ("the settings", s.SettingsView), 503: UNAVAILABLE})
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.ask(U.get_settings, req.context.user_id)

    @operation(
        "Replace your settings",
        {
            200: ("the settings as saved", s.SettingsView),
            409: "a strategy still sends to a target this clears",
            422: SETTINGS_RULES,
            503: UNAVAILABLE,
        },
        body=s.Settings,
        example=SETTINGS_EXAMPLE,
        description="PUT replaces everything: a member left out is cleared (timezone back to UTC, "
        "quote_currency to the market's first currency, the mute ended). To change some members only, "
        "PATCH.",
    )
    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.ask(U.put_settings, req.context.user_id, req.context.body)

    @operation(
        "Change some of your settings",
        {
            200: ("the settings as saved", s.SettingsView),
            409: "a strategy still sends to a target this clears",
            422: SETTINGS_RULES,
            503: UNAVAILABLE,
        },
        body=s.SettingsPatch,
        example={"quiet_hours": None, "timezone": "America/New_York"},
        description="Only the members sent change; null clears one. Ending or shortening the mute "
        "(muted_until), or changing quiet_hours or timezone, sends what the mute or the quiet hours "
        "held as a new alert would go: at once, or when the quiet hours end.",
    )
    def on_patch(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.ask(U.patch_settings, req.context.user_id, req.context.body)


class StrategiesResource(_Resource):
    auth_required = True

    @operation("Your strategies", {200: ("the strategies", s.Strategies), 503: UNAVAILABLE})
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = s.Strategies(self.ask(U.list_strategies, req.context.user_id))

    @operation(
        "Create a strategy",
        {
            201: ("the strategy", s.StrategyView),
            409: f"another strategy of yours has this name, or you have the most strategies allowed ({MAX_STRATEGIES})",
            422: STRATEGY_RULES,
            503: UNAVAILABLE,
        },
        body=s.Strategy,
        example=STRATEGY_EXAMPLE,
        headers={201: {"Location": {"required": True, "schema": {"type": "string"}}}},
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        view = self.ask(U.create_strategy, req.context.user_id, req.context.body)
        resp.status = falcon.HTTP_201
        resp.location = f"/v1/me/strategies/{view.id}"
        resp.media = view


class StrategyResource(_Resource):
    auth_required = True

    @operation(
        "One of your strategies",
        {200: ("the strategy", s.StrategyView), 404: "no such strategy of yours", 503: UNAVAILABLE},
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, strategy_id: int) -> None:
        resp.media = self.ask(U.get_strategy, req.context.user_id, strategy_id)

    @operation("Replace a strategy", _STRATEGY_WRITE, body=s.Strategy, example=STRATEGY_EXAMPLE)
    def on_put(self, req: falcon.Request, resp: falcon.Response, strategy_id: int) -> None:
        resp.media = self.ask(U.update_strategy, req.context.user_id, strategy_id, req.context.body)

    @operation(
        "Change some members of a strategy",
        _STRATEGY_WRITE,
        body=s.StrategyPatch,
        example={"enabled": False},
        description="Only the members sent change (null clears an optional one); symbols replaces "
        "top_n and the reverse; an expiry not sent is kept, even past.",
    )
    def on_patch(self, req: falcon.Request, resp: falcon.Response, strategy_id: int) -> None:
        resp.media = self.ask(U.patch_strategy, req.context.user_id, strategy_id, req.context.body)

    @operation(
        "Delete a strategy", {204: ("deleted", None), 404: "no such strategy of yours", 503: UNAVAILABLE}
    )
    def on_delete(self, req: falcon.Request, resp: falcon.Response, strategy_id: int) -> None:
        self.ask(U.delete_strategy, req.context.user_id, strategy_id)
        resp.status = falcon.HTTP_204


class ConditionsResource(_Resource):
    @operation(
        "Check a condition, and a message template with it, without saving anything",
        {
            200: ("valid: the indicators it computes and the fields it reads", s.ConditionInfo),
            422: "the condition is not valid in the condition language, or the template is not valid "
            "for it (``field``: ``condition`` or ``template``; ``column`` says where)",
            503: UNAVAILABLE,
        },
        body=s.ConditionText,
        example={
            "condition": "rsi(14) < 30 and price > sma(50)",
            "template": "{symbol}: RSI {value:rsi(14):.1f}",
        },
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = req.context.body
        resp.media = self.ask(U.validate_condition, body.condition, body.template)


VERIFIED_BY = {
    "webhook": "a signed request with event verification, answered 2xx",
    "telegram": "the bot's deep link: send /start <token> to the bot",
    "sms": "a 6-digit code sent by SMS",
    "whatsapp": "a 6-digit code sent on WhatsApp",
    "email": "a 6-digit code sent by e-mail, or its link",
}


class ChannelsResource(_Resource):
    @operation("The delivery channels this server has configured", {200: ("the channels", Channels)})
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = Channels(
            [
                ChannelInfo(name, CHANNEL_TARGETS[name], channel.min_interval_s, VERIFIED_BY[name])
                for name, channel in self.gateway.channels.items()
                if name in CHANNEL_TARGETS
            ]
        )


class ChannelTestResource(_Resource):
    auth_required = True

    @operation(
        "Send yourself a test message on a channel",
        {
            200: ("what the provider answered (sent, retry or failed, and its words)", ChannelTest),
            404: "no such channel, or this server has not configured it (the setting is named)",
            409: "the destination is not verified (POST /v1/me/destinations/{channel}/verify)",
            422: "your settings have no target on this channel",
            429: f"more than {TEST_MESSAGES} test messages in {TEST_WINDOW_MS // 60_000} minutes",
            503: UNAVAILABLE,
        },
        description="Sent at once to the target in your settings, through the same channel alerts use "
        "(a webhook's body is {delivery_id, test: true, text}, signed as alerts are).",
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response, channel: str) -> None:
        sender = self.gateway.channels.get(channel)
        if sender is None:
            raise NotFound(not_configured(channel))
        where = self.ask(U.test_target, req.context.user_id, channel)
        outcome = sender.send(test_message(where, int(self.gateway.now() * 1000)))
        resp.media = ChannelTest(channel, outcome.status, outcome.detail)


# --- verified destinations (ubot/users/destinations.py) -----------------------------------------


class DestinationVerifyResource(_Resource):
    """``POST /v1/me/destinations/{channel}/verify``: send the one message a destination gets before
    it is verified."""

    auth_required = True

    @operation(
        "Verify one of your destinations: send it a code, a signed request or a Telegram link",
        {
            200: (
                "what was sent, the destination's state after it, and a Telegram deep link",
                s.VerificationSent,
            ),
            404: "no such channel, or this server has not configured it (the setting is named)",
            409: "the destination is already verified",
            422: "your settings have no target on this channel",
            429: f"one verification per destination in {dest.RESEND_MS // 1000} s, at most "
            f"{dest.USER_SENDS} per user in {dest.USER_WINDOW_MS // 60_000} minutes (wait Retry-After seconds)",
            503: UNAVAILABLE + ", or [notify] telegram_bot_username is not set",
        },
        description="e-mail, sms, whatsapp: a 6-digit code (valid 15 minutes, 5 wrong tries) to send "
        "back with /confirm; an e-mail also carries a link that confirms (GET /v1/destinations/confirm, "
        "when [http] public_url is set). webhook: a request signed as alerts are, with the body "
        '{"event": "verification", "verification": true, "delivery_id", "text"}; a 2xx answer verifies it. '
        "telegram: a deep link https://t.me/<bot>?start=<token> (valid 1 hour); the chat that sends "
        "its /start to the bot becomes your telegram_chat_id, verified.",
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response, channel: str) -> None:
        sender = self.gateway.channels.get(channel)
        if sender is None:
            raise NotFound(not_configured(channel))
        bot = getattr(sender, "bot_username", "") if channel == "telegram" else ""
        if channel == "telegram" and not bot:
            raise falcon.HTTPServiceUnavailable(
                title="Not enabled", description="set [notify] telegram_bot_username to link Telegram chats"
            )
        user_id = req.context.user_id
        what = self.ask(U.begin_verification, user_id, channel)
        if channel == "telegram":
            resp.media = s.VerificationSent(
                channel,
                dest.PENDING,
                "open the link and press Start: the chat that sends it gets your alerts",
                iso_from_ms(what.expires_at_ms),
                f"https://t.me/{bot}?start={what.token}",
            )
            return
        link = None
        if what.token and channel in dest.LINK_CHANNELS and self.gateway.public_url:
            link = f"{self.gateway.public_url.rstrip('/')}{LINK_PATH}?token={what.token}"
        outcome = sender.send(verification_message(what, int(self.gateway.now() * 1000), link))
        resp.media = self.ask(
            U.verification_answered, user_id, channel, what.target, outcome.status == SENT, outcome.detail
        )


class DestinationConfirmResource(_Resource):
    """``POST /v1/me/destinations/{channel}/confirm``: the code sent, given back."""

    auth_required = True

    @operation(
        "Confirm a destination with the code sent to it",
        {
            200: ("the destination, verified", s.DestinationView),
            404: "no such channel",
            422: "the code is wrong (the attempts left are said), expired, used up or never sent, "
            "or the channel is not verified by a code",
            503: UNAVAILABLE,
        },
        body=s.Confirmation,
        example={"code": "123456"},
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response, channel: str) -> None:
        resp.media = self.ask(U.confirm_destination, req.context.user_id, channel, req.context.body.code)


LINK_PATH = "/v1/destinations/confirm"
#: The confirmation page may post its own form, and load nothing.
LINK_CSP = "default-src 'none'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"


class DestinationLinkResource(_Resource):
    """``GET``/``POST /v1/destinations/confirm?token=``: the link of a verification e-mail. No login:
    the token is the proof. GET only shows a page with a Confirm button, which POSTs: a mail scanner
    that fetches every link cannot confirm an address by itself."""

    content_security_policy = LINK_CSP

    @operation(
        "The page a verification e-mail's link opens: a button that confirms the address",
        {200: ("the page", "text/html")},
        query=LinkQuery,
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        _page(
            resp,
            falcon.HTTP_200,
            "Confirm your e-mail address",
            "<p>Press Confirm to receive uBot alerts at this address.</p>"
            '<form method="post"><button type="submit">Confirm</button></form>',
        )

    @operation(
        "Confirm the e-mail address of a verification e-mail's link (it works once)",
        {
            200: ("a page saying the address is verified", "text/html"),
            422: ("a page saying the link is unknown, used or expired", "text/html"),
            503: UNAVAILABLE,
        },
        query=LinkQuery,
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            view = self.ask(U.confirm_link, req.context.query.token)
        except ValidationError as error:
            _page(resp, falcon.HTTP_422, "This link does not work", f"<p>{escape(error.message)}.</p>")
            return
        _page(
            resp,
            falcon.HTTP_200,
            "E-mail address confirmed",
            f"<p>uBot alerts may now be sent to {escape(str(view.target))}.</p>",
        )


def _page(resp: falcon.Response, status: str, title: str, body: str) -> None:
    resp.status = status
    resp.content_type = "text/html; charset=utf-8"
    resp.cache_control = ["no-store"]
    resp.text = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>uBot: {title}</title>'
        f'<meta name="viewport" content="width=device-width"></head><body><h1>{title}</h1>{body}</body></html>'
    )
