"""The callback inbox: durable, deduplicated storage and leased claims for the worker."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.callback import Delivery
from models import CallbackEvent, InboxStatus, insert_ignore


async def store_delivery(maker: async_sessionmaker[AsyncSession], delivery: Delivery, now: dt.datetime) -> bool:
    """Insert a delivery once; a repeat only bumps the duplicate counter. True if it was new."""
    ev = delivery.event
    values = dict(
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
    async with maker.begin() as session:
        if await insert_ignore(session, CallbackEvent, values, ["dedup_key"]):
            return True
        await session.execute(
            update(CallbackEvent)
            .where(CallbackEvent.dedup_key == delivery.dedup_key)
            .values(duplicates=CallbackEvent.duplicates + 1)
        )
        return False


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
