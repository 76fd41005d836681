"""The corp tag library changed (change_external_tag: create / update / delete / shuffle)."""

from __future__ import annotations

from bot import sync
from bot.context import BotContext
from bot.events import ExternalTagEvent
from bot.router import Router


async def on_tag_change(ctx: BotContext, event: ExternalTagEvent) -> None:
    """Re-pull the whole library: shuffles name no tags, and a group delete drops its tags silently."""
    counts = await sync.sync_tag_library(ctx)
    async with ctx.maker.begin() as session:
        session.add(ctx.audit(f"tag_{event.change_type}", event.tag_type or "tag", event.id, **counts))


def register(router: Router) -> None:
    """Wire this topic."""
    router.register("change_external_tag")(on_tag_change)
