"""The push scheduler: once and recurring pushes on a controllable clock, restarts with missed runs,
edits, and two schedulers on one database (SQLite here, PostgreSQL with DATABASE_URL).

APScheduler 3 reads the wall clock itself (``datetime.now`` in its scheduler and executor modules);
the ``aps_clock`` fixture points both at the test's FakeClock, and tests drive the scheduler with
``step()`` (lease, reconcile) and ``run_due()`` (wake APScheduler, wait for what it starts) instead of
waiting on its timers. The recording runner claims runs with the real ``claim_run``, so "a run never
starts twice" is the database's unique key at work, not bookkeeping in the test.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable
from typing import Any

import apscheduler.executors.base
import apscheduler.schedulers.base
import pytest
from aiohttp import web
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import Push, PushRun, PushStatus, RunStatus, apscheduler_jobs
from pushes import claims
from pushes.jobstore import create_jobstore_engine, sync_database_url
from pushes.scheduler import PushScheduler, fire_job, job_id_for, push_id_of
from scrm import keys
from scrm.leader import Leadership
from scrm.settings import Settings
from tests.conftest import FakeClock

Maker = async_sessionmaker[AsyncSession]
UTC = dt.timezone.utc
#: A Sunday noon (UTC); 2030-01-09 is a Wednesday, 10:00 in Shanghai is 02:00 UTC.
SUNDAY = dt.datetime(2030, 1, 6, 12, 0, tzinfo=UTC)
WED_1, WED_2, WED_3 = (dt.datetime(2030, 1, d, 2, 0, tzinfo=UTC) for d in (9, 16, 23))


def day(d: int, hour: int = 2, minute: int = 0) -> dt.datetime:
    """A UTC time in January 2030."""
    return dt.datetime(2030, 1, d, hour, minute, tzinfo=UTC)


class RecordingRunner:
    """A PushRunner stand-in: claims runs for real, records what it was asked to do."""

    def __init__(self, maker: Maker, clock: FakeClock, name: str = "") -> None:
        self.maker, self.clock, self.name = maker, clock, name
        self.fired: list[tuple[int, dt.datetime, int | None]] = []
        self.skipped: list[tuple[int, dt.datetime]] = []
        self.resumed = 0
        self.polled = 0
        self.poll_error: Exception | None = None

    async def fire(self, push_id: int, scheduled_for: dt.datetime, trigger: str = "schedule") -> int | None:
        run_id = await claims.claim_run(self.maker, push_id, scheduled_for, trigger=trigger, now=self.clock())
        self.fired.append((push_id, scheduled_for, run_id))
        return run_id

    async def record_skipped(self, push_id: int, scheduled_for: dt.datetime) -> None:
        await claims.record_skipped(self.maker, push_id, scheduled_for, now=self.clock(), reason="missed")
        self.skipped.append((push_id, scheduled_for))

    async def resume(self) -> None:
        self.resumed += 1

    async def poll_due(self) -> None:
        self.polled += 1
        if self.poll_error is not None:
            error, self.poll_error = self.poll_error, None
            raise error

    def started(self) -> list[tuple[int, dt.datetime]]:
        """Occurrences this runner actually claimed."""
        return [(push_id, when) for push_id, when, run_id in self.fired if run_id is not None]


@pytest.fixture
def aps_clock(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """APScheduler's ``datetime.now`` follows the FakeClock (set to a known Sunday)."""
    clock.now = SUNDAY

    class _ClockDatetime(dt.datetime):
        @classmethod
        def now(cls, tz: dt.tzinfo | None = None) -> dt.datetime:  # type: ignore[override]
            return clock.now.astimezone(tz) if tz is not None else clock.now.astimezone().replace(tzinfo=None)

    # The two modules that read the time: due jobs and next wake-up (schedulers.base), and the
    # misfire check before a job runs (executors.base). Triggers are handed "now" by them.
    monkeypatch.setattr(apscheduler.schedulers.base, "datetime", _ClockDatetime)
    monkeypatch.setattr(apscheduler.executors.base, "datetime", _ClockDatetime)
    return clock


@pytest.fixture
def push_settings(database_url: str) -> Settings:
    return Settings(corp_id="ww5a1b2c3d4e5f6a7b", agent_id=1000002, agent_secret="secret", token="token",
                    encoding_aes_key="a" * 43, public_base_url="http://127.0.0.1:8080", database_url=database_url,
                    timezone="Asia/Shanghai", push_grace_minutes=60, push_poll_seconds=300)


@pytest.fixture
async def make_scheduler(maker: Maker, push_settings: Settings, aps_clock: FakeClock
                         ) -> AsyncIterator[Callable[..., PushScheduler]]:
    """Builds PushSchedulers (each with its own job-store engine, like separate processes); closes them after."""
    made: list[PushScheduler] = []

    def make(runner: RecordingRunner, leadership: Leadership | None = None, tick: float = 5.0) -> PushScheduler:
        scheduler = PushScheduler(maker, push_settings, runner, leadership=leadership, clock=aps_clock, tick=tick)
        made.append(scheduler)
        return scheduler

    yield make
    for scheduler in made:
        await scheduler.close()


@pytest.fixture
def runner(maker: Maker, aps_clock: FakeClock) -> RecordingRunner:
    return RecordingRunner(maker, aps_clock)


async def add_push(maker: Maker, clock: FakeClock, schedule: dict[str, Any], tz: str = "Asia/Shanghai") -> int:
    async with maker.begin() as session:
        push = Push(name="周三上新", chat_type="single", audience={"kind": "customers", "customer_ids": [1]},
                    content={"text": "新品到店"}, schedule=schedule, timezone=tz, status=PushStatus.ACTIVE,
                    version=1, created_at=clock(), updated_at=clock())
        session.add(push)
        await session.flush()
        return push.id


async def edit_push(maker: Maker, push_id: int, **values: Any) -> None:
    async with maker.begin() as session:
        await session.execute(update(Push).where(Push.id == push_id).values(version=Push.version + 1, **values))


async def get_push(maker: Maker, push_id: int) -> Push:
    async with maker() as session:
        push = await session.get(Push, push_id)
    assert push is not None
    return push


async def runs(maker: Maker, push_id: int) -> list[tuple[dt.datetime, RunStatus]]:
    async with maker() as session:
        rows = (await session.execute(select(PushRun.scheduled_for, PushRun.status)
                                      .where(PushRun.push_id == push_id).order_by(PushRun.scheduled_for))).all()
    return [(when, status) for when, status in rows]


async def stored_jobs(maker: Maker) -> dict[str, dt.datetime | None]:
    """The apscheduler_jobs table: job id -> next run time (UTC)."""
    async with maker() as session:
        rows = (await session.execute(select(apscheduler_jobs.c.id, apscheduler_jobs.c.next_run_time))).all()
    return {job_id: dt.datetime.fromtimestamp(ts, UTC) if ts is not None else None for job_id, ts in rows}


WEEKLY = {"kind": "cron", "cron": "0 10 * * 3", "start": None, "end": None}  # Wednesdays 10:00 Shanghai
DAILY = {"kind": "cron", "cron": "0 10 * * *", "start": None, "end": None}


@pytest.mark.parametrize(("url", "expected"), [
    ("sqlite+aiosqlite:////tmp/scrm.db", "sqlite:////tmp/scrm.db"),
    ("sqlite+aiosqlite:///scrm.db", "sqlite:///scrm.db"),
    ("postgresql+asyncpg://scrm:p%40ss@db:5432/scrm", "postgresql+psycopg://scrm:p%40ss@db:5432/scrm"),
    ("postgresql://scrm@db/scrm", "postgresql+psycopg://scrm@db/scrm"),
    ("postgresql+asyncpg://scrm@db/scrm?ssl=require", "postgresql+psycopg://scrm@db/scrm?sslmode=require"),
])
def test_the_job_store_uses_the_synchronous_driver(url: str, expected: str) -> None:
    assert sync_database_url(url) == expected


def test_an_unknown_driver_is_refused() -> None:
    with pytest.raises(ValueError, match="mysql"):
        sync_database_url("mysql+aiomysql://db/scrm")


def test_the_sqlite_job_store_waits_for_the_lock(tmp_path: Any) -> None:
    engine = create_jobstore_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        assert engine.dialect.name == "sqlite" and engine.pool.size() == 1
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    finally:
        engine.dispose()


def test_job_ids_name_their_push() -> None:
    assert push_id_of(job_id_for(42)) == 42
    assert push_id_of("nightly-recompute") is None and push_id_of("push-x") is None


async def test_a_once_push_runs_at_its_time_exactly_once(
    maker: Maker, aps_clock: FakeClock, runner: RecordingRunner, make_scheduler: Callable[..., PushScheduler]
) -> None:
    at = day(7)
    push_id = await add_push(maker, aps_clock, {"kind": "once", "at": at.isoformat()})
    scheduler = make_scheduler(runner)
    await scheduler.step()
    assert scheduler.scheduling and runner.resumed == 1 and runner.polled == 1
    assert (await get_push(maker, push_id)).next_run_at == at
    assert await stored_jobs(maker) == {f"push-{push_id}": at}

    aps_clock.now = at - dt.timedelta(seconds=1)
    await scheduler.run_due()
    assert runner.fired == []  # not a second early

    aps_clock.now = at
    await scheduler.run_due()
    assert runner.started() == [(push_id, at)]

    aps_clock.advance(30)
    for _ in range(2):  # neither APScheduler nor reconcile brings a fired once push back
        await scheduler.run_due()
        await scheduler.step()
    assert len(runner.fired) == 1
    assert await runs(maker, push_id) == [(at, RunStatus.CREATING)]
    assert await stored_jobs(maker) == {}
    assert (await get_push(maker, push_id)).next_run_at is None


async def test_a_weekly_push_runs_on_each_wednesday_in_the_brand_zone_until_its_end(
    maker: Maker, aps_clock: FakeClock, runner: RecordingRunner, make_scheduler: Callable[..., PushScheduler]
) -> None:
    end = day(20, 0)  # after the second Wednesday
    push_id = await add_push(maker, aps_clock, {**WEEKLY, "end": end.isoformat()})
    scheduler = make_scheduler(runner)
    await scheduler.step()
    assert (await get_push(maker, push_id)).next_run_at == WED_1  # 10:00 Shanghai = 02:00 UTC

    aps_clock.now = WED_1
    await scheduler.run_due()
    await scheduler.step()
    assert runner.started() == [(push_id, WED_1)]
    assert (await get_push(maker, push_id)).next_run_at == WED_2

    aps_clock.now = WED_2 + dt.timedelta(seconds=20)  # a little late (a busy loop): still that occurrence
    await scheduler.run_due()
    await scheduler.step()
    assert runner.started() == [(push_id, WED_1), (push_id, WED_2)]
    push = await get_push(maker, push_id)
    assert push.next_run_at is None and push.status == PushStatus.ACTIVE  # last run may still be starting

    aps_clock.now = WED_3 + dt.timedelta(hours=2)
    await scheduler.run_due()
    await scheduler.step()
    assert len(runner.fired) == 2 and runner.skipped == []
    assert (await get_push(maker, push_id)).status == PushStatus.FINISHED
    assert await stored_jobs(maker) == {}
    assert [status for _, status in await runs(maker, push_id)] == [RunStatus.CREATING] * 2


async def test_a_run_missed_while_down_runs_once_on_start_within_the_grace_time(
    maker: Maker, aps_clock: FakeClock, make_scheduler: Callable[..., PushScheduler]
) -> None:
    push_id = await add_push(maker, aps_clock, DAILY)
    first = RecordingRunner(maker, aps_clock)
    a = make_scheduler(first)
    await a.step()
    await a.close()  # the service stops before Monday 10:00 Shanghai
    assert await stored_jobs(maker) == {f"push-{push_id}": day(7)}  # the job survives the restart

    aps_clock.now = day(7, 2, 30)  # back 30 minutes late: within the 60-minute grace
    second = RecordingRunner(maker, aps_clock)
    b = make_scheduler(second)
    await b.step()
    await b.run_due()
    await b.run_due()
    await b.step()
    assert second.started() == [(push_id, day(7))] and len(second.fired) == 1 and second.skipped == []
    assert await runs(maker, push_id) == [(day(7), RunStatus.CREATING)]
    assert (await get_push(maker, push_id)).next_run_at == day(8)


async def test_runs_missed_beyond_the_grace_time_are_recorded_skipped_not_run(
    maker: Maker, aps_clock: FakeClock, make_scheduler: Callable[..., PushScheduler]
) -> None:
    push_id = await add_push(maker, aps_clock, DAILY)
    a = make_scheduler(RecordingRunner(maker, aps_clock))
    await a.step()
    await a.close()

    aps_clock.now = day(9, 4)  # down three days; the last occurrence (Wed 02:00 UTC) is two hours late
    runner = RecordingRunner(maker, aps_clock)
    b = make_scheduler(runner)
    await b.step()
    await b.run_due()
    await b.step()
    assert runner.fired == []
    assert await runs(maker, push_id) == [(day(d), RunStatus.SKIPPED) for d in (7, 8, 9)]
    assert (await get_push(maker, push_id)).next_run_at == day(10)

    aps_clock.now = day(10)  # and the schedule goes on
    await b.run_due()
    assert runner.started() == [(push_id, day(10))]


async def test_after_a_long_outage_older_misses_are_skipped_and_the_latest_runs_within_grace(
    maker: Maker, aps_clock: FakeClock, make_scheduler: Callable[..., PushScheduler]
) -> None:
    push_id = await add_push(maker, aps_clock, DAILY)
    a = make_scheduler(RecordingRunner(maker, aps_clock))
    await a.step()
    await a.close()

    aps_clock.now = day(8, 2, 45)
    runner = RecordingRunner(maker, aps_clock)
    b = make_scheduler(runner)
    await b.step()
    await b.run_due()
    assert runner.started() == [(push_id, day(8))]
    assert await runs(maker, push_id) == [(day(7), RunStatus.SKIPPED), (day(8), RunStatus.CREATING)]


async def test_an_edit_reschedules_and_a_cancelled_push_loses_its_job(
    maker: Maker, aps_clock: FakeClock, runner: RecordingRunner, make_scheduler: Callable[..., PushScheduler]
) -> None:
    push_id = await add_push(maker, aps_clock, WEEKLY)
    other_id = await add_push(maker, aps_clock, DAILY)
    scheduler = make_scheduler(runner)
    await scheduler.step()
    assert (await get_push(maker, push_id)).next_run_at == WED_1
    untouched = (await stored_jobs(maker))[f"push-{other_id}"]

    # Moved to Tuesdays 09:00 (crontab 2 = Tuesday): version 2
    await edit_push(maker, push_id, schedule={**WEEKLY, "cron": "0 9 * * 2"})
    scheduler.notify()
    await scheduler.step()
    tuesday = day(8, 1)
    assert (await get_push(maker, push_id)).next_run_at == tuesday
    assert (await stored_jobs(maker))[f"push-{other_id}"] == untouched

    aps_clock.now = tuesday
    await scheduler.run_due()
    assert runner.started() == [(push_id, tuesday)]
    aps_clock.now = WED_1  # the old time: nothing for this push (the daily one runs)
    await scheduler.run_due()
    assert [(p, w) for p, w in runner.started() if p == push_id] == [(push_id, tuesday)]

    await edit_push(maker, push_id, status=PushStatus.CANCELLED)
    await scheduler.step()
    assert f"push-{push_id}" not in await stored_jobs(maker)
    assert (await get_push(maker, push_id)).next_run_at is None
    aps_clock.now = day(15, 1)
    await scheduler.run_due()
    assert [(p, w) for p, w in runner.started() if p == push_id] == [(push_id, tuesday)]


async def test_a_job_fired_for_an_outdated_version_does_nothing(
    maker: Maker, aps_clock: FakeClock, runner: RecordingRunner, make_scheduler: Callable[..., PushScheduler]
) -> None:
    push_id = await add_push(maker, aps_clock, DAILY)
    scheduler = make_scheduler(runner)
    await scheduler.step()
    await edit_push(maker, push_id)  # edited in another process; this one has not reconciled yet
    aps_clock.now = day(7)
    await scheduler.run_due()
    assert runner.fired == []
    assert await fire_job(push_id, 1) is None  # called directly: the one live scheduler sees an old version


async def test_only_the_leader_schedules_and_the_other_takes_over(
    maker: Maker, aps_clock: FakeClock, make_scheduler: Callable[..., PushScheduler]
) -> None:
    push_id = await add_push(maker, aps_clock, DAILY)
    lease_a = Leadership(maker, clock=aps_clock, holder="host-a:1")
    lease_b = Leadership(maker, clock=aps_clock, holder="host-b:2")
    runner_a, runner_b = RecordingRunner(maker, aps_clock, "a"), RecordingRunner(maker, aps_clock, "b")
    a, b = make_scheduler(runner_a, lease_a), make_scheduler(runner_b, lease_b)
    assert await lease_a.attempt() and not await lease_b.attempt()
    await a.step()
    await b.step()
    assert a.scheduling and not b.scheduling
    assert runner_a.resumed == 1 and runner_b.resumed == 0 and runner_b.polled == 0

    aps_clock.now = day(7)
    await asyncio.gather(a.run_due(), b.run_due())
    assert runner_a.started() == [(push_id, day(7))] and runner_b.fired == []
    # Even a follower that fired the same occurrence (a scheduler gone wrong) could not start it again.
    assert await runner_b.fire(push_id, day(7)) is None
    assert await runs(maker, push_id) == [(day(7), RunStatus.CREATING)]

    # The leader shuts down cleanly and hands the lease over; the other takes over at its next try.
    await a.close()
    await lease_a.close()
    assert await lease_b.attempt()
    await b.step()
    assert b.scheduling and runner_b.resumed == 1
    assert (await get_push(maker, push_id)).next_run_at == day(8)  # the job's next run came along

    aps_clock.now = day(8)
    await b.run_due()
    assert runner_b.started() == [(push_id, day(8))]
    assert await runs(maker, push_id) == [(day(7), RunStatus.CREATING), (day(8), RunStatus.CREATING)]


async def test_a_scheduler_that_loses_the_lease_stops_scheduling(
    maker: Maker, aps_clock: FakeClock, make_scheduler: Callable[..., PushScheduler]
) -> None:
    push_id = await add_push(maker, aps_clock, DAILY)
    lease_a = Leadership(maker, clock=aps_clock, ttl=30, holder="host-a:1")
    lease_b = Leadership(maker, clock=aps_clock, ttl=30, holder="host-b:2")
    runner_a, runner_b = RecordingRunner(maker, aps_clock, "a"), RecordingRunner(maker, aps_clock, "b")
    a, b = make_scheduler(runner_a, lease_a), make_scheduler(runner_b, lease_b)
    assert await lease_a.attempt()
    await a.step()

    aps_clock.advance(31)  # a stopped renewing (its database connection hung): b takes over
    assert await lease_b.attempt() and not await lease_a.attempt()
    await a.step()
    await b.step()
    assert not a.scheduling and b.scheduling

    aps_clock.now = day(7)
    await asyncio.gather(a.run_due(), b.run_due())
    assert runner_a.fired == [] and runner_b.started() == [(push_id, day(7))]


async def test_two_schedulers_firing_the_same_occurrence_start_it_once(
    maker: Maker, aps_clock: FakeClock, make_scheduler: Callable[..., PushScheduler]
) -> None:
    """Without any lease (the worst case), both fire: the claim lets exactly one start."""
    push_id = await add_push(maker, aps_clock, DAILY)
    runner_a, runner_b = RecordingRunner(maker, aps_clock, "a"), RecordingRunner(maker, aps_clock, "b")
    a, b = make_scheduler(runner_a), make_scheduler(runner_b)
    await a.step()
    await b.step()
    aps_clock.now = day(7)
    await asyncio.gather(a.run_due(), b.run_due())
    started = runner_a.started() + runner_b.started()
    assert started == [(push_id, day(7))]
    assert await runs(maker, push_id) == [(day(7), RunStatus.CREATING)]


async def test_the_background_loop_follows_edits_and_survives_errors(
    maker: Maker, aps_clock: FakeClock, runner: RecordingRunner, make_scheduler: Callable[..., PushScheduler]
) -> None:
    async def until(condition: Callable[[], Any]) -> None:
        for _ in range(200):
            if await condition():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("condition not reached in 2 s")

    async def polled(n: int) -> bool:
        return runner.polled >= n

    runner.poll_error = RuntimeError("WeCom is down")
    scheduler = make_scheduler(runner, tick=60)  # a long tick: only notify() can explain a quick reconcile
    scheduler.start()
    await until(lambda: polled(1))
    assert scheduler.scheduling and runner.resumed == 1

    push_id = await add_push(maker, aps_clock, WEEKLY)
    scheduler.notify()

    async def scheduled() -> bool:
        return (await get_push(maker, push_id)).next_run_at == WED_1

    await until(scheduled)
    aps_clock.advance(300)  # the poll interval: polled again although the first poll failed
    scheduler.notify()
    await until(lambda: polled(2))
    assert runner.resumed == 1
    await scheduler.close()
    assert not scheduler.scheduling


async def test_the_cleanup_context_starts_and_stops_the_scheduler(
    maker: Maker, aps_clock: FakeClock, push_settings: Settings, runner: RecordingRunner
) -> None:
    from pushes.runner import PUSH_RUNNER
    from pushes.scheduler import PUSH_SCHEDULER, push_scheduler_ctx

    app = web.Application()
    app[keys.SESSIONMAKER] = maker
    app[keys.SETTINGS] = push_settings
    app[keys.CLOCK] = aps_clock
    app[PUSH_RUNNER] = runner  # type: ignore[assignment]
    context = push_scheduler_ctx(app)
    await anext(context)
    scheduler = app[PUSH_SCHEDULER]
    for _ in range(200):
        if runner.resumed:
            break
        await asyncio.sleep(0.01)
    assert scheduler.scheduling  # no leadership wired: it schedules
    with pytest.raises(StopAsyncIteration):
        await anext(context)
    assert not scheduler.scheduling


@pytest.mark.parametrize(("late", "runs_it"), [(dt.timedelta(minutes=60), True),
                                               (dt.timedelta(minutes=60, seconds=1), False)])
async def test_the_grace_time_is_inclusive(
    maker: Maker, aps_clock: FakeClock, make_scheduler: Callable[..., PushScheduler], late: dt.timedelta,
    runs_it: bool,
) -> None:
    push_id = await add_push(maker, aps_clock, {"kind": "once", "at": day(7).isoformat()})
    a = make_scheduler(RecordingRunner(maker, aps_clock))
    await a.step()
    await a.close()
    aps_clock.now = day(7) + late
    runner = RecordingRunner(maker, aps_clock)
    b = make_scheduler(runner)
    await b.step()
    await b.run_due()
    assert bool(runner.started()) is runs_it and bool(runner.skipped) is not runs_it
    assert await runs(maker, push_id) == [(day(7), RunStatus.CREATING if runs_it else RunStatus.SKIPPED)]


@pytest.mark.parametrize(("schedule", "now", "expected"), [
    (DAILY, day(7, 2), day(7, 2)),  # on time
    (DAILY, day(7, 1, 59), None),  # not yet; yesterday's is long past
    (DAILY, day(7, 3, 1), day(7, 2)),  # 61 minutes late: the edge of the window
    (DAILY, day(7, 3, 2), None),
    (WEEKLY, day(9, 2, 30), WED_1),
    ({**DAILY, "cron": "*/7 * * * *"}, day(7, 2, 30), day(7, 2, 28)),  # the latest of many in the window
    ({"kind": "once", "at": day(7).isoformat()}, day(7, 2, 1), day(7)),
    ({"kind": "once", "at": day(7).isoformat()}, day(8), None),
])
def test_the_due_occurrence_is_the_latest_within_the_window(
    schedule: dict[str, Any], now: dt.datetime, expected: dt.datetime | None
) -> None:
    from zoneinfo import ZoneInfo

    from pushes.schedule import latest_due, load_schedule

    window = dt.timedelta(minutes=61)
    assert latest_due(load_schedule(schedule), ZoneInfo("Asia/Shanghai"), now, window) == expected
