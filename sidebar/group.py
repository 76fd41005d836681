"""The customer-group card: owner, size, how many members we know as customers, recent joins."""

from __future__ import annotations

import logging
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import sync
from bot.context import BotContext
from models import CustomerGroup, GroupMember, Staff, Store
from sidebar.errors import NotFound, UpstreamError
from sidebar.permissions import audit, check_group_access, load_viewer
from wecom.errors import WeComError

_LOGGER = logging.getLogger(__name__)

RECENT_JOINS: Final = 10
MAX_CHAT_ID: Final = 64
#: groupchat/get: 40050 unknown or dismissed group, 90501 not a customer group (PROTOCOL.md §4.10).
_NO_SUCH_GROUP: Final = frozenset({40050, 90501})


async def view_group(ctx: BotContext, userid: str, chat_id: str) -> dict[str, Any]:
    """Summary of the customer group ``chat_id``, fetched from WeCom the first time it is opened."""
    if not chat_id or len(chat_id) > MAX_CHAT_ID:
        raise NotFound("客户群编号无效。")
    async with ctx.maker() as session:
        viewer = await load_viewer(session, userid)
        known = await session.scalar(select(CustomerGroup.id).where(CustomerGroup.chat_id == chat_id))
    fetched = known is None
    if fetched:
        await fetch_group(ctx, chat_id, actor=userid)
    async with ctx.maker() as session:
        group = await session.scalar(select(CustomerGroup).where(CustomerGroup.chat_id == chat_id))
        assert group is not None
        await check_group_access(session, viewer, group)
        return await _summary(session, group) | {"fetched_from_wecom": fetched}


async def fetch_group(ctx: BotContext, chat_id: str, *, actor: str) -> None:
    """Read a group with groupchat/get and mirror it (and its owner) as the change_external_chat topic does."""
    try:
        chat = await ctx.gateway.get_group_chat(chat_id)
    except WeComError as exc:
        if exc.errcode in _NO_SUCH_GROUP:
            raise NotFound("企业微信中找不到该客户群（可能已解散，或群主不在本应用的可见范围内）。",
                           errcode=exc.errcode) from None
        raise UpstreamError(f"读取企业微信客户群失败（错误码 {exc.errcode}），请稍后重试。", errcode=exc.errcode) from None
    if chat.owner:
        try:
            await sync.ensure_staff(ctx, chat.owner)  # the owner's name and store, for the card and the scope check
        except WeComError as exc:
            _LOGGER.warning("owner %s of group %s not readable: %s", chat.owner, chat_id, exc)
    async with ctx.maker.begin() as session:
        group = await sync.apply_group_chat(ctx, session, chat)
        session.add(audit(actor, "group_fetched", "group", chat_id, ctx.clock(), members=len(chat.members),
                          group_id=group.id))


async def _summary(session: AsyncSession, group: CustomerGroup) -> dict[str, Any]:
    owner = (await session.execute(
        select(Staff.userid, Staff.name, Store.name).outerjoin(Store, Store.id == Staff.store_id)
        .where(Staff.userid == group.owner_userid))).first()
    counts = dict((await session.execute(
        select(GroupMember.member_type, func.count()).where(GroupMember.group_id == group.id)
        .group_by(GroupMember.member_type))).all())
    known = await session.scalar(select(func.count()).where(
        GroupMember.group_id == group.id, GroupMember.member_type == 2, GroupMember.customer_id.is_not(None)))
    recent = (await session.scalars(
        select(GroupMember).where(GroupMember.group_id == group.id)
        .order_by(GroupMember.join_time.desc(), GroupMember.member_userid).limit(RECENT_JOINS))).all()
    return {
        "chat_id": group.chat_id,
        "name": group.name,
        "status": group.status.value,
        "notice": group.notice,
        "owner": {"userid": group.owner_userid, "name": owner[1] if owner else "", "store": (owner[2] or "") if owner else ""},
        "member_count": sum(counts.values()),
        "staff_count": counts.get(1, 0),
        "customer_count": counts.get(2, 0),
        "known_customer_count": int(known or 0),
        "recent_joins": [
            {
                "userid": m.member_userid,
                "name": m.group_nickname or m.name,
                "type": "staff" if m.member_type == 1 else "customer",
                "join_time": m.join_time.isoformat() if m.join_time else None,
                "join_scene": m.join_scene,
                "customer_id": m.customer_id,
                "known": m.customer_id is not None,
            }
            for m in recent
        ],
        "synced_at": group.synced_at.isoformat() if group.synced_at else None,
    }
