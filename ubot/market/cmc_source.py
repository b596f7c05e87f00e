"""The real market: CoinMarketCap's listings and global metrics, one tick at a time.

:class:`CmcSource` turns the client's four kinds of failure into what the pipeline does about them:

=====================================  =====================================================
the client raises                      the tick
=====================================  =====================================================
``CmcFatalError`` (bad key, plan...)   ``FatalSourceError``: stop and tell the user what to fix
``CmcRateLimited`` (429, 1008-1011)    ``SourceError``; later ticks are skipped *without a call*
                                       until ``resume_at``, so there is no retry storm
``CmcTransientError`` (after retries)  ``SourceError``: skipped, the next tick tries again
``CmcBadResponse``                     ``SourceError``: skipped with the precise problem
=====================================  =====================================================

The global metrics are secondary: when they fail alone the listings still make the tick, with
``global_metrics=None``, and the reason is logged and shown in :meth:`CmcSource.status`. A plan
that does not include them (fatal for that endpoint) stops asking for them.

:meth:`CmcSource.status` is thread-safe: ``/health`` may read it while the Fetcher fetches.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass
from typing import Any

from ubot.clocks import Clock
from ubot.logtext import printable
from ubot.market.coinmarketcap import (
    CmcBadResponse,
    CmcClient,
    CmcError,
    CmcFatalError,
    CmcRateLimited,
    CmcTransientError,
)
from ubot.market.credits import KeyInfo, UsageTracker, convert_count, parse_key_info, tick_credits
from ubot.market.recorder import Recorder
from ubot.market.snapshot import RawMarket
from ubot.market.source import FatalSourceError, SourceError
from ubot.timeutil import iso_from_ms, parse_iso_ms

log = logging.getLogger(__name__)


def _iso(epoch_s: float | None) -> str | None:
    return None if epoch_s is None else iso_from_ms(round(epoch_s * 1000))


@dataclass(frozen=True)
class CmcStatus:
    """The CoinMarketCap source's state for ``/health``."""

    state: str  # "ok" | "degraded"
    reason: str  # why degraded ("" when ok)
    resume_at: float | None  # epoch seconds: no call before then (rate limited)
    credits_today: int  # UTC day
    credits_month: int  # UTC calendar month
    credit_limit_monthly: int | None
    credits_per_tick: int  # at the current limit, currencies and global metrics
    rate_limit_minute: int | None
    plan_from: str  # "key_info" | "settings" | "unknown"
    global_metrics: bool  # still fetched
    skipped_rate_limited: int  # ticks skipped without a call while rate limited

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with ``resume_at`` as ISO-8601 UTC."""
        doc = asdict(self)
        doc["resume_at"] = _iso(self.resume_at)
        return doc


class CmcSource:
    """:class:`~ubot.market.source.MarketSource` over a :class:`CmcClient`.

    ``budget_s``: how long one tick may spend on CoinMarketCap, from the tick's scheduled time;
    retries stop at ``at + budget_s`` (pass a fraction of the interval, e.g. half, so a retry never
    delays the next tick). ``monthly_credits``: the plan's allowance when ``/v1/key/info`` cannot
    say (the ``[coinmarketcap] monthly_credits`` setting).
    """

    name = "cmc"

    def __init__(
        self,
        client: CmcClient,
        limit: int,
        convert: str,
        clock: Clock,
        budget_s: float,
        recorder: Recorder | None = None,
        *,
        with_global: bool = True,
        monthly_credits: int | None = None,
        usage: UsageTracker | None = None,
    ) -> None:
        self.client = client
        self.limit = limit
        self.convert = convert
        self.clock = clock
        self.budget_s = budget_s
        self.recorder = recorder
        self.monthly_credits = monthly_credits
        if usage is None:
            usage = client.usage if client.usage is not None else UsageTracker()
        if client.usage is None:
            client.usage = usage  # the client sums every answer's status.credit_count into it
        self.usage = usage
        self._lock = threading.Lock()
        self._with_global = with_global
        self._plan: KeyInfo | None = None
        self._reason = ""
        self._resume_at: float | None = None
        self._limit_name = ""
        self._skipped = 0

    def __repr__(self) -> str:
        return f"CmcSource({self.client!r}, limit={self.limit}, convert={self.convert!r})"

    # -- start-up ---------------------------------------------------------------------------------

    def load_plan(self) -> KeyInfo | None:
        """Read the key's plan and usage from ``/v1/key/info`` (free). Call once at start-up.

        Raises ``FatalSourceError`` when the key is refused, so a bad key stops uBot before it
        starts. Any other failure falls back to ``monthly_credits`` and returns ``None``.
        """
        try:
            info = parse_key_info(self.client.key_info(deadline=self.clock.now() + self.budget_s))
        except CmcFatalError as exc:
            raise FatalSourceError(str(exc)) from None
        except CmcRateLimited as exc:
            self._rate_limited(exc)
            log.warning(
                "CoinMarketCap plan unknown: %s; using [coinmarketcap] monthly_credits", printable(exc)
            )
            return None
        except (CmcError, ValueError) as exc:
            log.warning(
                "CoinMarketCap plan unknown: %s; using [coinmarketcap] monthly_credits", printable(exc)
            )
            return None
        self.usage.seed(info.day_used, info.month_used, self.clock.now())
        with self._lock:
            self._plan = info
        return info

    @property
    def plan(self) -> KeyInfo | None:
        return self._plan

    @property
    def monthly_allowance(self) -> int | None:
        """The plan's monthly credits: from ``/v1/key/info`` if read, else the setting."""
        return self._plan.credit_limit_monthly if self._plan else self.monthly_credits

    # -- MarketSource -----------------------------------------------------------------------------

    def fetch(self, at_ms: int) -> RawMarket:
        now = self.clock.now()
        with self._lock:
            resume_at = self._resume_at
            if resume_at is not None and now < resume_at:
                self._skipped += 1
                raise SourceError(f"rate limited ({self._limit_name}) until {_iso(resume_at)}")
            self._resume_at = None  # the limit has reset: try again
        deadline = at_ms / 1000 + self.budget_s
        try:
            listings = self.client.listings(self.limit, self.convert, deadline)
        except CmcFatalError as exc:
            self._degraded(str(exc))
            raise FatalSourceError(str(exc)) from None
        except CmcRateLimited as exc:
            self._rate_limited(exc)
            raise SourceError(f"rate limited ({exc.limit}) until {_iso(exc.resume_at)}") from None
        except (CmcTransientError, CmcBadResponse) as exc:
            self._degraded(str(exc))
            raise SourceError(str(exc)) from None
        global_doc, problem = self._global(deadline)
        with self._lock:
            self._reason = problem  # "" when all went well
        if self.recorder is not None:
            try:
                self.recorder.write(at_ms, listings, global_doc)
            except OSError as exc:
                log.error("cannot record tick to %s: %s", self.recorder.directory, exc)
        return RawMarket(listings=listings, global_metrics=global_doc, origin=self.name)

    def _global(self, deadline: float) -> tuple[dict[str, Any] | None, str]:
        """(global-metrics document or None, why it is missing)."""
        if not self._with_global:
            return None, ""
        if self.clock.now() >= deadline:
            problem = "global metrics left out: the tick's time budget is used up"
            log.warning("%s", printable(problem))
            return None, problem
        try:
            return self.client.global_metrics(self.convert, deadline), ""
        except CmcFatalError as exc:
            with self._lock:
                self._with_global = False  # e.g. a plan without the endpoint: stop asking
            problem = f"global metrics turned off: {exc}"
        except CmcRateLimited as exc:
            self._rate_limited(exc)
            problem = f"global metrics left out: rate limited ({exc.limit}) until {_iso(exc.resume_at)}"
        except CmcError as exc:
            problem = f"global metrics left out: {exc}"
        log.warning("%s", printable(problem))
        return None, problem

    def close(self) -> None:
        self.client.close()

    # -- state ------------------------------------------------------------------------------------

    def _degraded(self, reason: str) -> None:
        with self._lock:
            self._reason = reason

    def _rate_limited(self, exc: CmcRateLimited) -> None:
        resume_at = exc.resume_at
        plan = self._plan
        if exc.error_code == 1010 and plan and plan.monthly_reset_at:
            try:  # paid plans reset on their billing date, which /v1/key/info gives
                reset = parse_iso_ms(plan.monthly_reset_at) / 1000
                if reset > self.clock.now():
                    resume_at = reset
            except ValueError:
                pass
        with self._lock:
            self._resume_at = max(resume_at, self._resume_at or 0.0)
            self._limit_name = exc.limit
            self._reason = f"rate limited ({exc.limit}) until {_iso(self._resume_at)}"
        log.warning("CoinMarketCap: %s; no call until then", printable(exc))

    def status(self) -> CmcStatus:
        now = self.clock.now()
        with self._lock:
            resume_at = self._resume_at if self._resume_at and now < self._resume_at else None
            reason = self._reason
            plan = self._plan
            skipped = self._skipped
            with_global = self._with_global
        if plan:
            limit, per_minute, plan_from = plan.credit_limit_monthly, plan.rate_limit_minute, "key_info"
        elif self.monthly_credits:
            limit, per_minute, plan_from = self.monthly_credits, None, "settings"
        else:
            limit, per_minute, plan_from = None, None, "unknown"
        return CmcStatus(
            state="degraded" if reason else "ok",
            reason=reason,
            resume_at=resume_at,
            credits_today=self.usage.today(now),
            credits_month=self.usage.this_month(now),
            credit_limit_monthly=limit,
            credits_per_tick=tick_credits(self.limit, with_global, convert_count(self.convert)),
            rate_limit_minute=per_minute,
            plan_from=plan_from,
            global_metrics=with_global,
            skipped_rate_limited=skipped,
        )
