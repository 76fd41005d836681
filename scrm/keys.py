"""Every typed application key, in one place."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Final

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.inbox import InboxWriter
from bot.router import Router
from bot.worker import InboxWorker
from scrm.leader import Leadership
from scrm.settings import Settings
from sharing.clicks import ClickWriter
from sharing.poster_cache import PosterCache
from wecom.crypto import CallbackCrypto
from wecom.gateway import WeComGateway

SETTINGS: Final = web.AppKey("settings", Settings)
ENGINE: Final = web.AppKey("engine", AsyncEngine)
SESSIONMAKER: Final = web.AppKey("sessionmaker", async_sessionmaker[AsyncSession])
GATEWAY: Final = web.AppKey("gateway", WeComGateway)
CRYPTO: Final = web.AppKey("crypto", CallbackCrypto)
ROUTER: Final = web.AppKey("router", Router)
WORKER: Final = web.AppKey("worker", InboxWorker)
INBOX: Final = web.AppKey("inbox_writer", InboxWriter)
CLOCK: Final = web.AppKey("clock", Callable[[], dt.datetime])
CLICK_WRITER: Final = web.AppKey("click_writer", ClickWriter)
POSTER_CACHE: Final = web.AppKey("poster_cache", PosterCache)
#: Called with the earliest order time whenever an order webhook stored new or changed orders.
ORDER_LISTENERS: Final = web.AppKey("order_listeners", list[Callable[[dt.datetime], None]])
#: Whether this process holds the scheduler role (timed jobs run only there).
LEADERSHIP: Final = web.AppKey("leadership", Leadership)
