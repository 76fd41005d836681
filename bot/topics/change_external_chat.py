"""Customer group created, changed or dismissed (change_external_chat)."""

from __future__ import annotations

from typing import Final

from sqlalchemy import select

from bot import sync
from bot.context import BotContext
from bot.events import ExternalChatEvent
from bot.router import Router
from models import CustomerGroup, GroupStatus
from wecom.errors import WeComError


# groupchat/get for a group that is gone (dismissed before we got to the event) or not a customer group.
_GONE: Final = frozenset({40050, 90501})


async def on_create_or_update(ctx: BotContext, event: ExternalChatEvent) -> None:
    """Re-read the group with groupchat/get and mirror it, members included."""
    try:
        chat = await ctx.gateway.get_group_chat(event.chat_id)
    except WeComError as exc:
        if exc.errcode not in _GONE:
            raise
        # Events are notifications, not snapshots: by now the group may be dismissed. Nothing to
        # retry; the dismiss event (or the next full sync) records its end.
        async with ctx.maker.begin() as session:
            session.add(ctx.audit(f"group_{event.change_type}_skipped", "group", event.chat_id, errcode=exc.errcode))
        return
    async with ctx.maker.begin() as session:
        group = await sync.apply_group_chat(ctx, session, chat)
        session.add(ctx.audit(f"group_{event.change_type}", "group", event.chat_id, detail=event.update_detail,
                              members=len(chat.members), changed=list(event.mem_change_list), group_id=group.id))


async def on_dismiss(ctx: BotContext, event: ExternalChatEvent) -> None:
    """Mark the group dismissed (groupchat/get no longer knows it)."""
    async with ctx.maker.begin() as session:
        group = await session.scalar(select(CustomerGroup).where(CustomerGroup.chat_id == event.chat_id))
        if group is None:
            group = CustomerGroup(chat_id=event.chat_id)
            session.add(group)
        group.status = GroupStatus.DISMISSED
        group.dismissed_at = ctx.clock()
        session.add(ctx.audit("group_dismissed", "group", event.chat_id))


def register(router: Router) -> None:
    """Wire this topic."""
    router.register("change_external_chat", "create", "update")(on_create_or_update)
    router.register("change_external_chat", "dismiss")(on_dismiss)
