"""The inbox worker: claims stored events and runs them through the router, with retries."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import inbox
from bot.context import BotContext
from bot.events import Event, parse_event
from bot.router import Router
from models import CallbackEvent, InboxStatus
from scrm.tasks import cancel_and_wait

_LOGGER = logging.getLogger(__name__)


def _partition(row: CallbackEvent, event: Event) -> str:
    # Events about the same customer, group or member run in order; others run side by side.
    member = event.from_user if event.from_user != "sys" else ""
    return getattr(event, "external_user_id", "") or getattr(event, "chat_id", "") or member or f"#{row.id}"


class InboxWorker:
    """Processes the inbox until stopped; ``wake()`` after storing a delivery."""

    def __init__(
        self,
        maker: async_sessionmaker[AsyncSession],
        router: Router,
        context: BotContext,
        *,
        clock: Callable[[], dt.datetime],
        max_attempts: int = 5,
        lease: dt.timedelta = dt.timedelta(seconds=120),
        poll_interval: float = 1.0,
        batch: int = 50,
    ) -> None:
        self._maker = maker
        self._router = router
        self._context = context
        self._clock = clock
        self._max_attempts = max_attempts
        self._lease = lease
        self._poll = poll_interval
        self._batch = batch
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Tell the worker something new is in the inbox."""
        self._wakeup.set()

    def start(self) -> None:
        """Run in the background."""
        self._task = asyncio.create_task(self._run(), name="inbox-worker")

    async def stop(self) -> None:
        """Stop after the current batch (events in flight keep their lease and resume later)."""
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            try:
                processed = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database may be briefly unavailable; keep the worker alive
                _LOGGER.exception("inbox worker iteration failed")
                processed = 0
            if processed:
                continue
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout=self._poll)
            except asyncio.TimeoutError:
                pass
            self._wakeup.clear()

    async def run_once(self) -> int:
        """Claim and process one batch of due events; returns how many were claimed."""
        rows = await inbox.claim_due(self._maker, self._clock(), self._lease, self._batch)
        groups: dict[str, list[tuple[CallbackEvent, Event]]] = {}
        for row in rows:
            event = parse_event(row.plaintext)
            groups.setdefault(_partition(row, event), []).append((row, event))
        await asyncio.gather(*(self._process_in_order(group) for group in groups.values()))
        return len(rows)

    async def _process_in_order(self, rows: list[tuple[CallbackEvent, Event]]) -> None:
        for row, event in rows:
            await self.process(row, event)

    async def process(self, row: CallbackEvent, event: Event) -> InboxStatus:
        """Run one claimed event; record DONE / IGNORED, or the failure."""
        ctx = replace(self._context, event_id=row.id, attempt=row.attempts)
        try:
            handled = await self._router.dispatch(ctx, event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            status = await inbox.fail(self._maker, row.id, f"{type(exc).__name__}: {exc}", self._clock(), self._max_attempts)
            log = _LOGGER.error if status is InboxStatus.PARKED else _LOGGER.warning
            log("event %s (%s/%s) failed, attempt %s: %s -> %s", row.id, row.event or row.msg_type,
                row.change_type, row.attempts + 1, exc, status.value)
            return status
        status = InboxStatus.DONE if handled else InboxStatus.IGNORED
        await inbox.finish(self._maker, row.id, status, self._clock())
        return status
