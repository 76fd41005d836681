"""Scheduled group pushes at scale: a 100,000-customer audience across 200 guides against the simulator.

The WeCom simulator runs in its own process on 127.0.0.1 (``--serve-simulator``), with ``--guides``
members (customer contact on) and ``--customers`` customers, each followed by one guide and about 10%
by a second one (so the "most recent interaction" rule picks between two), all drawn from ``--seed``.
The database (SQLite in a temporary directory by default, or ``--db``) is migrated and filled in bulk
with the same staff, customers and follow relations (the same external_userids, from the same seed)
and one tag on every customer.

The push is created through ``pushes.service.create_push`` (audience: that tag; text with the guide's
variables), then timed from the trigger (``PushRunner.start``, as the scheduler fires it) until the
runner is done with creation (``PushRunner.wait``): audience resolved, recipients and deliveries
written, one add_msg_template per guide and chunk through the real ``WeComGateway``, guides reminded
through message/send, the run handed to polling. The split comes from the run's own records
(each delivery's call_started_at, created_at and reminded_at), the audience resolve is timed around
``PushRunner.compute_plan``. Every INSERT / UPDATE the engine sends during the run is counted (rows
and statements, per table), and the simulator's counter gives the WeCom calls made.

The simulator's own cost, separately and in the same run: the exact add_msg_template bodies the
service sent (same chunks, same sizes) and its message/send bodies are replayed with a bare aiohttp
client (after a gettoken), sequentially as the runner calls them; the service/bare ratio is printed,
and the simulator's CPU time during each.

Prints the figures and PASS/FAIL against the issue's target: under 60 s from trigger to all tasks
created (and every delivery created, every customer targeted through the guide the rule picks).

Usage:
  python bench/pushes.py [--customers 100000] [--guides 200] [--seed 6] [--db URL] [--quick] [--py-spy OUT.txt]
  python bench/pushes.py --serve-simulator PORT GUIDES CUSTOMERS SEED   (the child process)
``--quick``: 5,000 customers across 20 guides, a few seconds (the test runs it). A PostgreSQL
database must be the bench's own (e.g. ``createdb -h 127.0.0.1 -U postgres bench_pushes``): every
table in it is emptied at the start.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import hashlib
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
from aiohttp import web

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
# This file is bench/pushes.py: keep bench/ behind the project so `import pushes` is the package.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != BENCH] + [str(BENCH)]

from benchserve import free_port, wait_up  # noqa: E402
from sqlalchemy import delete, event, func, insert, select, text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession  # noqa: E402

import models  # noqa: E402
from models import (  # noqa: E402
    Customer, CustomerTag, DeliveryStatus, FollowRelation, FollowStatus, Push, PushDelivery, PushRecipient, PushRun,
    RunStatus, Staff, Store, Tag, TagGroup, TagSource, utcnow,
)
from pushes.plan import Plan  # noqa: E402
from pushes.runner import PushRunner  # noqa: E402
from pushes.service import create_push  # noqa: E402
from scrm.db import create_engine, create_sessionmaker, upgrade_database  # noqa: E402
from scrm.settings import Settings, normalise_database_url  # noqa: E402
from wecom.gateway import MassMessageResult, WeComGateway  # noqa: E402

CORP_ID: Final = "ww5a1b2c3d4e5f6a7b"
AGENT_ID: Final = 1000002
SECRET: Final = "bench-agent-secret-0123456789"
AES_KEY: Final = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
TARGET_SECONDS: Final = 60.0
SECOND_GUIDE_SHARE: Final = 0.10
GUIDES_PER_STORE: Final = 5
#: 2026-01-01 UTC: relations are added during the year after it.
BASE_TS: Final = 1_767_225_600
AVATAR: Final = "http://wx.qlogo.cn/mmhead/bench/0"
TEXT: Final = "我是{guide_name}，{store_name}本周三第二杯半价，到店出示本消息再送小样一份！"
QUICK: Final = (5_000, 20)
#: Rows per INSERT executemany, as pushes/runner.py writes recipients.
WRITE_CHUNK: Final = 5_000
_WRITE: Final = re.compile(r"\s*(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+\"?(\w+)", re.IGNORECASE)


# -- the population (the same in both processes) ------------------------------------------------------


@dataclass(frozen=True)
class Population:
    """Guides, customers and who follows whom (and since when), drawn from a seed."""

    userids: list[str]
    external_userids: list[str]
    follows: list[tuple[int, int, int]]  # (customer index, guide index, added at, unix seconds)

    def expected_split(self) -> collections.Counter[str]:
        """Customers per guide under "most recent interaction" (no talk-script sends: the latest relation)."""
        latest: dict[int, tuple[int, int]] = {}
        for customer, guide, added in self.follows:
            if customer not in latest or added > latest[customer][0]:
                latest[customer] = (added, guide)
        return collections.Counter(self.userids[guide] for _, guide in latest.values())


def population(guides: int, customers: int, seed: int) -> Population:
    """Every customer followed by one guide, about 10% by a second one added at another time."""
    rng = random.Random(seed)
    userids = [f"bguide{g:04d}" for g in range(guides)]
    external_userids = ["wm" + hashlib.sha256(f"{seed}:{i}".encode()).hexdigest()[:30] for i in range(customers)]
    follows: list[tuple[int, int, int]] = []
    for i in range(customers):
        guide = rng.randrange(guides)
        added = BASE_TS + rng.randrange(365 * 86400)
        follows.append((i, guide, added))
        if guides > 1 and rng.random() < SECOND_GUIDE_SHARE:
            other = (guide + 1 + rng.randrange(guides - 1)) % guides
            follows.append((i, other, added + rng.choice((-1, 1)) * (1 + rng.randrange(30 * 86400))))
    return Population(userids, external_userids, follows)


# -- the simulator (child process) -------------------------------------------------------------------


def serve_simulator(port: int, guides: int, customers: int, seed: int) -> None:
    """The fake corp with the population, served on 127.0.0.1:port."""
    from wecom.simulator.api import create_simulator_app
    from wecom.simulator.state import SimulatorState

    people = population(guides, customers, seed)
    state = SimulatorState(CORP_ID, AGENT_ID, SECRET, seed=seed)
    for g, userid in enumerate(people.userids):
        state.add_member(userid, f"导购{g:04d}", position="导购")
    for external_userid in people.external_userids:
        state.add_customer("客户", external_userid=external_userid, avatar=AVATAR)
    for customer, guide, added in people.follows:
        state.add_follow(people.userids[guide], people.external_userids[customer], createtime=added)
    web.run_app(create_simulator_app(state), host="127.0.0.1", port=port, print=None, access_log=None)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), all threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def simulator_calls(session: aiohttp.ClientSession, base: str) -> collections.Counter[str]:
    """The simulator's per-API call counter."""
    async with session.get(f"{base}/_sim/state") as resp:
        return collections.Counter((await resp.json())["calls"])


# -- the database ----------------------------------------------------------------------------------


async def _empty(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in models.Base.metadata.sorted_tables)
            await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(models.Base.metadata.sorted_tables):
                await conn.execute(table.delete())


async def _insert_ids(session: AsyncSession, model: Any, rows: Sequence[dict[str, Any]], chunk: int = 10_000) -> list[int]:
    ids: list[int] = []
    for start in range(0, len(rows), chunk):
        ids.extend((await session.scalars(insert(model).returning(model.id, sort_by_parameter_order=True),
                                          list(rows[start:start + chunk]))).all())
    return ids


async def seed_database(engine: AsyncEngine, people: Population) -> int:
    """Empty the database and load stores, guides, customers, follow relations and one tag on everyone; the tag id."""
    await _empty(engine)
    now = utcnow()
    maker = create_sessionmaker(engine)
    async with maker.begin() as session:
        stores = await _insert_ids(session, Store, [
            {"code": f"BS{s:03d}", "name": f"门店{s:03d}"}
            for s in range(max(1, -(-len(people.userids) // GUIDES_PER_STORE)))])
        staff = await _insert_ids(session, Staff, [
            {"userid": u, "name": f"导购{g:04d}", "store_id": stores[g // GUIDES_PER_STORE], "position": "导购",
             "wecom_status": 1} for g, u in enumerate(people.userids)])
        customers = await _insert_ids(session, Customer, [
            {"name": "客户", "avatar": AVATAR, "wecom_type": 1, "updated_at": now} for _ in people.external_userids])
        conn = await session.connection()
        follows = [{"staff_id": staff[g], "customer_id": customers[c], "external_userid": people.external_userids[c],
                    "add_way": 1, "status": FollowStatus.ACTIVE,
                    "added_at": dt.datetime.fromtimestamp(added, dt.timezone.utc)} for c, g, added in people.follows]
        for start in range(0, len(follows), 20_000):
            await conn.execute(insert(FollowRelation), follows[start:start + 20_000])
        group = TagGroup(name="压测")
        session.add(group)
        await session.flush()
        tag = Tag(group_id=group.id, name="压测受众")
        session.add(tag)
        await session.flush()
        tags = [{"customer_id": c, "tag_id": tag.id, "source": TagSource.STAFF, "created_at": now} for c in customers]
        for start in range(0, len(tags), 20_000):
            await conn.execute(insert(CustomerTag), tags[start:start + 20_000])
        tag_id = tag.id
    async with engine.connect() as conn:  # a database in use has statistics; a freshly loaded one not yet
        await conn.execute(text("ANALYZE"))
        await conn.commit()
    return tag_id


class WriteCounter:
    """Every INSERT / UPDATE / DELETE the engine sends while ``on``: rows and statements per table, and reads."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.on = False
        self.rows: collections.Counter[tuple[str, str]] = collections.Counter()
        self.statements: collections.Counter[tuple[str, str]] = collections.Counter()
        self.reads = 0
        self.commits = 0
        event.listen(engine.sync_engine, "after_cursor_execute", self._after)
        event.listen(engine.sync_engine, "commit", self._commit)

    def _commit(self, conn: Any) -> None:
        if self.on:
            self.commits += 1

    def _after(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if not self.on:
            return
        match = _WRITE.match(statement)
        if match is None:
            self.reads += 1
            return
        key = (match.group(1).split()[0].upper(), match.group(2))
        rowcount = getattr(cursor, "rowcount", -1)
        rows = rowcount if isinstance(rowcount, int) and rowcount >= 0 else (len(parameters) if executemany else 1)
        self.rows[key] += rows
        self.statements[key] += 1

    def total(self, verb: str) -> int:
        """Rows written by one kind of statement."""
        return sum(n for (v, _), n in self.rows.items() if v == verb)


# -- the service side ------------------------------------------------------------------------------


class RecordingGateway(WeComGateway):
    """The real gateway, keeping the bodies it sent for the bare replay."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.templates: list[dict[str, Any]] = []
        self.app_texts: list[dict[str, Any]] = []

    async def add_msg_template(self, body: Mapping[str, Any]) -> MassMessageResult:
        self.templates.append(dict(body))
        return await super().add_msg_template(body)

    async def send_app_text(self, touser: str | Sequence[str], content: str) -> None:
        to = touser if isinstance(touser, str) else "|".join(touser)
        self.app_texts.append({"touser": to, "msgtype": "text", "agentid": self.agent_id, "text": {"content": content}})
        await super().send_app_text(touser, content)


class TimedRunner(PushRunner):
    """The real runner; the audience resolve and the whole planning step (resolve + rows written) are timed."""

    resolve_seconds: float = 0.0
    plan_seconds: float = 0.0

    async def _plan(self, run_id: int) -> None:
        started = time.perf_counter()
        await super()._plan(run_id)
        self.plan_seconds = time.perf_counter() - started

    async def compute_plan(self, session: AsyncSession, push: Push, now: dt.datetime) -> Plan:
        started = time.perf_counter()
        plan = await super().compute_plan(session, push, now)
        self.resolve_seconds = time.perf_counter() - started
        return plan


@dataclass
class Measured:
    """What one run measured."""

    total: float = 0.0
    create_push: float = 0.0
    resolve: float = 0.0
    plan: float = 0.0
    to_first_call: float = 0.0
    creating: float = 0.0
    reminding: float = 0.0
    finishing: float = 0.0
    run_id: int = 0
    deliveries: int = 0
    created: int = 0
    targeted: int = 0
    recipients: int = 0
    run_status: str = ""
    run_error: str = ""
    split_ok: bool = False
    calls: collections.Counter[str] = field(default_factory=collections.Counter)
    sim_cpu: float = 0.0


def _start_py_spy(output: str) -> subprocess.Popen[bytes]:
    """py-spy sampling this process (every thread: the loop, aiosqlite's, the gateway's) into ``output``."""
    spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(os.getpid()),
                            "--format", "raw", "--output", output, "--rate", "200", "--threads", "--nonblocking"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return spy


def _since(t0: dt.datetime, t: dt.datetime | None) -> float:
    return (t - t0).total_seconds() if t is not None else float("nan")


async def run_push(db: str, sim: str, sim_pid: int, people: Population, tag_id: int, engine: AsyncEngine,
                   counter: WriteCounter, gateway: RecordingGateway, py_spy: str = "") -> Measured:
    """Create the push, fire it and wait until every task is created; read the run's records."""
    out = Measured()
    settings = Settings(corp_id=CORP_ID, agent_id=AGENT_ID, agent_secret=SECRET, token="BenchToken",
                        encoding_aes_key=AES_KEY, public_base_url="http://127.0.0.1:9", database_url=db,
                        api_base=f"{sim}/cgi-bin/")
    maker = create_sessionmaker(engine)
    runner = TimedRunner(maker, gateway, settings, clock=utcnow)
    now = utcnow()
    started = time.perf_counter()
    push = await create_push(maker, runner, {
        "name": "压测群发", "audience": {"kind": "tags", "tag_ids": [tag_id]}, "content": {"text": TEXT},
        "schedule": {"kind": "once", "at": (now + dt.timedelta(hours=1)).isoformat()}},
        now=now, actor="bench", default_tz=settings.timezone)
    out.create_push = time.perf_counter() - started
    assert push.next_run_at is not None
    async with aiohttp.ClientSession() as http:
        calls_before = await simulator_calls(http, sim)
        cpu_before = _cpu_seconds(sim_pid)
        spy = _start_py_spy(py_spy) if py_spy else None
        if spy is not None:
            await asyncio.sleep(1)  # attached before the trigger
        counter.on = True
        trigger = utcnow()
        started = time.perf_counter()
        run_id = await runner.start(push.id, push.next_run_at)  # as the scheduler fires it
        assert run_id is not None
        await runner.wait(run_id)
        out.total = time.perf_counter() - started
        counter.on = False
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
        out.sim_cpu = _cpu_seconds(sim_pid) - cpu_before
        out.calls = await simulator_calls(http, sim) - calls_before
    out.run_id = run_id
    out.resolve, out.plan = runner.resolve_seconds, runner.plan_seconds
    async with maker() as session:
        run = await session.get(PushRun, run_id)
        assert run is not None
        out.run_status, out.run_error = run.status.value, run.error
        out.targeted = int(run.counts.get("targeted", 0))
        first_call, last_created, last_reminded, out.deliveries, out.created = (await session.execute(select(
            func.min(PushDelivery.call_started_at), func.max(PushDelivery.created_at),
            func.max(PushDelivery.reminded_at), func.count(),
            func.count().filter(PushDelivery.status == DeliveryStatus.CREATED)).where(
            PushDelivery.run_id == run_id))).one()
        out.recipients = int(await session.scalar(select(func.count()).select_from(PushRecipient).where(
            PushRecipient.run_id == run_id)) or 0)
        split = collections.Counter(dict((await session.execute(select(
            PushDelivery.sender_userid, func.sum(PushDelivery.targets)).where(PushDelivery.run_id == run_id)
            .group_by(PushDelivery.sender_userid))).all()))
    out.split_ok = {u: int(n) for u, n in split.items()} == dict(people.expected_split())
    out.to_first_call = _since(trigger, first_call)
    out.creating = _since(first_call, last_created) if first_call else float("nan")
    out.reminding = _since(last_created, last_reminded) if last_created else float("nan")
    out.finishing = out.total - _since(trigger, last_reminded or last_created)
    if run.status != RunStatus.POLLING:
        out.run_error = out.run_error or f"run is {run.status.value}, expected polling"
    return out


# -- the bare baseline -----------------------------------------------------------------------------


async def bare_replay(sim: str, templates: Sequence[Mapping[str, Any]],
                      app_texts: Sequence[Mapping[str, Any]]) -> tuple[float, float, float]:
    """gettoken, then the same add_msg_template and message/send bodies, one after another; seconds of each part."""
    headers = {"Content-Type": "application/json; charset=utf-8"}

    async def post(http: aiohttp.ClientSession, path: str, token: str, body: Mapping[str, Any]) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        async with http.post(f"{sim}/cgi-bin/{path}", params={"access_token": token}, data=data,
                             headers=headers) as resp:
            answer = await resp.json()
        if answer.get("errcode"):
            raise RuntimeError(f"bare {path}: {answer}")

    async with aiohttp.ClientSession() as http:
        t0 = time.perf_counter()
        async with http.get(f"{sim}/cgi-bin/gettoken", params={"corpid": CORP_ID, "corpsecret": SECRET}) as resp:
            token = str((await resp.json())["access_token"])
        t1 = time.perf_counter()
        for body in templates:
            await post(http, "externalcontact/add_msg_template", token, body)
        t2 = time.perf_counter()
        for body in app_texts:
            await post(http, "message/send", token, body)
        t3 = time.perf_counter()
    return t1 - t0, t2 - t1, t3 - t2


_RECIPIENT_COLUMNS: Final = ("target", "customer_id", "delivery_id", "sender_userid", "outcome", "at")


def _sqlite_write(path: str, run_id: int, copy_id: int) -> float:
    conn = sqlite3.connect(path, timeout=30)
    try:
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):  # as scrm.db sets them
            conn.execute(f"PRAGMA {pragma}")
        rows = conn.execute(f"SELECT {', '.join(_RECIPIENT_COLUMNS)} FROM push_recipients WHERE run_id = ?",
                            (run_id,)).fetchall()
        sql = (f"INSERT INTO push_recipients (run_id, {', '.join(_RECIPIENT_COLUMNS)}) "
               f"VALUES ({', '.join('?' * (len(_RECIPIENT_COLUMNS) + 1))})")
        started = time.perf_counter()
        for start in range(0, len(rows), WRITE_CHUNK):
            conn.executemany(sql, [(copy_id, *r) for r in rows[start:start + WRITE_CHUNK]])
        conn.commit()
        return time.perf_counter() - started
    finally:
        conn.close()


async def _postgres_write(dsn: str, run_id: int, copy_id: int) -> float:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(f"SELECT {', '.join(_RECIPIENT_COLUMNS)} FROM push_recipients WHERE run_id = $1", run_id)
        sql = (f"INSERT INTO push_recipients (run_id, {', '.join(_RECIPIENT_COLUMNS)}) "
               f"VALUES ({', '.join(f'${i}' for i in range(1, len(_RECIPIENT_COLUMNS) + 2))})")
        started = time.perf_counter()
        async with conn.transaction():
            for start in range(0, len(rows), WRITE_CHUNK):
                await conn.executemany(sql, [(copy_id, *r) for r in rows[start:start + WRITE_CHUNK]])
        return time.perf_counter() - started
    finally:
        await conn.close()


async def bare_write(db: str, engine: AsyncEngine, run_id: int) -> float:
    """The run's recipient rows written again through the bare driver (same database, indexes, chunks); seconds.

    The copies hang on a second run of the same push (the foreign key), deleted afterwards; only the
    inserts and their commit are timed.
    """
    async with engine.begin() as conn:
        push_id, scheduled_for = (await conn.execute(select(PushRun.push_id, PushRun.scheduled_for).where(
            PushRun.id == run_id))).one()
        copy_id = int((await conn.execute(insert(PushRun).values(
            push_id=push_id, scheduled_for=scheduled_for + dt.timedelta(days=1), trigger="manual",
            status=RunStatus.FINISHED).returning(PushRun.id))).scalar_one())
    try:
        if engine.dialect.name == "sqlite":
            return await asyncio.to_thread(_sqlite_write, db.split("///", 1)[1], run_id, copy_id)
        return await _postgres_write(db.replace("postgresql+asyncpg://", "postgresql://"), run_id, copy_id)
    finally:
        async with engine.begin() as conn:
            await conn.execute(delete(PushRecipient).where(PushRecipient.run_id == copy_id))
            await conn.execute(delete(PushRun).where(PushRun.id == copy_id))


# -- the run ---------------------------------------------------------------------------------------


def start_simulator(guides: int, customers: int, seed: int) -> tuple[subprocess.Popen[bytes], str]:
    """``--serve-simulator`` in a child process; it and its base URL."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve-simulator", str(port), str(guides), str(customers),
                             str(seed)], cwd=ROOT)
    return proc, f"http://127.0.0.1:{port}"


async def main(args: argparse.Namespace) -> bool:
    """Seed, run, replay bare, print; True on PASS."""
    kind = args.db.split(":")[0].split("+")[0]
    t0 = time.perf_counter()
    people = population(args.guides, args.customers, args.seed)
    proc, sim = start_simulator(args.guides, args.customers, args.seed)
    try:
        await asyncio.to_thread(upgrade_database, args.db)
        engine = create_engine(args.db)
        tag_id = await seed_database(engine, people)
        seeded = time.perf_counter() - t0
        await wait_up(f"{sim}/_sim/state", proc, tries=3000)
        ready = time.perf_counter() - t0
        counter = WriteCounter(engine)
        gateway = RecordingGateway(CORP_ID, SECRET, api_base=f"{sim}/cgi-bin/", agent_id=AGENT_ID)
        try:
            out = await run_push(args.db, sim, proc.pid, people, tag_id, engine, counter, gateway, args.py_spy)
            bare_rows = await bare_write(args.db, engine, out.run_id)
        finally:
            await gateway.close()
            await engine.dispose()
        cpu_before = _cpu_seconds(proc.pid)
        bare_started = time.perf_counter()
        bare_token, bare_templates, bare_texts = await bare_replay(sim, gateway.templates, gateway.app_texts)
        bare_total = time.perf_counter() - bare_started
        bare_cpu = _cpu_seconds(proc.pid) - cpu_before
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    n = args.customers
    sizes = [len(b.get("external_userid") or ()) for b in gateway.templates]
    inserted, updated = counter.total("INSERT"), counter.total("UPDATE")
    print(f"pushes: {n:,} customers ({len(people.follows) - n:,} followed by a second guide) across {args.guides} "
          f"guides, seed {args.seed}, database {kind}; set-up {seeded:.1f} s (simulator up at {ready:.1f} s)")
    print(f"  create_push (validation + a dry-run audience resolve): {out.create_push:6.2f} s")
    print(f"  trigger -> all tasks created (runner.start .. runner.wait): {out.total:6.2f} s  (target < {TARGET_SECONDS:.0f} s)")
    print(f"    planning {out.plan:6.2f} s: audience resolve {out.resolve:6.2f} s + rows written {out.plan - out.resolve:6.2f} s; "
          f"claim and first call's reads {out.to_first_call - out.plan:5.2f} s")
    print(f"      the same {out.recipients:,} recipient rows through the bare driver ({kind} executemany, "
          f"{WRITE_CHUNK:,} a statement): {bare_rows:5.2f} s; rows written service/bare "
          f"{(out.plan - out.resolve) / max(bare_rows, 1e-9):.1f}x")
    print(f"    creating tasks: {out.creating:6.2f} s for {len(gateway.templates)} add_msg_template calls "
          f"({out.creating / max(1, len(gateway.templates)) * 1000:.1f} ms each; {min(sizes, default=0)}.."
          f"{max(sizes, default=0)} customers per call)")
    print(f"    reminders: {out.reminding:6.2f} s for {len(gateway.app_texts)} message/send calls; "
          f"hand-over to polling {out.finishing:5.2f} s")
    print(f"  deliveries created {out.created}/{out.deliveries}; targeted {out.targeted:,}, recipient rows "
          f"{out.recipients:,}; run {out.run_status}; split per guide as the most-recent-interaction rule says: "
          f"{'yes' if out.split_ok else 'NO'}")
    if out.run_error:
        print(f"  run error: {out.run_error}")
    print(f"  database writes during the run: {inserted + updated:,} rows = {(inserted + updated) / n:.3f} per customer "
          f"({inserted:,} inserted, {updated:,} updated), {sum(counter.statements.values())} write statements, "
          f"{counter.reads} reads, {counter.commits} commits")
    for (verb, table), rows in sorted(counter.rows.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        print(f"    {verb:<6} {table:<16} {rows:>9,} rows in {counter.statements[(verb, table)]:>5} statements")
    print(f"  WeCom calls made: {sum(out.calls.values())} ({', '.join(f'{k} {v}' for k, v in sorted(out.calls.items()))})")
    print(f"  simulator alone (bare aiohttp replay of the same bodies): {bare_total:6.2f} s = gettoken "
          f"{bare_token * 1000:.0f} ms + add_msg_template {bare_templates:.2f} s + message/send {bare_texts:.2f} s")
    print(f"  simulator CPU: {out.sim_cpu:.2f} s during the service's run, {bare_cpu:.2f} s during the bare replay")
    print(f"  ratio service/bare: whole run {out.total / bare_total:.1f}x, task creation "
          f"{out.creating / max(bare_templates, 1e-9):.1f}x, reminders {out.reminding / max(bare_texts, 1e-9):.1f}x")
    print(f"  service time net of the simulator's own (bare) time: {out.total - bare_total:6.2f} s")
    ok = (out.total < TARGET_SECONDS and out.created == out.deliveries > 0 and out.targeted == n == out.recipients
          and out.split_ok and not out.run_error)
    print("  PASS" if ok else "  FAIL")
    if args.py_spy:
        print(f"  py-spy samples (raw, per thread) of the trigger-to-done window: {args.py_spy}")
    return ok


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; ``--quick`` fills in the small numbers."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=None, help="audience size (default 100000)")
    parser.add_argument("--guides", type=int, default=None, help="guides (default 200)")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--db", default="", help="SQLAlchemy URL of the bench's own database (default: temp SQLite)")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK[0]:,} customers across {QUICK[1]} guides: a smoke run of a few seconds")
    parser.add_argument("--py-spy", default="", metavar="OUT.txt", help="sample this process from trigger to done")
    parser.add_argument("--serve-simulator", nargs=4, type=int, metavar=("PORT", "GUIDES", "CUSTOMERS", "SEED"))
    args = parser.parse_args(argv)
    customers, guides = QUICK if args.quick else (100_000, 200)
    args.customers = customers if args.customers is None else args.customers
    args.guides = guides if args.guides is None else args.guides
    return args


if __name__ == "__main__":
    a = parse_args()
    if a.serve_simulator:
        serve_simulator(*a.serve_simulator)
    else:
        with tempfile.TemporaryDirectory() as scratch:  # the default SQLite database goes with it
            a.db = normalise_database_url(a.db or f"sqlite:///{scratch}/bench-pushes.db")
            passed = asyncio.run(main(a))
        sys.exit(0 if passed else 1)
