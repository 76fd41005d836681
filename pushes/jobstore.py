"""The synchronous engine behind APScheduler 3's SQLAlchemy job store (it cannot use the async one).

pushes.scheduler runs every job-store call on a thread of its own, never on the event loop, so a
call waiting for SQLite's write lock (often held by this same process's async session between two
awaits) waits while the loop goes on and releases it, instead of freezing the loop.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import create_engine
from sqlalchemy.engine import URL, Engine, make_url

#: How long a job-store write waits for SQLite's write lock before failing (APScheduler then retries).
SQLITE_BUSY_SECONDS: Final = 30.0

_SYNC_DRIVERS: Final = {
    "sqlite": "sqlite", "sqlite+aiosqlite": "sqlite", "sqlite+pysqlite": "sqlite",
    "postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg",
    "postgresql+asyncpg": "postgresql+psycopg", "postgresql+psycopg": "postgresql+psycopg",
    "postgresql+psycopg_async": "postgresql+psycopg",
}


def _sync_url(url: str) -> URL:
    parsed = make_url(url)
    driver = _SYNC_DRIVERS.get(parsed.drivername)
    if driver is None:
        raise ValueError(f"no synchronous driver known for {parsed.drivername!r} (SQLite and PostgreSQL only)")
    parsed = parsed.set(drivername=driver)
    if driver.startswith("postgresql") and "ssl" in parsed.query:
        # asyncpg spells libpq's sslmode as ssl (same values: disable, prefer, require, verify-full ...)
        query = dict(parsed.query)
        query.setdefault("sslmode", query.pop("ssl"))
        parsed = parsed.set(query=query)
    return parsed


def sync_database_url(url: str) -> str:
    """The service's (async) database URL with the synchronous driver the job store needs."""
    return _sync_url(url).render_as_string(hide_password=False)


def create_jobstore_engine(database_url: str) -> Engine:
    """A small synchronous engine for the job store on the service's database."""
    url = _sync_url(database_url)
    if url.drivername == "sqlite":
        # The sqlite3 timeout is its busy handler: wait for the write lock instead of failing at once.
        return create_engine(url, connect_args={"timeout": SQLITE_BUSY_SECONDS}, pool_size=1, max_overflow=1)
    # Idle for hours between runs: pre-ping (one round trip per wake-up, not per request) so a
    # connection dropped by a database restart or a firewall does not fail a job-store call.
    return create_engine(url, pool_size=1, max_overflow=1, pool_pre_ping=True, pool_recycle=1800)
