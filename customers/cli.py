"""``scrm import orders FILE --channel X``: the customer data platform's part of the ``scrm`` command."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import zoneinfo
from pathlib import Path
from typing import Any

from customers.importer import FORMATS, ImportFileError, detect_format, import_orders, summary
from customers.mapping import DEFAULT_TIMEZONE, FieldMapError, channels, field_map
from customers.orders import DEFAULT_BATCH
from models import utcnow
from scrm.db import SchemaOutOfDate, check_schema, create_engine, create_sessionmaker
from scrm.progress import ProgressBar
from scrm.settings import DEFAULT_DATABASE_URL, normalise_database_url

EXIT_OK = 0
EXIT_UNREADABLE = 1
EXIT_USAGE = 2


def _fail(message: str, code: int) -> int:
    print(f"scrm import orders: {message}", file=sys.stderr)
    return code


async def run_import_orders(args: argparse.Namespace) -> int:
    """Import one order export; 0 if anything landed, 1 if the file could not be read, 2 for usage errors."""
    try:
        fmap = field_map(args.channel)
    except FieldMapError as exc:
        return _fail(f"channel map is broken: {exc}", EXIT_USAGE)
    except KeyError:
        return _fail(f"unknown channel {args.channel!r}; known: {', '.join(channels())} "
                     "(a new channel is a new file in customers/channels/)", EXIT_USAGE)
    path = Path(args.file)
    try:
        fmt = args.format or detect_format(path)
    except ValueError as exc:
        return _fail(str(exc), EXIT_USAGE)
    if args.batch_size < 1:
        return _fail("--batch-size must be at least 1", EXIT_USAGE)
    timezone = os.environ.get("SCRM_TIMEZONE", "").strip() or DEFAULT_TIMEZONE
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return _fail(f"SCRM_TIMEZONE {timezone!r} is not a known time zone (e.g. Asia/Shanghai)", EXIT_USAGE)
    if not path.is_file():
        return _fail(f"cannot read {path}: no such file", EXIT_UNREADABLE)

    url = normalise_database_url(os.environ.get("DATABASE_URL", "").strip() or DEFAULT_DATABASE_URL)
    engine = create_engine(url)
    bar = ProgressBar(sys.stderr)
    try:
        await check_schema(engine)
        result = await import_orders(
            path, fmap, create_sessionmaker(engine), now=utcnow(), fmt=fmt, timezone=timezone,
            rejects_path=Path(args.rejects) if args.rejects else None, batch_size=args.batch_size, progress=bar,
        )
    except SchemaOutOfDate as exc:
        return _fail(str(exc), EXIT_UNREADABLE)
    except ImportFileError as exc:
        bar.close()
        return _fail(str(exc), EXIT_UNREADABLE)
    finally:
        await engine.dispose()
    bar.close()
    print(summary(result))
    if result.rows and not result.landed:
        return _fail(f"no order in {path.name} could be imported; see {result.rejects_path}", EXIT_UNREADABLE)
    return EXIT_OK


def cmd_import_orders(args: argparse.Namespace) -> int:
    """Entry point of ``scrm import orders``."""
    return asyncio.run(run_import_orders(args))


def add_import_parser(subparsers: Any) -> None:
    """Add ``import orders`` to the ``scrm`` command's subparsers."""
    parser = subparsers.add_parser("import", help="import data from files (order exports)")
    sub = parser.add_subparsers(dest="import_command", required=True)
    p = sub.add_parser(
        "orders",
        help="import a channel's order export (CSV or JSON Lines)",
        description="Import orders exported from Tmall, JD, Douyin, store POS or the mini-program. Re-importing "
        "a file updates orders instead of duplicating them. Bad rows are listed in the rejects file.",
    )
    p.add_argument("file", help="the export: .csv (UTF-8, with or without BOM) or .jsonl")
    p.add_argument("--channel", required=True, help="which channel map to read it with (customers/channels/*.json)")
    p.add_argument("--format", choices=FORMATS, help="default: from the file extension")
    p.add_argument("--rejects", metavar="PATH", help="where to list bad rows (default: FILE.rejects.csv)")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, help="orders per transaction")
    p.set_defaults(func=cmd_import_orders)
