"""Claiming a run: the (push, scheduled_for) row is inserted once, by whoever gets there first."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import PushRun, RunStatus, insert_ignore


async def claim_run(maker: async_sessionmaker[AsyncSession], push_id: int, scheduled_for: dt.datetime, *,
                    trigger: str, now: dt.datetime, status: RunStatus = RunStatus.CREATING,
                    error: str = "") -> int | None:
    """Insert the run row; its id, or None when that occurrence already has a row (ran, runs, or was cancelled)."""
    async with maker.begin() as session:
        inserted = await insert_ignore(session, PushRun, {
            "push_id": push_id, "scheduled_for": scheduled_for, "trigger": trigger, "status": status,
            "phase": "", "progress_done": 0, "progress_total": 0, "content": {}, "counts": {},
            "started_at": now if status == RunStatus.CREATING else None, "error": error,
            "finished_at": None if status == RunStatus.CREATING else now, "worker": "", "heartbeat_at": None,
        }, ["push_id", "scheduled_for"])
        if not inserted:
            return None
        return await session.scalar(select(PushRun.id).where(
            PushRun.push_id == push_id, PushRun.scheduled_for == scheduled_for))


async def record_skipped(maker: async_sessionmaker[AsyncSession], push_id: int, scheduled_for: dt.datetime, *,
                         now: dt.datetime, reason: str) -> int | None:
    """Record an occurrence that will not run (missed beyond its grace time); None if it already has a row."""
    return await claim_run(maker, push_id, scheduled_for, trigger="schedule", now=now, status=RunStatus.SKIPPED,
                           error=reason)
