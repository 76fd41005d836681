"""What a sidebar service gets: sessions, the gateway, settings and the clock, read from the app."""

from __future__ import annotations

from aiohttp import web

from bot.context import BotContext
from scrm import keys


def bot_context(request: web.Request) -> BotContext:
    """The shared resources as a BotContext, so the bot's sync functions can be reused as they are."""
    app = request.config_dict
    return BotContext(maker=app[keys.SESSIONMAKER], gateway=app[keys.GATEWAY], settings=app[keys.SETTINGS],
                      clock=app[keys.CLOCK])
