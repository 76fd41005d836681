"""The demo as a newcomer runs it: one server with the simulator mounted, seeded through the real sync."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import func, select

from models import Customer, CustomerGroup, CustomerMerge, Order, FollowRelation, FollowStatus, Staff, StaffRole, Tag
from scrm import keys
from scrm.db import upgrade_database
from scrm.demo import build_demo_app, seed_demo


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def demo(tmp_path: Path) -> Any:
    port = _free_port()
    demo = build_demo_app(port, "127.0.0.1", tmp_path, customers=200)
    await asyncio.to_thread(upgrade_database, demo.settings.database_url)
    runner = web.AppRunner(demo.app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield demo
    await runner.cleanup()


async def _count(app: web.Application, stmt: Any) -> int:
    async with app[keys.SESSIONMAKER]() as session:
        return int(await session.scalar(stmt) or 0)


async def test_demo_seeds_a_brand_and_reacts_to_scenarios(demo: Any) -> None:
    app, settings = demo.app, demo.settings
    message = await seed_demo(demo, marketplace_buyers=300)
    assert "demo data ready" in message
    channels = await _count(app, select(func.count(func.distinct(Order.channel))))
    assert channels == 5
    assert await _count(app, select(func.count()).select_from(CustomerMerge)) >= 1
    assert await _count(app, select(func.count()).select_from(Staff)) == 12
    assert await _count(app, select(func.count()).select_from(Staff).where(Staff.role == StaffRole.STORE_MANAGER)) == 4
    customers = await _count(app, select(func.count()).select_from(Customer))
    assert customers >= 400  # WeCom customers plus marketplace-only buyers
    assert await _count(app, select(func.count()).select_from(CustomerGroup)) >= 1
    assert await _count(app, select(func.count()).select_from(Tag)) >= 8
    base = settings.public_base_url
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post(f"{base}/_wecom/_sim/scenarios/add_customer", json={"userid": "liuyang", "name": "演示新客"}) as r:
            result = await r.json()
        assert result["deliveries"][0]["acknowledged"]
        async with http.post(f"{base}/_wecom/_sim/scenarios/customer_deletes_guide", json={"userid": "sunting"}) as r:
            assert (await r.json())["deliveries"][0]["acknowledged"]
        # The running worker acts on them within moments.
        for _ in range(100):
            lost = await _count(app, select(func.count()).select_from(FollowRelation).where(FollowRelation.status == FollowStatus.LOST))
            new = await _count(app, select(func.count()).select_from(Customer).where(Customer.name == "演示新客"))
            if lost and new:
                break
            await asyncio.sleep(0.1)
        assert lost == 1 and new == 1
        async with app[keys.SESSIONMAKER]() as session:
            relation = (await session.scalars(
                select(FollowRelation).join(Customer).where(Customer.name == "演示新客"))).one()
        assert relation.state == "store_qr_liuyang" and relation.contact_way_id is not None
        async with http.get(f"{base}/admin/login?token={settings.admin_token}") as r:
            page = await r.text()
        assert "演示新客" not in page  # the page lists events, not customer data
        assert "add_external_contact" in page and settings.callback_url in page


async def test_demo_rules_and_segments_have_members(demo: Any) -> None:
    from models import CustomerStats, CustomerTag, Segment, TagRule

    await seed_demo(demo, marketplace_buyers=300)
    app = demo.app
    assert await _count(app, select(func.count()).select_from(TagRule)) == 4
    assert await _count(app, select(func.count()).select_from(Segment)) == 2
    assert await _count(app, select(func.count()).select_from(CustomerStats)) >= 400
    # Rule tags landed (沉睡90天 matches plenty of demo buyers).
    assert await _count(app, select(func.count()).select_from(CustomerTag).where(CustomerTag.source == "rule")) > 10
    async with aiohttp.ClientSession() as http:
        auth = {"Authorization": f"Bearer {demo.settings.admin_token}"}
        async with http.post(f"{demo.settings.public_base_url}/admin/api/segments/count",
                             json={"expression": "stage = 'active'"}, headers=auth) as r:
            assert r.status == 200 and (await r.json())["count"] > 0
        # The demo pushes: a weekly plan with its next runs, and one sent push with some customers reached.
        async with http.get(f"{demo.settings.public_base_url}/admin/api/pushes", headers=auth) as r:
            pushes = {p["name"]: p for p in (await r.json())["pushes"]}
        weekly = pushes["周三唤醒：沉默客户第二杯半价"]
        assert weekly["status"] == "active" and weekly["schedule_text"] == "每周三 10:00" and weekly["upcoming"]
        async with http.get(f"{demo.settings.public_base_url}/admin/api/push-runs", headers=auth) as r:
            (run,) = (await r.json())["runs"]
        assert run["status"] == "polling" and run["outcomes"].get("sent", 0) > 0 and run["outcomes"].get("pending", 0) > 0


async def test_demo_sharing_from_link_to_commission(demo: Any) -> None:
    from models import ChannelCodeAdd, CommissionStatement, ContentItem, OrderAttribution, ShareLink
    from sharing.refresh import REFRESHER

    message = await seed_demo(demo, marketplace_buyers=300)
    assert "shareable items" in message
    app, base = demo.app, demo.settings.public_base_url
    assert await _count(app, select(func.count()).select_from(ContentItem)) == 8
    assert await _count(app, select(func.count()).select_from(OrderAttribution)) > 0  # seeded clicks led to orders
    assert await _count(app, select(func.count()).select_from(CommissionStatement)) > 0
    scan = message.rsplit("scan it: ", 1)[1].rstrip(")")
    async with app[keys.SESSIONMAKER]() as session:
        link, guide = (await session.execute(
            select(ShareLink.code, Staff.userid).join(Staff, Staff.id == ShareLink.staff_id).limit(1))).one()
    app[REFRESHER].debounce = 0.01
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(f"{base}/s/{link}") as r:  # follows the redirect to the demo shop
            page = await r.text()
        assert r.status == 200 and "/demo/shop/p/" in str(r.url) and f"分享码 {link}" in page
        async with http.post(f"{r.url.with_query(None)}/buy", data={"scrm_share": link}) as bought:
            assert bought.status == 200 and "下单成功" in await bought.text()
        # The store's channel code: "scanning" it in a browser adds a guide on duty, who sends the code's welcome.
        async with http.post(scan, data={"name": "扫码新客"}) as r:
            assert r.status == 200 and "已添加" in await r.text()
    for _ in range(100):
        if await _count(app, select(func.count()).select_from(ChannelCodeAdd)):
            break
        await asyncio.sleep(0.1)
    assert await _count(app, select(func.count()).select_from(ChannelCodeAdd)) == 1
    assert demo.state.welcome_messages[-1]["attachments"][0]["msgtype"] == "link"
    await app[REFRESHER].wait()
    async with app[keys.SESSIONMAKER]() as session:
        credited = (await session.execute(
            select(Staff.userid, OrderAttribution.source).join(Staff, Staff.id == OrderAttribution.staff_id)
            .join(Order, Order.id == OrderAttribution.order_id).where(Order.share_code == link))).all()
    assert credited == [(guide, "share_code")]
