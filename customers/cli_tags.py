"""``scrm tags recompute`` and ``scrm segments count EXPRESSION``.

Both need only DATABASE_URL (default ``sqlite:///scrm.db``). The WeCom settings matter only for
copying rule tags to WeCom: when they are incomplete the recompute still runs and says the push
was skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from customers.recompute import recompute_all
from customers.rules import RuleError
from customers.segments import count_segment
from models import utcnow
from scrm.db import SchemaOutOfDate, check_schema, create_engine, create_sessionmaker
from scrm.progress import ProgressBar
from scrm.settings import (
    DEFAULT_DATABASE_URL,
    Settings,
    SettingsError,
    load_settings,
    normalise_database_url,
    read_dotenv,
)
from wecom.gateway import WeComGateway



def _environment(environ: Mapping[str, str] | None) -> dict[str, str]:
    env = read_dotenv(Path(".env"))
    env.update(os.environ if environ is None else environ)
    return env


def _database_url(env: Mapping[str, str]) -> str:
    return normalise_database_url(env.get("DATABASE_URL", "").strip() or DEFAULT_DATABASE_URL)


def _offline_settings(env: Mapping[str, str]) -> Settings:
    """Settings without WeCom: the database and the lifecycle thresholds (defaults when unset or bad)."""

    def days(key: str, default: int) -> int:
        raw = env.get(key, "").strip()
        return int(raw) if raw.isdigit() and int(raw) > 0 else default

    return Settings(
        corp_id="", agent_id=0, agent_secret="", token="", encoding_aes_key="", public_base_url="",
        database_url=_database_url(env),
        stage_new_days=days("SCRM_STAGE_NEW_DAYS", Settings.stage_new_days),
        stage_active_days=days("SCRM_STAGE_ACTIVE_DAYS", Settings.stage_active_days),
        stage_silent_days=days("SCRM_STAGE_SILENT_DAYS", Settings.stage_silent_days),
    )


async def tags_recompute(
    *, push: bool = True, environ: Mapping[str, str] | None = None, out: TextIO | None = None,
    err: TextIO | None = None, now: dt.datetime | None = None,
) -> int:
    """Recompute stats and rule tags now, with a progress bar; returns the exit status."""
    out, err = out or sys.stdout, err or sys.stderr
    env = _environment(environ)
    gateway: WeComGateway | None = None
    skipped = "按 --no-push 跳过"
    try:
        settings = load_settings(env, dotenv=None)
    except SettingsError as exc:
        settings = _offline_settings(env)
        if push:
            skipped = "企业微信设置不完整"
            print(f"企业微信设置不完整（{len(exc.problems)} 项，运行 scrm check 查看）：本次只在数据库中重算，"
                  "标签变化不推送到企业微信。", file=err)
        push = False
    engine = create_engine(settings.database_url)
    try:
        try:
            await check_schema(engine)
        except SchemaOutOfDate as exc:
            print(f"scrm: {exc}", file=err)
            return 2
        if push:
            gateway = WeComGateway(settings.corp_id, settings.agent_secret, api_base=settings.api_base,
                                   agent_id=settings.agent_id, max_threads=settings.wecom_threads)
        bar = ProgressBar(err)
        try:
            report = await recompute_all(create_sessionmaker(engine), now=now or utcnow(), settings=settings,
                                         gateway=gateway, progress=bar)
        finally:
            bar.close()
        if report.push_skipped:
            report.push_skipped = skipped
        print(report.summary(), file=out)
        return 0
    finally:
        if gateway is not None:
            await gateway.close()
        await engine.dispose()


async def segments_count(
    expression: str, *, environ: Mapping[str, str] | None = None, out: TextIO | None = None,
    err: TextIO | None = None, now: dt.datetime | None = None,
) -> int:
    """Print how many customers match ``expression`` now; 2 when it does not validate."""
    out, err = out or sys.stdout, err or sys.stderr
    engine = create_engine(_database_url(_environment(environ)))
    try:
        try:
            await check_schema(engine)
            count = await count_segment(create_sessionmaker(engine), expression, now=now or utcnow())
        except SchemaOutOfDate as exc:
            print(f"scrm: {exc}", file=err)
            return 2
        except RuleError as exc:
            print(f"规则有误：{exc}", file=err)
            if exc.position:
                print(f"  {expression}\n  {' ' * _width(expression[: exc.position - 1])}^", file=err)
            return 2
        print(count, file=out)
        return 0
    finally:
        await engine.dispose()


def _width(text: str) -> int:
    """Terminal columns of ``text`` (CJK characters take two), to place the caret under the error."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def cmd_tags_recompute(args: argparse.Namespace) -> int:
    """Recompute stats, RFM, stages and rule tags now."""
    return asyncio.run(tags_recompute(push=not args.no_push))


def cmd_segments_count(args: argparse.Namespace) -> int:
    """Count the customers matching an expression."""
    return asyncio.run(segments_count(args.expression))


def add_tags_parser(subparsers: Any) -> None:
    """Add ``tags recompute`` and ``segments count`` to the ``scrm`` command's subparsers."""
    tags = subparsers.add_parser("tags", help="rule tags: recompute stats, stages and rule tags")
    tags_sub = tags.add_subparsers(dest="tags_command", required=True)
    p = tags_sub.add_parser("recompute", help="recompute stats, RFM, stages and rule tags now (DATABASE_URL)")
    p.add_argument("--no-push", action="store_true", help="do not copy rule tag changes to WeCom")
    p.set_defaults(func=cmd_tags_recompute)
    segs = subparsers.add_parser("segments", help="segments: count the customers an expression matches")
    segs_sub = segs.add_subparsers(dest="segments_command", required=True)
    p = segs_sub.add_parser("count", help="print how many customers match EXPRESSION now")
    p.add_argument("expression", help="e.g. \"orders >= 4 AND aov >= 300\"")
    p.set_defaults(func=cmd_segments_count)
