"""Server CPU per sidebar open: the figure behind bench/sidebar.py's tail, measured without its noise.

Starts the real service exactly as bench/sidebar.py does (its own child process, same data, same
clock), has ``--concurrency`` guides open ``--opens`` random customers back to back, and divides the
service process's CPU time (user + system, all threads, read from /proc) by the opens. CPU time does
not depend on what else the machine is doing, so before/after comparisons hold on a shared machine.

``--dump FILE`` also writes the responses of a fixed sequence of opens (one at a time) as JSON, so two
versions of the code can be diffed for "no response a user sees changed".

Usage:
  python bench/sidebar_cpu.py [--customers 1000000] [--orders 5000000] [--db postgresql://...]
                              [--opens 2000] [--concurrency 8] [--dump OUT.json] [--py-spy OUT.txt]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import secrets
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp

BENCH = Path(__file__).resolve().parent


def _load_sidebar_bench() -> ModuleType:
    """bench/sidebar.py as a module (its file name clashes with the sidebar package)."""
    spec = importlib.util.spec_from_file_location("bench_sidebar", BENCH / "sidebar.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


bench = _load_sidebar_bench()


def _stat_seconds(path: Path) -> float:
    fields = path.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(whole process, main thread) user + system CPU time, from /proc: the rest is driver threads."""
    return _stat_seconds(Path(f"/proc/{pid}/stat")), _stat_seconds(Path(f"/proc/{pid}/task/{pid}/stat"))


async def dump_responses(base: str, guides: list[Any], count: int, out: Path) -> None:
    """The bodies of ``count`` fixed opens, one at a time, as a JSON list (for diffing two versions)."""
    records = []
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        for i in range(count):
            guide = guides[i % len(guides)]
            xid = guide.customers[(i * 7919) % len(guide.customers)]
            url = f"{base}/sidebar/api/contact/{xid}"
            for name, target in (("profile", url), ("scripts", f"{url}/scripts")):
                async with session.get(target, headers={"Cookie": guide.cookie}) as resp:
                    records.append({"guide": guide.userid, "xid": xid, "endpoint": name, "status": resp.status,
                                    "body": json.loads(await resp.read())})
    out.write_text(json.dumps(records, ensure_ascii=False, indent=1, sort_keys=True), encoding="utf-8")


async def run(url: str, args: argparse.Namespace) -> None:
    """Warm up, then measure CPU per open (and dump responses if asked)."""
    secret = secrets.token_hex(32)
    guides = await bench.pick_guides(url, args.concurrency, secret)
    mark = await bench.audit_mark(url)
    proc, base = bench.start_server("service", ["--db", url], secret)
    spy = None
    try:
        await bench.wait_up(f"{base}/healthz", proc)
        if args.dump:
            await dump_responses(base, guides, args.dump_opens, Path(args.dump))
        await bench.run_load(base, guides, args.warmup, seed=1, limit=600)
        spy = bench.start_py_spy(proc.pid, Path(args.py_spy)) if args.py_spy else None
        (cpu, loop), wall = cpu_seconds(proc.pid), time.perf_counter()
        samples = await bench.run_load(base, guides, args.opens, seed=2, limit=600)
        (cpu_end, loop_end), wall = cpu_seconds(proc.pid), time.perf_counter() - wall
        cpu, loop = cpu_end - cpu, loop_end - loop
    finally:
        if spy is not None:
            bench.stop_py_spy(spy)
        bench.stop_server(proc)
        await bench.drop_audits_after(url, mark)
    opens = len(samples.opens)
    print(f"{opens:,} opens, {args.concurrency} guides: server CPU {1000 * cpu / opens:.2f} ms per open "
          f"({1000 * loop / opens:.2f} on the event loop's thread, the rest in driver threads), "
          f"{opens / wall:.0f} opens/s, non-200: {sum(samples.failures.values())}")
    for label, values in (("profile", samples.profile), ("scripts", samples.scripts)):
        print(f"  {label:<8} p50 {bench.pct(values, 50):6.1f} ms  p99 {bench.pct(values, 99):6.1f} ms")
    if args.py_spy:
        print("\n".join(bench.profile_summary(Path(args.py_spy))))


def main() -> None:
    """Parse options, prepare the data as bench/sidebar.py does, measure."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--orders", type=int, default=5_000_000)
    parser.add_argument("--db", default="", help="postgresql://... (your own database); default: SQLite copy")
    parser.add_argument("--opens", type=int, default=2000, help="measured sidebar opens")
    parser.add_argument("--warmup", type=int, default=300, help="opens before measuring")
    parser.add_argument("--concurrency", type=int, default=8, help="virtual guides, each one open at a time")
    parser.add_argument("--dump", default="", metavar="OUT", help="write the responses of fixed opens as JSON")
    parser.add_argument("--dump-opens", type=int, default=200, help="how many opens --dump records")
    parser.add_argument("--py-spy", default="", metavar="OUT", help="profile the service while measuring")
    args = parser.parse_args()
    scale = bench.datagen.Scale(customers=args.customers, orders=args.orders)
    if args.db:
        url = bench.prepare_postgres(bench.checked_postgres_url(bench.normalise_database_url(args.db)), scale, False)
    else:
        url = bench.prepare_sqlite(scale, False)
    asyncio.run(run(url, args))


if __name__ == "__main__":
    main()
