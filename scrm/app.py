"""create_app(settings): routes, middlewares and one cleanup context per resource. No I/O here."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import web
from sqlalchemy import text

from bot import handlers as bot_handlers
from bot.context import BotContext
from bot.inbox import InboxWriter
from bot.topics import build_router
from bot.worker import InboxWorker
from customers import webhook as order_webhook
from customers.scheduler import recompute_scheduler_ctx
from models import utcnow
from pushes import handlers as push_handlers
from pushes import page as push_page
from pushes.runner import push_runner_ctx
from pushes.scheduler import push_scheduler_ctx
from scrm import keys
from scrm.admin import create_admin_app
from scrm.db import check_schema, create_engine, create_sessionmaker
from scrm.leader import leadership_ctx
from scrm.settings import Settings
from sharing import channel_code_admin, poster_admin
from sharing import redirect as share_redirect
from sharing.channel_codes import channel_code_scheduler_ctx
from sharing.clicks import click_writer_ctx
from sharing.poster_cache import PosterCache
from sharing.refresh import sharing_refresh_ctx
from sharing.visitor_alerts import visitor_alerts_ctx
from sidebar import create_sidebar_app
from wecom.crypto import CallbackCrypto
from wecom.gateway import WeComGateway

_LOGGER = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent.parent / "static"


async def healthz(request: web.Request) -> web.Response:
    """For load balancers: the process is up and the database answers."""
    try:
        async with request.app[keys.ENGINE].connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # any database failure means "not healthy"
        return web.json_response({"status": "error", "database": str(exc)[:200]}, status=503)
    return web.json_response({"status": "ok"})


def _database_ctx(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        await check_schema(engine)
        app[keys.ENGINE] = engine
        app[keys.SESSIONMAKER] = create_sessionmaker(engine)
        yield
        await engine.dispose()

    return ctx


def _gateway_ctx(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        gateway = WeComGateway(
            settings.corp_id,
            settings.agent_secret,
            api_base=settings.api_base,
            agent_id=settings.agent_id,
            max_threads=settings.wecom_threads,
        )
        app[keys.GATEWAY] = gateway
        yield
        await gateway.close()

    return ctx


def _worker_ctx(start: bool) -> Callable[[web.Application], AsyncIterator[None]]:
    # Tests create the worker without starting it, and drive it with run_once().
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[keys.SETTINGS]
        context = BotContext(
            maker=app[keys.SESSIONMAKER], gateway=app[keys.GATEWAY], settings=settings, clock=app[keys.CLOCK]
        )
        worker = InboxWorker(
            app[keys.SESSIONMAKER], app[keys.ROUTER], context, clock=app[keys.CLOCK],
            max_attempts=settings.inbox_max_attempts,
        )
        app[keys.WORKER] = worker
        writer = InboxWriter(app[keys.SESSIONMAKER], app[keys.CLOCK], on_stored=worker.wake)
        app[keys.INBOX] = writer
        writer.start()
        if start:
            worker.start()
        yield
        await writer.stop()
        await worker.stop()

    return ctx


def create_app(
    settings: Settings,
    *,
    clock: Callable[[], dt.datetime] = utcnow,
    run_worker: bool = True,
    extra_subapps: dict[str, web.Application] | None = None,
) -> web.Application:
    """The whole service as one aiohttp application."""
    app = web.Application(client_max_size=1024 * 1024)
    app[keys.SETTINGS] = settings
    app[keys.CLOCK] = clock
    app[keys.CRYPTO] = CallbackCrypto(settings.token, settings.encoding_aes_key, settings.corp_id)
    app[keys.ROUTER] = build_router()
    app[keys.POSTER_CACHE] = PosterCache()
    app[keys.ORDER_LISTENERS] = []
    app.cleanup_ctx.append(_database_ctx(settings))
    app.cleanup_ctx.append(click_writer_ctx)  # after the database: its clicks are flushed before disposal
    app.cleanup_ctx.append(share_redirect.link_preload_ctx)
    app.cleanup_ctx.append(_gateway_ctx(settings))
    app.cleanup_ctx.append(visitor_alerts_ctx)  # after the gateway and the click writer it hooks into
    app.cleanup_ctx.append(_worker_ctx(run_worker))
    app.cleanup_ctx.append(push_runner_ctx)  # after the gateway; before the scheduler that drives it
    app.cleanup_ctx.append(leadership_ctx)  # before every scheduler: their jobs run only where it leads
    app.cleanup_ctx.append(recompute_scheduler_ctx)
    app.cleanup_ctx.append(channel_code_scheduler_ctx)  # after the database and the gateway
    app.cleanup_ctx.append(sharing_refresh_ctx)
    if run_worker:  # tests drive pushes themselves (runner.fire, poll); tests/test_push_scheduler.py covers this
        app.cleanup_ctx.append(push_scheduler_ctx)  # after the lease and the runner it drives
    app.router.add_get("/healthz", healthz)
    bot_handlers.add_routes(app, settings.callback_path)
    app.add_routes(order_webhook.routes)
    app.add_routes(share_redirect.routes)
    admin = create_admin_app()
    admin.add_routes(poster_admin.routes)
    admin.add_routes(channel_code_admin.routes)
    admin.add_routes(push_handlers.routes)
    admin.add_routes(push_page.routes)
    app.add_subapp("/admin", admin)
    app.add_subapp("/sidebar", create_sidebar_app())
    app.router.add_static("/static", STATIC)
    for prefix, sub in (extra_subapps or {}).items():
        app.add_subapp(prefix, sub)
    return app
