"""Who a push reaches at run time, and through whom: each customer's guide, or each group's owner.

A customer followed by several guides goes through the one who interacted most recently (their
latest talk-script send to that customer, else the latest change to the relation, else when they
were added), as WeCom itself pushes "only to the member who most recently interacted".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Select, and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from customers.rules import parse
from customers.rulesql import matching_ids
from models import (
    Customer, CustomerGroup, CustomerTag, FollowRelation, FollowStatus, GroupStatus, ScriptSend, Segment, Staff,
)

_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_CHUNK: Final = 500


@dataclass(frozen=True)
class Recipient:
    """One customer (or group) and the member who would send to them (None: nobody can)."""

    target: str  # external_userid, chat_id, or c:<customer id> when there is no relation at all
    customer_id: int | None
    sender: str | None
    staff_id: int | None


def _audience_ids(audience: dict[str, Any], segment_expression: str | None, now: dt.datetime) -> Select[tuple[int]]:
    if audience["kind"] == "segment":
        assert segment_expression is not None
        return matching_ids(parse(segment_expression), now=now)
    live = Customer.merged_into_id.is_(None)
    if audience["kind"] == "tags":
        tags = audience["tag_ids"]
        query = (select(CustomerTag.customer_id).join(Customer, Customer.id == CustomerTag.customer_id)
                 .where(CustomerTag.tag_id.in_(tags), live).group_by(CustomerTag.customer_id))
        if audience["match"] == "all":
            query = query.having(func.count(func.distinct(CustomerTag.tag_id)) == len(tags))
        return query
    raise ValueError(f"no id query for audience kind {audience['kind']!r}")


async def customer_ids(session: AsyncSession, audience: dict[str, Any], now: dt.datetime) -> list[int]:
    """The audience's customers as of ``now`` (merged-away customers excluded), sorted."""
    if audience["kind"] == "customers":
        wanted = audience["customer_ids"]
        found: list[int] = []
        for start in range(0, len(wanted), _CHUNK):
            found.extend((await session.scalars(select(Customer.id).where(
                Customer.id.in_(wanted[start:start + _CHUNK]), Customer.merged_into_id.is_(None)))).all())
        return sorted(set(found))
    expression = None
    if audience["kind"] == "segment":
        expression = await session.scalar(select(Segment.expression).where(Segment.id == audience["segment_id"]))
        if expression is None:
            return []
    return sorted(set((await session.scalars(_audience_ids(audience, expression, now))).all()))


async def assign_guides(session: AsyncSession, ids: Sequence[int]) -> list[Recipient]:
    """Each customer with the guide who interacted most recently (live relations, active members only)."""
    last_send = (select(ScriptSend.staff_id, ScriptSend.customer_id, func.max(ScriptSend.sent_at).label("at"))
                 .group_by(ScriptSend.staff_id, ScriptSend.customer_id).subquery())
    best: dict[int, tuple[tuple[dt.datetime, dt.datetime, dt.datetime], Recipient]] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = list(ids[start:start + _CHUNK])
        rows = await session.execute(
            select(FollowRelation.customer_id, FollowRelation.staff_id, Staff.userid, FollowRelation.external_userid,
                   last_send.c.at, FollowRelation.updated_at, FollowRelation.added_at)
            .join(Staff, Staff.id == FollowRelation.staff_id)
            .outerjoin(last_send, and_(last_send.c.staff_id == FollowRelation.staff_id,
                                       last_send.c.customer_id == FollowRelation.customer_id))
            .where(FollowRelation.customer_id.in_(chunk), FollowRelation.status == FollowStatus.ACTIVE,
                   Staff.wecom_status == 1))
        for customer_id, staff_id, userid, external_userid, sent, updated, added in rows:
            rank = (_aware(sent), _aware(updated or added), _aware(added))
            known = best.get(customer_id)
            if known is None or rank > known[0]:
                best[customer_id] = (rank, Recipient(external_userid, customer_id, userid, staff_id))
    return [best[i][1] if i in best else Recipient(f"c:{i}", i, None, None) for i in ids]


def _aware(value: dt.datetime | None) -> dt.datetime:
    if value is None:
        return _EPOCH
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


async def group_recipients(session: AsyncSession, audience: dict[str, Any]) -> list[Recipient]:
    """Live customer groups matching the owners / stores / name filters, each sent by its owner."""
    query = (select(CustomerGroup.chat_id, CustomerGroup.owner_userid, Staff.id, Staff.wecom_status)
             .outerjoin(Staff, Staff.userid == CustomerGroup.owner_userid)
             .where(CustomerGroup.status == GroupStatus.ACTIVE))
    if audience["owners"]:
        query = query.where(CustomerGroup.owner_userid.in_(audience["owners"]))
    if audience["store_ids"]:
        query = query.where(Staff.store_id.in_(audience["store_ids"]))
    if audience["name_contains"]:
        query = query.where(CustomerGroup.name.contains(audience["name_contains"], autoescape=True))
    rows = (await session.execute(query.order_by(CustomerGroup.owner_userid, CustomerGroup.chat_id))).all()
    return [Recipient(chat_id, None, owner if staff_id is not None and status == 1 else None, staff_id)
            for chat_id, owner, staff_id, status in rows]


async def resolve(session: AsyncSession, audience: dict[str, Any], now: dt.datetime) -> list[Recipient]:
    """Everyone the push reaches right now, with the member who sends to them."""
    if audience["kind"] == "groups":
        return await group_recipients(session, audience)
    return await assign_guides(session, await customer_ids(session, audience, now))
