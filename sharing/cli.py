"""``scrm commission recompute --month YYYY-MM``: replace a month's commission statements, with progress.

Needs only DATABASE_URL (default ``sqlite:///scrm.db``) and SCRM_TIMEZONE (default Asia/Shanghai),
from the environment or ``.env``. Exit status 0 on success, 2 when the month, the time zone, the
schema or HQ's plan is missing or wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import sys
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, TextIO

from models import utcnow
from scrm.db import SchemaOutOfDate, check_schema, create_engine, create_sessionmaker
from scrm.progress import ProgressBar
from scrm.settings import DEFAULT_DATABASE_URL, normalise_database_url, read_dotenv
from sharing.commission import InvalidMonth
from sharing.commission_service import CommissionError, recompute_month

_LOGGER = logging.getLogger(__name__)

EXIT_USAGE: Final = 2
DEFAULT_TIMEZONE: Final = "Asia/Shanghai"


def _environment(environ: Mapping[str, str] | None) -> dict[str, str]:
    env = read_dotenv(Path(".env"))
    env.update(os.environ if environ is None else environ)
    return env


async def commission_recompute(
    month: str, *, environ: Mapping[str, str] | None = None, out: TextIO | None = None,
    err: TextIO | None = None, now: dt.datetime | None = None,
) -> int:
    """Recompute ``month``'s statements with a progress bar and print a bilingual summary; returns the exit status."""
    out, err = out or sys.stdout, err or sys.stderr
    env = _environment(environ)
    timezone = env.get("SCRM_TIMEZONE", "").strip() or DEFAULT_TIMEZONE
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        print(f"scrm: SCRM_TIMEZONE {timezone!r} 不是有效的时区 / is not a known time zone (e.g. Asia/Shanghai)",
              file=err)
        return EXIT_USAGE
    engine = create_engine(normalise_database_url(env.get("DATABASE_URL", "").strip() or DEFAULT_DATABASE_URL))
    try:
        try:
            await check_schema(engine)
        except SchemaOutOfDate as exc:
            print(f"scrm: {exc}", file=err)
            return EXIT_USAGE
        bar = ProgressBar(err)
        try:
            result = await recompute_month(create_sessionmaker(engine), month, tz=timezone, now=now or utcnow(),
                                           progress=bar)
        except (InvalidMonth, CommissionError) as exc:
            print(f"scrm: {exc.message}", file=err)
            return EXIT_USAGE
        finally:
            bar.close()
        print(result.summary(), file=out)
        return 0
    finally:
        await engine.dispose()


def cmd_commission_recompute(args: argparse.Namespace) -> int:
    """Recompute one month's commission statements now."""
    return asyncio.run(commission_recompute(args.month))


def add_commission_parser(subparsers: Any) -> None:
    """Add ``commission recompute --month YYYY-MM`` to the ``scrm`` command's subparsers."""
    commission = subparsers.add_parser("commission", help="commission: recompute a month's statements")
    sub = commission.add_subparsers(dest="commission_command", required=True)
    p = sub.add_parser("recompute", help="replace a month's commission statements from its attributed orders")
    p.add_argument("--month", required=True, help="YYYY-MM in SCRM_TIMEZONE, e.g. 2026-11")
    p.set_defaults(func=cmd_commission_recompute)
