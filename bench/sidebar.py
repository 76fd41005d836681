"""Sidebar open under load: profile + talk scripts for 32 concurrent guides, 1,000,000 customers.

One "sidebar open" is what the page does when a guide opens a single chat: GET
/sidebar/api/contact/{external_userid} and GET /sidebar/api/contact/{external_userid}/scripts, issued
concurrently. Each of ``--concurrency`` virtual guides (real staff from the generated data, signed in
with a session cookie minted by sidebar.session) keeps opening a random customer it follows, pausing
``--think`` ms on average between opens (default 1000: every guide opens a new chat every second, a
busy store at its busiest; 0 runs them back to back, which measures saturation, not a guide's wait).

The real service (scrm.app.create_app, worker and scheduler included; the app clock pinned to the
dataset's "now" so recency conditions match as on the day the data describes) runs in its own
process; so does a bare aiohttp handler that serves, on the same two routes, the exact bytes of a
typical real response captured during the service's warm-up. The load generator is this process.
Every profile view writes an audit row, as in production; the rows a run adds are deleted afterwards.

Prints dataset size, throughput, p50/p99 per endpoint and per open for both servers, the ratio, and
PASS/FAIL: p99 of each endpoint request < 50 ms on SQLite, < 30 ms on PostgreSQL.

Data: bench/datagen.py at --customers/--orders, customer_stats recomputed (the stats stage of
`scrm tags recompute`) and the demo talk scripts seeded, so script ranking evaluates real
conditions. On SQLite the bench keeps its own copy, bench/.data/sidebar-C-O.db, made from
bench/tagging.py's cache when present (read, never modified) or generated; on PostgreSQL the
database given with --db (create your own: createdb -h 127.0.0.1 -U postgres bench_sidebar; never
`test`) is filled once and reused while its customer count matches; --fresh regenerates either.
A phase that runs past --time-limit seconds stops starting opens and says so.

Usage:
  python bench/sidebar.py [--customers 1000000] [--orders 5000000] [--requests 20000] [--concurrency 32]
                          [--think 1000] [--warmup 1000] [--db postgresql://postgres@127.0.0.1:5432/bench_sidebar]
                          [--time-limit 600] [--fresh] [--py-spy OUT.txt]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import json
import os
import random
import re
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
from aiohttp import web

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
# This file is called sidebar.py: keep bench/ behind the project so `import sidebar` is the package.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != BENCH] + [str(BENCH)]

import datagen
from benchserve import free_port, wait_up
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from customers.recompute import recompute_stats
from models import CustomerStats, FollowRelation, Staff, StaffRole
from scrm.app import create_app
from scrm.db import create_engine, create_sessionmaker, upgrade_database
from scrm.settings import Settings, normalise_database_url
from sidebar.permissions import LIVE_FOLLOW
from sidebar.session import SESSION_COOKIE, sign_session

try:  # the demo scripts moved out of sidebar.scripts; accept either home
    from sidebar.scripts_demo import seed_demo_scripts
except ImportError:
    from sidebar.scripts import seed_demo_scripts  # type: ignore[attr-defined,no-redef]

import tagging

NOW: Final = datagen.Scale().now
CORP_ID: Final = "ww0000000000000000"
AES_KEY: Final = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
SECRET_ENV: Final = "SCRM_SESSION_SECRET"
DATA: Final = BENCH / ".data"
TARGET_MS: Final = {"sqlite": 50.0, "postgresql": 30.0}
ENDPOINTS: Final = ("profile", "scripts")
#: The last line of a logged traceback: ``sqlalchemy.exc.TimeoutError: QueuePool limit ...``.
_EXCEPTION_LINE: Final = re.compile(r"^[\w.]+(Error|Exception|Timeout)\b:")


# -- data ---------------------------------------------------------------------------------------


def _sqlite_url(path: Path) -> str:
    """The async SQLAlchemy URL of a SQLite file."""
    return f"sqlite+aiosqlite:///{path}"


def _remove_sqlite(path: Path) -> None:
    """Delete a SQLite file and its WAL companions."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _copy_sqlite(source: Path, target: Path) -> None:
    """Consistent copy through the backup API (the source is opened read-only and left as it is)."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    src.backup(dst)
    dst.close()
    src.close()


def _generate(url: str, scale: datagen.Scale) -> None:
    """Migrate and fill an empty database with bench/datagen.py."""
    upgrade_database(url)
    print(f"generating {scale.customers:,} customers and {scale.orders:,} orders ...", flush=True)
    seconds = datagen.load(url, scale, progress=lambda m: None)
    print(f"  generated in {seconds:.0f} s", flush=True)


def prepare_sqlite(scale: datagen.Scale, fresh: bool) -> str:
    """URL of the bench's own SQLite copy, made (from the tagging cache or from scratch) if missing."""
    DATA.mkdir(parents=True, exist_ok=True)
    base = DATA / f"sidebar-{scale.customers}-{scale.orders}.db"
    if fresh:
        _remove_sqlite(base)
    if base.exists():
        asyncio.run(ensure_ready(_sqlite_url(base)))  # migrations may have moved on since
        return _sqlite_url(base)
    partial = base.with_suffix(".partial")
    _remove_sqlite(partial)
    cache = DATA / f"tagging-{scale.customers}-{scale.orders}.db"
    if cache.exists() and not fresh:
        print(f"copying {cache.name} (bench/tagging.py's cache, left untouched) ...", flush=True)
        _copy_sqlite(cache, partial)
    else:
        _generate(_sqlite_url(partial), scale)
    asyncio.run(ensure_ready(_sqlite_url(partial)))  # a copy that is not ready is never reused
    shutil.move(partial, base)
    return _sqlite_url(base)


async def _customer_count(url: str) -> int | None:
    """Customers in a database, or None when it has no schema yet."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(text("SELECT count(*) FROM customers"))).scalar() or 0)
    except DBAPIError:
        return None
    finally:
        await engine.dispose()


async def _reset_postgres(url: str) -> None:
    """Empty the benchmark's own PostgreSQL database (never point --db at a shared one)."""
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


def checked_postgres_url(url: str) -> str:
    """The URL, unless it is not PostgreSQL or names the test suite's database (its schema gets dropped)."""
    if not url.startswith("postgresql"):
        raise SystemExit("--db takes a postgresql:// URL; SQLite data is kept under bench/.data/ (omit --db)")
    if make_url(url).database in (None, "", "test", "postgres"):
        raise SystemExit("--db must name the benchmark's own database (createdb bench_sidebar), "
                         "not 'test' or 'postgres': its schema is dropped when the data is regenerated")
    return url


def prepare_postgres(url: str, scale: datagen.Scale, fresh: bool) -> str:
    """Fill the PostgreSQL database unless it already holds this many customers."""
    if fresh or asyncio.run(_customer_count(url)) != scale.customers:
        asyncio.run(_reset_postgres(url))
        _generate(url, scale)
    asyncio.run(ensure_ready(url))
    return url


async def recompute_customer_stats(engine: AsyncEngine, url: str) -> None:
    """customer_stats for every customer (the first stage of `scrm tags recompute`), then ANALYZE.

    The rule-tag stage is left out: on PostgreSQL with 5,000,000 orders its purchase rule
    (days_since_bought) ran for hours (see the report); rule tags already in the data are kept.
    ANALYZE afterwards: datagen analyzed the tables while customer_stats was still empty.
    """
    print("recomputing customer stats ...", flush=True)
    started = time.perf_counter()
    await recompute_stats(create_sessionmaker(engine), now=NOW, settings=tagging.bench_settings(url))
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        # PostgreSQL: also reclaim the rewritten rows (autovacuum may be off, as on the CI server).
        await conn.execute(text("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"))
    print(f"  recomputed in {time.perf_counter() - started:.0f} s", flush=True)


async def ensure_ready(url: str) -> None:
    """Schema at head, customer stats computed and demo talk scripts seeded (each only when missing)."""
    await asyncio.to_thread(upgrade_database, url)
    engine = create_engine(url)
    maker = create_sessionmaker(engine)
    async with maker() as session:
        stats = await session.scalar(select(func.count()).select_from(CustomerStats))
    if not stats:
        await recompute_customer_stats(engine, url)
    if await seed_demo_scripts(maker, NOW):
        print("seeded the demo talk scripts", flush=True)
    await engine.dispose()


@dataclass(frozen=True)
class Guide:
    """A virtual guide: who, the session cookie, and the external_userids they follow."""

    userid: str
    cookie: str
    customers: tuple[str, ...]


async def pick_guides(url: str, count: int, secret: str, seed: int = 7) -> list[Guide]:
    """``count`` active guides who follow customers, each with a signed session cookie."""
    engine = create_engine(url)
    async with engine.connect() as conn:
        staff = (await conn.execute(
            select(Staff.id, Staff.userid).where(Staff.role == StaffRole.GUIDE, Staff.wecom_status.in_((1, 4)))
            .where(select(FollowRelation.id).where(FollowRelation.staff_id == Staff.id).exists())
            .order_by(Staff.id))).all()
        chosen = random.Random(seed).sample(staff, min(count, len(staff)))
        guides = []
        for staff_id, userid in chosen:
            xids = (await conn.scalars(select(FollowRelation.external_userid).where(
                FollowRelation.staff_id == staff_id, FollowRelation.status.in_(LIVE_FOLLOW)))).all()
            cookie = f"{SESSION_COOKIE}={sign_session(secret, userid, int(NOW.timestamp()))}"
            guides.append(Guide(userid, cookie, tuple(xids)))
    await engine.dispose()
    if len(guides) < count:
        raise SystemExit(f"only {len(guides)} guides with customers in the data, {count} wanted")
    return guides


async def dataset_size(url: str) -> dict[str, int]:
    """Row counts that say how big the data behind the timings is."""
    engine = create_engine(url)
    out = {}
    async with engine.connect() as conn:
        for table in ("customers", "orders", "follow_relations", "customer_stats", "talk_scripts"):
            out[table] = int((await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar() or 0)
        out["conditional_scripts"] = int((await conn.execute(text(
            "SELECT count(*) FROM talk_scripts WHERE enabled AND condition IS NOT NULL"))).scalar() or 0)
    await engine.dispose()
    return out


async def audit_mark(url: str) -> int:
    """The highest audit row id now."""
    engine = create_engine(url)
    async with engine.connect() as conn:
        mark = int((await conn.execute(text("SELECT coalesce(max(id), 0) FROM audit_log"))).scalar() or 0)
    await engine.dispose()
    return mark


async def drop_audits_after(url: str, mark: int) -> int:
    """Delete the audit rows this run wrote (ids above ``mark``); returns how many."""
    engine = create_engine(url)
    async with engine.begin() as conn:
        result = await conn.execute(text("DELETE FROM audit_log WHERE id > :mark"), {"mark": mark})
    await engine.dispose()
    return int(result.rowcount or 0)


# -- the two servers (run in child processes) --------------------------------------------------


def _recompute_time_far_from_now() -> str:
    """A nightly-recompute time 12 hours away, so the scheduler never fires during a run."""
    later = dt.datetime.now(zoneinfo.ZoneInfo("Asia/Shanghai")) + dt.timedelta(hours=12)
    return later.strftime("%H:%M")


def serve_service(port: int, url: str) -> None:
    """The real service, session secret from the environment, WeCom pointed at a closed port."""
    settings = Settings(
        corp_id=CORP_ID, agent_id=1, agent_secret="unused", token="BenchToken", encoding_aes_key=AES_KEY,
        public_base_url=f"http://127.0.0.1:{port}", database_url=url, api_base="http://127.0.0.1:9/cgi-bin/",
        session_secret=os.environ[SECRET_ENV], recompute_at=_recompute_time_far_from_now(),
    )
    app = create_app(settings, clock=lambda: NOW)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def serve_bare(port: int, bodies: Path) -> None:
    """Fixed bytes (a captured real response) on the same two routes; no session, no database."""
    profile = (bodies / "profile.json").read_bytes()
    scripts = (bodies / "scripts.json").read_bytes()

    def fixed(body: bytes) -> Any:
        async def handle(request: web.Request) -> web.Response:
            return web.Response(body=body, content_type="application/json", charset="utf-8",
                                headers={"Cache-Control": "no-store"})
        return handle

    app = web.Application()
    app.router.add_get("/healthz", fixed(b'{"status": "ok"}'))
    app.router.add_get("/sidebar/api/contact/{external_userid}", fixed(profile))
    app.router.add_get("/sidebar/api/contact/{external_userid}/scripts", fixed(scripts))
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)





def start_server(kind: str, extra: list[str], secret: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``--serve-<kind>`` in a child process logging to bench/.data/sidebar-<kind>.log; returns it and its URL."""
    port = free_port()
    cmd = [sys.executable, __file__, f"--serve-{kind}", str(port), *extra]
    DATA.mkdir(parents=True, exist_ok=True)
    with open(server_log(kind), "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, SECRET_ENV: secret}, stdout=log,
                                stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}"


def server_log(kind: str) -> Path:
    """Where a child server's output goes (overwritten by each run)."""
    return DATA / f"sidebar-{kind}.log"


def log_errors(path: Path) -> collections.Counter[str]:
    """The exception lines a server logged, counted."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return collections.Counter(line[:200] for line in lines if _EXCEPTION_LINE.match(line))


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a child server we started, and reap it."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- the load generator ---------------------------------------------------------------------------


@dataclass
class Samples:
    """Latencies (seconds) per endpoint and per open, failures, wall time, and bodies if captured."""

    profile: list[float] = field(default_factory=list)
    scripts: list[float] = field(default_factory=list)
    opens: list[float] = field(default_factory=list)
    failures: collections.Counter[str] = field(default_factory=collections.Counter)
    seconds: float = 0.0
    cut_short: bool = False
    bodies: dict[str, list[bytes]] = field(default_factory=lambda: {"profile": [], "scripts": []})


async def _get(session: aiohttp.ClientSession, url: str, cookie: str) -> tuple[float, int, bytes]:
    """One GET: (latency, status, body)."""
    started = time.perf_counter()
    async with session.get(url, headers={"Cookie": cookie}) as resp:
        body = await resp.read()
    return time.perf_counter() - started, resp.status, body


async def sidebar_open(session: aiohttp.ClientSession, base: str, guide: Guide, xid: str, out: Samples,
                       capture: bool) -> None:
    """Both requests of one open, concurrently, as the page issues them; records into ``out``."""
    url = f"{base}/sidebar/api/contact/{xid}"
    started = time.perf_counter()
    results = await asyncio.gather(_get(session, url, guide.cookie), _get(session, f"{url}/scripts", guide.cookie))
    out.opens.append(time.perf_counter() - started)
    for name, (latency, status, body) in zip(ENDPOINTS, results):
        getattr(out, name).append(latency)
        if status != 200:
            out.failures[f"{name} {status}: {body[:120].decode(errors='replace')}".replace("\n", " ")] += 1
        elif capture:
            out.bodies[name].append(body)


async def run_load(base: str, guides: list[Guide], opens: int, seed: int, limit: float,
                   capture: bool = False, think: float = 0.0) -> Samples:
    """``opens`` sidebar opens shared among the guides, each one open at a time; none started after ``limit`` s."""
    out = Samples()
    left = opens
    deadline = time.perf_counter() + limit
    connector = aiohttp.TCPConnector(limit=2 * len(guides))
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                     cookie_jar=aiohttp.DummyCookieJar()) as session:

        async def guide_loop(index: int, guide: Guide) -> None:
            nonlocal left
            rng = random.Random(seed * 1000 + index)
            if think:  # guides start spread out, not as one burst of simultaneous opens
                await asyncio.sleep(rng.uniform(0, think))
            while left > 0:
                if time.perf_counter() > deadline:
                    out.cut_short = True
                    return
                left -= 1
                await sidebar_open(session, base, guide, rng.choice(guide.customers), out, capture)
                if think:
                    await asyncio.sleep(rng.expovariate(1 / think))

        started = time.perf_counter()
        await asyncio.gather(*(guide_loop(i, g) for i, g in enumerate(guides)))
        out.seconds = time.perf_counter() - started
    return out


def typical_bodies(samples: Samples) -> dict[str, bytes]:
    """Per endpoint, the captured 200 response of median size."""
    out = {}
    for name in ENDPOINTS:
        bodies = sorted(samples.bodies[name], key=len)
        if not bodies:
            raise SystemExit(f"no successful {name} response to capture: {dict(samples.failures)}")
        out[name] = bodies[len(bodies) // 2]
    return out


def merge_bodies(*runs: Samples) -> Samples:
    """One Samples holding every body the runs captured (for the typical body and script matching)."""
    out = Samples()
    for run_ in runs:
        for name in ENDPOINTS:
            out.bodies[name] += run_.bodies[name]
    return out


async def capture_quietly(base: str, guides: list[Guide], limit: float) -> Samples:
    """A few opens by one guide with no other load: bodies for when every loaded request failed."""
    return await run_load(base, guides[:1], 4, seed=3, limit=limit, capture=True)


def script_matching(samples: Samples) -> dict[str, float]:
    """How many scripts each captured scripts response held, and how many matched a condition."""
    listed, matched, any_match = [], [], 0
    for body in samples.bodies["scripts"]:
        scripts = json.loads(body)["scripts"]
        hits = sum(1 for s in scripts if s["matched"])
        listed.append(len(scripts))
        matched.append(hits)
        any_match += hits > 0
    n = max(1, len(listed))
    return {"listed": sum(listed) / n, "matched": sum(matched) / n, "opens_with_match": any_match / n}


# -- profiling -------------------------------------------------------------------------------------


def start_py_spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """Sample the service (all threads, native frames off) into collapsed stacks until stopped."""
    py_spy = Path(sys.executable).with_name("py-spy")
    cmd = [str(py_spy), "record", "--pid", str(pid), "--format", "raw", "--output", str(out), "--rate", "200",
           "--nonblocking"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_py_spy(proc: subprocess.Popen[bytes]) -> None:
    """Stop py-spy with SIGINT so it writes its output."""
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)


def _project_packages() -> frozenset[str]:
    """Top-level packages of this repository (py-spy names files relative to sys.path)."""
    return frozenset(d.name for d in ROOT.iterdir() if (d / "__init__.py").exists())


def _function(frame: str) -> str:
    """``name (path.py:123)`` without the line number, so a function's lines add up."""
    head, _, line = frame.rpartition(":")
    return f"{head})" if line.rstrip(")").isdigit() else frame


def _is_driver_thread(frames: list[str]) -> bool:
    """Whether a sampled stack is one of aiosqlite's per-connection threads (running SQLite)."""
    return any("_connection_worker_thread" in f for f in frames)


def _package(frame: str) -> str:
    """The top-level package of a frame's file: ``sqlalchemy``, ``asyncpg``, ``sidebar`` ..."""
    path = frame.rpartition("(")[2].rstrip(")").rsplit(":", 1)[0]
    return path.split("/", 1)[0] if "/" in path else path  # a lone module keeps its .py: not a package


def profile_summary(path: Path, top: int = 12) -> list[str]:
    """Where the service's samples went: SQLite threads vs Python, Python self time by package, callers."""
    packages = _project_packages()
    driver = python = 0
    by_package: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit() or not stack:
            continue
        n, frames = int(count), stack.split(";")
        if _is_driver_thread(frames):
            driver += n
            continue
        python += n
        by_package[_package(frames[-1])] += n
        leaves[_function(frames[-1])] += n
        for function in {_function(f) for f in frames if _package(f) in packages}:
            inclusive[function] += n

    def share(n: int) -> str:
        return f"{100 * n / max(python, 1):5.1f}%"

    lines = [(f"{driver:,} samples inside SQLite (aiosqlite threads), {python:,} in Python (event loop and "
              "SQLAlchemy greenlets); shares below are of the Python samples")]
    lines.append("self time by package: " + ", ".join(f"{k} {share(v).strip()}" for k, v in by_package.most_common(8)))
    lines.append("project functions on the stack (ORM work on greenlet stacks has no project caller):")
    lines += [f"  {share(n)}  {f}" for f, n in inclusive.most_common(top)]
    lines.append("busiest leaf frames:")
    lines += [f"  {share(n)}  {f}" for f, n in leaves.most_common(8)]
    return lines


# -- the run ------------------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    """Percentile ``p`` of ``values`` (seconds) in milliseconds."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


async def measure_service(url: str, guides: list[Guide], args: argparse.Namespace,
                          secret: str) -> tuple[Samples, Samples]:
    """Warm-up and measured runs against the real service; returns (all 200 bodies, measured run)."""
    proc, base = start_server("service", ["--db", url], secret)
    spy = None
    try:
        await wait_up(f"{base}/healthz", proc)
        warm = await run_load(base, guides, args.warmup // 2, seed=1, limit=args.time_limit, capture=True)
        spy = start_py_spy(proc.pid, Path(args.py_spy)) if args.py_spy else None
        measured = await run_load(base, guides, args.requests // 2, seed=2, limit=args.time_limit, capture=True,
                                  think=args.think / 1000)
        if spy is not None:
            stop_py_spy(spy)
            spy = None
        captured = merge_bodies(warm, measured)
        if not all(captured.bodies[name] for name in ENDPOINTS):
            captured = merge_bodies(captured, await capture_quietly(base, guides, args.time_limit))
    finally:
        if spy is not None:
            stop_py_spy(spy)
        stop_server(proc)
    return captured, measured


async def measure_bare(bodies: dict[str, bytes], guides: list[Guide], args: argparse.Namespace,
                       secret: str) -> Samples:
    """Warm-up and measured runs against the bare server serving ``bodies``."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, body in bodies.items():
            (Path(tmp) / f"{name}.json").write_bytes(body)
        proc, base = start_server("bare", ["--bodies", tmp], secret)
        try:
            await wait_up(f"{base}/healthz", proc)
            await run_load(base, guides, args.warmup // 2, seed=1, limit=args.time_limit)
            return await run_load(base, guides, args.requests // 2, seed=2, limit=args.time_limit,
                                  think=args.think / 1000)
        finally:
            stop_server(proc)


def _throughput(s: Samples) -> float:
    """Sidebar opens per second."""
    return len(s.opens) / s.seconds if s.seconds else 0.0


def _server_lines(name: str, s: Samples) -> list[str]:
    """Throughput and p50/p99 per endpoint and per open for one server."""
    failed = {e: sum(n for k, n in s.failures.items() if k.startswith(e)) for e in ENDPOINTS}
    rows = [f"  {name:<8} {len(s.opens):6,} opens  {_throughput(s):7.1f} opens/s  {2 * _throughput(s):7.1f} req/s"
            f"  non-200: profile {failed['profile']:,}, scripts {failed['scripts']:,}"
            + ("  (cut short by --time-limit)" if s.cut_short else "")]
    for label, values in (("profile", s.profile), ("scripts", s.scripts), ("open", s.opens)):
        rows.append(f"    {label:<8} p50 {pct(values, 50):8.1f} ms   p99 {pct(values, 99):8.1f} ms")
    return rows


def _header_lines(kind: str, size: dict[str, int], args: argparse.Namespace, bodies: dict[str, bytes],
                  matching: dict[str, float]) -> list[str]:
    """What was measured: data, load shape, response sizes, script matching."""
    return [
        (f"sidebar: {size['customers']:,} customers, {size['orders']:,} orders, {size['follow_relations']:,} follow "
        f"relations, {size['customer_stats']:,} stats rows, {size['talk_scripts']} talk scripts "
        f"({size['conditional_scripts']} conditional), database {kind}"),
        (f"  {args.concurrency} concurrent guides, each open = profile + scripts GET issued together, "
         f"{f'mean think time {args.think:.0f} ms' if args.think else 'back to back (no think time)'}; "
         f"{args.requests:,} requests asked per server after {args.warmup:,} warm-up requests"),
        f"  typical response (served by bare): profile {len(bodies['profile']):,} B, scripts {len(bodies['scripts']):,} B",
        (f"  scripts per response: {matching['listed']:.1f} listed, {matching['matched']:.2f} matched a condition "
        f"({matching['opens_with_match']:.0%} of opens had a matched script)"),
    ]


def _ratio_line(service: Samples, bare: Samples) -> str:
    """Service relative to bare: throughput share and p99 multiples."""
    def p99x(name: str) -> float:
        return pct(getattr(service, name), 99) / pct(getattr(bare, name), 99)

    return (f"  ratio service/bare: throughput {_throughput(service) / _throughput(bare):.1%}, p99 profile "
            f"{p99x('profile'):.1f}x, scripts {p99x('scripts'):.1f}x, open {p99x('opens'):.1f}x")


def _verdict_lines(kind: str, service: Samples, bare: Samples) -> tuple[list[str], bool]:
    """PASS/FAIL per endpoint against the p99 target; any non-200 answer fails the run."""
    target = TARGET_MS[kind]
    lines, ok = [], True
    for name in ENDPOINTS:
        p99 = pct(getattr(service, name), 99)
        ok &= p99 < target
        lines.append(f"  {name:<8} p99 {p99:8.1f} ms   target < {target:.0f} ms ({kind})   "
                     f"{'PASS' if p99 < target else 'FAIL'}")
    for failure, count in (service.failures + bare.failures).items():
        lines.append(f"  non-200 x{count}: {failure}")
        ok = False
    return lines, ok


def report(kind: str, size: dict[str, int], args: argparse.Namespace, bodies: dict[str, bytes],
           matching: dict[str, float], service: Samples, bare: Samples) -> bool:
    """Print the figures; True when both endpoints meet the p99 target."""
    verdict, ok = _verdict_lines(kind, service, bare)
    lines = (_header_lines(kind, size, args, bodies, matching) + _server_lines("service", service)
             + _server_lines("bare", bare) + [_ratio_line(service, bare)] + verdict)
    print("\n".join(lines))
    return ok


async def run(url: str, args: argparse.Namespace) -> bool:
    """Measure the service, then the bare server with its captured bodies; print; tidy the audit rows."""
    kind = "sqlite" if url.startswith("sqlite") else "postgresql"
    secret = secrets.token_hex(32)
    guides = await pick_guides(url, args.concurrency, secret)
    size = await dataset_size(url)
    mark = await audit_mark(url)
    load_before = os.getloadavg()[0]
    try:
        captured, service = await measure_service(url, guides, args, secret)
    finally:
        dropped = await drop_audits_after(url, mark)
    bodies = typical_bodies(captured)
    bare = await measure_bare(bodies, guides, args, secret)
    ok = report(kind, size, args, bodies, script_matching(captured), service, bare)
    print(f"  machine: {os.cpu_count()} CPUs shared by load generator, servers and database; 1-min load average "
          f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after (counts this run's own busy threads; "
          "other work on the machine skews the figures)")
    print(f"  audit rows written by the run (then deleted): {dropped:,}")
    for kind_ in ("service", "bare"):
        errors = log_errors(server_log(kind_))
        if errors:
            print(f"  {kind_} log ({server_log(kind_)}): {sum(errors.values()):,} exceptions")
            for line, count in errors.most_common(5):
                print(f"    x{count}: {line}")
    if args.py_spy:
        print(f"  py-spy profile of the service during the measured phase ({args.py_spy}):")
        for line in profile_summary(Path(args.py_spy)):
            print(f"    {line}")
    return ok


def main() -> None:
    """Parse options; serve (child mode) or prepare data and benchmark."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--orders", type=int, default=5_000_000)
    parser.add_argument("--db", default="", help="postgresql://... (your own database); default: SQLite copy")
    parser.add_argument("--requests", type=int, default=20_000, help="measured requests per server, two per open")
    parser.add_argument("--warmup", type=int, default=1_000, help="warm-up requests per server, not counted")
    parser.add_argument("--concurrency", type=int, default=32, help="virtual guides, each one open at a time")
    # 32 guides each opening a new chat every second on average: a busy store at its busiest. Back to back
    # (--think 0) measures saturation instead: every open then queues behind the 31 others.
    parser.add_argument("--think", type=float, default=1000.0, metavar="MS",
                        help="mean pause of a guide between opens in the measured phase (0: back to back)")
    parser.add_argument("--time-limit", type=float, default=600.0,
                        help="seconds after which a phase starts no new opens (a slow service still finishes)")
    parser.add_argument("--fresh", action="store_true", help="regenerate the data even if a copy exists")
    parser.add_argument("--py-spy", default="", metavar="OUT", help="profile the service under load into OUT")
    parser.add_argument("--serve-service", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-bare", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--bodies", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_service:
        return serve_service(args.serve_service, args.db)
    if args.serve_bare:
        return serve_bare(args.serve_bare, Path(args.bodies))
    scale = datagen.Scale(customers=args.customers, orders=args.orders)
    if args.db:
        url = prepare_postgres(checked_postgres_url(normalise_database_url(args.db)), scale, args.fresh)
    else:
        url = prepare_sqlite(scale, args.fresh)
    sys.exit(0 if asyncio.run(run(url, args)) else 1)


if __name__ == "__main__":
    main()
