"""The ``scrm`` command: demo, serve, db upgrade, simulator, simulate, check."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path

from aiohttp import ClientSession, ClientTimeout, web

from scrm.settings import SettingsError, load_settings

_LOGGER = logging.getLogger("scrm")


def _setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _settings_or_exit():  # type: ignore[no-untyped-def]
    try:
        return load_settings()
    except SettingsError as exc:
        print(f"scrm: {exc}", file=sys.stderr)
        print("See README.md → Configuration for where each value comes from.", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the service with the configured corp."""
    from scrm.app import create_app

    from scrm.db import SchemaOutOfDate

    settings = _settings_or_exit()
    _LOGGER.info("callback URL for the WeCom console: %s", settings.callback_url)
    try:
        web.run_app(create_app(settings), host=settings.host, port=settings.port, print=None)
    except SchemaOutOfDate as exc:
        print(f"scrm: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """Apply database migrations up to head."""
    from scrm.db import upgrade_database
    from scrm.settings import DEFAULT_DATABASE_URL, normalise_database_url

    url = normalise_database_url(os.environ.get("DATABASE_URL", "") or DEFAULT_DATABASE_URL)
    upgrade_database(url, args.revision)
    print(f"database upgraded to {args.revision}")
    return 0


async def _run_demo(port: int, host: str, data_dir: Path) -> None:
    from scrm.db import upgrade_database
    from scrm.demo import build_demo_app, seed_demo

    # Seeding merges hundreds of demo buyers; each merge is logged, which would bury the URLs below.
    logging.getLogger("customers.identity").setLevel(logging.WARNING)
    data_dir.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        (data_dir / f"scrm-demo.db{suffix}").unlink(missing_ok=True)
    demo = build_demo_app(port, host, data_dir)
    app, settings = demo.app, demo.settings
    await asyncio.to_thread(upgrade_database, settings.database_url)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    print(await seed_demo(demo), flush=True)
    base = settings.public_base_url
    print(
        "\n企微 SCRM 演示已启动 / demo is running (Ctrl+C to stop)\n"
        f"  管理后台 admin status : {base}/admin/login?token={settings.admin_token}\n"
        f"  导购侧边栏 sidebar    : {base}/sidebar/  (选择一位导购登录 / pick a guide to sign in)\n"
        f"  回调地址 callback URL : {settings.callback_url}\n"
        f"  健康检查 health       : {base}/healthz\n"
        f"  模拟器 simulator      : {base}/_wecom/_sim/state\n"
        f"  模拟事件 try an event : scrm simulate add_customer --simulator {base}/_wecom\n"
        f"                          scrm simulate --list --simulator {base}/_wecom\n",
        flush=True,
    )
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def cmd_demo(args: argparse.Namespace) -> int:
    """Service + built-in simulator + demo data on SQLite, one port."""
    try:
        asyncio.run(_run_demo(args.port, args.host, Path(args.data_dir)))
    except KeyboardInterrupt:
        pass
    return 0


def cmd_simulator(args: argparse.Namespace) -> int:
    """The simulator alone, seeded with the demo corp, pushing callbacks to --callback-url."""
    from scrm.demo import demo_settings, simulator_app
    from wecom.simulator import demo_data
    from wecom.simulator.state import SimulatorState

    settings = demo_settings(args.port, args.host, Path("."))
    state = SimulatorState(settings.corp_id, settings.agent_id, settings.agent_secret)
    demo_data.seed_simulator(state)
    app = simulator_app(state, settings, args.callback_url)
    corp = demo_data.DEMO_CORP
    print(
        f"WeCom simulator on http://{args.host}:{args.port}/cgi-bin/ pushing to {args.callback_url}\n"
        "Point the service at it with:\n"
        f"  WECOM_API_BASE=http://{args.host}:{args.port}/cgi-bin/ WECOM_CORP_ID={corp['corp_id']} "
        f"WECOM_AGENT_ID={corp['agent_id']} WECOM_AGENT_SECRET={corp['agent_secret']} "
        f"WECOM_TOKEN={corp['token']} WECOM_ENCODING_AES_KEY={corp['encoding_aes_key']}",
        flush=True,
    )
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)
    return 0


async def _simulate(args: argparse.Namespace) -> int:
    base = args.simulator.rstrip("/")
    async with ClientSession(timeout=ClientTimeout(total=60)) as http:
        if args.list or not args.scenario:
            async with http.get(f"{base}/_sim/scenarios") as resp:
                for name, doc in (await resp.json()).items():
                    print(f"  {name:<24} {doc}")
            return 0
        params = json.loads(args.params) if args.params else {}
        async with http.post(f"{base}/_sim/scenarios/{args.scenario}", json=params) as resp:
            if resp.status != 200:
                print(f"scrm simulate: {resp.status} {await resp.text()}", file=sys.stderr)
                return 1
            result = await resp.json()
    ok = True
    for d in result["deliveries"]:
        statuses = ", ".join(str(a["status"] or a["error"]) for a in d["attempts"])
        ok &= d["acknowledged"]
        kind = d["event"].split("<ChangeType><![CDATA[")[-1].split("]]>")[0] if "ChangeType" in d["event"] else (
            d["event"].split("<MsgType><![CDATA[")[-1].split("]]>")[0])
        print(f"{'✔' if d['acknowledged'] else '✘'} {kind:<28} -> {result['callback_url']}  HTTP {statuses}")
    return 0 if ok else 1


def cmd_simulate(args: argparse.Namespace) -> int:
    """Run a scenario on a running simulator; it pushes the callbacks to the service."""
    return asyncio.run(_simulate(args))


async def _check() -> int:
    from wecom.crypto import CallbackCrypto
    from wecom.errors import WeComConfigError, WeComError, WeComUnavailable
    from wecom.gateway import WeComGateway
    from wecom.simulator.callbacks import CallbackSender

    settings = _settings_or_exit()
    print("✔ settings are complete and well-formed")
    failures = 0
    gateway = WeComGateway(settings.corp_id, settings.agent_secret, api_base=settings.api_base,
                           agent_id=settings.agent_id)
    try:
        await gateway.get_access_token()
        print(f"✔ gettoken works at {settings.api_base} (corp id and secret accepted)")
    except (WeComConfigError, WeComError) as exc:
        failures += 1
        print(f"✘ gettoken at {settings.api_base} failed: errcode {exc.errcode} {exc.errmsg}")
    except WeComUnavailable as exc:
        failures += 1
        print(f"✘ cannot reach {settings.api_base}: {exc}")
    finally:
        await gateway.close()
    sender = CallbackSender(CallbackCrypto(settings.token, settings.encoding_aes_key, settings.corp_id),
                            settings.agent_id, settings.callback_url)
    ok, detail = await sender.verify_url()
    await sender.close()
    if ok:
        print(f"✔ {settings.callback_url} answers a signed URL verification")
    else:
        failures += 1
        print(f"✘ {settings.callback_url} failed URL verification: {detail}")
    return 1 if failures else 0


def cmd_check(args: argparse.Namespace) -> int:
    """Validate settings, reach WeCom, and verify the callback URL like the console does."""
    return asyncio.run(_check())


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests)."""
    parser = argparse.ArgumentParser(prog="scrm", description="Self-hosted retail SCRM on WeCom (企业微信).")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="service + simulator + demo data on SQLite")
    p.add_argument("--port", type=int, default=int(os.environ.get("SCRM_PORT", "8080")))
    p.add_argument("--host", default=os.environ.get("SCRM_HOST", "127.0.0.1"))
    p.add_argument("--data-dir", default="demo-data")
    p.set_defaults(func=cmd_demo)
    sub.add_parser("serve", help="run the service (settings from the environment / .env)").set_defaults(func=cmd_serve)
    db = sub.add_parser("db", help="database tasks").add_subparsers(dest="db_command", required=True)
    up = db.add_parser("upgrade", help="apply migrations (DATABASE_URL)")
    up.add_argument("revision", nargs="?", default="head")
    up.set_defaults(func=cmd_db_upgrade)
    p = sub.add_parser("simulator", help="run the WeCom simulator alone")
    p.add_argument("--port", type=int, default=8081)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--callback-url", default="http://127.0.0.1:8080/wecom/callback")
    p.set_defaults(func=cmd_simulator)
    p = sub.add_parser("simulate", help="drive a running simulator: push a scenario's callbacks")
    p.add_argument("scenario", nargs="?")
    p.add_argument("--simulator", default="http://127.0.0.1:8081")
    p.add_argument("--params", help='JSON, e.g. \'{"userid": "guide01"}\'')
    p.add_argument("--list", action="store_true", help="list scenarios")
    p.set_defaults(func=cmd_simulate)
    sub.add_parser("check", help="validate settings, gettoken, callback URL verification").set_defaults(func=cmd_check)
    from customers.cli import add_import_parser
    from customers.cli_tags import add_tags_parser
    from sharing.cli import add_commission_parser

    add_import_parser(sub)
    add_tags_parser(sub)
    add_commission_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``scrm`` command."""
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    return int(args.func(args) or 0)
