"""Tags from the sidebar: the library to pick from, and adding/removing tags on a customer.

WeCom tags are marked in WeCom first (mark_tag, outside any transaction) and then recorded here
with source ``staff``; tags of our own (not in WeCom) are recorded only here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.context import BotContext
from models import CustomerTag, Tag, TagGroup, TagRule, TagSource
from sidebar.errors import AccessDenied, Conflict, InvalidRequest, UpstreamError
from sidebar.permissions import Viewer, audit, customer_in_scope, followers_in_scope, load_viewer
from wecom.errors import WeComError

_LOGGER = logging.getLogger(__name__)

MAX_TAGS_PER_CHANGE: Final = 50
#: mark_tag: 84061 not this member's customer; 40068 invalid tag (deleted in WeCom meanwhile) (PROTOCOL.md §4.12).
_NOT_THEIR_CUSTOMER: Final = 84061
_INVALID_TAG: Final = 40068


@dataclass(frozen=True)
class TagChange:
    """Parsed ``{"add": [...], "remove": [...]}``: our tag ids (ints) or WeCom tag ids (strings)."""

    add: tuple[int | str, ...]
    remove: tuple[int | str, ...]


def parse_tag_change(body: Any) -> TagChange:
    """Validate the request body; InvalidRequest with a reason otherwise."""
    if not isinstance(body, dict):
        raise InvalidRequest('请求体须为 JSON 对象，例如 {"add": [1], "remove": [2]}。')
    lists: list[tuple[int | str, ...]] = []
    for key in ("add", "remove"):
        raw = body.get(key) or []
        if not isinstance(raw, list) or not all(
            (isinstance(t, int) and not isinstance(t, bool)) or (isinstance(t, str) and t.strip()) for t in raw
        ):
            raise InvalidRequest(f"{key} 须为标签编号的列表。")
        lists.append(tuple(dict.fromkeys(t.strip() if isinstance(t, str) else t for t in raw)))
    add, remove = lists
    if not add and not remove:
        raise InvalidRequest("请至少选择一个要添加或移除的标签。")
    if len(add) + len(remove) > MAX_TAGS_PER_CHANGE:
        raise InvalidRequest(f"一次最多修改 {MAX_TAGS_PER_CHANGE} 个标签。")
    if set(map(str, add)) & set(map(str, remove)):
        raise InvalidRequest("同一个标签不能既添加又移除。")
    return TagChange(add, remove)


async def tag_library(maker: async_sessionmaker[AsyncSession], userid: str) -> dict[str, Any]:
    """Live tag groups with their live tags, in WeCom's display order."""
    async with maker() as session:
        await load_viewer(session, userid)
        ruled = set((await session.scalars(select(TagRule.tag_id).where(TagRule.enabled.is_(True)))).all())
        rows = (await session.execute(
            select(TagGroup, Tag).join(Tag, Tag.group_id == TagGroup.id)
            .where(TagGroup.deleted.is_(False), Tag.deleted.is_(False))
            .order_by(TagGroup.order.desc(), TagGroup.id, Tag.order.desc(), Tag.id))).all()
    groups: dict[int, dict[str, Any]] = {}
    for group, tag in rows:
        entry = groups.setdefault(group.id, {"id": group.id, "name": group.name, "tags": []})
        entry["tags"].append({"id": tag.id, "name": tag.name, "wecom_tag_id": tag.wecom_tag_id,
                              "in_wecom": tag.wecom_tag_id is not None, "by_rule": tag.id in ruled})
    return {"groups": list(groups.values())}


async def _resolve(session: AsyncSession, wanted: Sequence[int | str]) -> list[Tag]:
    ids = [t for t in wanted if isinstance(t, int)] + [int(t) for t in wanted if isinstance(t, str) and t.isdigit()]
    wecom_ids = [t for t in wanted if isinstance(t, str) and not t.isdigit()]
    rows = (await session.execute(
        select(Tag, TagGroup.deleted).join(TagGroup, TagGroup.id == Tag.group_id)
        .where(Tag.id.in_(ids) | Tag.wecom_tag_id.in_(wecom_ids)))).all()
    found = {t.id: (t, deleted) for t, deleted in rows}
    by_wecom = {t.wecom_tag_id: t.id for t, _ in rows if t.wecom_tag_id}
    tags: list[Tag] = []
    bad: list[str] = []
    for key in wanted:
        tag_id = by_wecom.get(key) if isinstance(key, str) and not key.isdigit() else int(key)
        tag, group_deleted = found.get(tag_id, (None, True)) if tag_id is not None else (None, True)
        if tag is None or tag.deleted or group_deleted:
            bad.append(str(key))
        else:
            tags.append(tag)
    if bad:
        raise InvalidRequest(f"标签不存在或已删除：{', '.join(bad)}。请刷新标签列表后重试。", tags=bad)
    ruled = set((await session.scalars(select(TagRule.tag_id).where(
        TagRule.enabled.is_(True), TagRule.tag_id.in_([t.id for t in tags])))).all())
    if ruled:
        names = "、".join(t.name for t in tags if t.id in ruled)
        raise InvalidRequest(f"标签「{names}」由规则自动维护，不能手动修改。", tags=sorted(ruled))
    return tags


async def change_tags(ctx: BotContext, userid: str, external_userid: str, change: TagChange) -> dict[str, Any]:
    """Add/remove tags on a customer the viewer may see: WeCom first, then our records."""
    async with ctx.maker() as session:
        viewer = await load_viewer(session, userid)
        customer_id = await customer_in_scope(session, viewer, external_userid)
        add = await _resolve(session, change.add)
        remove = await _resolve(session, change.remove)
        via = await _marking_member(session, viewer, customer_id, external_userid)
    wecom_add = [t.wecom_tag_id for t in add if t.wecom_tag_id]
    wecom_remove = [t.wecom_tag_id for t in remove if t.wecom_tag_id]
    if wecom_add or wecom_remove:
        if via is None:
            raise AccessDenied("该客户目前没有您可代为操作的跟进人，无法在企业微信中修改标签。")
        await _mark(ctx, via[0], via[1], wecom_add, wecom_remove)
    async with ctx.maker.begin() as session:
        for tag in add:
            if await session.get(CustomerTag, (customer_id, tag.id)) is None:
                session.add(CustomerTag(customer_id=customer_id, tag_id=tag.id, source=TagSource.STAFF,
                                        staff_id=viewer.staff_id, created_at=ctx.clock()))
        for tag in remove:
            row = await session.get(CustomerTag, (customer_id, tag.id))
            if row is not None:
                await session.delete(row)
        session.add(audit(userid, "customer_tags_changed", "customer", str(customer_id), ctx.clock(),
                          external_userid=external_userid, added=[t.name for t in add],
                          removed=[t.name for t in remove], via=via[0] if via and (wecom_add or wecom_remove) else None))
        await session.flush()
        tags = await customer_tags(session, customer_id)
    return {"customer_id": customer_id, "added": [t.id for t in add], "removed": [t.id for t in remove], "tags": tags}


async def _marking_member(
    session: AsyncSession, viewer: Viewer, customer_id: int, external_userid: str
) -> tuple[str, str] | None:
    # mark_tag acts on one member's relation (84061 otherwise): the viewer's own when they follow the
    # customer, else (a manager) the relation of a guide they oversee.
    followers = await followers_in_scope(session, viewer, customer_id)
    if not followers:
        return None
    staff, relation = followers[0]
    return staff.userid, relation.external_userid or external_userid


async def _mark(ctx: BotContext, userid: str, external_userid: str, add: list[str], remove: list[str]) -> None:
    try:
        await ctx.gateway.mark_tag(userid, external_userid, add, remove)
    except WeComError as exc:
        if exc.errcode == _NOT_THEIR_CUSTOMER:
            raise Conflict("企业微信中该客户已不是您的客户（可能已删除好友），标签未修改。", errcode=exc.errcode) from None
        if exc.errcode == _INVALID_TAG:
            raise InvalidRequest("企业微信中该标签已被删除，请刷新标签列表后重试。", errcode=exc.errcode) from None
        raise UpstreamError(f"企业微信未能修改标签（错误码 {exc.errcode}），请稍后重试。", errcode=exc.errcode) from None


async def customer_tags(session: AsyncSession, customer_id: int) -> list[dict[str, Any]]:
    """The customer's live tags with where each came from."""
    rows = (await session.execute(
        select(Tag.id, TagGroup.name, Tag.name, CustomerTag.source).join(Tag, Tag.id == CustomerTag.tag_id)
        .join(TagGroup, TagGroup.id == Tag.group_id)
        .where(CustomerTag.customer_id == customer_id, Tag.deleted.is_(False))
        .order_by(TagGroup.order.desc(), Tag.order.desc(), Tag.name))).all()
    return [{"id": i, "group": g, "name": n, "source": s.value} for i, g, n, s in rows]
