"""Share performance per guide, store, region, link or content item: clicks -> visitors -> contacts -> orders.

Clicks and unique visitors come from link_clicks, new contacts from follow relations added in the
period (the contact-way state credits the guide who was added), orders and GMV from order_attributions
(reversed ones excluded). Periods are calendar days, ISO weeks or months in the brand's time zone.

New contacts per content item are the relations that began through a guide's 「加我」 code for that item
(follow_relations.contact_way_id -> contact_ways.content_id, sharing/add_me.py). A link is guide x item
x channel and an add-me code has no channel, so link rows show no new contacts; guide, store and region
rows count every relation added, add-me or not.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from customers.rulesql import ts_literal
from models import ContactWay, ContentItem, FollowRelation, LinkClick, OrderAttribution, Region, ShareLink, Staff, Store

Period = Literal["day", "week", "month"]
GroupBy = Literal["guide", "store", "region", "link", "content"]
PERIODS: Final = ("day", "week", "month")
GROUPS: Final = ("guide", "store", "region", "link", "content")


@dataclass
class Row:
    """One line of a report; ``conversion`` is orders per unique visitor."""

    key: str
    name: str
    clicks: int = 0
    visitors: int = 0
    new_contacts: int = 0
    orders: int = 0
    gmv_cents: int = 0

    @property
    def conversion(self) -> float:
        """Orders per unique visitor (0 without visitors)."""
        return round(self.orders / self.visitors, 4) if self.visitors else 0.0

    def as_json(self) -> dict[str, Any]:
        """JSON with GMV in yuan and the conversion rate."""
        data = asdict(self)
        data["gmv"] = f"{self.gmv_cents / 100:.2f}"
        data["conversion"] = self.conversion
        return data


def period_bounds(period: Period, now: dt.datetime, timezone: str, offset: int = 0) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) in UTC of the current day / ISO week / month in the brand's zone, ``offset`` periods back."""
    if period not in PERIODS:
        raise ValueError(f"period must be one of {PERIODS}, got {period!r}")
    zone = zoneinfo.ZoneInfo(timezone)
    local = now.astimezone(zone)
    today = local.date()
    if period == "day":
        start = today - dt.timedelta(days=offset)
        end = start + dt.timedelta(days=1)
    elif period == "week":
        start = today - dt.timedelta(days=today.weekday() + 7 * offset)
        end = start + dt.timedelta(days=7)
    else:
        month = today.year * 12 + today.month - 1 - offset
        start = dt.date(month // 12, month % 12 + 1, 1)
        end = dt.date((month + 1) // 12, (month + 1) % 12 + 1, 1)
    return (dt.datetime.combine(start, dt.time(), zone).astimezone(dt.timezone.utc),
            dt.datetime.combine(end, dt.time(), zone).astimezone(dt.timezone.utc))


def _key(group_by: GroupBy) -> tuple[ColumnElement[Any], ...]:
    """(key column, name column) to group on, over Staff/Store/Region (and ShareLink/ContentItem)."""
    match group_by:
        case "guide":
            return Staff.userid, Staff.name
        case "store":
            return func.coalesce(Store.code, ""), func.coalesce(Store.name, "未绑定门店")
        case "region":
            return func.coalesce(Region.code, ""), func.coalesce(Region.name, "未绑定区域")
        case "link":
            return ShareLink.code, ContentItem.title
        case "content":
            return ContentItem.id, ContentItem.title
    raise ValueError(f"group_by must be one of {GROUPS}, got {group_by!r}")


def _org_joins(query: Any, staff_id: Any) -> Any:
    return (query.join(Staff, Staff.id == staff_id).outerjoin(Store, Store.id == Staff.store_id)
            .outerjoin(Region, Region.id == func.coalesce(Staff.region_id, Store.region_id)))


async def performance(session: AsyncSession, *, start: dt.datetime, end: dt.datetime, group_by: GroupBy,
                      staff_ids: list[int] | None = None, limit: int = 100) -> list[Row]:
    """Report rows for [start, end), best GMV first; ``staff_ids`` limits it to those guides."""
    key, name = _key(group_by)
    rows: dict[str, Row] = {}

    def row(k: Any, n: Any) -> Row:
        return rows.setdefault(str(k), Row(str(k), str(n or "")))

    def scoped(query: Any, staff_col: Any) -> Any:
        return query.where(staff_col.in_(staff_ids)) if staff_ids is not None else query

    lo, hi = ts_literal(start), ts_literal(end)
    clicks = _org_joins(select(key, name, func.count(), func.count(func.distinct(LinkClick.visitor_id)))
                        .select_from(LinkClick).join(ShareLink, ShareLink.id == LinkClick.link_id)
                        .join(ContentItem, ContentItem.id == ShareLink.content_id), ShareLink.staff_id)
    clicks = scoped(clicks, ShareLink.staff_id).where(LinkClick.at >= lo, LinkClick.at < hi).group_by(key, name)
    for k, n, count, visitors in (await session.execute(clicks)).all():
        r = row(k, n)
        r.clicks, r.visitors = int(count), int(visitors)
    orders = _org_joins(select(key, name, func.count(), func.coalesce(func.sum(OrderAttribution.gmv_cents), 0))
                        .select_from(OrderAttribution)
                        .outerjoin(ShareLink, ShareLink.id == OrderAttribution.link_id)
                        .outerjoin(ContentItem, ContentItem.id == ShareLink.content_id), OrderAttribution.staff_id)
    orders = scoped(orders, OrderAttribution.staff_id).where(
        OrderAttribution.ordered_at >= lo, OrderAttribution.ordered_at < hi,
        OrderAttribution.reversed.is_(False)).group_by(key, name)
    for k, n, count, gmv in (await session.execute(orders)).all():
        if k is None:  # an attribution whose link was deleted: no link or content to show it under
            continue
        r = row(k, n)
        r.orders, r.gmv_cents = int(count), int(gmv)
    if group_by != "link":
        contacts = select(key, name, func.count()).select_from(FollowRelation)
        if group_by == "content":  # only customers who came through a guide's add-me code for the item
            contacts = (contacts.join(ContactWay, ContactWay.id == FollowRelation.contact_way_id)
                        .join(ContentItem, ContentItem.id == ContactWay.content_id))
        contacts = scoped(_org_joins(contacts, FollowRelation.staff_id), FollowRelation.staff_id).where(
            FollowRelation.added_at >= lo, FollowRelation.added_at < hi).group_by(key, name)
        for k, n, count in (await session.execute(contacts)).all():
            row(k, n).new_contacts = int(count)
    ranked = sorted(rows.values(), key=lambda r: (-r.gmv_cents, -r.orders, -r.clicks, r.key))
    return ranked[:limit]


def totals(rows: list[Row]) -> Row:
    """The sum of report rows (visitors summed per group: a visitor seen by two guides counts twice)."""
    total = Row("total", "合计")
    for r in rows:
        total.clicks += r.clicks
        total.visitors += r.visitors
        total.new_contacts += r.new_contacts
        total.orders += r.orders
        total.gmv_cents += r.gmv_cents
    return total
