"""The profile aggregate: everything known about one customer, as the sidebar and admins read it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import bindparam, case, func, select
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
        return _jsonable(self)  # type: ignore[no-any-return]


def _jsonable(value: Any) -> Any:
    # Not dataclasses.asdict: it deep-copies every leaf, a millisecond per profile on the sidebar's hot path.
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if hasattr(value, "__dataclass_fields__"):
        return {k: _jsonable(v) for k, v in vars(value).items()}
    return value


# Every statement below is built once, with the customer as a bound parameter: the sidebar reads a
# profile per chat, and building a statement (and its cache key) costs about as much CPU as running it.
_CID: Final = bindparam("cid")
_CORE: Final = (
    select(Customer.id, Customer.merged_into_id, Customer.name, Customer.avatar, Customer.gender,
           CustomerStats.customer_id, CustomerStats.stage, CustomerStats.r_score, CustomerStats.f_score,
           CustomerStats.m_score, CustomerStats.computed_at,
           Membership.customer_id, Membership.tier, Membership.points, Membership.next_tier,
           Membership.next_tier_gap_cents,
           select(CustomerMerge.id).where(CustomerMerge.survivor_id == Customer.id).exists())
    .outerjoin(CustomerStats, CustomerStats.customer_id == Customer.id)
    .outerjoin(Membership, Membership.customer_id == Customer.id)
    .where(Customer.id == _CID)
)
_IDENTITIES: Final = (
    select(CustomerIdentity.kind, CustomerIdentity.value).where(CustomerIdentity.customer_id == _CID)
    .order_by(CustomerIdentity.kind, CustomerIdentity.id)
)
_GUIDES: Final = (
    select(Staff.userid, Staff.name, Store.name, FollowRelation.remark, FollowRelation.status,
           FollowRelation.state, FollowRelation.added_at)
    .join(Staff, Staff.id == FollowRelation.staff_id)
    .outerjoin(Store, Store.id == Staff.store_id).where(FollowRelation.customer_id == _CID)
    .order_by(FollowRelation.added_at.desc())
)
_TAGS: Final = (
    select(TagGroup.name, Tag.name, CustomerTag.source).join(Tag, Tag.id == CustomerTag.tag_id)
    .join(TagGroup, TagGroup.id == Tag.group_id).where(CustomerTag.customer_id == _CID, Tag.deleted.is_(False))
    .order_by(TagGroup.order.desc(), Tag.order.desc(), Tag.name)
)
_MERGED_FROM: Final = (
    select(CustomerMerge.merged_id).where(CustomerMerge.survivor_id == _CID).order_by(CustomerMerge.id)
)
_COUNTED: Final = counted()
_TOTALS: Final = (
    select(Order.channel,
           func.sum(case((_COUNTED, 1), else_=0)),
           func.sum(case((_COUNTED, Order.paid_cents - Order.refunded_cents), else_=0)),
           func.min(case((_COUNTED, purchase_time()))),
           func.max(case((_COUNTED, purchase_time()))))
    .where(Order.customer_id == _CID).group_by(Order.channel)
)
_RECENT_IDS: Final = (
    select(Order.id).where(Order.customer_id == _CID)
    .order_by(Order.ordered_at.desc(), Order.id.desc()).limit(RECENT_ORDERS)
)
_RECENT_ORDERS: Final = (
    select(Order.id, Order.channel, Order.channel_order_id, Order.status, Order.paid_cents, Order.refunded_cents,
           Order.ordered_at, Store.name, OrderItem.sku, OrderItem.name, OrderItem.category, OrderItem.quantity,
           OrderItem.amount_cents)
    .outerjoin(Store, Store.id == Order.store_id).outerjoin(OrderItem, OrderItem.order_id == Order.id)
    .where(Order.id.in_(_RECENT_IDS.scalar_subquery()))
    .order_by(Order.ordered_at.desc(), Order.id.desc(), OrderItem.id)
)


async def _core_row(session: AsyncSession, customer_id: int) -> Any:
    """The customer's own columns with their stats and membership (NULLs if none) in one query, or None."""
    return (await session.execute(_CORE, {"cid": customer_id})).first()


async def load_profile(session: AsyncSession, customer_id: int, *, show_phone: bool = False) -> Profile:
    """Assemble the profile of ``customer_id`` (or of the record it was merged into).

    Six queries (seven when records were merged into this one), each an index probe on the customer:
    the sidebar opens a profile per chat, and on SQLite every round trip costs a thread hop, so related
    rows come back joined rather than one by one.
    """
    row = await _core_row(session, customer_id)
    if row is None:
        raise CustomerNotFound(f"客户 {customer_id} 不存在")
    if row.merged_into_id is not None:
        row = await _core_row(session, (await surviving(session, customer_id)).id)
    (cid, _, name, avatar, gender, has_stats, stage, r_score, f_score, m_score, computed_at,
     member, tier, points, next_tier, gap, absorbed_others) = row
    params = {"cid": cid}
    identities = [
        IdentityView(k.value, v if k is not IdentityKind.PHONE or show_phone else mask_phone(v))
        for k, v in (await session.execute(_IDENTITIES, params)).all()
    ]
    guides = [
        GuideView(userid, guide, store or "", remark, status.value, state, added_at)
        for userid, guide, store, remark, status, state, added_at in (await session.execute(_GUIDES, params)).all()
    ]
    totals, channels = await _totals_and_channels(session, cid)
    orders = await _recent_orders(session, cid)
    tags = [TagView(g, t, src.value) for g, t, src in (await session.execute(_TAGS, params)).all()]
    profile = Profile(cid, name, avatar, gender, identities, guides, totals, orders, channels, tags)
    if has_stats is not None:
        profile.stage = stage.value
        profile.rfm = {"r": r_score, "f": f_score, "m": m_score}
        profile.stats_computed_at = computed_at
    if member is not None:
        profile.tier, profile.points, profile.next_tier = tier, points, next_tier
        if gap is not None:
            profile.next_tier_gap = yuan(gap)
    if absorbed_others:  # most customers never had a record merged into theirs: no query for them
        profile.merged_from = list((await session.scalars(_MERGED_FROM, params)).all())
    return profile


async def _totals_and_channels(session: AsyncSession, cid: int) -> tuple[Totals, list[str]]:
    """Spend, order count and purchase span over counted orders, and every channel ordered on: one query."""
    rows = (await session.execute(_TOTALS, {"cid": cid})).all()
    count = sum(int(r[1] or 0) for r in rows)
    spend = sum(int(r[2] or 0) for r in rows)
    firsts = [r[3] for r in rows if r[3] is not None]
    lasts = [r[4] for r in rows if r[4] is not None]
    totals = Totals(yuan(spend), count, yuan(spend // count if count else 0), min(firsts, default=None),
                    max(lasts, default=None))
    return totals, sorted(r[0] for r in rows)


async def _recent_orders(session: AsyncSession, cid: int) -> list[OrderView]:
    """The latest RECENT_ORDERS orders with their items and store, in one query."""
    rows = (await session.execute(_RECENT_ORDERS, {"cid": cid})).all()
    orders: dict[int, OrderView] = {}
    for oid, channel, number, status, paid, refunded, at, store, sku, name, category, quantity, amount in rows:
        view = orders.get(oid)
        if view is None:
            view = orders[oid] = OrderView(channel, number, status.value, yuan(paid), yuan(refunded), at, store or "",
                                           [])
        if sku is not None:  # an order without items has one row of NULL item columns
            view.items.append(ItemView(sku, name, category, quantity, yuan(amount)))
    return list(orders.values())


def may_see_phone(role: StaffRole) -> bool:
    """Whether a viewer with ``role`` sees full phone numbers."""
    return role in PHONE_ROLES
