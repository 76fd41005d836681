"""When pushes run: APScheduler 3 over a persistent job store, in the one process that holds the lease.

One job per active push (id ``push-<id>``) lives in the ``apscheduler_jobs`` table, so schedules
survive a restart together with each job's ``next_run_time``. A process that becomes the scheduler
(``Leadership``) starts its APScheduler on that table: an occurrence that fell due while no process
was scheduling is run once if it is at most ``push_grace_minutes`` late, and recorded as a skipped run
otherwise. A process that stops leading shuts its APScheduler down, so only one process advances the
shared jobs. Whatever the schedulers do, ``claim_run`` (one row per push and occurrence) is what makes
a run start at most once.

A loop every ``tick`` seconds follows the lease, reconciles jobs with the pushes table (edits made in
any process are seen on the next tick; ``notify`` for at once) and polls results of running pushes.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import functools
import logging
import zoneinfo
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, Protocol, TypeVar

from aiohttp import web
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.executors.base import BaseExecutor, run_coroutine_job
from apscheduler.job import Job
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_RUNNING, STATE_STOPPED, BaseScheduler
from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import Push, PushRun, PushStatus
from pushes.jobstore import create_jobstore_engine
from pushes.runner import PUSH_RUNNER
from pushes.schedule import Schedule, latest_due, load_schedule, trigger_for
from scrm import keys
from scrm.leader import Leadership
from scrm.settings import Settings
from scrm.tasks import cancel_and_wait

_LOGGER = logging.getLogger(__name__)
_T = TypeVar("_T")

JOB_PREFIX: Final = "push-"
#: The job body as a textual reference: job state is pickled into the table, so it must be importable.
FIRE_JOB_REF: Final = "pushes.scheduler:fire_job"
JOBS_TABLE: Final = "apscheduler_jobs"
#: Most missed occurrences of one push recorded as skipped on start (a minutely push down for a week
#: would otherwise insert ten thousand rows); the most recent ones are kept.
MAX_BACKFILL: Final = 1000
#: Extra slack when fire_job looks up the occurrence APScheduler just ran within the grace time: the
#: two read the clock a moment apart, and an occurrence at the very edge must not fall between them.
_LOOKUP_SLACK: Final = dt.timedelta(minutes=1)


class RunnerLike(Protocol):
    """What the scheduler needs from the push runner (pushes.runner.PushRunner)."""

    async def fire(self, push_id: int, scheduled_for: dt.datetime, trigger: str = "schedule") -> int | None:
        """Claim and carry out one run; its id, or None when the occurrence was already claimed."""
        ...

    async def record_skipped(self, push_id: int, scheduled_for: dt.datetime) -> None:
        """Record an occurrence missed beyond the grace time."""
        ...

    async def resume(self) -> None:
        """Continue runs a crashed scheduler left unfinished."""
        ...

    async def poll_due(self) -> None:
        """Poll the results of runs waiting for guides."""
        ...


def job_id_for(push_id: int) -> str:
    """The APScheduler job id of a push."""
    return f"{JOB_PREFIX}{push_id}"


def push_id_of(job_id: str) -> int | None:
    """The push a job id belongs to (None for a job that is not a push's)."""
    if not job_id.startswith(JOB_PREFIX) or not job_id[len(JOB_PREFIX):].isdigit():
        return None
    return int(job_id[len(JOB_PREFIX):])


# The PushScheduler whose APScheduler submitted the running job: fire_job only gets the job's kwargs,
# and several PushSchedulers may share a process (tests); the executor sets this around task creation,
# and create_task copies the context into the job's task.
_OWNER: contextvars.ContextVar[PushScheduler | None] = contextvars.ContextVar("push_scheduler", default=None)


async def fire_job(push_id: int, version: int) -> int | None:
    """APScheduler's job body: fire the push's due occurrence if the push is still as it was scheduled."""
    owner = _OWNER.get()
    if owner is None:
        _LOGGER.error("push %s fired with no push scheduler running here; not run", push_id)
        return None
    # Read before any await: the same moment at which APScheduler judged the occurrence on time.
    return await owner.fire_due(push_id, version, owner.clock())


class _PushExecutor(BaseExecutor):  # type: ignore[misc]  # apscheduler 3 is untyped
    """Starts each job as a task on the loop, tagged with its PushScheduler; submitted from the job-store thread."""

    def __init__(self, owner: PushScheduler) -> None:
        super().__init__()
        self._owner = owner
        self._batch: list[tuple[Job, list[dt.datetime], contextvars.Context]] | None = None

    def start(self, scheduler: AsyncIOScheduler, alias: str) -> None:
        super().start(scheduler, alias)
        self._loop: asyncio.AbstractEventLoop = scheduler._eventloop

    def _do_submit_job(self, job: Job, run_times: list[dt.datetime]) -> None:
        context = contextvars.copy_context()
        context.run(_OWNER.set, self._owner)  # the task created in this context inherits it
        if self._batch is not None:
            self._batch.append((job, run_times, context))
        else:
            self._loop.call_soon_threadsafe(self._start_task, job, run_times, context=context)

    @contextlib.contextmanager
    def batched(self) -> Iterator[None]:
        """Start the jobs submitted meanwhile only at the end (of a pass over the job store)."""
        self._batch = []
        try:
            yield
        finally:
            batch, self._batch = self._batch, None
            for job, run_times, context in batch:
                self._loop.call_soon_threadsafe(self._start_task, job, run_times, context=context)

    def _start_task(self, job: Job, run_times: list[dt.datetime]) -> None:
        if self._owner.closing:  # submitted by a wake-up that was already under way when we closed
            self._run_job_success(job.id, [])
            _LOGGER.warning("push job %s not started: the scheduler is closing", job.id)
            return
        task = self._loop.create_task(run_coroutine_job(job, job._jobstore_alias, run_times, self._logger.name))
        task.add_done_callback(functools.partial(self._task_done, job.id))
        self._owner._track(task, self._owner._fires)

    def _task_done(self, job_id: str, task: asyncio.Task[list[Any]]) -> None:
        if task.cancelled():
            self._run_job_success(job_id, [])
        elif (exc := task.exception()) is not None:
            self._run_job_error(job_id, exc, exc.__traceback__)
        else:
            self._run_job_success(job_id, task.result())

    # shutdown() is BaseExecutor's no-op: losing the lease must not cut a run short halfway through
    # creating WeCom tasks (AsyncIOExecutor would cancel it); PushScheduler.close() cancels runs itself.


class _PushAPScheduler(AsyncIOScheduler):  # type: ignore[misc]
    """An AsyncIOScheduler whose job-store work runs on a thread of its own, never on the event loop."""

    def __init__(self, *, thread: ThreadPoolExecutor, **options: Any) -> None:
        self._thread = thread
        self.processing: asyncio.Future[float | None] | None = None  # a _process_jobs under way
        self._again = False
        super().__init__(**options)

    def wakeup(self) -> None:
        """Process due jobs soon (callable from any thread)."""
        loop = self._eventloop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wakeup_on_loop)

    def _wakeup_on_loop(self) -> None:
        self._stop_timer()
        if self.state != STATE_RUNNING:
            return
        if self.processing is not None:  # one pass at a time; run another right after this one
            self._again = True
            return
        self.processing = self._eventloop.run_in_executor(self._thread, self._process_jobs)
        self.processing.add_done_callback(self._processed)

    def _processed(self, future: asyncio.Future[float | None]) -> None:
        self.processing = None
        if future.cancelled() or self.state == STATE_STOPPED:
            return
        if self._again:
            self._again = False
            self._wakeup_on_loop()
        else:
            self._start_timer(future.result())

    def _process_jobs(self) -> float | None:
        # A pass queued before pause() or shutdown() runs after it on the thread: base only checks for
        # "paused", and a stopped scheduler would still advance jobs in the shared store.
        if self.state != STATE_RUNNING:
            return None
        # APScheduler only guards get_due_jobs; an update_job that fails (the database is away)
        # must not leave the scheduler without a next wake-up. Runs start once the pass has written
        # the jobs' next run times: on SQLite they would otherwise queue behind those writes.
        try:
            with self._lookup_executor("default").batched():
                return super()._process_jobs()  # type: ignore[no-any-return]
        except Exception:
            _LOGGER.exception("push job store failed; retrying in %s s", self.jobstore_retry_interval)
            return float(self.jobstore_retry_interval)

    def shutdown(self, wait: bool = True) -> None:
        """Shut down on the calling thread (ours: the job-store thread), not deferred to the loop."""
        if self.state != STATE_STOPPED:
            BaseScheduler.shutdown(self, wait)

    def stop_timer(self) -> None:
        """Cancel the pending wake-up (on the loop's thread)."""
        self._stop_timer()


class PushScheduler:
    """Schedules the active pushes while this process holds the scheduler lease."""

    def __init__(self, maker: async_sessionmaker[AsyncSession], settings: Settings, runner: RunnerLike, *,
                 leadership: Leadership | None, clock: Callable[[], dt.datetime], tick: float = 5.0,
                 engine: Engine | None = None) -> None:
        self.maker = maker
        self.settings = settings
        self.runner = runner
        self.leadership = leadership
        self.clock = clock
        self.tick = tick
        self.grace = dt.timedelta(minutes=settings.push_grace_minutes)
        self.engine = engine if engine is not None else create_jobstore_engine(settings.database_url)
        self.closing = False
        # Every job-store call goes through this one thread: it may wait on a database lock without
        # stalling the loop, and APScheduler never sees two of our calls at once.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="push-jobstore")
        self._aps: _PushAPScheduler | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._needs_resume = False
        self._next_poll: dt.datetime | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._fires: set[asyncio.Future[Any]] = set()  # job runs (fire_job)
        self._chores: set[asyncio.Future[Any]] = set()  # skipped-run records from the listener

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def scheduling(self) -> bool:
        """Whether this process's APScheduler is running (it leads)."""
        return self._aps is not None

    def start(self) -> None:
        """Run the loop in the background: follow the lease, reconcile, poll, every ``tick`` seconds."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="push-scheduler")

    def notify(self) -> None:
        """A push was created or edited in this process: reconcile now rather than on the next tick."""
        self._wake.set()

    async def close(self) -> None:
        """Stop the loop and APScheduler; cancel runs in flight (the next scheduler resumes them)."""
        if self.closing:
            return
        self.closing = True
        await cancel_and_wait(self._task)
        self._task = None
        self._stop_scheduling("closing")
        for future in list(self._fires):
            future.cancel()
        # Skip records are one quick insert each and nobody would write them later: let them land.
        await asyncio.gather(*self._fires, *self._chores, return_exceptions=True)
        # Queued behind APScheduler's shutdown on the job-store thread.
        await self._in_thread(self.engine.dispose)
        self._thread.shutdown(wait=False, cancel_futures=True)

    async def _run(self) -> None:
        while True:
            try:
                await self.step()
            except Exception:  # the database is away, a bad push ...: log it and try again next tick
                _LOGGER.exception("push scheduler step failed; retrying in %s s", self.tick)
            try:
                await asyncio.wait_for(self._wake.wait(), self.tick)
            except TimeoutError:
                pass
            self._wake.clear()

    async def step(self) -> None:
        """One pass of the loop: start or stop scheduling with the lease, reconcile, resume, poll."""
        # A holder trusts its lease for 2/3 of the ttl and another process may take it only after the
        # whole ttl, so with a tick well under ttl/3 a lapsed leader stops before anyone else starts.
        if self.leadership is not None and not self.leadership.is_leader:
            if self._aps is not None:
                self._stop_scheduling("this process no longer holds the scheduler lease")
            return
        if self._aps is None:
            await self._start_scheduling()
        else:
            await self.reconcile()
        if self._needs_resume:
            await self.runner.resume()
            self._needs_resume = False
        now = self.clock()
        if self._next_poll is None or now >= self._next_poll:
            self._next_poll = now + dt.timedelta(seconds=self.settings.push_poll_seconds)
            await self.runner.poll_due()

    async def _start_scheduling(self) -> None:
        self._loop = asyncio.get_running_loop()
        aps = _PushAPScheduler(
            thread=self._thread,
            event_loop=self._loop,
            timezone=zoneinfo.ZoneInfo(self.settings.timezone),
            jobstores={"default": SQLAlchemyJobStore(engine=self.engine, tablename=JOBS_TABLE)},
            executors={"default": _PushExecutor(self)},
            job_defaults={"coalesce": True, "max_instances": 1,
                          "misfire_grace_time": self.settings.push_grace_minutes * 60},
        )
        aps.add_listener(self._on_missed, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        self._aps = aps
        try:
            # Paused until the jobs match the pushes and older misses are recorded: otherwise it would
            # fire jobs of cancelled pushes and coalesce away misses before we could record them.
            await self._in_thread(aps.start, True)
            await self.reconcile()
            await self._record_older_misses()
        except BaseException:
            self._stop_scheduling("could not prepare the jobs")
            raise
        aps.resume()
        self._needs_resume = True
        _LOGGER.info("push scheduler started")

    def _stop_scheduling(self, why: str) -> None:
        aps, self._aps = self._aps, None
        if aps is None:
            return
        aps.stop_timer()
        if aps.state == STATE_RUNNING:
            aps.pause()  # at once, so a wake-up already queued does nothing
        self._thread.submit(aps.shutdown, False)
        _LOGGER.info("push scheduler stopped: %s", why)

    async def _in_thread(self, func: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, functools.partial(func, *args))

    # -- jobs ----------------------------------------------------------------------------------------

    async def reconcile(self) -> None:
        """Make the jobs match the active pushes, leaving unchanged jobs' next run alone; store next_run_at."""
        aps = self._aps
        if aps is None:
            return
        now = self.clock()
        async with self.maker() as session:
            pushes = (await session.scalars(select(Push).where(Push.status == PushStatus.ACTIVE))).all()
            once_ids = [p.id for p in pushes if p.schedule.get("kind") == "once"]
            claimed: set[tuple[int, dt.datetime]] = {(row[0], row[1]) for row in (await session.execute(
                select(PushRun.push_id, PushRun.scheduled_for).where(PushRun.push_id.in_(once_ids))
            )).all()} if once_ids else set()
        scheduled, finished = await self._in_thread(self._apply, aps, pushes, claimed, now)
        await self._store_next_runs(pushes, scheduled, finished)

    def _apply(self, aps: _PushAPScheduler, pushes: Sequence[Push], claimed: set[tuple[int, dt.datetime]],
               now: dt.datetime) -> tuple[dict[int, Job | None], list[Push]]:
        """The job-store half of reconcile (on the job-store thread)."""
        jobs = {job.id: job for job in aps.get_jobs() if push_id_of(job.id) is not None}
        scheduled: dict[int, Job | None] = {}
        finished: list[Push] = []
        for push in pushes:
            job_id = job_id_for(push.id)
            job = jobs.pop(job_id, None)
            schedule = load_schedule(push.schedule)
            if schedule.kind == "once" and (push.id, schedule.at) in claimed:
                # Its one run is claimed (running, done or skipped): re-adding the job would fire it
                # again only to find the claim taken, every tick until the runner marks it finished.
                if job is not None:
                    _remove(aps, job_id)
                scheduled[push.id] = None
                continue
            if job is None or job.kwargs.get("version") != push.version:
                # New or edited: (re)computed from now. An unchanged job is left alone, or its
                # next_run_time (how a restart sees what it missed) would move past the miss.
                job = aps.add_job(FIRE_JOB_REF, trigger_for(schedule, zoneinfo.ZoneInfo(push.timezone)),
                                  id=job_id, name=f"push {push.id} v{push.version}",
                                  kwargs={"push_id": push.id, "version": push.version}, replace_existing=True)
                _LOGGER.info("push %s v%s scheduled, next run %s", push.id, push.version, job.next_run_time)
            scheduled[push.id] = job
            if job.next_run_time is None and _ended(schedule, now, self.grace):
                finished.append(push)
                _remove(aps, job_id)
        for job_id in jobs:  # jobs of pushes that are gone, paused, cancelled or finished
            _remove(aps, job_id)
            _LOGGER.info("%s unscheduled: the push is no longer active", job_id)
        return scheduled, finished

    async def _store_next_runs(self, pushes: Sequence[Push], scheduled: dict[int, Job | None],
                               finished: list[Push]) -> None:
        async with self.maker.begin() as session:
            for push in pushes:
                job = scheduled.get(push.id)
                next_run = job.next_run_time.astimezone(dt.timezone.utc) if job and job.next_run_time else None
                if push.next_run_at != next_run:
                    # Only if not edited meanwhile: the edit's own reconcile writes the fresh value.
                    await session.execute(update(Push).where(Push.id == push.id, Push.version == push.version)
                                          .values(next_run_at=next_run))
            for push in finished:
                await session.execute(update(Push).where(
                    Push.id == push.id, Push.version == push.version, Push.status == PushStatus.ACTIVE,
                ).values(status=PushStatus.FINISHED, next_run_at=None))
                _LOGGER.info("push %s finished: its schedule ended", push.id)
            await session.execute(update(Push).where(
                Push.status != PushStatus.ACTIVE, Push.next_run_at.is_not(None)).values(next_run_at=None))

    async def _record_older_misses(self) -> None:
        """Record as skipped every missed occurrence but the latest, which APScheduler runs or reports."""
        assert self._aps is not None
        now = self.clock()
        for job in await self._in_thread(self._aps.get_jobs):
            push_id = push_id_of(job.id)
            if push_id is None or job.next_run_time is None or job.next_run_time > now:
                continue
            missed = _due_times(job, now)
            if len(missed) > 1:
                _LOGGER.warning("push %s missed %d occurrences while no process was scheduling",
                                push_id, len(missed))
            for when in missed[:-1]:  # coalesced away by APScheduler, so nobody else would record them
                await self.runner.record_skipped(push_id, when.astimezone(dt.timezone.utc))

    async def fire_due(self, push_id: int, version: int, now: dt.datetime) -> int | None:
        """Fire the occurrence of ``push_id`` due at ``now`` if the push is still active at ``version``."""
        async with self.maker() as session:
            push = await session.get(Push, push_id)
        if push is None or push.status != PushStatus.ACTIVE or push.version != version:
            _LOGGER.info("push %s v%s fired but is %s now; not run", push_id, version,
                         "gone" if push is None else f"{push.status} v{push.version}")
            return None
        scheduled_for = latest_due(load_schedule(push.schedule), zoneinfo.ZoneInfo(push.timezone), now,
                                    self.grace + _LOOKUP_SLACK)
        if scheduled_for is None:
            _LOGGER.warning("push %s fired at %s with no occurrence due; not run", push_id, now)
            return None
        # No lease check here: this job's next_run_time is already advanced in the shared store, so
        # dropping it would lose the occurrence; claim_run keeps a second start out anyway.
        return await self.runner.fire(push_id, scheduled_for)

    def _on_missed(self, event: JobEvent) -> None:
        """APScheduler listener (any thread): an occurrence that will not run is recorded as skipped."""
        push_id = push_id_of(event.job_id)
        if push_id is None or self._loop is None:
            return
        if event.code == EVENT_JOB_MISSED:
            times, why = [event.scheduled_run_time], "beyond the grace time"
        else:  # EVENT_JOB_MAX_INSTANCES: the previous run is still being created
            times, why = list(event.scheduled_run_times), "while its previous run was still starting"
        for when in times:
            when = when.astimezone(dt.timezone.utc)
            _LOGGER.warning("push %s missed its run at %s %s: recorded skipped", push_id, when, why)
            self._loop.call_soon_threadsafe(self._spawn, functools.partial(self.runner.record_skipped, push_id, when))

    # -- tasks -------------------------------------------------------------------------------------------

    def _spawn(self, make: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        assert self._loop is not None
        self._track(self._loop.create_task(make()), self._chores)

    def _track(self, future: asyncio.Future[Any], into: set[asyncio.Future[Any]]) -> None:
        into.add(future)
        future.add_done_callback(into.discard)
        future.add_done_callback(_log_failure)

    async def run_due(self) -> None:
        """Process due jobs now and wait for the runs and records they start (tests, and a manual nudge)."""
        if self._aps is not None:
            self._aps.wakeup()
        await self.settle()

    async def settle(self) -> None:
        """Wait until the job processing, runs and skip records started so far are done."""
        while True:
            # One turn first: wake-ups, task starts and skip records arrive as queued callbacks.
            await asyncio.sleep(0)
            pending = [f for f in (*self._fires, *self._chores) if not f.done()]
            if self._aps is not None and self._aps.processing is not None:
                pending.append(self._aps.processing)
            if not pending:
                return
            await asyncio.gather(*pending, return_exceptions=True)


def _remove(aps: AsyncIOScheduler, job_id: str) -> None:
    try:
        aps.remove_job(job_id)
    except JobLookupError:  # already gone (a once job removes itself after it fires)
        pass


def _ended(schedule: Schedule, now: dt.datetime, grace: dt.timedelta) -> bool:
    """A recurring schedule whose end, and the grace after it (its last run may still start), are past."""
    return schedule.kind == "cron" and schedule.end is not None and schedule.end + grace < now


def _due_times(job: Job, now: dt.datetime) -> list[dt.datetime]:
    """The job's occurrences from its next_run_time up to ``now`` (the last MAX_BACKFILL of them)."""
    times: deque[dt.datetime] = deque(maxlen=MAX_BACKFILL)
    when = job.next_run_time
    while when is not None and when <= now:
        times.append(when)
        when = job.trigger.get_next_fire_time(when, now)
    return list(times)


def _log_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and (exc := future.exception()) is not None:
        _LOGGER.error("push scheduler task failed", exc_info=exc)


PUSH_SCHEDULER: Final = web.AppKey("push_scheduler", PushScheduler)


async def push_scheduler_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx (after leadership and the push runner): ``app[PUSH_SCHEDULER]``, started."""
    scheduler = PushScheduler(app[keys.SESSIONMAKER], app[keys.SETTINGS], app[PUSH_RUNNER],
                              leadership=app.get(keys.LEADERSHIP), clock=app[keys.CLOCK])
    app[PUSH_SCHEDULER] = scheduler
    scheduler.start()
    yield
    await scheduler.close()
