"""Dispatch events to handlers registered per (event, change type)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bot.context import BotContext
from bot.events import Event

_LOGGER = logging.getLogger(__name__)

Handler = Callable[[BotContext, Any], Awaitable[None]]


class Router:
    """Handlers keyed by (Event or MsgType, ChangeType); ``*`` matches any change type."""

    def __init__(self) -> None:
        self._handlers: dict[tuple[str, str], list[Handler]] = {}

    def register(self, kind: str, *change_types: str) -> Callable[[Handler], Handler]:
        """Decorator: run the function for ``kind`` with any of ``change_types`` (none = all)."""

        def wrap(func: Handler) -> Handler:
            for change in change_types or ("*",):
                self._handlers.setdefault((kind, change), []).append(func)
            return func

        return wrap

    def handlers_for(self, event: Event) -> list[Handler]:
        """Handlers that apply to ``event``."""
        kind, change = event.route_key
        return self._handlers.get((kind, change), []) + self._handlers.get((kind, "*"), [])

    async def dispatch(self, ctx: BotContext, event: Event) -> bool:
        """Run every matching handler; False when none matched (the event is ignored)."""
        handlers = self.handlers_for(event)
        for handler in handlers:
            await handler(ctx, event)
        return bool(handlers)
