"""Write what WeCom told us into our models: staff, customers, identities, follows, tags, groups."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import BotContext
from customers.identity import normalise_phone, resolve_customer, surviving
from models import (
    ContactWay,
    Customer,
    CustomerGroup,
    CustomerIdentity,
    CustomerTag,
    FollowRelation,
    FollowStatus,
    GroupMember,
    GroupStatus,
    IdentityKind,
    Staff,
    StaffRole,
    Tag,
    TagGroup,
    TagSource,
    insert_ignore,
)
from wecom.types import CorpTagGroup, ExternalContact, FollowUser, GroupChat, Member

_LOGGER = logging.getLogger(__name__)


def from_unix(seconds: int) -> dt.datetime | None:
    """A WeCom unix timestamp as aware UTC (None for 0)."""
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc) if seconds else None


async def find_staff(session: AsyncSession, userid: str) -> Staff | None:
    """Staff by WeCom userid (case-insensitive, as WeCom treats them)."""
    return await session.scalar(select(Staff).where(Staff.userid == userid))


async def ensure_staff(ctx: BotContext, userid: str) -> Staff:
    """The staff row for ``userid``, read from WeCom (user/get) on first sight."""
    async with ctx.maker() as session:
        staff = await find_staff(session, userid)
    if staff is not None:
        return staff
    member: Member = await ctx.gateway.get_user(userid)  # outside any transaction
    async with ctx.maker.begin() as session:
        # Several events about one new member may be processed side by side: insert once.
        inserted = await insert_ignore(
            session, Staff, {"userid": userid, "name": member.name, "position": member.position,
                             "wecom_status": member.status, "role": StaffRole.GUIDE}, ["userid"],
        )
        if inserted:
            session.add(ctx.audit("staff_discovered", "staff", userid, name=member.name))
        staff = await find_staff(session, userid)
        assert staff is not None
        return staff


async def find_customer_by_identity(session: AsyncSession, kind: IdentityKind, value: str) -> Customer | None:
    """The (surviving) customer an identity points at."""
    customer_id = await session.scalar(
        select(CustomerIdentity.customer_id).where(CustomerIdentity.kind == kind, CustomerIdentity.value == value)
    )
    return None if customer_id is None else await surviving(session, customer_id)


async def upsert_customer(ctx: BotContext, session: AsyncSession, contact: ExternalContact) -> Customer:
    """The customer behind an external_userid, found by it, its unionid or remark phones (merging if proven one)."""
    identities: list[tuple[IdentityKind, str]] = [(IdentityKind.EXTERNAL_USERID, contact.external_userid)]
    if contact.unionid:
        identities.append((IdentityKind.UNIONID, contact.unionid))
    # Phones a guide typed as remarks are weaker evidence: they attach to the customer but never merge.
    resolution = await resolve_customer(session, identities, name=contact.name, now=ctx.clock(), actor="bot")
    customer = resolution.customer
    if resolution.created:
        session.add(ctx.audit("customer_created", "customer", str(customer.id), external_userid=contact.external_userid))
    for merge in resolution.merges:
        session.add(ctx.audit("customers_merged", "customer", str(customer.id), merged_id=merge.merged_id,
                              reason=f"{merge.reason_kind}={merge.reason_value}"))
    for conflict in resolution.conflicts:
        session.add(ctx.audit("identity_conflict", "customer", str(customer.id), detail=conflict))
    customer.name = contact.name or customer.name
    customer.avatar = contact.avatar or customer.avatar
    customer.gender = contact.gender
    customer.wecom_type = contact.type
    customer.corp_name = contact.corp_name or customer.corp_name
    customer.updated_at = ctx.clock()
    for follow in contact.follow_users:
        for mobile in follow.remark_mobiles:
            phone = normalise_phone(str(mobile))
            if phone and await find_customer_by_identity(session, IdentityKind.PHONE, phone) is None:
                session.add(CustomerIdentity(customer_id=customer.id, kind=IdentityKind.PHONE, value=phone))
    await session.flush()
    return customer


async def upsert_follow(
    ctx: BotContext,
    session: AsyncSession,
    staff: Staff,
    customer: Customer,
    external_userid: str,
    follow: FollowUser | None,
    status: FollowStatus,
    contact_way: ContactWay | None = None,
) -> FollowRelation:
    """Create or refresh one staff <-> customer relation."""
    relation = await session.scalar(
        select(FollowRelation).where(FollowRelation.staff_id == staff.id, FollowRelation.customer_id == customer.id)
    )
    now = ctx.clock()
    if relation is None:
        relation = FollowRelation(staff_id=staff.id, customer_id=customer.id, external_userid=external_userid)
        session.add(relation)
    relation.external_userid = external_userid
    relation.status = status
    relation.removed_at = None
    relation.updated_at = now
    if follow is not None:
        relation.remark = follow.remark[:128]
        relation.description = follow.description[:512]
        relation.remark_mobiles = ",".join(str(m) for m in follow.remark_mobiles)[:255]
        relation.state = follow.state[:64] or relation.state
        relation.add_way = follow.add_way
        relation.oper_userid = follow.oper_userid[:64]
        relation.added_at = from_unix(follow.createtime) or relation.added_at or now
    elif relation.added_at is None:
        relation.added_at = now
    if contact_way is not None:
        relation.contact_way_id = contact_way.id
    await session.flush()
    return relation


async def unknown_tag_ids(session: AsyncSession, tag_ids: Iterable[str]) -> set[str]:
    """Which WeCom tag ids we have not mirrored yet."""
    wanted = {t for t in tag_ids if t}
    if not wanted:
        return set()
    known = set((await session.scalars(select(Tag.wecom_tag_id).where(Tag.wecom_tag_id.in_(wanted)))).all())
    return wanted - known


def corp_tag_ids(contact: ExternalContact) -> set[str]:
    """Corp tag ids any follower put on the customer."""
    return {t.tag_id for f in contact.follow_users for t in f.tags if t.type == 1 and t.tag_id}


async def set_wecom_tags(ctx: BotContext, session: AsyncSession, customer: Customer, tag_ids: set[str]) -> None:
    """Make the customer's WeCom-sourced tags exactly ``tag_ids``; other sources are left alone."""
    tags = (await session.scalars(select(Tag).where(Tag.wecom_tag_id.in_(tag_ids)))).all() if tag_ids else []
    want = {t.id for t in tags}
    current = {
        row.tag_id: row
        for row in (await session.scalars(select(CustomerTag).where(CustomerTag.customer_id == customer.id))).all()
    }
    for tag_id in want - current.keys():
        session.add(CustomerTag(customer_id=customer.id, tag_id=tag_id, source=TagSource.WECOM, created_at=ctx.clock()))
    for tag_id, row in current.items():
        if row.source is TagSource.WECOM and tag_id not in want:
            await session.delete(row)
    await session.flush()


async def apply_tag_library(ctx: BotContext, session: AsyncSession, groups: list[CorpTagGroup]) -> dict[str, int]:
    """Mirror WeCom's full corp tag library; tags no longer listed are marked deleted."""
    seen_groups: set[str] = set()
    seen_tags: set[str] = set()
    counts = {"groups": 0, "tags": 0, "deleted": 0}
    for g in groups:
        group = await session.scalar(select(TagGroup).where(TagGroup.wecom_group_id == g.group_id))
        if group is None:
            group = await session.scalar(select(TagGroup).where(TagGroup.name == g.group_name, TagGroup.wecom_group_id.is_(None)))
        if group is None:
            group = TagGroup(name=g.group_name)
            session.add(group)
        group.wecom_group_id = g.group_id
        group.name = g.group_name
        group.order = g.order
        group.deleted = g.deleted
        await session.flush()
        seen_groups.add(g.group_id)
        counts["groups"] += 1
        for t in g.tags:
            tag = await session.scalar(select(Tag).where(Tag.wecom_tag_id == t.id))
            if tag is None:
                tag = await session.scalar(select(Tag).where(Tag.group_id == group.id, Tag.name == t.name))
            if tag is None:
                tag = Tag(group_id=group.id, name=t.name)
                session.add(tag)
            tag.group_id = group.id
            tag.wecom_tag_id = t.id
            tag.name = t.name
            tag.order = t.order
            tag.deleted = t.deleted
            seen_tags.add(t.id)
            counts["tags"] += 1
        await session.flush()
    for group in (await session.scalars(select(TagGroup).where(TagGroup.wecom_group_id.is_not(None)))).all():
        if group.wecom_group_id not in seen_groups and not group.deleted:
            group.deleted = True
            counts["deleted"] += 1
    for tag in (await session.scalars(select(Tag).where(Tag.wecom_tag_id.is_not(None)))).all():
        if tag.wecom_tag_id not in seen_tags and not tag.deleted:
            tag.deleted = True
            counts["deleted"] += 1
    await session.flush()
    return counts


async def sync_tag_library(ctx: BotContext) -> dict[str, int]:
    """Re-pull get_corp_tag_list (outside a transaction) and mirror it."""
    groups = await ctx.gateway.get_corp_tags()
    async with ctx.maker.begin() as session:
        counts = await apply_tag_library(ctx, session, groups)
        session.add(ctx.audit("tag_library_synced", "tags", "", **counts))
        return counts


async def local_tag(session: AsyncSession, group_name: str, tag_name: str) -> Tag:
    """A tag of our own (not in WeCom), created on first use."""
    group = await session.scalar(select(TagGroup).where(TagGroup.name == group_name).order_by(TagGroup.id))
    if group is None:
        group = TagGroup(name=group_name)
        session.add(group)
        await session.flush()
    tag = await session.scalar(select(Tag).where(Tag.group_id == group.id, Tag.name == tag_name))
    if tag is None:
        tag = Tag(group_id=group.id, name=tag_name)
        session.add(tag)
        await session.flush()
    return tag


async def add_customer_tag(
    ctx: BotContext, session: AsyncSession, customer_id: int, tag: Tag, source: TagSource
) -> None:
    """Tag a customer once (no-op when already tagged)."""
    if await session.get(CustomerTag, (customer_id, tag.id)) is None:
        session.add(CustomerTag(customer_id=customer_id, tag_id=tag.id, source=source, created_at=ctx.clock()))
        await session.flush()


async def apply_group_chat(ctx: BotContext, session: AsyncSession, chat: GroupChat) -> CustomerGroup:
    """Mirror a customer group and its full member list from groupchat/get."""
    group = await session.scalar(select(CustomerGroup).where(CustomerGroup.chat_id == chat.chat_id))
    if group is None:
        group = CustomerGroup(chat_id=chat.chat_id)
        session.add(group)
    group.name = chat.name[:128]
    group.owner_userid = chat.owner
    group.notice = chat.notice[:1024]
    group.member_version = chat.member_version
    group.created_at = from_unix(chat.create_time)
    group.status = GroupStatus.ACTIVE
    group.synced_at = ctx.clock()
    await session.flush()
    await session.execute(delete(GroupMember).where(GroupMember.group_id == group.id))
    for m in chat.members:
        customer_id = None
        if m.type == 2:
            customer = await find_customer_by_identity(session, IdentityKind.EXTERNAL_USERID, m.userid)
            customer_id = customer.id if customer else None
        session.add(
            GroupMember(
                group_id=group.id,
                member_userid=m.userid,
                member_type=m.type,
                customer_id=customer_id,
                name=m.name[:128],
                group_nickname=m.group_nickname[:128],
                join_time=from_unix(m.join_time),
                join_scene=m.join_scene,
                invitor_userid=m.invitor,
            )
        )
    await session.flush()
    return group
