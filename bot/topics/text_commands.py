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
from sharing.add_me import AddMeUnavailable, add_me_poster
from sharing.fonts import FontNotFound
from sharing.links import list_content
from sharing.poster_cache import PosterCache
from sharing.poster_service import guide_poster
from wecom.errors import WeComConfigError, WeComError, WeComRateLimited

HELP: Final = (
    "可用命令：\n"
    "帮助 —— 显示本说明\n"
    "客户 关键词 —— 按姓名、备注或手机号查找您的客户\n"
    "今日 —— 今天新增和流失的客户数\n"
    "海报 [关键词] —— 生成带您专属二维码的分享海报（不带关键词则用最新内容）\n"
    "海报 加我 [关键词]（或：加我海报 [关键词]）—— 生成「加我」海报：二维码是您的企业微信「联系我」码，顾客扫码即添加您，"
    "并计入您和这条内容的新增客户"
)
#: The word after 海报 that asks for the guide's contact-way code instead of their short link.
ADD_ME_WORD: Final = "加我"
MAX_RESULTS: Final = 10
#: Posters the bot rendered (per process; the sidebar has its own in the app).
POSTERS: Final = PosterCache(max_bytes=16 * 1024 * 1024)

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


async def cmd_poster(ctx: BotContext, staff: Staff, arg: str) -> str:
    """Render the guide's poster for the newest (or the matching) content item and send it as an image.

    ``海报 加我 [关键词]`` puts the guide's 「联系我」 code for the item on it instead of their short link.
    """
    word, _, rest = arg.partition(" ")
    add_me = word == ADD_ME_WORD
    if add_me:
        arg = rest.strip()
    async with ctx.maker() as session:
        items = await list_content(session, q=arg or None, enabled_only=True, limit=1)
    if not items:
        return f"没有找到与「{arg}」匹配的分享内容。" if arg else "内容库还是空的，请联系管理员添加商品或活动。"
    item = items[0]
    try:
        if add_me:
            poster = await add_me_poster(ctx, POSTERS, staff_id=staff.id, content_id=item.id, fmt="JPEG")
        else:
            poster = await guide_poster(ctx.maker, ctx.settings, POSTERS, staff_id=staff.id, content_id=item.id,
                                        fmt="JPEG", now=ctx.clock())
    except (FontNotFound, AddMeUnavailable) as exc:
        return f"暂时无法生成海报：{exc.message_zh}"
    except WeComError as exc:
        if add_me and not isinstance(exc, (WeComRateLimited, WeComConfigError)):
            # WeCom refused this member a contact way (not activated, not verified, outside the app's scope).
            return f"暂时无法生成您的「联系我」二维码（企业微信错误码 {exc.errcode}），请联系管理员。"
        raise
    media_id = await ctx.gateway.upload_media("image", f"poster-{item.id}.jpg", poster.data, poster.content_type)
    await ctx.gateway.send_app_image(staff.userid, media_id)
    if add_me:
        return (f"「{item.title}」的「加我」海报已发送，长按图片即可保存或转发。\n"
                "顾客扫码添加您后，会计入您和这条内容的新增客户。")
    return f"「{item.title}」的专属海报已发送，长按图片即可保存或转发。\n您的专属链接：{poster.url}"


async def cmd_add_me_poster(ctx: BotContext, staff: Staff, arg: str) -> str:
    """加我海报 [关键词]: the same as 海报 加我 [关键词]."""
    return await cmd_poster(ctx, staff, f"{ADD_ME_WORD} {arg}")


COMMANDS: Final[dict[str, Command]] = {
    "海报": cmd_poster,
    "加我海报": cmd_add_me_poster,
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
