"""The profile aggregate: everything known about one customer, as the sidebar and admins read it."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from customers.identity import surviving
from customers.rulesql import counted, purchase_time
from models import (
    Customer,
    CustomerIdentity,
    CustomerMerge,
    CustomerStats,
    CustomerTag,
    FollowRelation,
    IdentityKind,
    Membership,
    Order,
    OrderItem,
    Staff,
    StaffRole,
    Store,
    Tag,
    TagGroup,
)

# Roles that see full phone numbers; everyone else sees 138****1234.
PHONE_ROLES: Final = frozenset({StaffRole.HQ})
RECENT_ORDERS: Final = 20


class CustomerNotFound(LookupError):
    """No such customer."""


def mask_phone(e164: str) -> str:
    """+8613812341234 -> 138****1234 (anything else keeps only its last 4 characters)."""
    digits = e164[3:] if e164.startswith("+86") else e164
    if len(digits) == 11:
        return f"{digits[:3]}****{digits[-4:]}"
    return "****" + digits[-4:]


def yuan(cents: int | None) -> str:
    """Fen as a yuan string: 129900 -> '1299.00'."""
    cents = cents or 0
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


@dataclass(frozen=True)
class IdentityView:
    kind: str
    value: str


@dataclass(frozen=True)
class GuideView:
    userid: str
    name: str
    store: str
    remark: str
    status: str
    state: str
    added_at: dt.datetime | None


@dataclass(frozen=True)
class ItemView:
    sku: str
    name: str
    category: str
    quantity: int
    amount: str


@dataclass(frozen=True)
class OrderView:
    channel: str
    channel_order_id: str
    status: str
    paid: str
    refunded: str
    ordered_at: dt.datetime
    store: str
    items: list[ItemView]


@dataclass(frozen=True)
class TagView:
    group: str
    name: str
    source: str


@dataclass(frozen=True)
class Totals:
    spend: str
    order_count: int
    average_order: str
    first_purchase_at: dt.datetime | None
    last_purchase_at: dt.datetime | None


@dataclass
class Profile:
    """One customer, unified across channels."""

    customer_id: int
    name: str
    avatar: str
    gender: int
    identities: list[IdentityView]
    guides: list[GuideView]
    totals: Totals
    orders: list[OrderView]
    channels: list[str]
    tags: list[TagView]
    stage: str | None = None
    rfm: dict[str, int] = field(default_factory=dict)
    tier: str = ""
    points: int | None = None
    next_tier: str = ""
    next_tier_gap: str | None = None
    merged_from: list[int] = field(default_factory=list)
    stats_computed_at: dt.datetime | None = None

    def as_json(self) -> dict[str, Any]:
        """JSON-ready dict (datetimes as ISO strings)."""

        def conv(v: Any) -> Any:
            if isinstance(v, dt.datetime):
                return v.isoformat()
            if isinstance(v, list):
                return [conv(x) for x in v]
            if isinstance(v, dict):
                return {k: conv(x) for k, x in v.items()}
            return v

        return conv(asdict(self))  # type: ignore[no-any-return]


async def load_profile(session: AsyncSession, customer_id: int, *, show_phone: bool = False) -> Profile:
    """Assemble the profile of ``customer_id`` (or of the record it was merged into)."""
    if await session.get(Customer, customer_id) is None:
        raise CustomerNotFound(f"客户 {customer_id} 不存在")
    customer = await surviving(session, customer_id)
    cid = customer.id
    identities = [
        IdentityView(k.value, v if k is not IdentityKind.PHONE or show_phone else mask_phone(v))
        for k, v in (await session.execute(
            select(CustomerIdentity.kind, CustomerIdentity.value).where(CustomerIdentity.customer_id == cid)
            .order_by(CustomerIdentity.kind, CustomerIdentity.id))).all()
    ]
    guides = [
        GuideView(s.userid, s.name, store or "", f.remark, f.status.value, f.state, f.added_at)
        for f, s, store in (await session.execute(
            select(FollowRelation, Staff, Store.name).join(Staff, Staff.id == FollowRelation.staff_id)
            .outerjoin(Store, Store.id == Staff.store_id).where(FollowRelation.customer_id == cid)
            .order_by(FollowRelation.added_at.desc()))).all()
    ]
    totals_row = (await session.execute(
        select(func.count(), func.coalesce(func.sum(Order.paid_cents - Order.refunded_cents), 0),
               func.min(purchase_time()), func.max(purchase_time()))
        .where(Order.customer_id == cid, counted()))).one()
    count, spend, first, last = int(totals_row[0]), int(totals_row[1]), totals_row[2], totals_row[3]
    totals = Totals(yuan(spend), count, yuan(spend // count if count else 0), first, last)
    recent = (await session.execute(
        select(Order, Store.name).outerjoin(Store, Store.id == Order.store_id).where(Order.customer_id == cid)
        .order_by(Order.ordered_at.desc()).limit(RECENT_ORDERS))).all()
    items: dict[int, list[ItemView]] = {}
    if recent:
        for it in (await session.scalars(select(OrderItem).where(OrderItem.order_id.in_([o.id for o, _ in recent]))
                                         .order_by(OrderItem.id))).all():
            items.setdefault(it.order_id, []).append(ItemView(it.sku, it.name, it.category, it.quantity, yuan(it.amount_cents)))
    orders = [
        OrderView(o.channel, o.channel_order_id, o.status.value, yuan(o.paid_cents), yuan(o.refunded_cents),
                  o.ordered_at, store or "", items.get(o.id, []))
        for o, store in recent
    ]
    channels = sorted(c for (c,) in (await session.execute(
        select(Order.channel).where(Order.customer_id == cid).distinct())).all())
    tags = [
        TagView(g, t, src.value)
        for g, t, src in (await session.execute(
            select(TagGroup.name, Tag.name, CustomerTag.source).join(Tag, Tag.id == CustomerTag.tag_id)
            .join(TagGroup, TagGroup.id == Tag.group_id).where(CustomerTag.customer_id == cid, Tag.deleted.is_(False))
            .order_by(TagGroup.order.desc(), Tag.order.desc(), Tag.name))).all()
    ]
    profile = Profile(cid, customer.name, customer.avatar, customer.gender, identities, guides, totals, orders,
                      channels, tags)
    stats = await session.get(CustomerStats, cid)
    if stats is not None:
        profile.stage = stats.stage.value
        profile.rfm = {"r": stats.r_score, "f": stats.f_score, "m": stats.m_score}
        profile.stats_computed_at = stats.computed_at
    membership = await session.get(Membership, cid)
    if membership is not None:
        profile.tier, profile.points, profile.next_tier = membership.tier, membership.points, membership.next_tier
        if membership.next_tier_gap_cents is not None:
            profile.next_tier_gap = yuan(membership.next_tier_gap_cents)
    profile.merged_from = [m for (m,) in (await session.execute(
        select(CustomerMerge.merged_id).where(CustomerMerge.survivor_id == cid).order_by(CustomerMerge.id))).all()]
    return profile


def may_see_phone(role: StaffRole) -> bool:
    """Whether a viewer with ``role`` sees full phone numbers."""
    return role in PHONE_ROLES
