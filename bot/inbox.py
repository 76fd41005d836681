"""The callback inbox: durable, deduplicated storage and leased claims for the worker."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
from collections.abc import Callable, Sequence

from sqlalchemy import and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.callback import Delivery
from models import CallbackEvent, InboxStatus


def _row(delivery: Delivery, now: dt.datetime) -> dict[str, object]:
    ev = delivery.event
    return dict(
        dedup_key=delivery.dedup_key,
        agent_id=delivery.agent_id[:32],
        msg_type=ev.msg_type[:32],
        event=ev.event[:64],
        change_type=ev.change_type[:64],
        plaintext=delivery.plaintext,
        status=InboxStatus.PENDING,
        attempts=0,
        received_at=now,
        next_attempt_at=now,
        last_error="",
        duplicates=0,
    )


async def store_batch(
    maker: async_sessionmaker[AsyncSession], deliveries: Sequence[Delivery], now: dt.datetime
) -> list[bool]:
    """Store deliveries in one transaction; per delivery, True if it was new (repeats bump a counter)."""
    first: dict[str, dict[str, object]] = {}
    for d in deliveries:
        first.setdefault(d.dedup_key, _row(d, now))
    async with maker.begin() as session:
        insert = postgresql.insert if session.bind.dialect.name == "postgresql" else sqlite.insert
        # Core executemany + RETURNING (not the ORM's bulk path, which costs as much again on this
        # hot path): SQLAlchemy turns it into multi-row INSERTs with a cached compile.
        table = CallbackEvent.__table__
        stmt = insert(table).on_conflict_do_nothing(index_elements=["dedup_key"]).returning(table.c.dedup_key)
        conn = await session.connection()
        inserted = set((await conn.execute(stmt, list(first.values()))).scalars().all())
        result: list[bool] = []
        repeats: dict[str, int] = {}
        for d in deliveries:
            if d.dedup_key in inserted:
                inserted.discard(d.dedup_key)  # only the first of a key within the batch is new
                result.append(True)
            else:
                repeats[d.dedup_key] = repeats.get(d.dedup_key, 0) + 1
                result.append(False)
        for key, n in repeats.items():
            await session.execute(
                update(CallbackEvent).where(CallbackEvent.dedup_key == key).values(duplicates=CallbackEvent.duplicates + n)
            )
    return result


async def store_delivery(maker: async_sessionmaker[AsyncSession], delivery: Delivery, now: dt.datetime) -> bool:
    """Insert one delivery once; a repeat only bumps the duplicate counter. True if it was new."""
    return (await store_batch(maker, [delivery], now))[0]


class InboxWriter:
    """Group commit: concurrent callbacks share one transaction, and each is answered only after it.

    A transaction per request makes SQLite writers queue on its single lock; batching whatever
    arrived meanwhile keeps every acknowledgement durable at a fraction of the cost.
    """

    def __init__(
        self,
        maker: async_sessionmaker[AsyncSession],
        clock: Callable[[], dt.datetime],
        on_stored: Callable[[], None] = lambda: None,
        max_batch: int = 256,
    ) -> None:
        self._maker = maker
        self._clock = clock
        self._on_stored = on_stored
        self._max_batch = max_batch
        self._queue: asyncio.Queue[tuple[Delivery, asyncio.Future[bool]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the writer task."""
        self._task = asyncio.create_task(self._run(), name="inbox-writer")

    async def stop(self) -> None:
        """Write what is queued, then stop."""
        if self._task is not None:
            await self._queue.join()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def store(self, delivery: Delivery) -> bool:
        """Durably store one delivery (shared transaction); True if it was new."""
        if self._task is None:
            return await store_delivery(self._maker, delivery, self._clock())
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        await self._queue.put((delivery, future))
        return await future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                results = await store_batch(self._maker, [d for d, _ in batch], self._clock())
            except Exception as exc:  # the database is down: every waiting request gets a 5xx
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            else:
                for (_, future), is_new in zip(batch, results):
                    if not future.done():
                        future.set_result(is_new)
                if any(results):
                    self._on_stored()
            finally:
                for _ in batch:
                    self._queue.task_done()


def _due(now: dt.datetime):  # type: ignore[no-untyped-def]
    return or_(
        and_(CallbackEvent.status == InboxStatus.PENDING, CallbackEvent.next_attempt_at <= now),
        # A worker that died mid-event left it PROCESSING; once its lease lapses it is due again.
        and_(CallbackEvent.status == InboxStatus.PROCESSING, CallbackEvent.lease_until < now),
    )


async def claim_due(
    maker: async_sessionmaker[AsyncSession], now: dt.datetime, lease: dt.timedelta, limit: int = 50
) -> list[CallbackEvent]:
    """Claim up to ``limit`` due events for this worker (safe with several workers)."""
    async with maker() as session:
        candidates: Sequence[int] = (
            await session.scalars(select(CallbackEvent.id).where(_due(now)).order_by(CallbackEvent.id).limit(limit))
        ).all()
    claimed: list[int] = []
    for event_id in candidates:
        async with maker.begin() as session:
            result = await session.execute(
                update(CallbackEvent)
                .where(CallbackEvent.id == event_id, _due(now))
                .values(status=InboxStatus.PROCESSING, lease_until=now + lease)
            )
            if result.rowcount:
                claimed.append(event_id)
    if not claimed:
        return []
    async with maker() as session:
        rows = (await session.scalars(select(CallbackEvent).where(CallbackEvent.id.in_(claimed)))).all()
    return sorted(rows, key=lambda r: r.id)


async def finish(
    maker: async_sessionmaker[AsyncSession], event_id: int, status: InboxStatus, now: dt.datetime
) -> None:
    """Mark an event processed (DONE or IGNORED)."""
    async with maker.begin() as session:
        await session.execute(
            update(CallbackEvent)
            .where(CallbackEvent.id == event_id)
            .values(status=status, processed_at=now, lease_until=None, attempts=CallbackEvent.attempts + 1)
        )


def retry_delay(attempts: int, rng: random.Random | None = None) -> dt.timedelta:
    """Exponential back-off with jitter: ~2 s, 4 s, 8 s ... capped at 10 minutes."""
    base = min(2.0**attempts, 600.0)
    return dt.timedelta(seconds=base * (rng or random).uniform(0.75, 1.25))


async def fail(
    maker: async_sessionmaker[AsyncSession],
    event_id: int,
    error: str,
    now: dt.datetime,
    max_attempts: int,
) -> InboxStatus:
    """Record a failure: back off and retry, or park once attempts are used up."""
    async with maker.begin() as session:
        row = await session.get(CallbackEvent, event_id)
        assert row is not None
        row.attempts += 1
        row.last_error = error[:4000]
        row.lease_until = None
        if row.attempts >= max_attempts:
            row.status = InboxStatus.PARKED
            row.processed_at = now
        else:
            row.status = InboxStatus.PENDING
            row.next_attempt_at = now + retry_delay(row.attempts)
        return row.status


async def requeue(maker: async_sessionmaker[AsyncSession], event_id: int, now: dt.datetime) -> bool:
    """Put a parked event back in the queue (admin action)."""
    async with maker.begin() as session:
        result = await session.execute(
            update(CallbackEvent)
            .where(CallbackEvent.id == event_id, CallbackEvent.status == InboxStatus.PARKED)
            .values(status=InboxStatus.PENDING, next_attempt_at=now, attempts=0, processed_at=None)
        )
        return bool(result.rowcount)
