"""Orders credited to guides (share code, last click in the window, refunds reversing) and the reports on them."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot import sync
from models import (
    ContentItem, ContentKind, IdentityKind, LinkClick, Order, OrderAttribution, OrderStatus, ShareChannel, ShareLink,
    Staff, Visitor,
)
from sharing.attribution import recompute_attribution
from sharing.links import share_link_for
from sharing.performance import performance, period_bounds
from tests.brand import Brand, _as

ADMIN = {"Authorization": "Bearer admin-secret"}
KEY = "k" * 32
DAY = dt.timedelta(days=1)
_NO = itertools.count(1)


async def _customer(session: AsyncSession, external_userid: str) -> int:
    customer = await sync.find_customer_by_identity(session, IdentityKind.EXTERNAL_USERID, external_userid)
    assert customer is not None
    return customer.id


def _order(customer_id: int, at: dt.datetime, paid: int, share_code: str = "") -> Order:
    return Order(channel="miniapp", channel_order_id=f"M{next(_NO)}", customer_id=customer_id,
                 status=OrderStatus.PAID, total_cents=paid, paid_cents=paid, share_code=share_code, ordered_at=at,
                 paid_at=at, received_at=at, updated_at=at)


async def _setup(maker: Any, brand: Brand, now: dt.datetime) -> dict[str, Any]:
    async with maker.begin() as session:
        item = ContentItem(kind=ContentKind.PRODUCT, title="有机奶粉", target_url="https://shop.example.com/p/1",
                           created_at=now, updated_at=now)
        session.add(item)
        await session.flush()
        staff = {s.userid: s.id for s in (await session.scalars(select(Staff))).all()}
        l1 = await share_link_for(session, staff["zhangsan"], item.id, ShareChannel.MOMENTS, secret=KEY, now=now)
        l2 = await share_link_for(session, staff["lisi"], item.id, ShareChannel.GROUP, secret=KEY, now=now)
        c = {k: await _customer(session, getattr(brand, k)) for k in ("wangfang", "hanmeimei", "lilei", "chenchen")}
        session.add(Visitor(visitor_id="v-han", customer_id=c["hanmeimei"], source="follow", identified_at=now))
        session.add_all([
            LinkClick(link_id=l2.id, at=now - 3 * DAY, visitor_id="v-han", ua_class="wechat"),  # known visitor
            LinkClick(link_id=l1.id, at=now - 10 * DAY, visitor_id="v-lil", ua_class="wecom",
                      customer_id=c["lilei"]),  # outside the 7-day window
            LinkClick(link_id=l1.id, at=now - 5 * DAY, visitor_id="v-chen", ua_class="other", customer_id=c["chenchen"]),
            LinkClick(link_id=l2.id, at=now - DAY, visitor_id="v-chen", ua_class="other", customer_id=c["chenchen"]),
            LinkClick(link_id=l1.id, at=now - 2 * DAY, visitor_id="v-anon", ua_class="wechat"),
        ])
        orders = {
            "coded": _order(c["wangfang"], now - DAY, 29900, share_code=l1.code or ""),
            "clicked": _order(c["hanmeimei"], now, 15900),
            "stale": _order(c["lilei"], now, 9900),
            "last_touch": _order(c["chenchen"], now, 45900),
        }
        session.add_all(orders.values())
        await session.flush()
        return {"links": (l1.id, l2.id), "orders": {k: o.id for k, o in orders.items()}, "staff": staff}


async def _credits(maker: Any) -> dict[int, tuple[int, int | None, str, int, bool]]:
    async with maker() as session:
        rows = (await session.scalars(select(OrderAttribution))).all()
    return {r.order_id: (r.staff_id, r.link_id, r.source, r.gmv_cents, r.reversed) for r in rows}


async def test_orders_are_credited_by_code_or_last_click_and_refunds_reverse(maker: Any, brand: Brand,
                                                                             clock: Any) -> None:
    now = clock.now
    ids = await _setup(maker, brand, now)
    (l1, l2), o, staff = ids["links"], ids["orders"], ids["staff"]
    summary = await recompute_attribution(maker, since=now - 30 * DAY, now=now, window_days=7)
    assert (summary.by_share_code, summary.by_click, summary.reversed) == (1, 2, 0)
    credits = await _credits(maker)
    assert credits == {
        o["coded"]: (staff["zhangsan"], l1, "share_code", 29900, False),
        o["clicked"]: (staff["lisi"], l2, "click", 15900, False),  # the visitor id is known to be 韩梅梅
        o["last_touch"]: (staff["lisi"], l2, "click", 45900, False),  # the later of two clicks wins
    }  # 李雷 clicked 10 days before ordering: outside the window, not credited
    again = await recompute_attribution(maker, since=now - 30 * DAY, now=now, window_days=7)
    assert (again.by_share_code, again.by_click) == (1, 2) and await _credits(maker) == credits  # idempotent

    wider = await recompute_attribution(maker, since=now - 30 * DAY, now=now, window_days=14)
    assert wider.by_click == 3 and (await _credits(maker))[o["stale"]][:3] == (staff["zhangsan"], l1, "click")

    async with maker.begin() as session:  # 王芳 returns everything; 陈晨 half of it
        await session.execute(update(Order).where(Order.id == o["coded"]).values(
            status=OrderStatus.REFUNDED, refunded_cents=29900))
        await session.execute(update(Order).where(Order.id == o["last_touch"]).values(
            status=OrderStatus.PARTIALLY_REFUNDED, refunded_cents=20000))
    summary = await recompute_attribution(maker, since=now - 30 * DAY, now=now, window_days=7)
    credits = await _credits(maker)
    assert summary.reversed == 1 and credits[o["coded"]][3:] == (0, True)
    assert credits[o["last_touch"]][3:] == (25900, False)


async def test_reports_dashboard_and_my_results(client: TestClient, maker: Any, brand: Brand, clock: Any,
                                                app: Any) -> None:
    clock.now = now = dt.datetime(2026, 11, 18, 4, tzinfo=dt.timezone.utc)  # mid-month: every order in "this month"
    ids = await _setup(maker, brand, now)
    await recompute_attribution(maker, since=now - 30 * DAY, now=now, window_days=7)
    start, end = now - 30 * DAY, now + DAY
    async with maker() as session:
        rows = {r.key: r for r in await performance(session, start=start, end=end, group_by="guide")}
        links = await performance(session, start=start, end=end, group_by="link")
    assert (rows["lisi"].clicks, rows["lisi"].visitors, rows["lisi"].orders, rows["lisi"].gmv_cents) == (2, 2, 2, 61800)
    assert (rows["zhangsan"].clicks, rows["zhangsan"].visitors, rows["zhangsan"].orders) == (3, 3, 1)
    assert rows["lisi"].conversion == 1.0 and list(rows)[0] == "lisi"  # best GMV first
    assert {r.key for r in links} == {(await _code(maker, ids["links"][0])), (await _code(maker, ids["links"][1]))}

    resp = await client.get("/admin/api/share/performance?by=store&period=month", headers=ADMIN)
    body = await resp.json()
    assert resp.status == 200 and body["rows"][0]["name"] == "上海徐汇店"
    assert body["totals"]["orders"] == 3 and body["totals"]["gmv"] == "917.00"
    assert (await client.get("/admin/api/share/performance?by=planet", headers=ADMIN)).status == 400

    page = await client.get("/admin/share?period=month", headers=ADMIN)
    html = await page.text()
    assert page.status == 200 and html.count("<svg") == 3 and 'data-value="3"' in html and "李四" in html

    results = await (await client.get("/sidebar/api/share/results?period=month", headers=_as("lisi", clock))).json()
    assert results["mine"]["orders"] == 2 and results["rank"] == 1 and results["peers"] == 2
    assert results["funnel_svg"].startswith("<svg") and "李四" in results["leaderboard_svg"]
    resp = await client.get("/sidebar/api/share/results?period=year", headers=_as("lisi", clock))
    assert resp.status == 400


async def _code(maker: Any, link_id: int) -> str:
    async with maker() as session:
        link = await session.get(ShareLink, link_id)
        assert link is not None and link.code
        return link.code


def test_periods_are_calendar_periods_in_the_brand_zone() -> None:
    now = dt.datetime(2026, 11, 23, 17, 30, tzinfo=dt.timezone.utc)  # Tue 24 Nov 01:30 in Shanghai
    day = period_bounds("day", now, "Asia/Shanghai")
    assert day == (dt.datetime(2026, 11, 23, 16, tzinfo=dt.timezone.utc), dt.datetime(2026, 11, 24, 16, tzinfo=dt.timezone.utc))
    week = period_bounds("week", now, "Asia/Shanghai")
    assert week[0] == dt.datetime(2026, 11, 22, 16, tzinfo=dt.timezone.utc)  # Monday 23 Nov 00:00 local
    month = period_bounds("month", now, "Asia/Shanghai", offset=11)
    assert month == (dt.datetime(2025, 11, 30, 16, tzinfo=dt.timezone.utc), dt.datetime(2025, 12, 31, 16, tzinfo=dt.timezone.utc))


async def test_a_link_sent_into_a_customers_chat_makes_their_opens_known(
    client: TestClient, app: Any, maker: Any, brand: Brand, clock: Any
) -> None:
    from scrm import keys

    now = clock.now
    async with maker.begin() as session:
        item = ContentItem(kind=ContentKind.PRODUCT, title="有机奶粉", target_url="https://shop.example.com/p/1",
                           created_at=now, updated_at=now)
        session.add(item)
    body = {"content_id": item.id, "channel": "private", "external_userid": brand.wangfang}
    # Only the customer's own guide may name them; another guide's customer is refused.
    refused = await client.post("/sidebar/api/share/links", json=body, headers=_as("lisi", clock))
    assert refused.status == 403
    sent = await (await client.post("/sidebar/api/share/links", json=body, headers=_as("zhangsan", clock))).json()
    assert "?r=" in sent["url"]

    opened = await client.get(sent["url"].split("127.0.0.1:8080", 1)[1], allow_redirects=False)
    assert opened.status == 302
    clock.advance(3600)
    again = await client.get(f"/s/{sent['code']}", allow_redirects=False)  # forwarded on, same browser
    assert again.status == 302
    tampered = await client.get(f"/s/{sent['code']}?r=AAAAAAAAAAAA", allow_redirects=False, cookies={})
    assert tampered.status == 302  # a forged token is ignored, not an error
    await app[keys.CLICK_WRITER].flush()
    async with maker() as session:
        wangfang = await _customer(session, brand.wangfang)
        visitor = await session.scalar(select(Visitor).where(Visitor.customer_id == wangfang))
        clicks = (await session.scalars(select(LinkClick).order_by(LinkClick.id))).all()
    assert visitor is not None and visitor.source == "click"
    assert [c.customer_id for c in clicks][:2] == [wangfang, None] and clicks[1].visitor_id == visitor.visitor_id

    async with maker.begin() as session:  # she orders the next day, without a share code
        order = _order(wangfang, clock.now + DAY, 25900)
        session.add(order)
    summary = await recompute_attribution(maker, since=now - DAY, now=clock.now + DAY, window_days=7)
    assert summary.by_click == 1
    link_id = sent["id"]
    assert (await _credits(maker))[order.id][:3] == (await _staff_id(maker, "zhangsan"), link_id, "click")


async def _staff_id(maker: Any, userid: str) -> int:
    async with maker() as session:
        return int(await session.scalar(select(Staff.id).where(Staff.userid == userid)) or 0)
