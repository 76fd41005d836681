"""Attribution and commission follow the orders: shortly after an order webhook, and nightly."""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from customers.webhook import sign
from models import CommissionStatement, ContentItem, ContentKind, Order, OrderAttribution, ShareChannel, Staff
from scrm.app import create_app
from scrm.settings import Settings
from sharing import commission_service as svc
from sharing.commission import month_of
from sharing.links import share_link_for
from sharing.refresh import REFRESHER, build_scheduler, months_between, previous_month_start
from tests.test_channel_mappings import MINIAPP

SECRET = "miniapp-webhook-secret-0123456789"
TZ = "Asia/Shanghai"
PLAN = {"rules": {"base_rate": "3%"}, "limits": {"min_base_rate": "1%", "max_base_rate": "5%", "max_category_rate": "8%"}}


def test_months_and_the_previous_month_in_the_brand_zone() -> None:
    assert months_between("2025-11", "2026-02") == ["2025-11", "2025-12", "2026-01", "2026-02"]
    assert months_between("2026-03", "2026-03") == ["2026-03"]
    # 1 Jan 00:30 in Shanghai is still 31 Dec in UTC: the previous month is December, Shanghai time.
    now = dt.datetime(2026, 1, 1, 0, 30, tzinfo=zoneinfo.ZoneInfo(TZ))
    assert previous_month_start(now, TZ) == dt.datetime(2025, 12, 1, tzinfo=zoneinfo.ZoneInfo(TZ))


def test_nightly_run_is_half_an_hour_after_the_customer_recompute(settings: Settings) -> None:
    scheduler = build_scheduler(app_refresher_stub(), settings.with_(recompute_at="23:45"))
    [job] = scheduler.get_jobs()
    fields = {f.name: str(f) for f in job.trigger.fields}
    assert (fields["hour"], fields["minute"]) == ("0", "15")


def app_refresher_stub() -> Any:
    class _Stub:
        async def run(self, trigger: str) -> None:
            return None
    return _Stub()


async def _guide_link(maker: Any, settings: Settings, now: dt.datetime) -> tuple[int, str]:
    async with maker.begin() as session:
        staff = Staff(userid="zhangsan", name="张三")
        item = ContentItem(kind=ContentKind.PRODUCT, title="柔润保湿面霜", target_url="https://shop.example.com/p/1",
                           created_at=now, updated_at=now)
        session.add_all([staff, item])
        await session.flush()
        link = await share_link_for(session, staff.id, item.id, ShareChannel.PRIVATE, secret=settings.share_key, now=now)
        await svc.save_plan(session, PLAN, actor="hq", now=now)
        return staff.id, link.code or ""


async def test_an_order_webhook_is_attributed_and_paid_commission_without_anyone_asking(
    settings: Settings, clock: Any, maker: Any, aiohttp_client: Any
) -> None:
    app = create_app(settings.with_(channel_secrets={"miniapp": SECRET}), clock=clock, run_worker=False)
    client: TestClient = await aiohttp_client(app)
    staff_id, code = await _guide_link(maker, settings, clock())
    app[REFRESHER].debounce = 0.01
    ordered = (clock() - dt.timedelta(hours=2)).astimezone(zoneinfo.ZoneInfo(TZ)).isoformat()
    record = {**MINIAPP, "attach": f"scrm_share={code}", "create_time": ordered, "success_time": ordered,
              "update_time": ordered}
    body = json.dumps(record, ensure_ascii=False).encode()
    ts = int(clock.timestamp())
    resp = await client.post("/channels/miniapp/orders", data=body, headers={
        "Content-Type": "application/json", "X-SCRM-Timestamp": str(ts), "X-SCRM-Signature": sign(SECRET, ts, body)})
    assert (await resp.json())["created"] == 1

    await app[REFRESHER].wait()
    async with maker() as session:
        order = await session.scalar(select(Order))
        credit = await session.scalar(select(OrderAttribution))
        statement = await session.scalar(select(CommissionStatement).where(
            CommissionStatement.month == month_of(clock(), TZ)))
    assert order is not None and credit is not None
    assert (credit.order_id, credit.staff_id, credit.source) == (order.id, staff_id, "share_code")
    assert statement is not None and statement.staff_id == staff_id and statement.order_count == 1
    assert statement.total_cents == round(order.paid_cents * 0.03)
    assert app[REFRESHER].status()["last_report"]["trigger"] == "orders"


async def test_nightly_run_recomputes_last_month_and_this_month(
    settings: Settings, clock: Any, maker: Any, aiohttp_client: Any
) -> None:
    app = create_app(settings, clock=clock, run_worker=False)
    await aiohttp_client(app)
    await _guide_link(maker, settings, clock())
    report = await app[REFRESHER].run("nightly")
    assert report is not None
    now = clock()
    assert report.months == [month_of(previous_month_start(now, TZ), TZ), month_of(now, TZ)]
