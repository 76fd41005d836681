"""Contact ways (「联系我」 QR codes): created in WeCom, remembered here so an add's state finds its guide."""

from __future__ import annotations

from sqlalchemy import select

from bot import sync
from bot.context import BotContext
from models import ContactWay


class ContactWayError(ValueError):
    """A contact way request that cannot be honoured (bad state, duplicate state)."""


async def create_contact_way(
    ctx: BotContext, userid: str, state: str, *, campaign: str = "", remark: str = "", welcome_text: str = ""
) -> ContactWay:
    """Create a single-member QR contact way in WeCom and record config_id <-> state <-> staff."""
    if not state or len(state) > 30:
        raise ContactWayError("state 必须是 1-30 个字符（企业微信的限制）")
    async with ctx.maker() as session:
        if await session.scalar(select(ContactWay.id).where(ContactWay.state == state)):
            raise ContactWayError(f"state「{state}」已被其他二维码使用，请换一个")
    staff = await sync.ensure_staff(ctx, userid)
    result = await ctx.gateway.add_contact_way(user=userid, state=state, remark=remark[:30])
    async with ctx.maker.begin() as session:
        way = ContactWay(config_id=result.config_id, state=state, staff_id=staff.id, campaign=campaign,
                         remark=remark[:30], qr_code=result.qr_code, welcome_text=welcome_text)
        session.add(way)
        session.add(ctx.audit("contact_way_created", "contact_way", result.config_id, staff=userid, state=state,
                              campaign=campaign))
    return way
