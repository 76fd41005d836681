"""Keep attribution and commission current: nightly, and shortly after orders arrive.

Both recomputes are set-based and idempotent, so the refresher only decides *when* and *from when*:

* nightly (brand time, half an hour after the customer recompute): orders since the start of the
  previous month, so a late refund of last month's order still shrinks last month's statement;
  then the commission statements of the previous and the current month;
* after an order webhook: a run a few seconds later (``debounce``) from the earliest order the
  webhook touched, so a burst of webhooks becomes one run, and a refund of an old order reaches
  that order's month.

One run at a time per process; a request that arrives during a run is remembered and run after it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import zoneinfo
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scrm import keys
from scrm.settings import Settings
from scrm.leader import Leadership, when_leading
from scrm.tasks import cancel_and_wait
from sharing.attribution import recompute_attribution
from sharing.commission import month_bounds, month_of
from sharing.commission_service import PlanNotSet, recompute_month

_LOGGER = logging.getLogger(__name__)

JOB_ID: Final = "nightly_sharing_refresh"
#: Seconds between an order webhook and the run it asks for: webhooks come in bursts.
DEBOUNCE: Final = 10.0
#: After the customer recompute (stats and tags) at settings.recompute_at.
NIGHTLY_DELAY: Final = dt.timedelta(minutes=30)
MISFIRE_GRACE: Final = 3 * 3600


@dataclass
class RefreshReport:
    """What one refresh did."""

    trigger: str
    since: dt.datetime
    attributed: int = 0
    months: list[str] = field(default_factory=list)
    commission_skipped: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"trigger": self.trigger, "since": self.since.isoformat(), "attributed": self.attributed,
                "months": self.months, "commission_skipped": self.commission_skipped}


def months_between(first: str, last: str) -> list[str]:
    """Every ``YYYY-MM`` from ``first`` to ``last`` inclusive."""
    year, month = (int(p) for p in first.split("-"))
    months = []
    while f"{year:04d}-{month:02d}" <= last:
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def previous_month_start(now: dt.datetime, tz: str) -> dt.datetime:
    """The first instant of the month before ``now``'s month, in the brand's zone."""
    start, _ = month_bounds(month_of(now, tz), tz)
    return month_bounds(month_of(start - dt.timedelta(days=1), tz), tz)[0]


class SharingRefresher:
    """Runs attribution then commission, one run at a time, on a schedule or soon after new orders."""

    def __init__(self, maker: async_sessionmaker[AsyncSession], settings: Settings, *,
                 clock: Callable[[], dt.datetime], debounce: float = DEBOUNCE) -> None:
        self.maker = maker
        self.settings = settings
        self.clock = clock
        self.debounce = debounce
        self._lock = asyncio.Lock()
        self._pending: dt.datetime | None = None  # earliest order time asked for and not yet run
        self._task: asyncio.Task[None] | None = None
        self.last_report: RefreshReport | None = None
        self.last_error = ""

    async def run(self, trigger: str, since: dt.datetime | None = None) -> RefreshReport | None:
        """Recompute attribution from ``since`` (default: the previous month) and the months it touches."""
        async with self._lock:
            now = self.clock()
            tz = self.settings.timezone
            since = min(since, previous_month_start(now, tz)) if since else previous_month_start(now, tz)
            report = RefreshReport(trigger, since)
            try:
                summary = await recompute_attribution(self.maker, since=since, now=now,
                                                      window_days=self.settings.attribution_days)
                report.attributed = summary.by_share_code + summary.by_click
                for month in months_between(month_of(since, tz), month_of(now, tz)):
                    try:
                        await recompute_month(self.maker, month, tz=tz, now=now)
                    except PlanNotSet as exc:  # no plan yet: attribution is still worth having
                        report.commission_skipped = str(exc)
                        break
                    report.months.append(month)
            except Exception as exc:  # a background job: record and log, the next run tries again
                _LOGGER.exception("sharing refresh (%s) failed", trigger)
                self.last_error = f"{type(exc).__name__}: {exc}"[:500]
                return None
            self.last_report, self.last_error = report, ""
            _LOGGER.info("sharing refresh (%s): %d orders attributed since %s, commission %s", trigger,
                         report.attributed, since.isoformat(), ", ".join(report.months) or "skipped")
            return report

    def orders_changed(self, earliest: dt.datetime) -> None:
        """New or changed orders (placed at ``earliest`` or later): refresh shortly, once per burst."""
        self._pending = earliest if self._pending is None else min(self._pending, earliest)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._soon(), name="sharing-refresh")

    async def _soon(self) -> None:
        while self._pending is not None:
            await asyncio.sleep(self.debounce)
            since, self._pending = self._pending, None
            await self.run("orders", since)

    async def wait(self) -> None:
        """Wait for the refresh that new orders asked for (tests, shutdown)."""
        if self._task is not None:
            await self._task

    async def close(self) -> None:
        """Cancel a pending or running refresh (its transaction rolls back)."""
        await cancel_and_wait(self._task)

    def status(self) -> dict[str, Any]:
        """The last run, JSON-ready."""
        return {"running": self._lock.locked(), "pending": self._pending is not None,
                "last_report": self.last_report.to_dict() if self.last_report else None,
                "last_error": self.last_error}


REFRESHER: Final = web.AppKey("sharing_refresher", SharingRefresher)


def build_scheduler(refresher: SharingRefresher, settings: Settings, leadership: Leadership | None = None
                    ) -> AsyncIOScheduler:
    """An (unstarted) scheduler running the nightly refresh half an hour after the customer recompute."""
    tz = zoneinfo.ZoneInfo(settings.timezone)
    hour, minute = (int(part) for part in settings.recompute_at.split(":"))
    at = dt.datetime(2000, 1, 1, hour, minute) + NIGHTLY_DELAY
    scheduler = AsyncIOScheduler(timezone=tz)
    scheduler.add_job(when_leading(leadership, refresher.run, "nightly sharing refresh"), CronTrigger(hour=at.hour, minute=at.minute, timezone=tz),
                      kwargs={"trigger": "nightly"}, id=JOB_ID, coalesce=True, max_instances=1,
                      misfire_grace_time=MISFIRE_GRACE)
    return scheduler


async def sharing_refresh_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the refresher (``app[REFRESHER]``), its nightly job, and its ear on order webhooks."""
    settings = app[keys.SETTINGS]
    refresher = SharingRefresher(app[keys.SESSIONMAKER], settings, clock=app[keys.CLOCK])
    app[REFRESHER] = refresher
    app[keys.ORDER_LISTENERS].append(refresher.orders_changed)
    scheduler = build_scheduler(refresher, settings, app.get(keys.LEADERSHIP))
    scheduler.start()
    yield
    scheduler.shutdown(wait=False)
    await refresher.close()
