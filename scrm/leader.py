"""One scheduler per deployment: the process that holds the ``scheduler`` lease runs the timed jobs.

Every process may start the schedulers (nightly recompute, sharing refresh, channel-code duty), but a
job body runs only where ``Leadership.is_leader`` is true. Leadership is a row in ``leases`` taken with
one conditional UPDATE — "mine if it is free, expired, or already mine" — so the database decides,
on SQLite and PostgreSQL alike, and exactly one process wins. The holder renews it every ``ttl / 3``;
a process that dies stops renewing, and after ``ttl`` another one takes over on its next try. A holder
that cannot renew (the database is away) stops calling itself leader before its lease can expire, so
two processes never both believe they lead.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

from aiohttp import web
from sqlalchemy import or_, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import Lease, insert_ignore
from scrm.tasks import cancel_and_wait

_LOGGER = logging.getLogger(__name__)

SCHEDULER_ROLE: Final = "scheduler"
LEASE_TTL: Final = 30.0  # seconds a lease lasts without renewal


def holder_name() -> str:
    """Who this process is, as the lease records it (host, pid and a random tag against pid reuse)."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{secrets.token_hex(4)}"


async def try_acquire(maker: async_sessionmaker[AsyncSession], role: str, holder: str, *, now: dt.datetime,
                      ttl: float) -> bool:
    """Take or renew ``role`` for ``holder`` if it is free, expired or already theirs; whether they hold it now."""
    expires = now + dt.timedelta(seconds=ttl)
    async with maker.begin() as session:
        await insert_ignore(session, Lease, {"name": role, "holder": holder, "expires_at": expires}, ["name"])
        result = await session.execute(
            update(Lease).where(Lease.name == role, or_(Lease.holder == holder, Lease.expires_at <= now))
            .values(holder=holder, expires_at=expires))
    return bool(result.rowcount)


async def release(maker: async_sessionmaker[AsyncSession], role: str, holder: str, *, now: dt.datetime) -> None:
    """Give ``role`` up at once (a clean shutdown), so another process need not wait out the lease."""
    async with maker.begin() as session:
        await session.execute(update(Lease).where(Lease.name == role, Lease.holder == holder)
                              .values(expires_at=now))


class Leadership:
    """Holds (or keeps trying for) one role; ``is_leader`` says whether this process may act on it now."""

    def __init__(self, maker: async_sessionmaker[AsyncSession], *, clock: Callable[[], dt.datetime],
                 role: str = SCHEDULER_ROLE, ttl: float = LEASE_TTL, holder: str | None = None) -> None:
        self.maker = maker
        self.clock = clock
        self.role = role
        self.ttl = ttl
        self.holder = holder or holder_name()
        self._valid_until = 0.0  # monotonic time until which our last successful renewal is safe to trust
        self._task: asyncio.Task[None] | None = None

    @property
    def is_leader(self) -> bool:
        """Whether this process holds the role now (with a safety margin before the lease could expire)."""
        return time.monotonic() < self._valid_until

    async def attempt(self) -> bool:
        """Try once to take or renew the role; whether this process leads now."""
        started = time.monotonic()
        try:
            held = await try_acquire(self.maker, self.role, self.holder, now=self.clock(), ttl=self.ttl)
        except Exception:  # the database is away: stop leading before the lease can lapse elsewhere
            _LOGGER.exception("could not renew the %s lease", self.role)
            held = False
        was = self.is_leader
        # Trust the lease for two thirds of its life, counted from before the request: a slow round
        # trip eats into the margin, never past the point where another process could take over.
        self._valid_until = started + self.ttl * 2 / 3 if held else 0.0
        if held != was:
            _LOGGER.info("%s %s the %s role", self.holder, "took" if held else "lost", self.role)
        return held

    def start(self) -> None:
        """Keep trying (and renewing) every ttl / 3 in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"lease-{self.role}")

    async def _run(self) -> None:
        while True:
            await self.attempt()
            await asyncio.sleep(self.ttl / 3)

    async def close(self) -> None:
        """Stop renewing and hand the role back."""
        await cancel_and_wait(self._task)
        self._task = None
        if self._valid_until:
            self._valid_until = 0.0
            try:
                await release(self.maker, self.role, self.holder, now=self.clock())
            except Exception:  # it will expire on its own
                _LOGGER.exception("could not release the %s lease", self.role)


def when_leading(leadership: Leadership | None, job: Callable[..., Awaitable[Any]], name: str
                 ) -> Callable[..., Awaitable[Any]]:
    """``job`` as a scheduled job body that runs only in the process holding the role (always without one)."""
    async def run(*args: Any, **kwargs: Any) -> Any:
        if leadership is not None and not leadership.is_leader:
            _LOGGER.info("%s skipped here: another process holds the %s role", name, leadership.role)
            return None
        return await job(*args, **kwargs)

    return run


async def leadership_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx (after the database, before the schedulers): ``app[keys.LEADERSHIP]``, trying at once."""
    from scrm import keys  # here, not at the top: scrm.keys names Leadership for its key

    leadership = Leadership(app[keys.SESSIONMAKER], clock=app[keys.CLOCK])
    app[keys.LEADERSHIP] = leadership
    await leadership.attempt()  # a single process leads from its first second, not after a delay
    leadership.start()
    yield
    await leadership.close()
