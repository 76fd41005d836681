"""The recompute runner (one run at a time) and the nightly schedule that drives it.

The admin endpoint and the nightly job share one ``RecomputeRunner`` per app, whose lock makes sure
two recomputes never overlap: a second request while one runs is refused, not queued.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import zoneinfo
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from customers.recompute import RecomputeReport, recompute_all
from scrm import keys
from scrm.settings import Settings
from scrm.leader import Leadership, when_leading
from scrm.tasks import cancel_and_wait
from wecom.gateway import WeComGateway

_LOGGER = logging.getLogger(__name__)

JOB_ID: Final = "nightly_recompute"
# A nightly run missed by up to this long (process was down at 03:30) still runs when it comes up.
MISFIRE_GRACE: Final = 3 * 3600


class RecomputeRunner:
    """Runs ``recompute_all`` at most once at a time and remembers its progress and last report."""

    def __init__(
        self,
        maker: async_sessionmaker[AsyncSession],
        settings: Settings,
        *,
        clock: Callable[[], dt.datetime],
        gateway: WeComGateway | None = None,
    ) -> None:
        self.maker = maker
        self.settings = settings
        self.clock = clock
        self.gateway = gateway
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[RecomputeReport | None] | None = None
        self.stage = ""
        self.done = 0
        self.total = 0
        self.started_at: dt.datetime | None = None
        self.trigger = ""
        self.last_report: RecomputeReport | None = None
        self.last_error = ""

    @property
    def running(self) -> bool:
        """A run is in progress (or has been started and is about to take the lock)."""
        return self._lock.locked() or (self._task is not None and not self._task.done())

    def _progress(self, stage: str, done: int, total: int) -> None:
        self.stage, self.done, self.total = stage, done, total

    async def run(self, trigger: str = "admin") -> RecomputeReport | None:
        """Recompute now; None (and nothing done) when a run is already in progress."""
        if self._lock.locked():
            _LOGGER.info("recompute (%s) skipped: another run is in progress", trigger)
            return None
        async with self._lock:
            self.trigger, self.started_at, self.last_error = trigger, self.clock(), ""
            self._progress("start", 0, 0)
            try:
                report = await recompute_all(
                    self.maker, now=self.started_at, settings=self.settings, gateway=self.gateway,
                    progress=self._progress,
                )
            except Exception as exc:  # a background job: record and log, the next run tries again
                _LOGGER.exception("recompute (%s) failed", trigger)
                self.last_error = f"{type(exc).__name__}: {exc}"[:500]
                return None
            finally:
                self.stage = "done"
            self.last_report = report
            return report

    def start(self, trigger: str = "admin") -> bool:
        """Start a run in the background; False when one is already running."""
        if self.running:
            return False
        self._task = asyncio.create_task(self.run(trigger), name=f"recompute-{trigger}")
        return True

    async def wait(self) -> RecomputeReport | None:
        """Wait for the background run started by ``start`` (tests, shutdown)."""
        return await self._task if self._task is not None else None

    async def close(self) -> None:
        """Cancel a background run (its transactions roll back) and wait for it."""
        await cancel_and_wait(self._task)

    def status(self) -> dict[str, Any]:
        """Progress and the last report, JSON-ready."""
        return {
            "running": self.running,
            "stage": self.stage,
            "done": self.done,
            "total": self.total,
            "trigger": self.trigger,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "last_report": self.last_report.to_dict() if self.last_report else None,
            "last_error": self.last_error,
        }


RUNNER: Final = web.AppKey("recompute_runner", RecomputeRunner)


def build_scheduler(runner: RecomputeRunner, settings: Settings, leadership: Leadership | None = None
                    ) -> AsyncIOScheduler:
    """An (unstarted) scheduler running ``runner`` daily at settings.recompute_at, brand time."""
    tz = zoneinfo.ZoneInfo(settings.timezone)
    hour, minute = (int(part) for part in settings.recompute_at.split(":"))
    scheduler = AsyncIOScheduler(timezone=tz)
    scheduler.add_job(
        when_leading(leadership, runner.run, "nightly recompute"),
        CronTrigger(hour=hour, minute=minute, timezone=tz),
        kwargs={"trigger": "nightly"},
        id=JOB_ID,
        coalesce=True,
        max_instances=1,
        misfire_grace_time=MISFIRE_GRACE,
    )
    return scheduler


async def recompute_scheduler_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the app's RecomputeRunner (``app[RUNNER]``) and its nightly schedule.

    Add it after the database and gateway contexts (it reads SESSIONMAKER and GATEWAY).
    """
    settings = app[keys.SETTINGS]
    runner = RecomputeRunner(app[keys.SESSIONMAKER], settings, clock=app[keys.CLOCK], gateway=app.get(keys.GATEWAY))
    app[RUNNER] = runner
    scheduler = build_scheduler(runner, settings, app.get(keys.LEADERSHIP))
    scheduler.start()
    _LOGGER.info("nightly recompute scheduled at %s (%s)", settings.recompute_at, settings.timezone)
    yield
    scheduler.shutdown(wait=False)
    await runner.close()
