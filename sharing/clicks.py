"""Click recording off the request path: the redirect appends to a buffer, a background task writes it.

``ClickWriter.record`` is synchronous and only appends a tuple, so the redirect never waits for the
database. A writer task stores what accumulated every ``interval`` seconds, or at once when
``flush_at`` clicks are waiting, with Core ``INSERT`` executemany in one transaction. A database
error keeps the batch: it is logged and retried with exponential back-off, and the buffer keeps
growing meanwhile. ``close()`` (the cleanup context, so on every graceful shutdown) writes whatever
is left before the engine is disposed.

The one deliberate loss: a buffer bounded at ``max_buffer`` clicks (200,000, about 50 MB). Without a
bound, a database outage under load would grow memory until the process is killed, and then every
buffered click *and* the redirects themselves are gone; redirecting matters more than counting.
When the bound is hit the *oldest* clicks are dropped, loudly (an error log at most every 10 s, and
the ``dropped`` counter): attribution is last-touch within a window, so the newest clicks are the
ones upcoming orders will be credited to.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Final

from aiohttp import web
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import Customer, LinkClick, Visitor, insert_ignore

_LOGGER = logging.getLogger(__name__)

FLUSH_INTERVAL: Final = 0.25  # seconds between writes when traffic is light
FLUSH_AT: Final = 500  # clicks waiting that trigger a write at once
MAX_BATCH: Final = 5000  # clicks per transaction (a backlog after an outage goes in several)
# Rows per executemany within that transaction. SQLAlchemy prepares bind parameters on the event loop
# (~20 us a row): 500 at once held every redirect up for ~10 ms, and the redirect's p99 in
# `bench/redirect.py --warm-all` was 34 ms (SQLite) and 39 ms (PostgreSQL) against 26 and 28 ms with
# chunks, which let the loop serve requests in between.
INSERT_CHUNK: Final = 100
MAX_BUFFER: Final = 200_000  # clicks held in memory at most; beyond, the oldest are dropped
RETRY_MIN: Final = 0.5  # seconds before the first retry after a failed write
RETRY_MAX: Final = 30.0  # back-off ceiling
CLOSE_TIMEOUT: Final = 30.0  # how long close() keeps retrying a failing database before giving up
DROP_LOG_EVERY: Final = 10.0  # seconds between "dropping clicks" error logs

# (link_id, at, visitor_id, ua_class, customer_id): a tuple is the cheapest thing to append.
ClickRow = tuple[int, dt.datetime, str, str, int | None]
WriteClicks = Callable[[Sequence[ClickRow]], Awaitable[None]]
OnStored = Callable[[Sequence[ClickRow]], None]


async def store_clicks(maker: async_sessionmaker[AsyncSession], rows: Sequence[ClickRow]) -> None:
    """Insert clicks in one transaction: Core executemany, INSERT_CHUNK rows per statement."""
    if not rows:
        return
    named = {customer_id for *_, customer_id in rows if customer_id}
    if named:  # a token signed for a customer deleted since must not fail the batch on the foreign key
        async with maker() as session:
            existing = set((await session.scalars(select(Customer.id).where(Customer.id.in_(named)))).all())
        if existing != named:
            rows = [row if row[4] in existing or row[4] is None else (*row[:4], None) for row in rows]
    params = [
        {"link_id": link_id, "at": at, "visitor_id": visitor_id, "ua_class": ua_class, "customer_id": customer_id}
        for link_id, at, visitor_id, ua_class, customer_id in rows
    ]
    # A click that names its customer (a link sent into their chat) makes the visitor cookie theirs:
    # later clicks from that browser are known too (first one wins; a shared phone stays who it was).
    known = {visitor_id: (customer_id, at) for _, at, visitor_id, _, customer_id in reversed(rows) if customer_id}
    async with maker.begin() as session:
        # Core, not the ORM's bulk path: no identity map, no per-row objects, a cached compile.
        conn = await session.connection()
        for start in range(0, len(params), INSERT_CHUNK):
            await conn.execute(insert(LinkClick), params[start : start + INSERT_CHUNK])
        for visitor_id, (customer_id, at) in known.items():
            await insert_ignore(session, Visitor, {"visitor_id": visitor_id, "customer_id": customer_id,
                                                   "source": "click", "identified_at": at, "detail": {}},
                                ["visitor_id"])


class ClickWriter:
    """Buffers clicks in memory and stores them in batches from one background task."""

    def __init__(
        self,
        maker: async_sessionmaker[AsyncSession] | None = None,
        *,
        write: WriteClicks | None = None,
        interval: float = FLUSH_INTERVAL,
        flush_at: int = FLUSH_AT,
        max_batch: int = MAX_BATCH,
        max_buffer: int = MAX_BUFFER,
        retry_min: float = RETRY_MIN,
        retry_max: float = RETRY_MAX,
        on_stored: OnStored | None = None,
    ) -> None:
        if write is None:
            if maker is None:
                raise ValueError("ClickWriter needs a sessionmaker or a write function")
            store_in: async_sessionmaker[AsyncSession] = maker

            async def write(rows: Sequence[ClickRow]) -> None:
                await store_clicks(store_in, rows)

        self._write = write
        # Public so an operator (or a test) can retune a running writer; read on every cycle.
        self.interval = interval
        self.flush_at = flush_at
        self.on_stored = on_stored
        self._max_batch = max_batch
        self._max_buffer = max_buffer
        self._retry_min = retry_min
        self._retry_max = retry_max
        self._buffer: collections.deque[ClickRow] = collections.deque()
        self._inflight: list[ClickRow] | None = None  # the batch being written (kept until it is stored)
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False
        self._deadline = 0.0
        # Flush waiters: resolved once ``recorded`` reaches their target in ``stored + dropped``.
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._last_drop_log = -DROP_LOG_EVERY
        self.recorded = 0
        self.stored = 0
        self.dropped = 0
        self.failures = 0

    # -- the request path ------------------------------------------------------------------------

    def record(
        self, link_id: int, at: dt.datetime, visitor_id: str, ua_class: str, customer_id: int | None = None
    ) -> None:
        """Queue one click for storage; never blocks, never raises on a database problem."""
        self.recorded += 1
        if self._closed:
            self._drop(1, "the click writer is closed (a request arrived after shutdown)")
            return
        buffer = self._buffer
        if len(buffer) >= self._max_buffer:
            buffer.popleft()
            self._drop(1, f"the buffer is full ({self._max_buffer} clicks): the database is not keeping up")
        buffer.append((link_id, at, visitor_id, ua_class, customer_id))
        if len(buffer) >= self.flush_at and not self._wake.is_set():
            self._wake.set()

    @property
    def pending(self) -> int:
        """Clicks recorded but not stored yet."""
        return len(self._buffer) + len(self._inflight or ())

    # -- life cycle --------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background writer task."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="click-writer")

    async def flush(self) -> None:
        """Wait until every click recorded so far is stored (or counted as dropped)."""
        if self._task is None:
            while self.pending:
                await self._write_next()
            return
        target = self.recorded
        if self.stored + self.dropped >= target:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, future))
        self._wake.set()
        await future

    async def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Stop the task after storing everything left, retrying a failing database up to ``timeout`` s."""
        if self._closed:
            return
        self._closing = True
        self._deadline = time.monotonic() + timeout
        self._stop.set()
        self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="click-writer-close")
        try:
            await self._task
        finally:
            self._task = None
            self._closed = True
            lost = self.pending
            if lost:
                self._buffer.clear()
                self._inflight = None
                self.dropped += lost
                _LOGGER.error("click writer closed with %d clicks not stored: the database stayed unavailable "
                              "for %.0f s of shutdown; these clicks are lost", lost, timeout)
            self._resolve_waiters()
            _LOGGER.info("click writer closed: %d recorded, %d stored, %d dropped, %d failed writes",
                         self.recorded, self.stored, self.dropped, self.failures)

    # -- the writer task --------------------------------------------------------------------------

    async def _run(self) -> None:
        delay = self._retry_min
        while True:
            if not self._closing and not self._waiters and len(self._buffer) < self.flush_at:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.interval)
            if not self.pending:
                self._resolve_waiters()
                if self._closing:
                    return
                continue
            try:
                await self._write_next()
            except Exception:  # any database error: keep the batch, back off, retry
                self.failures += 1
                _LOGGER.warning("could not store %d clicks (%d waiting, failure %d); retrying in %.1f s",
                                len(self._inflight or ()), self.pending, self.failures, delay,
                                exc_info=delay == self._retry_min)  # the traceback once per outage
                if self._closing:
                    left = self._deadline - time.monotonic()
                    if left <= 0:
                        return  # close() reports what is lost
                    await asyncio.sleep(min(delay, left))
                else:
                    # close() cuts the back-off short so shutdown retries at once.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), delay)
                delay = min(delay * 2, self._retry_max)
            else:
                if delay > self._retry_min:
                    _LOGGER.warning("storing clicks again; %d waiting", self.pending)
                delay = self._retry_min

    async def _write_next(self) -> None:
        if self._inflight is None:
            buffer = self._buffer
            n = min(len(buffer), self._max_batch)
            self._inflight = [buffer.popleft() for _ in range(n)]
        batch = self._inflight
        await self._write(batch)
        self._inflight = None
        self.stored += len(batch)
        self._resolve_waiters()
        if self.on_stored is not None:
            try:
                self.on_stored(batch)
            except Exception:  # a follow-up's bug must not turn a stored batch into a retried one
                _LOGGER.exception("the after-store hook failed on %d clicks (they are stored)", len(batch))

    def _resolve_waiters(self) -> None:
        if not self._waiters:
            return
        done = self.stored + self.dropped
        closed = self._closed
        keep = []
        for target, future in self._waiters:
            if done >= target or closed:
                if not future.done():
                    future.set_result(None)
            else:
                keep.append((target, future))
        self._waiters = keep

    def _drop(self, n: int, why: str) -> None:
        self.dropped += n
        now = time.monotonic()
        if now - self._last_drop_log >= DROP_LOG_EVERY:
            self._last_drop_log = now
            _LOGGER.error("dropping clicks: %s; %d dropped so far", why, self.dropped)
        self._resolve_waiters()


async def click_writer_ctx(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: a started ClickWriter under ``keys.CLICK_WRITER``, flushed on shutdown."""
    # Imported here, not at the top: scrm.keys imports this module for the key's type.
    from scrm import keys

    writer = ClickWriter(app[keys.SESSIONMAKER])
    app[keys.CLICK_WRITER] = writer
    writer.start()
    yield
    await writer.close()
