"""Credit orders to guides: by the share code an order carries, else by the customer's last click in the window.

Recomputing is set-based and idempotent: the attributions of orders placed since a point in time are
deleted and derived again from orders, links and clicks in one transaction, so refunds (which update
the order) reverse or shrink the credit on the next run, and running twice changes nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import and_, case, delete, func, insert, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from customers.rulesql import ts_literal
from models import LinkClick, Order, OrderAttribution, OrderStatus, ShareLink, Visitor
from models.base import within_days

#: Orders that never were a sale are not credited at all; refunded/cancelled ones are kept, reversed.
_CREDITED: Final = (OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED, OrderStatus.CANCELLED)
_REVERSED: Final = (OrderStatus.REFUNDED, OrderStatus.CANCELLED)


@dataclass(frozen=True)
class AttributionSummary:
    """What a recompute found."""

    by_share_code: int
    by_click: int
    reversed: int
    elapsed: float


def _gmv() -> Any:
    """Paid minus refunded, never negative; nothing for a refunded or cancelled order."""
    return case((Order.status.in_(_REVERSED), literal(0)),
                (Order.paid_cents > Order.refunded_cents, Order.paid_cents - Order.refunded_cents),
                else_=literal(0))


def _columns(now: dt.datetime) -> dict[str, Any]:
    return {"gmv_cents": _gmv(), "reversed": Order.status.in_(_REVERSED), "computed_at": ts_literal(now)}


def _last_click(window_days: int, dialect: str) -> Any:
    """The id of the customer's last click (theirs, or by a visitor id we know is theirs) within the window."""
    known_visitor = select(Visitor.visitor_id).where(Visitor.customer_id == Order.customer_id).correlate(Order)
    return (select(LinkClick.id)
            .where(or_(LinkClick.customer_id == Order.customer_id, LinkClick.visitor_id.in_(known_visitor)),
                   LinkClick.at <= Order.ordered_at,
                   within_days(Order.ordered_at, LinkClick.at, window_days, dialect))
            .order_by(LinkClick.at.desc(), LinkClick.id.desc()).limit(1)
            .correlate(Order).scalar_subquery())


async def recompute_attribution(maker: async_sessionmaker[AsyncSession], *, since: dt.datetime, now: dt.datetime,
                                window_days: int) -> AttributionSummary:
    """Derive again the attributions of every order placed at or after ``since``."""
    started = dt.datetime.now(dt.timezone.utc)
    async with maker.begin() as session:
        dialect = session.bind.dialect.name
        await session.execute(delete(OrderAttribution).where(OrderAttribution.ordered_at >= ts_literal(since)))
        in_range = and_(Order.ordered_at >= ts_literal(since), Order.status.in_(_CREDITED))
        columns = _columns(now)
        by_code = (select(Order.id, ShareLink.staff_id, ShareLink.id, literal("share_code"), Order.ordered_at,
                          Order.ordered_at, columns["gmv_cents"], columns["reversed"], columns["computed_at"])
                   .join(ShareLink, ShareLink.code == Order.share_code)
                   .where(in_range, Order.share_code != ""))
        targets = ["order_id", "staff_id", "link_id", "source", "touched_at", "ordered_at", "gmv_cents", "reversed",
                   "computed_at"]
        coded = (await session.execute(insert(OrderAttribution).from_select(targets, by_code))).rowcount
        last = _last_click(window_days, dialect).label("click_id")
        candidates = (select(Order.id.label("order_id"), last, Order.ordered_at, columns["gmv_cents"].label("gmv"),
                             columns["reversed"].label("rev"))
                      .where(in_range, Order.id.not_in(select(OrderAttribution.order_id)))
                      .subquery())
        by_click = (select(candidates.c.order_id, ShareLink.staff_id, ShareLink.id, literal("click"), LinkClick.at,
                           candidates.c.ordered_at, candidates.c.gmv, candidates.c.rev, ts_literal(now))
                    .join(LinkClick, LinkClick.id == candidates.c.click_id)
                    .join(ShareLink, ShareLink.id == LinkClick.link_id))
        clicked = (await session.execute(insert(OrderAttribution).from_select(targets, by_click))).rowcount
        reversed_count = await session.scalar(select(func.count()).where(
            OrderAttribution.ordered_at >= ts_literal(since), OrderAttribution.reversed.is_(True)))
    elapsed = (dt.datetime.now(dt.timezone.utc) - started).total_seconds()
    return AttributionSummary(int(coded or 0), int(clicked or 0), int(reversed_count or 0), elapsed)
