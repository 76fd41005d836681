"""The sidebar's 分享 and 业绩 tabs in headless Chromium (phone size), and the poster-as-media endpoint as JSON.

The page runs against the demo server (service + simulator + the stand-in JS-SDK bridge) on the test
database (SQLite, or PostgreSQL with DATABASE_URL), with share content and a commission statement seeded.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import (
    CommissionStatement,
    CommissionStatementLine,
    ContentItem,
    Customer,
    LinkClick,
    Order,
    OrderAttribution,
    OrderStatus,
    ShareLink,
    Staff,
)
from scrm import keys
from scrm.app import create_app
from scrm.demo import SIM_PREFIX, Demo, demo_settings, seed_demo, simulator_app
from sharing import commission_service
from sharing.commission import month_of
from sharing.links import create_content
from tests.brand import Brand, _as
from tests.test_sidebar_browser import (
    phone_page,
    ARTIFACTS,
    GUIDE,
    _free_port,
    _ready,
    _reload_context,
    _sign_in,
)
from wecom.simulator import demo_data
from wecom.simulator.state import SimulatorState

PHONE: Final = (375, 740)
ADMIN: Final = {"Authorization": "Bearer admin-secret"}
MILK: Final = {"kind": "product", "title": "有机纯牛奶 250ml×24", "category": "乳品",
               "target_url": "https://shop.example.com/p/88?sku=SKU-88", "cover_url": "https://img.example.com/milk.jpg"}
MINI: Final = {"kind": "miniprogram", "title": "会员日 · 小程序专享", "target_url": "https://shop.example.com/member-day",
               "cover_url": "https://img.example.com/member.jpg", "miniprogram_appid": "wx1234567890abcdef",
               "miniprogram_page": "pages/goods/detail?id=88"}
HIDDEN: Final = {"kind": "article", "title": "已下架的文章", "target_url": "https://shop.example.com/old"}
PLAN: Final = {"rules": {"base_rate": "3%", "tiers": [{"min_gmv": 1000, "rate": "4%"}]},
               "limits": {"min_base_rate": "2%", "max_base_rate": "5%", "max_category_rate": "8%"}}
SALE_CENTS: Final = 128_800  # ¥1288.00 credited to the guide this month: the 4% tier, ¥51.52


@dataclass(frozen=True)
class Shop:
    """The demo server with the seeded share content."""

    demo: Demo
    base: str
    milk_id: int
    mini_id: int


async def _seed_commission(maker: async_sessionmaker[AsyncSession], userid: str, settings: Any, now: Any) -> None:
    """HQ's plan, one order credited to ``userid`` this month, and the month's statements recomputed."""
    async with maker.begin() as session:
        await commission_service.save_plan(session, PLAN, actor="test", now=now)
        staff_id = await session.scalar(select(Staff.id).where(Staff.userid == userid))
        assert staff_id is not None
        customer = Customer(name="分享来的顾客")
        session.add(customer)
        await session.flush()
        order = Order(channel="tmall", channel_order_id="TM-SHARE-0001", customer_id=customer.id,
                      status=OrderStatus.PAID, total_cents=SALE_CENTS, paid_cents=SALE_CENTS, ordered_at=now,
                      paid_at=now, received_at=now, updated_at=now)
        session.add(order)
        await session.flush()
        session.add(OrderAttribution(order_id=order.id, staff_id=staff_id, source="click", touched_at=now,
                                     ordered_at=now, gmv_cents=SALE_CENTS, reversed=False, computed_at=now))
    await commission_service.recompute_month(maker, month_of(now, settings.timezone), tz=settings.timezone, now=now)


@pytest.fixture
async def shop(database_url: str, maker: async_sessionmaker[AsyncSession], tmp_path: Path) -> AsyncIterator[Shop]:
    """The demo brand on the test database (emptied by ``maker``), served on a free port, with share content."""
    port = _free_port()
    settings = dataclasses.replace(demo_settings(port, "127.0.0.1", tmp_path), database_url=database_url)
    state = SimulatorState(settings.corp_id, settings.agent_id, settings.agent_secret)
    demo_data.seed_simulator(state, customers=40)
    app = create_app(settings, extra_subapps={SIM_PREFIX: simulator_app(state, settings, settings.callback_url)})
    demo = Demo(app, settings, state)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        await seed_demo(demo, marketplace_buyers=20)
        now = app[keys.CLOCK]()
        async with maker.begin() as session:
            # Counted figures below are this test's own: drop the demo's library, links, clicks and statements.
            for model in (CommissionStatementLine, CommissionStatement, OrderAttribution, LinkClick, ShareLink,
                          ContentItem):
                await session.execute(delete(model))
            milk = await create_content(session, MILK, now=now)
            mini = await create_content(session, MINI, now=now)
            hidden = await create_content(session, HIDDEN, now=now)
            hidden.enabled = False
            ids = milk.id, mini.id
        await _seed_commission(maker, GUIDE, settings, now)
        yield Shop(demo, settings.public_base_url, *ids)
    finally:
        await runner.cleanup()


@pytest.fixture
async def phone(shop: Shop) -> AsyncIterator[Any]:
    """A 375×740 Chromium page that reaches only the demo server, with clipboard access."""
    async with phone_page(shop.base, clipboard=True) as page:
        yield page


async def _sent(page: Any) -> list[dict[str, Any]]:
    return list(await page.evaluate("window.__bridgeCalls.filter(c => c.api === 'sendChatMessage' && c.to)"))


async def _wait_sent(page: Any, count: int) -> list[dict[str, Any]]:
    """Wait until the bridge has accepted ``count`` messages; returns them."""
    await page.wait_for_function(
        "n => window.__bridgeCalls.filter(c => c.api === 'sendChatMessage' && c.to).length >= n", arg=count)
    return await _sent(page)


async def _link(maker: async_sessionmaker[AsyncSession], code: str) -> tuple[str, int, str]:
    """(guide userid, content id, channel) of a short-link code."""
    async with maker() as session:
        row = (await session.execute(select(Staff.userid, ShareLink.content_id, ShareLink.channel)
                                     .join(Staff, Staff.id == ShareLink.staff_id).where(ShareLink.code == code))).one()
    return row[0], row[1], row[2].value


async def test_share_and_results_tabs_on_a_phone(shop: Shop, phone: Any,
                                                 maker: async_sessionmaker[AsyncSession]) -> None:
    page, base = phone, shop.base
    await _sign_in(page, base)
    await _ready(page)
    customer = (await page.locator(".hero-name").inner_text()).strip()

    # 分享: the library (enabled items only), searchable, and the chat it would send to.
    await page.locator("#tab-share").click()
    assert await page.locator("#app").is_hidden()
    items = page.locator("#share-list .share-item")
    await page.locator(f'#share-list .share-item[data-content-id="{shop.mini_id}"]').wait_for()
    assert await items.count() == 2
    assert "已下架" not in await page.locator("#share-list").inner_text()
    assert f"将发送给客户「{customer}」" in await page.locator("#share-tools .send-hint").inner_text()
    milk = page.locator(f'#share-list .share-item[data-content-id="{shop.milk_id}"]')
    assert await milk.locator(".share-title").inner_text() == MILK["title"]
    assert await milk.locator(".kind").inner_text() == "商品"
    assert await milk.locator(".share-channel").input_value() == "private"  # a single chat: 私聊
    await page.locator("#share-tools .search").fill("牛奶")
    await page.wait_for_function("document.querySelectorAll('#share-list .share-item').length === 1")
    await page.locator("#share-tools .search").fill("没有这种东西")
    await page.get_by_text("没有匹配的内容").wait_for()
    await page.locator("#share-tools .search").fill("")
    await milk.wait_for()
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "sidebar-share.png"), full_page=True)

    # 发送到聊天: a link card whose link is this guide's own short link for the item, on 私聊.
    await milk.locator(".share-send").click()
    news = (await _wait_sent(page, 1))[-1]["params"]
    assert news["msgtype"] == "news"
    card = news["news"]
    # Sent into a one-to-one chat, the link names its recipient (?r=), so the customer's open is known.
    match = re.fullmatch(re.escape(base) + r"/s/([0-9A-Za-z]+)\?r=([A-Za-z0-9_-]+)", card["link"])
    assert match, card["link"]
    code = match.group(1)
    assert (card["title"], card["imgUrl"]) == (MILK["title"], MILK["cover_url"])
    assert await _link(maker, code) == (GUIDE, shop.milk_id, "private")
    await milk.locator(".share-send.done").wait_for()

    # The link works: two opens, then the click writer flushes them for the funnel below.
    for _ in range(2):
        resp = await page.request.get(card["link"], max_redirects=0)
        assert resp.status == 302 and resp.headers["location"].endswith(f"scrm_share={code}")
    await shop.demo.app[keys.CLICK_WRITER].flush()
    async with maker() as session:
        opened_by = set((await session.scalars(select(LinkClick.customer_id).join(
            ShareLink, ShareLink.id == LinkClick.link_id).where(ShareLink.code == code))).all())
    assert len(opened_by) == 1 and None not in opened_by  # both opens credited to the chat's customer

    # A mini-program item goes out as a mini-program card, the share code in its .html page's query.
    mini = page.locator(f'#share-list .share-item[data-content-id="{shop.mini_id}"]')
    await mini.locator(".share-send").click()
    card = (await _wait_sent(page, 2))[-1]["params"]
    assert card["msgtype"] == "miniprogram"
    page_match = re.fullmatch(r"pages/goods/detail\.html\?id=88&scrm_share=([0-9A-Za-z]+)", card["miniprogram"]["page"])
    assert page_match, card["miniprogram"]["page"]
    assert await _link(maker, page_match.group(1)) == (GUIDE, shop.mini_id, "private")
    assert (card["miniprogram"]["appid"], card["miniprogram"]["title"]) == (MINI["miniprogram_appid"], MINI["title"])

    # 复制链接 on 朋友圈: a link of its own, on the clipboard and shown in the item.
    await milk.locator(".share-channel").select_option("moments")
    await milk.locator(".share-copy").click()
    await page.get_by_text("已复制链接").wait_for()
    copied = await milk.locator(".share-link").input_value()
    assert await page.evaluate("navigator.clipboard.readText()") == copied
    moments_code = copied.rsplit("/", 1)[-1]
    assert moments_code != code and await _link(maker, moments_code) == (GUIDE, shop.milk_id, "moments")

    # 海报: the poster in an overlay, loaded; then sent into the chat as an image WeCom holds.
    await milk.locator(".share-poster").click()
    overlay = page.locator("#poster-overlay")
    await overlay.wait_for()
    await page.wait_for_function(
        "() => { const i = document.querySelector('#poster-overlay .poster-img'); return i && i.complete && i.naturalWidth > 0; }")
    assert "长按图片保存" in await overlay.locator(".poster-hint").inner_text()
    assert "channel=moments" in (await overlay.locator(".poster-img").get_attribute("src") or "")
    await page.screenshot(path=str(ARTIFACTS / "sidebar-poster.png"))
    await overlay.locator(".poster-send").click()
    image = (await _wait_sent(page, 3))[-1]["params"]
    assert image["msgtype"] == "image"
    media = shop.demo.state.media[image["image"]["mediaid"]]
    assert media.type == "image" and media.size > 10_000
    # 加我码: the same overlay shows the guide's 「联系我」 code for the item, and sends that poster.
    await overlay.locator('.poster-kinds .seg-btn[data-value="addme"]').click()
    await page.wait_for_function(
        "() => { const i = document.querySelector('#poster-overlay .poster-img');"
        " return i && i.src.includes('kind=addme') && i.complete && i.naturalWidth > 0; }")
    assert "添加您为企业微信好友" in await overlay.locator(".poster-hint").inner_text()
    await overlay.locator(".poster-send").click()
    add_me = (await _wait_sent(page, 4))[-1]["params"]
    assert add_me["msgtype"] == "image" and add_me["image"]["mediaid"] != image["image"]["mediaid"]
    assert [w.user for w in shop.demo.state.contact_ways.values() if w.state.startswith("am.")] == [[GUIDE]]
    await overlay.locator(".overlay-close").click()
    await overlay.wait_for(state="detached")

    # 业绩: the funnel counts the two clicks; the commission card shows the month's statement in ¥.
    await page.locator("#tab-results").click()
    funnel = page.locator("#funnel svg.chart")
    await funnel.wait_for()
    assert await funnel.locator('rect[data-step="0"]').get_attribute("data-value") == "2"
    assert await page.locator('#my-results .stat[data-stat="点击"] .stat-value').inner_text() == "2"
    assert await page.locator("#leaderboard svg.chart rect").count() >= 1
    commission = page.locator("#my-commission")
    await commission.locator(".commission-total").wait_for()
    assert await commission.locator(".commission-total").inner_text() == "¥51.52"
    assert await commission.locator('.stat[data-stat="gmv"] .stat-value').inner_text() == "¥1,288.00"
    assert "4%" in await commission.locator('.stat[data-stat="tier"] .stat-value').inner_text()
    assert await commission.locator(".commission-orders .order").count() == 1
    assert "TM-SHARE-0001" in await commission.locator(".commission-orders").inner_text()
    await page.screenshot(path=str(ARTIFACTS / "sidebar-results.png"), full_page=True)
    await page.locator('#my-results .seg-btn[data-value="day"]').click()
    await page.wait_for_function("document.querySelector('#funnel figcaption').textContent.includes('今日')")
    assert await funnel.locator('rect[data-step="0"]').get_attribute("data-value") == "2"

    # Outside any chat (opened from the workbench): sending is off with a hint; copying still works.
    await page.locator("#tab-share").click()
    await _reload_context(page, page.locator("#demo-bar button[data-entry=normal]").click(), "error")
    assert await milk.locator(".share-send").is_disabled()
    assert "不在与客户的聊天中" in await page.locator("#share-tools .send-hint").inner_text()
    assert await milk.locator(".share-copy").is_enabled()
    await page.screenshot(path=str(ARTIFACTS / "sidebar-share-no-chat.png"), full_page=True)

    # In a customer group the default channel is 群 and the customer tab says so.
    await _reload_context(page, page.locator("#demo-bar button[data-entry=group_chat_tools]").click())
    assert await mini.locator(".share-channel").input_value() == "group"
    assert await page.locator("#tab-customer").inner_text() == "客户群"
    assert await mini.locator(".share-send").is_enabled()

    # The tab survives a reload (in the URL's #hash, which JS-SDK signatures leave out).
    await page.reload()
    await _ready(page)
    assert await page.locator("#share-panel").is_visible() and await page.locator("#app").is_hidden()

    assert await page.evaluate("window.__htmlWrites") == []
    assert page.errors == []


async def test_an_empty_library_says_so(shop: Shop, phone: Any, maker: async_sessionmaker[AsyncSession]) -> None:
    async with maker.begin() as session:
        for item in (await session.scalars(select(ContentItem))).all():
            item.enabled = False
    await _sign_in(phone, shop.base)
    await _ready(phone)
    await phone.locator("#tab-share").click()
    await phone.get_by_text("暂无可分享的内容").wait_for()
    assert await phone.locator("#share-list .share-item").count() == 0
    assert phone.errors == []


async def test_the_poster_as_temporary_media(client: TestClient, brand: Brand, clock: Any, sim_state: Any) -> None:
    """POST …/poster/media renders the guide's poster and uploads it: the media id is one WeCom holds."""
    item = await (await client.post("/admin/api/content", json=MILK, headers=ADMIN)).json()
    url = f"/sidebar/api/share/content/{item['id']}/poster/media"
    resp = await client.post(url, json={"channel": "private"}, headers=_as("zhangsan", clock))
    assert resp.status == 200, await resp.text()
    data = await resp.json()
    media = sim_state.media[data["media_id"]]
    assert media.type == "image" and media.size > 10_000 and media.filename.endswith(".jpg")
    link = await (await client.post("/sidebar/api/share/links", json={"content_id": item["id"], "channel": "private"},
                                    headers=_as("zhangsan", clock))).json()
    assert data["url"] == link["url"]  # the QR code on it is the guide's own private-chat link
    bare = await client.post(url, headers=_as("zhangsan", clock))  # no body: the link without a channel
    assert bare.status == 200 and (await bare.json())["media_id"] in sim_state.media
    for path, body, status in [(url, {"channel": "weibo"}, 400), (url, ["private"], 400),
                               ("/sidebar/api/share/content/424242/poster/media", {}, 404)]:
        resp = await client.post(path, json=body, headers=_as("zhangsan", clock))
        assert resp.status == status, (path, body, await resp.text())
    assert (await client.post(url, json={})).status == 401
