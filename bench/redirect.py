"""Short-link redirects under load: the real service (302 + click recorded) vs a bare dict redirect.

The real service (scrm.app.create_app, everything wired as in production) and a bare aiohttp handler
that 302-redirects from a dict of code -> Location each run in their own process on 127.0.0.1, both
up for the whole run. The load generator is this process: ``--concurrency`` keep-alive connections
(64) request random codes out of ``--guides`` x ``--items`` share links (200 x 50 = 10,000), first
``--warmup`` requests to each server, then ``--requests`` timed ones to each, in ``--rounds`` turns
that alternate between the servers (so load from other processes on the machine weighs on both
alike). Every response must be a 302 to the expected Location. Connections cycle through WeCom,
WeChat and Safari user agents; half carry a visitor cookie, half get one minted on every click.

The default makes about a third of the timed requests the first request of their code in the run. A
starting service reads the newest 20,000 links into its cache (sharing/redirect.py, as after a deploy),
so with the default 10,000 links those are memory hits too; with more links (``--guides 500``), the
older ones are cache misses read from the database. ``--warm-all`` first requests every code once.
The split of service latency between first and repeated requests is printed, and each server's CPU
time per redirect (all threads, from /proc).

After the run the service is stopped with SIGTERM, so aiohttp runs its cleanup contexts and the click
writer flushes; then the bench counts the stored clicks, which must equal every redirect it got.

Prints redirects/s, p50 and p99 for both servers, the ratio, clicks stored vs sent, and PASS/FAIL
against: service >= 60% of bare, service p99 < 20 ms, every click stored.

Usage:
  python bench/redirect.py [--requests 20000] [--warmup 2000] [--warm-all] [--concurrency 64]
                           [--rounds 4] [--guides 200] [--items 50]
                           [--db postgresql://postgres@127.0.0.1:5432/bench_redirect] [--py-spy OUT.txt]
SQLite by default (a temporary file). A PostgreSQL database must be the bench's own: its bench
guides, items, links and clicks are deleted and re-created on every run (other rows are left alone).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import logging
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Final

from aiohttp import web

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
# bench/ holds a sidebar.py: keep bench/ behind the project so `import sidebar` is the package.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != BENCH] + [str(BENCH)]

from benchserve import free_port, wait_up  # noqa: E402
from sqlalchemy import bindparam, delete, func, insert, select, update  # noqa: E402

from models import ContentItem, LinkClick, ShareChannel, ShareLink, Staff, utcnow  # noqa: E402
from scrm.db import create_engine, create_sessionmaker, upgrade_database  # noqa: E402
from scrm.settings import Settings, normalise_database_url  # noqa: E402
from sharing.codes import code_for  # noqa: E402
from sharing.links import create_content, share_link_for  # noqa: E402
from sharing.redirect import VISITOR_COOKIE, with_share_code  # noqa: E402

CORP_ID: Final = "ww5a1b2c3d4e5f6a7b"
AES_KEY: Final = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
SHARE_SECRET: Final = "bench-share-secret-0123456789abcdefghij"
GUIDE_PREFIX: Final = "bench-guide-"
BENCH_CATEGORY: Final = "bench-redirect"
TARGET_RATIO: Final = 0.60
TARGET_P99_MS: Final = 20.0




# -- the data ---------------------------------------------------------------------------------------


async def seed(database_url: str, guides: int, items: int) -> dict[str, str]:
    """Fresh bench guides, items and one link per guide x item; returns code -> expected Location."""
    engine = create_engine(database_url)
    maker = create_sessionmaker(engine)
    now = utcnow()
    async with maker.begin() as session:
        # Deleting the guides cascades to their links and those links' clicks.
        await session.execute(delete(Staff).where(Staff.userid.like(GUIDE_PREFIX + "%")))
        await session.execute(delete(ContentItem).where(ContentItem.category == BENCH_CATEGORY))
        staff_ids = list((await session.scalars(
            insert(Staff).returning(Staff.id),
            [{"userid": f"{GUIDE_PREFIX}{g:04d}", "name": f"导购{g:04d}"} for g in range(guides)],
        )).all())
        item_ids = []
        for i in range(items):
            item = await create_content(session, {
                "kind": "product", "title": f"压测商品 {i}", "category": BENCH_CATEGORY,
                "target_url": f"https://shop.example.com/item/{i}?sku=SKU-{i:04d}&utm_source=scrm#detail",
            }, now=now)
            item_ids.append(item.id)
        conn = await session.connection()
        await conn.execute(insert(ShareLink), [
            {"staff_id": s, "content_id": c, "channel": ShareChannel.NONE, "enabled": True, "created_at": now}
            for s in staff_ids for c in item_ids
        ])
        link_ids = list((await session.scalars(select(ShareLink.id).where(ShareLink.staff_id.in_(staff_ids)))).all())
        await conn.execute(update(ShareLink).where(ShareLink.id == bindparam("b_id")).values(code=bindparam("b_code")),
                           [{"b_id": i, "b_code": code_for(i, SHARE_SECRET)} for i in link_ids])
        # The codes are the ones the sidebar hands out: share_link_for finds the same link and code.
        probe = await share_link_for(session, staff_ids[0], item_ids[0], ShareChannel.NONE, secret=SHARE_SECRET, now=now)
        assert probe.code == code_for(probe.id, SHARE_SECRET)
        rows = (await session.execute(
            select(ShareLink.code, ContentItem.target_url).join(ContentItem, ContentItem.id == ShareLink.content_id)
            .where(ShareLink.staff_id.in_(staff_ids)))).all()
    await engine.dispose()
    return {str(code): with_share_code(target, str(code)) for code, target in rows}


async def stored_clicks(database_url: str) -> int:
    """Clicks on the bench guides' links."""
    engine = create_engine(database_url)
    async with create_sessionmaker(engine)() as session:
        n = await session.scalar(
            select(func.count()).select_from(LinkClick).join(ShareLink, ShareLink.id == LinkClick.link_id)
            .join(Staff, Staff.id == ShareLink.staff_id).where(Staff.userid.like(GUIDE_PREFIX + "%")))
    await engine.dispose()
    return int(n or 0)


# -- the two servers (child processes) --------------------------------------------------------------


def serve_bare(port: int, locations_file: str) -> None:
    """302 from a dict: the ceiling for any redirect in this stack."""
    locations: dict[str, str] = json.loads(Path(locations_file).read_text())

    async def handle(request: web.Request) -> web.Response:
        location = locations.get(request.match_info["code"])
        if location is None:
            return web.Response(status=404)
        return web.Response(status=302, headers={"Location": location})

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/s/{code}", handle)
    app.router.add_get("/healthz", ok)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def serve_service(port: int, database_url: str) -> None:
    """The real service; SIGTERM/SIGINT make run_app run the cleanup contexts (the click flush)."""
    from scrm.app import create_app

    logging.basicConfig(level=logging.WARNING, format="  [service] %(levelname)s %(name)s: %(message)s")
    logging.getLogger("sharing.clicks").setLevel(logging.INFO)
    settings = Settings(
        corp_id=CORP_ID, agent_id=1000002, agent_secret="unused", token="BenchToken", encoding_aes_key=AES_KEY,
        public_base_url=f"http://127.0.0.1:{port}", database_url=database_url, api_base="http://127.0.0.1:9/cgi-bin/",
        session_secret="bench-session-secret-0123456789abcdef", share_secret=SHARE_SECRET,
    )
    web.run_app(create_app(settings), host="127.0.0.1", port=port, print=None, access_log=None)



# -- the load generator -----------------------------------------------------------------------------


USER_AGENTS: Final = (  # WeCom, WeChat, Safari
    (b"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 "
     b"wxwork/4.1.22 MicroMessenger/7.0.1 Language/zh"),
    (b"Mozilla/5.0 (Linux; Android 14; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/116.0.0.0 "
     b"Mobile Safari/537.36 MicroMessenger/8.0.49.2600(0x2800313D) WeChat/arm64 Weixin NetType/WIFI Language/zh_CN"),
    (b"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     b"Version/17.4 Mobile/15E148 Safari/604.1"),
)


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection that sends a GET and reads the status line and Location.

    Hand-rolled rather than aiohttp's client: on a small machine the aiohttp client spends more CPU
    per request than the servers being measured, and would measure itself.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = bytes(self.buffer[:end])
        length, location = 0, b""
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"location":
                location = value.strip()
        if len(self.buffer) < end + 4 + length:
            return
        del self.buffer[: end + 4 + length]
        waiter, self.waiter = self.waiter, None
        waiter.set_result((int(head[9:12]), location))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("server closed the connection"))

    async def get(self, request: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter


Result = tuple[float, list[float], list[float], int, int]


async def load(base: str, codes: list[str], concurrency: int, expected: dict[str, str], seen: set[str]) -> Result:
    """Request every code over ``concurrency`` connections.

    Returns (seconds, latencies, latencies of each code's first request to this server (``seen``
    holds the codes requested before), redirects, failures); a failure is anything but a 302 to the
    expected Location (the target with the share code).
    """
    latencies: list[float] = []
    first_latencies: list[float] = []
    redirects = failures = 0
    queue = iter(codes)
    host, port = base.removeprefix("http://").split(":")
    loop = asyncio.get_running_loop()
    connections = [(await loop.create_connection(_Connection, host, int(port)))[1] for _ in range(concurrency)]
    wanted = {code: location.encode() for code, location in expected.items()}

    async def worker(n: int, conn: _Connection) -> None:
        nonlocal redirects, failures
        # A third of the connections per user agent; odd ones are returning visitors with a cookie.
        extra = b"User-Agent: " + USER_AGENTS[n % 3] + b"\r\n"
        if n % 2:
            extra += f"Cookie: {VISITOR_COOKIE}={secrets.token_urlsafe(12)}\r\n".encode()
        for code in queue:
            first = code not in seen
            seen.add(code)
            request = f"GET /s/{code} HTTP/1.1\r\nHost: {host}\r\n".encode() + extra + b"\r\n"
            t0 = time.perf_counter()
            status, location = await conn.get(request)
            latency = time.perf_counter() - t0
            latencies.append(latency)
            if first:
                first_latencies.append(latency)
            if status == 302 and location == wanted[code]:
                redirects += 1
            else:
                failures += 1

    started = time.perf_counter()
    try:
        await asyncio.gather(*(worker(n, c) for n, c in enumerate(connections)))
    finally:
        for conn in connections:
            if conn.transport is not None:
                conn.transport.close()
    return time.perf_counter() - started, latencies, first_latencies, redirects, failures


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), all threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


def stop(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM, as a process manager stops the service; returns the exit code."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise RuntimeError("the server did not stop within 60 s of SIGTERM") from None


def start_server(kind: str, extra: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    """``--serve-<kind>`` in a child process; returns it and its base URL."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, f"--serve-{kind}", str(port), *extra], cwd=ROOT)
    return proc, f"http://127.0.0.1:{port}"


class Tally:
    """One server's timed requests, summed over the rounds."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.latencies: list[float] = []
        self.first_latencies: list[float] = []
        self.redirects = 0
        self.failures = 0
        self.ratios: list[float] = []
        self.cpu = 0.0  # server CPU seconds during the timed turns

    def add(self, result: Result) -> float:
        seconds, latencies, first_latencies, redirects, failures = result
        self.seconds += seconds
        self.latencies += latencies
        self.first_latencies += first_latencies
        self.redirects += redirects
        self.failures += failures
        return len(latencies) / seconds

    @property
    def per_s(self) -> float:
        return len(self.latencies) / self.seconds

    def line(self, name: str) -> str:
        return (f"  {name:<31} {self.per_s:8.0f} redirects/s   p50 {_pct(self.latencies, 50):6.2f} ms   "
                f"p99 {_pct(self.latencies, 99):6.2f} ms   server CPU {self.cpu / len(self.latencies) * 1e6:4.0f} us/redirect"
                f"   non-302: {self.failures}")


async def main(args: argparse.Namespace) -> bool:
    await asyncio.to_thread(upgrade_database, args.db)
    locations = await seed(args.db, args.guides, args.items)
    codes = sorted(locations)
    rng = random.Random(20260601)
    warmup = rng.choices(codes, k=args.warmup)
    if args.warm_all:  # every code once first: the steady state of links that are being clicked
        warmup = rng.sample(codes, len(codes)) + warmup
    timed = rng.choices(codes, k=args.requests)
    first_seen_in_timed = len(set(timed) - set(warmup))  # misses (more if the run outlasts the cache TTL)
    before = await stored_clicks(args.db)
    bare, service = Tally(), Tally()
    sent = 0
    with tempfile.TemporaryDirectory() as tmp:
        locations_file = Path(tmp) / "locations.json"
        locations_file.write_text(json.dumps(locations))
        bare_proc, bare_url = start_server("bare", [str(locations_file)])
        service_proc, service_url = start_server("service", ["--db", args.db])
        spy: subprocess.Popen[bytes] | None = None
        try:
            await wait_up(bare_url + "/healthz", bare_proc)
            await wait_up(service_url + "/healthz", service_proc)
            seen: dict[str, set[str]] = {"bare": set(), "service": set()}
            await load(bare_url, warmup, args.concurrency, locations, seen["bare"])
            sent += (await load(service_url, warmup, args.concurrency, locations, seen["service"]))[3]
            if args.py_spy:
                spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "--pid",
                                        str(service_proc.pid), "--format", "raw", "--output", args.py_spy,
                                        "--rate", "200", "--nonblocking"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                await asyncio.sleep(1)
            # Both servers stay up and take turns, so load from other processes on this machine
            # weighs on both alike; the order flips every round.
            step = -(-len(timed) // args.rounds)
            for r in range(args.rounds):
                chunk = timed[r * step:(r + 1) * step]
                turns = [("bare", bare_url, bare), ("service", service_url, service)]
                rates = {}
                pids = {"bare": bare_proc.pid, "service": service_proc.pid}
                for kind, url, tally in turns if r % 2 == 0 else turns[::-1]:
                    cpu0 = _cpu_seconds(pids[kind])
                    result = await load(url, chunk, args.concurrency, locations, seen[kind])
                    tally.cpu += _cpu_seconds(pids[kind]) - cpu0
                    rates[kind] = tally.add(result)
                    if kind == "service":
                        sent += result[3]
                service.ratios.append(rates["service"] / rates["bare"])
        finally:
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)
            stop(bare_proc)
            service_exit = stop(service_proc)
    stored = await stored_clicks(args.db) - before

    print(f"redirect: {args.requests} timed requests per server in {args.rounds} alternating rounds "
          f"(+{len(warmup)} warm-up), {args.concurrency} connections, {len(codes)} links "
          f"({args.guides} guides x {args.items} items), database {args.db.split(':')[0]}")
    print(bare.line("bare dict redirect"))
    print(service.line("service (302 + click recorded)"))
    print(f"  first requests of a code in the timed run: {first_seen_in_timed} ({first_seen_in_timed / len(timed):.0%} "
          "of requests: from the links preloaded at start, else read from the database)")
    if service.first_latencies:
        hit_latencies = sorted(service.latencies)
        for x in service.first_latencies:  # multiset difference: the hits are what the misses leave
            hit_latencies.pop(bisect.bisect_left(hit_latencies, x))
        print(f"  service p50/p99: first requests {_pct(service.first_latencies, 50):.2f}/"
              f"{_pct(service.first_latencies, 99):.2f} ms, repeats {_pct(hit_latencies, 50):.2f}/"
              f"{_pct(hit_latencies, 99):.2f} ms")
    ratio = service.per_s / bare.per_s
    p99 = _pct(service.latencies, 99)
    print(f"  throughput service/bare: {ratio:.0%} (rounds {min(service.ratios):.0%}..{max(service.ratios):.0%}; "
          f"target >= {TARGET_RATIO:.0%})   service p99 {p99:.2f} ms (target < {TARGET_P99_MS:.0f} ms)")
    print(f"  clicks stored after SIGTERM (exit code {service_exit}): {stored} of {sent} redirects")
    ok = (ratio >= TARGET_RATIO and p99 < TARGET_P99_MS and stored == sent
          and not service.failures and not bare.failures)
    print("  PASS" if ok else "  FAIL")
    if args.py_spy:
        print(f"  py-spy samples of the service's timed run: {args.py_spy}")
    return ok


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--warmup", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--warm-all", action="store_true", help="request every code once before the warm-up")
    parser.add_argument("--guides", type=int, default=200)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--db", default="")
    parser.add_argument("--py-spy", default="", metavar="OUT.txt", help="sample the service's timed run")
    parser.add_argument("--serve-bare", nargs=2, metavar=("PORT", "LOCATIONS_JSON"))
    parser.add_argument("--serve-service", type=int, metavar="PORT")
    a = parser.parse_args()
    if a.serve_bare:
        serve_bare(int(a.serve_bare[0]), a.serve_bare[1])
    elif a.serve_service:
        serve_service(a.serve_service, a.db)
    else:
        with tempfile.TemporaryDirectory() as scratch:  # the default SQLite database goes with it
            a.db = normalise_database_url(a.db or os.environ.get("DATABASE_URL")
                                          or f"sqlite:///{scratch}/bench-redirect.db")
            passed = asyncio.run(main(a))
        sys.exit(0 if passed else 1)
