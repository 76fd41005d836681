"""Demo sharing: a content library, HQ's commission plan, guides' links with a month of clicks, and a shop.

The shop (``/demo/shop/``) stands in for the brand's store front: a guide's short link lands on a
product page that shows the share code it carries, and "buy" stores a mini-program order with that
code through the real ingestion path, so the guide's results and commission follow a few seconds
later, as they would after the shop's order webhook.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import random
import secrets
from typing import Any, Final

from aiohttp import web
from PIL import Image, ImageDraw
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from customers.mapping import NormalisedItem, NormalisedOrder
from customers.orders import ingest_orders
from customers.rulesql import counted
from models import (
    FollowRelation,
    IdentityKind,
    LinkClick,
    Order,
    OrderStatus,
    ShareChannel,
    Staff,
    StaffRole,
    Store,
    Tag,
)
from scrm import keys
from scrm.demo_orders import PRODUCTS
from sharing import commission_service
from sharing.channel_codes import ChannelCodes
from sharing.fonts import FontNotFound, find_cjk_font, load_font
from sharing.links import create_content, share_link_for

SHOP_PREFIX: Final = "/demo/shop"
#: HQ's plan in the demo: 3% of attributed GMV, 5% above ¥20,000 a month, ¥200 above 30 orders, capped at ¥3,000.
PLAN: Final = {
    "rules": {"base_rate": "3%", "category_rates": {"奶粉": "2%"}, "tiers": [{"min_gmv": 20000, "rate": "5%"}],
              "order_bonus": {"above_orders": 30, "amount": 200}, "cap": 3000},
    "limits": {"min_base_rate": "2%", "max_base_rate": "6%", "max_category_rate": "8%"},
}
_COLOURS: Final = ("#f4a261", "#2a9d8f", "#e76f51", "#457b9d", "#8ab17d", "#b5838d")


def _catalogue(base: str) -> list[dict[str, Any]]:
    shop = f"{base}{SHOP_PREFIX}"
    items: list[dict[str, Any]] = [
        {"kind": "product", "title": title, "category": category, "target_url": f"{shop}/p/{sku}",
         "cover_url": f"{shop}/p/{sku}/cover.png"}
        for sku, title, category, _ in PRODUCTS[:5]
    ]
    items += [
        {"kind": "campaign", "title": "会员日：奶粉满 599 减 100", "category": "奶粉",
         "target_url": f"{shop}/p/MILK-A2?campaign=member-day", "cover_url": f"{shop}/p/MILK-A2/cover.png"},
        {"kind": "article", "title": "新手妈妈必读：奶粉冲调的 5 个细节", "category": "育儿知识",
         "target_url": f"{shop}/p/MILK-A1?article=guide", "cover_url": f"{shop}/p/MILK-A1/cover.png"},
        {"kind": "miniprogram", "title": "小程序商城：纸尿裤囤货季", "category": "纸尿裤",
         "target_url": f"{shop}/p/DIAP-M", "cover_url": f"{shop}/p/DIAP-M/cover.png",
         "miniprogram_appid": "wxdemo0000000001", "miniprogram_page": "pages/goods/detail.html?sku=DIAP-M"},
    ]
    return items


async def seed_sharing(maker: async_sessionmaker[AsyncSession], *, base: str, share_key: str, now: dt.datetime,
                       seed: int = 23) -> dict[str, int]:
    """Content, the commission plan, every guide's links and a month of clicks leading to real demo orders."""
    rng = random.Random(seed)
    async with maker.begin() as session:
        items = [await create_content(session, raw, now=now) for raw in _catalogue(base)]
        await commission_service.save_plan(session, PLAN, actor="demo", now=now)
        guides = (await session.scalars(select(Staff).where(Staff.role == StaffRole.GUIDE))).all()
        clicks = 0
        for guide in guides:
            links = [await share_link_for(session, guide.id, item.id, channel, secret=share_key, now=now)
                     for item, channel in zip(rng.sample(items, 3), (ShareChannel.MOMENTS, ShareChannel.GROUP,
                                                                     ShareChannel.PRIVATE))]
            clicks += await _clicks(session, rng, guide.id, links, now)
    return {"content": len(items), "guides": len(guides), "clicks": clicks}


async def _clicks(session: AsyncSession, rng: random.Random, staff_id: int, links: list[Any], now: dt.datetime) -> int:
    """Anonymous clicks over the last month, and a click a few hours before some of the guide's customers' orders."""
    rows = []
    # A guide's audience: a few hundred people, many of whom open more than one of their links.
    audience = [secrets.token_hex(8) for _ in range(rng.randint(150, 300))]
    for link in links:
        for _ in range(rng.randint(80, 220)):
            rows.append(LinkClick(link_id=link.id, at=now - dt.timedelta(minutes=rng.randint(10, 30 * 24 * 60)),
                                  visitor_id=rng.choice(audience), ua_class=rng.choice(("wechat", "wecom", "other"))))
    recent = (await session.execute(
        select(Order.customer_id, Order.ordered_at).join(FollowRelation, FollowRelation.customer_id == Order.customer_id)
        .where(FollowRelation.staff_id == staff_id, counted(), Order.ordered_at >= now - dt.timedelta(days=40)))).all()
    for customer_id, ordered_at in recent:
        if rng.random() < 0.6:  # the guide's link brought many of their customers' orders, not all
            rows.append(LinkClick(link_id=rng.choice(links).id, customer_id=customer_id, visitor_id=secrets.token_hex(8),
                                  at=ordered_at - dt.timedelta(minutes=rng.randint(5, 72 * 60)), ua_class="wechat"))
    session.add_all(rows)
    return len(rows)


async def seed_channel_code(codes: ChannelCodes, maker: async_sessionmaker[AsyncSession], *, base: str) -> str:
    """The 徐汇店 store code: two guides on from 09:00 to 21:00, the store manager as backup, a welcome card."""
    async with maker() as session:
        store_id = await session.scalar(select(Store.id).where(Store.code == "SH01"))
        tag_id = await session.scalar(select(Tag.id).where(Tag.name == "奶粉", Tag.deleted.is_(False)))
    daily = [{"weekday": d, "start": "09:00", "end": "21:00"} for d in range(7)]
    code = await codes.create({
        "name": "上海徐汇店·门店活码", "kind": "store", "store_id": store_id,
        "members": [{"userid": "liuyang", "role": "primary", "schedule": daily},
                    {"userid": "sunting", "role": "primary", "schedule": daily},
                    {"userid": "wangfang", "role": "backup"}],
        "tag_ids": [tag_id] if tag_id else [],
        "welcome": {"text": "{customer_name}您好，我是徐汇店的{guide_name}！到店出示本消息可领新客礼一份。",
                    "attachments": [{"type": "link", "title": "会员日：奶粉满 599 减 100",
                                     "url": f"{base}{SHOP_PREFIX}/p/MILK-A2?campaign=member-day",
                                     "picurl": f"{base}{SHOP_PREFIX}/p/MILK-A2/cover.png",
                                     "desc": "新客扫码添加导购，专享会员日优惠"}]},
    }, actor="demo")
    return str(code["config_id"])


# -- the demo shop ------------------------------------------------------------------------------------

routes = web.RouteTableDef()
_BY_SKU: Final = {sku: (title, category, price) for sku, title, category, price in PRODUCTS}


def _product(request: web.Request) -> tuple[str, str, str, int]:
    sku = request.match_info["sku"]
    if sku not in _BY_SKU:
        raise web.HTTPNotFound(text="演示商城没有这个商品")
    return (sku, *_BY_SKU[sku])


def _page(title: str, body: str) -> web.Response:
    page = ("<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif;max-width:32rem;margin:1rem auto;"
            "padding:0 1rem}img{width:100%;border-radius:8px}.code{color:#2a9d8f}button{font-size:1.1rem;"
            f"padding:.6rem 1.4rem}}</style></head><body>{body}</body></html>")
    return web.Response(text=page, content_type="text/html", charset="utf-8")


@routes.get("/p/{sku}")
async def product_page(request: web.Request) -> web.Response:
    """A product page as the brand's shop would show it, naming the share code the visit carries."""
    sku, title, _, price = _product(request)
    code = request.query.get("scrm_share", "")
    origin = (f"<p class='code'>本次访问来自导购分享（分享码 {html.escape(code)}），下单后计入该导购的业绩。</p>"
              if code else "<p>直接访问（未带分享码）。</p>")
    body = (f"<h1>{html.escape(title)}</h1><img alt='' src='{SHOP_PREFIX}/p/{html.escape(sku)}/cover.png'>"
            f"<p>¥{price // 100}.{price % 100:02d}</p>{origin}"
            f"<form method='post' action='{SHOP_PREFIX}/p/{html.escape(sku)}/buy'>"
            f"<input type='hidden' name='scrm_share' value='{html.escape(code)}'>"
            "<label>手机号 <input name='phone' inputmode='numeric' maxlength='11' placeholder='选填'></label> "
            "<button>立即购买（演示）</button></form>"
            "<p><small>演示商城：下单会像小程序订单回调一样写入订单。</small></p>")
    return _page(title, body)


@routes.post("/p/{sku}/buy")
async def buy(request: web.Request) -> web.Response:
    """Store a paid mini-program order carrying the share code, then tell the order listeners."""
    sku, title, category, price = _product(request)
    form = await request.post()
    code = str(form.get("scrm_share") or "")[:16]
    phone = "".join(ch for ch in str(form.get("phone") or "") if ch.isdigit())
    app = request.config_dict
    now = app[keys.CLOCK]()
    number = f"DEMO{now:%Y%m%d%H%M%S}{secrets.randbelow(1000):03d}"
    buyer = [(IdentityKind.PHONE, phone)] if len(phone) == 11 else [
        (IdentityKind.MINIAPP_OPENID, f"oDemo{secrets.token_hex(8)}")]
    order = NormalisedOrder(channel="miniapp", channel_order_id=number, identities=buyer, status=OrderStatus.PAID,
                            ordered_at=now, paid_at=now, buyer_name="演示顾客", total_cents=price, paid_cents=price,
                            share_code=code, items=[NormalisedItem(sku, title, category, 1, price, price)], ref=number)
    report = await ingest_orders(app[keys.SESSIONMAKER], [order], now=now)
    if report.rejected:
        raise web.HTTPBadRequest(text=f"下单失败：{report.rejected[0][1]}")
    for listener in app[keys.ORDER_LISTENERS]:
        listener(now)
    credited = "约 10 秒后计入分享导购的业绩与提成。" if code else "未带分享码，按客户最近一次点击的导购链接归因。"
    return _page("下单成功", f"<h1>下单成功</h1><p>订单号 {number}，{html.escape(title)}，"
                             f"¥{price // 100}.{price % 100:02d}。</p><p>{credited}</p>")


@routes.get("/p/{sku}/cover.png")
async def cover(request: web.Request) -> web.Response:
    """A drawn product cover (the demo has no photographs)."""
    sku, title, category, _ = _product(request)
    colour = _COLOURS[sum(map(ord, sku)) % len(_COLOURS)]
    image = Image.new("RGB", (600, 400), colour)
    draw = ImageDraw.Draw(image)
    try:
        path = find_cjk_font()
        draw.text((40, 150), category, font=load_font(path, 44), fill="white")
        draw.text((40, 220), title[:12], font=load_font(path, 30), fill="white")
    except FontNotFound:  # a plain colour block is still a cover
        pass
    out = io.BytesIO()
    image.save(out, format="PNG")
    return web.Response(body=out.getvalue(), content_type="image/png",
                        headers={"Cache-Control": "public, max-age=86400"})


def shop_app() -> web.Application:
    """The demo shop, mounted at SHOP_PREFIX."""
    app = web.Application()
    app.add_routes(routes)
    return app
