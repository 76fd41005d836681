"""Callback throughput: the real service (verify, decrypt, store durably, ack) vs a bare decrypt-only handler.

Both servers run in their own process on 127.0.0.1; one load generator with 64 concurrent senders
posts the same pre-encrypted, distinct events at each. Prints events/s and acknowledgement p50/p99
for both, and the ratio. Usage: python bench/callbacks.py [--events 4000] [--concurrency 64] [--db URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchserve import free_port, wait_up  # noqa: E402

from wecom.crypto import CallbackCrypto  # noqa: E402
from wecom.simulator.callbacks import CallbackSender  # noqa: E402

CORP_ID = "ww5a1b2c3d4e5f6a7b"
AGENT_ID = 1000002
TOKEN = "BenchToken"
AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"




# -- the two servers (run in child processes) --------------------------------------------------


def serve_bare(port: int) -> None:
    """Decrypt-only handler: the ceiling for any callback endpoint in this stack."""
    from bot.callback import CallbackRejected, open_delivery

    crypto = CallbackCrypto(TOKEN, AES_KEY, CORP_ID)

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            open_delivery(crypto, request.query, body, time.time(), 300)
        except CallbackRejected as exc:
            return web.Response(status=exc.status, text=exc.reason)
        return web.Response(text="")

    app = web.Application()
    app.router.add_post("/wecom/callback", handle)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def serve_service(port: int, database_url: str) -> None:
    """The real service; its worker is off so only verification + durable storage + ack is timed."""
    from scrm.app import create_app
    from scrm.db import upgrade_database
    from scrm.settings import Settings

    upgrade_database(database_url)
    settings = Settings(
        corp_id=CORP_ID, agent_id=AGENT_ID, agent_secret="unused", token=TOKEN, encoding_aes_key=AES_KEY,
        public_base_url=f"http://127.0.0.1:{port}", database_url=database_url,
        api_base="http://127.0.0.1:9/cgi-bin/",
    )
    web.run_app(create_app(settings, run_worker=False), host="127.0.0.1", port=port, print=None, access_log=None)


# -- the load generator ---------------------------------------------------------------------------


def build_requests(n: int) -> list[tuple[dict[str, str], bytes]]:
    """Distinct add_external_contact pushes, encrypted and signed ahead of time."""
    sender = CallbackSender(CallbackCrypto(TOKEN, AES_KEY, CORP_ID), AGENT_ID, "")
    now = int(time.time())
    out = []
    for i in range(n):
        xml = (
            f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
            f"<CreateTime>{now}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            "<Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[add_external_contact]]></ChangeType>"
            f"<UserID><![CDATA[guide{i % 200:03d}]]></UserID><ExternalUserID><![CDATA[wmBench{i:026d}]]></ExternalUserID>"
            f"<State><![CDATA[bench]]></State><WelcomeCode><![CDATA[WC{i}]]></WelcomeCode></xml>"
        )
        query, body = sender.envelope(xml)
        out.append((query, body.encode()))
    return out



async def load(url: str, requests: list[tuple[dict[str, str], bytes]], concurrency: int) -> tuple[float, list[float], int]:
    """Post every request with ``concurrency`` senders; returns (seconds, latencies, failures)."""
    latencies: list[float] = []
    failures = 0
    queue = iter(requests)
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn) as session:

        async def worker() -> None:
            nonlocal failures
            for query, body in queue:
                t0 = time.perf_counter()
                async with session.post(url, params=query, data=body) as resp:
                    await resp.read()
                    if resp.status != 200:
                        failures += 1
                latencies.append(time.perf_counter() - t0)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, latencies, failures


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


async def run_one(kind: str, args: argparse.Namespace, requests: list[tuple[dict[str, str], bytes]]) -> dict[str, float]:
    port = free_port()
    cmd = [sys.executable, __file__, f"--serve-{kind}", str(port), "--db", args.db]
    proc = subprocess.Popen(cmd, cwd=ROOT)
    try:
        await wait_up(f"http://127.0.0.1:{port}/healthz" if kind == "service" else f"http://127.0.0.1:{port}/", proc,
                      any_answer=True)
        url = f"http://127.0.0.1:{port}/wecom/callback"
        await load(url, requests[:200], args.concurrency)  # warm-up (these are stored too)
        seconds, lat, failures = await load(url, requests[200:], args.concurrency)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    n = len(requests) - 200
    return {"events_per_s": n / seconds, "p50_ms": _pct(lat, 50), "p99_ms": _pct(lat, 99), "failures": failures}


async def stored_count(database_url: str) -> int:
    from sqlalchemy import func, select

    from models import CallbackEvent
    from scrm.db import create_engine, create_sessionmaker

    engine = create_engine(database_url)
    async with create_sessionmaker(engine)() as session:
        n = await session.scalar(select(func.count()).select_from(CallbackEvent))
    await engine.dispose()
    return int(n or 0)


async def main(args: argparse.Namespace) -> None:
    requests = build_requests(args.events + 200)
    bare = await run_one("bare", args, requests)
    before = await stored_count(args.db) if not args.db.startswith("sqlite") else 0
    service = await run_one("service", args, requests)
    stored = await stored_count(args.db) - before
    print(f"callbacks: {args.events} events, {args.concurrency} concurrent senders, database {args.db.split(':')[0]}")
    for name, r in (("bare decrypt-only handler", bare), ("service (verify+store+ack)", service)):
        print(f"  {name:<28} {r['events_per_s']:8.0f} events/s   p50 {r['p50_ms']:6.1f} ms   "
              f"p99 {r['p99_ms']:6.1f} ms   non-200: {int(r['failures'])}")
    ratio = service["events_per_s"] / bare["events_per_s"]
    print(f"  throughput ratio service/bare: {ratio:.0%} (target >= 50%)   service p99 {service['p99_ms']:.1f} ms "
          f"(target < 100 ms)")
    print(f"  durably stored in the inbox: {stored} of {len(requests)} sent")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--db", default="")
    parser.add_argument("--serve-bare", type=int)
    parser.add_argument("--serve-service", type=int)
    a = parser.parse_args()
    if a.serve_bare:
        serve_bare(a.serve_bare)
    elif a.serve_service:
        serve_service(a.serve_service, a.db)
    else:
        if not a.db:
            a.db = os.environ.get("DATABASE_URL") or f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/bench.db"
        from scrm.settings import normalise_database_url

        a.db = normalise_database_url(a.db)
        asyncio.run(main(a))
