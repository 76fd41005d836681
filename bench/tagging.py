"""Tag factory at scale: 1,000,000 customers and 5,000,000 orders.

Times `scrm tags recompute` (the real command, in its own process), a segment count and a profile
read, each against the very SQL statements the service issued replayed bare on the same database
(captured from the engine, executed through the raw driver) as the baseline.
Targets on SQLite: recompute < 60 s, segment count < 1 s, profile read p99 < 20 ms.

Usage: python bench/tagging.py [--customers 1000000] [--orders 5000000] [--db URL] [--fresh]
The generated SQLite database is kept under bench/.data/ and reused by later runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import datagen  # noqa: E402
from sqlalchemy import event, func, select, text  # noqa: E402

from customers.profile import load_profile  # noqa: E402
from customers.segments import count_segment, save_tag_rule  # noqa: E402
from models import Customer, TagRule  # noqa: E402
from scrm.db import create_engine, create_sessionmaker, upgrade_database  # noqa: E402
from scrm.settings import Settings, normalise_database_url  # noqa: E402

RULES = (
    ("高频高客单", "orders >= 4 AND aov >= 300"),
    ("只看不买", "orders = 0 AND days_since_added >= 14"),
    ("沉睡90天", "recency_days >= 90"),
    ("奶粉复购周期到了", "days_since_bought(category='奶粉') BETWEEN 25 AND 40"),
)
SEGMENT = "channel = 'tmall' AND spend >= 1000 AND stage IN ('active', 'silent')"
NOW = datagen.Scale().now


class Capture:
    """Records every statement an engine sends, to replay it bare."""

    def __init__(self, engine: Any) -> None:
        self.statements: list[tuple[str, Any, bool]] = []
        self.on = False
        event.listen(engine.sync_engine, "before_cursor_execute", self._record)

    def _record(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if self.on:
            self.statements.append((statement, parameters, executemany))

    def take(self) -> list[tuple[str, Any, bool]]:
        out, self.statements = self.statements, []
        return out


def replay_sqlite(path: str, statements: list[tuple[str, Any, bool]]) -> float:
    """Run captured statements through sqlite3 directly, in one transaction per write burst."""
    conn = sqlite3.connect(path, isolation_level=None)
    started = time.perf_counter()
    conn.execute("BEGIN")
    for sql, params, many in statements:
        if sql.strip().upper() in ("BEGIN", "COMMIT", "ROLLBACK"):
            continue
        cur = conn.executemany(sql, params) if many else conn.execute(sql, params or ())
        cur.fetchall()
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


async def replay_postgres(dsn: str, statements: list[tuple[str, Any, bool]]) -> float:
    """Run captured statements through asyncpg directly."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    started = time.perf_counter()
    async with conn.transaction():
        for sql, params, many in statements:
            if many:
                await conn.executemany(sql, params)
            else:
                await conn.fetch(sql, *(params or ()))
    elapsed = time.perf_counter() - started
    await conn.close()
    return elapsed


def replay(url: str, statements: list[tuple[str, Any, bool]]) -> float:
    if url.startswith("sqlite"):
        return replay_sqlite(url.split("///", 1)[1], statements)
    return asyncio.run(replay_postgres(url.replace("postgresql+asyncpg://", "postgresql://"), statements))


async def reset_results(url: str) -> None:
    """Forget computed stats and rule tags, so every timed run does the full work."""
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM customer_tags WHERE source = 'rule'"))
        await conn.execute(text("DELETE FROM customer_stats"))
        await conn.execute(text("UPDATE tag_rules SET last_run_at = NULL, last_count = NULL"))
    await engine.dispose()


async def ensure_rules(url: str) -> None:
    engine = create_engine(url)
    maker = create_sessionmaker(engine)
    async with maker() as session:
        have = await session.scalar(select(func.count()).select_from(TagRule))
    if not have:
        for name, expression in RULES:
            await save_tag_rule(maker, name, expression, now=NOW)
    await engine.dispose()


def bench_settings(url: str) -> Settings:
    return Settings(corp_id="ww0000000000000000", agent_id=1, agent_secret="x", token="x",
                    encoding_aes_key="jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
                    public_base_url="http://127.0.0.1", database_url=url)


def time_cli_recompute(url: str) -> float:
    """Wall time of the real command in its own process (no WeCom push: nothing to push to)."""
    env = {**os.environ, "DATABASE_URL": url}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "scrm", "tags", "recompute", "--no-push"], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


async def captured_recompute(url: str) -> tuple[float, list[tuple[str, Any, bool]]]:
    from customers.recompute import recompute_all

    engine = create_engine(url)
    cap = Capture(engine)
    cap.on = True
    started = time.perf_counter()
    await recompute_all(create_sessionmaker(engine), now=NOW, settings=bench_settings(url))
    elapsed = time.perf_counter() - started
    await engine.dispose()
    return elapsed, cap.take()


async def segment_and_profiles(url: str, samples: int) -> dict[str, Any]:
    engine = create_engine(url)
    maker = create_sessionmaker(engine)
    cap = Capture(engine)
    counts = []
    for _ in range(3):
        cap.on = True
        started = time.perf_counter()
        n = await count_segment(maker, SEGMENT, now=NOW)
        counts.append(time.perf_counter() - started)
        cap.on = False
    segment_sql = cap.take()[-1:]  # the COUNT itself
    async with maker() as session:
        top = int(await session.scalar(select(func.max(Customer.id))) or 0)
    rng = random.Random(1)
    ids = [rng.randint(1, top) for _ in range(samples)]
    lat = []
    profile_sql: list[tuple[str, Any, bool]] = []
    for i, cid in enumerate(ids):
        cap.on = i == 0
        started = time.perf_counter()
        async with maker() as session:
            await load_profile(session, cid)
        lat.append(time.perf_counter() - started)
        if i == 0:
            profile_sql = cap.take()
        cap.on = False
    await engine.dispose()
    return {"segment_count": n, "segment_s": statistics.median(counts), "segment_sql": segment_sql,
            "profile_lat": lat, "profile_sql": profile_sql, "profile_first": ids[0]}


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--orders", type=int, default=5_000_000)
    parser.add_argument("--db", default="")
    parser.add_argument("--fresh", action="store_true", help="regenerate the data even if a copy exists")
    parser.add_argument("--profiles", type=int, default=1000)
    args = parser.parse_args()
    scale = datagen.Scale(customers=args.customers, orders=args.orders)
    if args.db:
        url = normalise_database_url(args.db)
        fresh = True
    else:
        data = ROOT / "bench" / ".data"
        data.mkdir(parents=True, exist_ok=True)
        path = data / f"tagging-{args.customers}-{args.orders}.db"
        fresh = args.fresh or not path.exists()
        if fresh:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        url = f"sqlite+aiosqlite:///{path}"
    if fresh:
        if url.startswith("postgresql"):
            asyncio.run(_reset_pg(url))
        upgrade_database(url)
        print(f"generating {args.customers:,} customers and {args.orders:,} orders ...", flush=True)
        seconds = datagen.load(url, scale, progress=lambda m: None)
        print(f"  generated in {seconds:.0f} s", flush=True)
    asyncio.run(ensure_rules(url))

    asyncio.run(reset_results(url))
    cli_s = time_cli_recompute(url)
    asyncio.run(reset_results(url))
    inproc_s, statements = asyncio.run(captured_recompute(url))
    asyncio.run(reset_results(url))
    bare_s = replay(url, statements)
    asyncio.run(captured_recompute(url))  # leave real results behind for the reads below
    reads = asyncio.run(segment_and_profiles(url, args.profiles))
    seg_bare = min(replay(url, reads["segment_sql"]) for _ in range(3))
    prof_bare = [replay(url, reads["profile_sql"]) for _ in range(50)]

    kind = url.split(":")[0]
    print(f"tagging: {args.customers:,} customers, {args.orders:,} orders, {len(RULES)} rules, database {kind}")
    print(f"  scrm tags recompute (own process)   {cli_s:7.1f} s   target < 60 s")
    print(f"    same work in-process              {inproc_s:7.1f} s   ({len(statements)} statements)")
    print(f"    bare replay of those statements   {bare_s:7.1f} s   ratio service/bare {cli_s / bare_s:.2f}x")
    print(f"  segment count ({reads['segment_count']:,} match)     {reads['segment_s'] * 1000:7.0f} ms  target < 1000 ms"
          f"   bare {seg_bare * 1000:.0f} ms  ratio {reads['segment_s'] / seg_bare:.2f}x")
    lat = reads["profile_lat"]
    print(f"  profile read x{len(lat)}: p50 {pct(lat, 50):.1f} ms  p99 {pct(lat, 99):.1f} ms  target p99 < 20 ms"
          f"   bare p50 {pct(prof_bare, 50):.1f} ms ({len(reads['profile_sql'])} statements)")


async def _reset_pg(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


if __name__ == "__main__":
    main()
