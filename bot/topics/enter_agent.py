"""A member opened the app (enter_agent): make sure we know them."""

from __future__ import annotations

from bot import sync
from bot.context import BotContext
from bot.events import AgentEvent
from bot.router import Router


async def on_enter_agent(ctx: BotContext, event: AgentEvent) -> None:
    """Discover the member on first sight, so their customers and results can be shown."""
    staff = await sync.ensure_staff(ctx, event.from_user)
    async with ctx.maker.begin() as session:
        session.add(ctx.audit("entered_app", "staff", staff.userid))


def register(router: Router) -> None:
    """Wire this topic."""
    router.register("enter_agent")(on_enter_agent)
