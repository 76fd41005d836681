"""Staff text commands to the app, answered through message/send."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Final
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select

from bot import sync
from bot.context import BotContext
from bot.events import TextMessage
from bot.router import Router
from models import Customer, FollowRelation, FollowStatus, Staff

HELP: Final = (
    "可用命令：\n"
    "帮助 —— 显示本说明\n"
    "客户 关键词 —— 按姓名、备注或手机号查找您的客户\n"
    "今日 —— 今天新增和流失的客户数"
)
MAX_RESULTS: Final = 10

Command = Callable[[BotContext, Staff, str], Awaitable[str]]


async def cmd_help(ctx: BotContext, staff: Staff, arg: str) -> str:
    """List the commands."""
    return HELP


async def cmd_find_customer(ctx: BotContext, staff: Staff, arg: str) -> str:
    """Search the guide's own customers by name, remark or remark phone."""
    if not arg:
        return "请在「客户」后面加上关键词，例如：客户 王"
    pattern = f"%{arg}%"
    async with ctx.maker() as session:
        rows = (
            await session.execute(
                select(Customer.name, FollowRelation.remark, FollowRelation.status, FollowRelation.added_at)
                .join(FollowRelation, FollowRelation.customer_id == Customer.id)
                .where(
                    FollowRelation.staff_id == staff.id,
                    or_(Customer.name.like(pattern), FollowRelation.remark.like(pattern),
                        FollowRelation.remark_mobiles.like(pattern)),
                )
                .order_by(FollowRelation.added_at.desc())
                .limit(MAX_RESULTS + 1)
            )
        ).all()
    if not rows:
        return f"没有找到与「{arg}」匹配的客户。"
    lines = [f"找到 {min(len(rows), MAX_RESULTS)} 位客户{'（仅显示前 10 位）' if len(rows) > MAX_RESULTS else ''}："]
    for name, remark, status, added in rows[:MAX_RESULTS]:
        label = f"{remark}（{name}）" if remark and remark != name else (name or remark or "未命名")
        since = added.astimezone(ZoneInfo(ctx.settings.timezone)).strftime("%Y-%m-%d") if added else "—"
        state = "" if status is FollowStatus.ACTIVE else f" [{_STATUS_LABEL.get(status, status.value)}]"
        lines.append(f"· {label}，添加于 {since}{state}")
    return "\n".join(lines)


_STATUS_LABEL: Final = {
    FollowStatus.HALF: "待通过",
    FollowStatus.LOST: "已流失",
    FollowStatus.DELETED: "已删除",
    FollowStatus.TRANSFERRED: "已转接",
}


async def cmd_today(ctx: BotContext, staff: Staff, arg: str) -> str:
    """Today's (in the brand's time zone) added and lost customers for this guide."""
    now = ctx.clock().astimezone(ZoneInfo(ctx.settings.timezone))
    start = now.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(dt.timezone.utc)
    async with ctx.maker() as session:
        added = await session.scalar(
            select(func.count()).where(FollowRelation.staff_id == staff.id, FollowRelation.added_at >= start)
        )
        lost = await session.scalar(
            select(func.count()).where(FollowRelation.staff_id == staff.id, FollowRelation.status == FollowStatus.LOST,
                                       FollowRelation.removed_at >= start)
        )
        total = await session.scalar(
            select(func.count()).where(FollowRelation.staff_id == staff.id, FollowRelation.status == FollowStatus.ACTIVE)
        )
    return f"{now:%m月%d日}：新增客户 {added} 位，流失 {lost} 位；当前共有 {total} 位客户。"


COMMANDS: Final[dict[str, Command]] = {
    "帮助": cmd_help,
    "help": cmd_help,
    "?": cmd_help,
    "？": cmd_help,
    "客户": cmd_find_customer,
    "今日": cmd_today,
    "今天": cmd_today,
}


async def answer(ctx: BotContext, staff: Staff, content: str) -> str:
    """The reply to one command line."""
    word, _, arg = content.strip().partition(" ")
    command = COMMANDS.get(word.lower())
    if command is None:
        return f"没有「{word[:20]}」这个命令。发送「帮助」查看可用命令。"
    return await command(ctx, staff, arg.strip())


async def on_text(ctx: BotContext, event: TextMessage) -> None:
    """Answer a member's text through message/send (after the callback was acknowledged)."""
    staff = await sync.ensure_staff(ctx, event.from_user)
    reply = await answer(ctx, staff, event.content)
    await ctx.gateway.send_app_text(staff.userid, reply)
    async with ctx.maker.begin() as session:
        session.add(ctx.audit("command_answered", "staff", staff.userid, command=event.content[:100]))


def register(router: Router) -> None:
    """Wire this topic."""
    router.register("text")(on_text)
