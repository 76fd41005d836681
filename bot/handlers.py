"""HTTP endpoints of the bot: the callback (GET verification, POST delivery)."""

from __future__ import annotations

import logging

from aiohttp import web

from bot.callback import CallbackRejected, open_delivery, verify_url
from scrm import keys

_LOGGER = logging.getLogger(__name__)

MAX_BODY = 64 * 1024  # WeCom pushes are a few KB; anything larger is not from WeCom.


def _reject(exc: CallbackRejected, request: web.Request) -> web.Response:
    _LOGGER.warning("callback rejected from %s [%s]: %s", request.remote, exc.code, exc.reason)
    return web.Response(status=exc.status, text=f"{exc.code}: {exc.reason}\n")


async def verify(request: web.Request) -> web.Response:
    """URL verification: answer the decrypted echostr, nothing else."""
    app = request.app
    now = app[keys.CLOCK]().timestamp()
    try:
        echo = verify_url(app[keys.CRYPTO], request.query, now, app[keys.SETTINGS].callback_max_skew)
    except CallbackRejected as exc:
        return _reject(exc, request)
    _LOGGER.info("callback URL verified")
    return web.Response(text=echo, content_type="text/plain")


async def deliver(request: web.Request) -> web.Response:
    """A push: authenticate, store once, answer an empty 200; the worker acts on it later."""
    app = request.app
    if request.content_length is not None and request.content_length > MAX_BODY:
        return _reject(CallbackRejected(413, "too_large", "request body too large"), request)
    body = await request.read()
    clock = app[keys.CLOCK]
    try:
        delivery = open_delivery(app[keys.CRYPTO], request.query, body, clock().timestamp(),
                                 app[keys.SETTINGS].callback_max_skew)
    except CallbackRejected as exc:
        return _reject(exc, request)
    # Stored (in a transaction shared with concurrent deliveries) before we acknowledge.
    is_new = await app[keys.INBOX].store(delivery)
    if not is_new:
        _LOGGER.info("duplicate delivery %s acknowledged again", delivery.dedup_key[:24])
    return web.Response(text="")


def add_routes(app: web.Application, path: str) -> None:
    """The callback lives at one configurable path."""
    app.router.add_get(path, verify)
    app.router.add_post(path, deliver)
