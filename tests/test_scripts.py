"""Talk scripts: validation, set-based matching and ranking, filling, sends and conversions, import/export, routes."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Sequence
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot import sync
from customers.recompute import recompute_stats
from customers.rules import parse
from models import (
    AuditEntry, Customer, CustomerGroup, IdentityKind, Membership, Order, OrderItem, OrderStatus, ScriptCategory,
    ScriptSend, TalkScript,
)
from scrm import keys
from sidebar import scripts as svc
from sidebar import script_library as library
from sidebar import scripts_demo as demo
from tests.brand import Brand, _as

ADMIN = {"Authorization": "Bearer admin-secret"}
_ORDER_NO = itertools.count(1)


async def _customer_id(session: AsyncSession, external_userid: str) -> int:
    customer = await sync.find_customer_by_identity(session, IdentityKind.EXTERNAL_USERID, external_userid)
    assert customer is not None
    return customer.id


async def _order(session: AsyncSession, customer_id: int, at: dt.datetime, items: Sequence[tuple[str, str]],
                 *, status: OrderStatus = OrderStatus.PAID) -> None:
    order = Order(channel="pos", channel_order_id=f"S{next(_ORDER_NO)}", customer_id=customer_id, status=status,
                  total_cents=30000, paid_cents=30000, ordered_at=at, paid_at=at, received_at=at, updated_at=at)
    session.add(order)
    await session.flush()
    for name, category in items:
        session.add(OrderItem(order_id=order.id, sku=f"SKU-{category}", name=name, category=category,
                              amount_cents=30000))


@pytest.fixture
async def shop(app: web.Application, brand: Brand, maker: Any, clock: Any) -> Brand:
    """The brand, with orders and memberships, recomputed stats and the demo scripts."""
    now = clock.now
    day = dt.timedelta(days=1)
    async with maker.begin() as session:
        wangfang = await _customer_id(session, brand.wangfang)
        await _order(session, wangfang, now - 200 * day, [("有机高铁米粉 225g", "辅食")])
        await _order(session, wangfang, now - 30 * day, [("有机婴儿奶粉2段 800g", "奶粉"), ("果泥组合装 6袋", "辅食")])
        await _order(session, wangfang, now - 5 * day, [("轻薄纸尿裤 M 码", "纸尿裤")], status=OrderStatus.REFUNDED)
        session.add(Membership(customer_id=wangfang, tier="银卡会员", points=1200, next_tier="金卡会员",
                               next_tier_gap_cents=58000, updated_at=now))
        hanmeimei = await _customer_id(session, brand.hanmeimei)
        await _order(session, hanmeimei, now - 90 * day, [("轻薄纸尿裤 S 码", "纸尿裤")])
        lilei = await _customer_id(session, brand.lilei)
        await session.execute(update(Customer).where(Customer.id == lilei).values(name=""))
    await recompute_stats(maker, now=now, settings=app[keys.SETTINGS])
    assert await demo.seed_demo_scripts(maker, now) == len(demo.DEMO_SCRIPTS)
    return brand


async def _scripts(client: TestClient, external_userid: str, userid: str, clock: Any, **params: str) -> Any:
    resp = await client.get(f"/sidebar/api/contact/{external_userid}/scripts", params=params,
                            headers=_as(userid, clock))
    assert resp.status == 200, await resp.text()
    return await resp.json()


# -- validation ----------------------------------------------------------------------------------------


def test_unknown_variables_and_stray_braces_are_refused_with_the_known_list() -> None:
    with pytest.raises(svc.InvalidScript) as err:
        svc.check_body("您好{customer_name}，送您{coupon}一张")
    assert err.value.detail == {"field": "body", "position": 21}
    assert "未知变量 {coupon}" in err.value.message
    assert all(f"{{{name}}}" in err.value.message for name in svc.VARIABLES)
    for body, position in (("您好{customer_name", 3), ("积分 points}", 10), ("您好｛customer_name｝", 3)):
        with pytest.raises(svc.InvalidScript) as err:
            svc.check_body(body)
        assert err.value.detail["position"] == position, body
    svc.check_body("{ customer_name }您好，{guide_name}在{store_name}等您")


async def test_bad_conditions_carry_the_rule_error_and_its_position(maker: Any) -> None:
    async with maker() as session:
        with pytest.raises(svc.InvalidScript) as err:
            await svc.check_draft(session, {"category": "复购", "title": "t", "body": "b", "condition": "spend >= 100 AND"})
        assert err.value.detail == {"field": "condition", "position": 17}
        assert err.value.message.startswith("条件有误：第17个字符附近")
        with pytest.raises(svc.InvalidScript) as err:
            await svc.check_draft(session, {"category": "复购", "title": "t", "body": "b",
                                            "condition": "days_since_bought(category='奶粉') >= 30"})
        assert "订单中没有品类 '奶粉'" in err.value.message and err.value.detail["position"] == 28
        with pytest.raises(svc.InvalidScript) as err:
            await svc.check_draft(session, {"category": "复购", "title": "t", "body": "b", "condition": "spnd > 1"})
        assert "未知字段 spnd" in err.value.message and err.value.detail["position"] == 1
        draft = await svc.check_draft(session, {"category": " 复购 ", "title": "t", "body": "b",
                                                "condition": " tier = '银卡会员' ", "priority": "5", "enabled": "否"})
        assert (draft.category, draft.condition, draft.priority, draft.enabled) == ("复购", "tier = '银卡会员'", 5, False)
        for raw, field in (({"title": "t", "body": "b"}, "category"), ({"category": "c", "body": "b"}, "title"),
                           ({"category": "c", "title": "t", "body": "b", "priority": 10000}, "priority"),
                           ({"category": "c", "title": "t", "body": "b", "enabled": "maybe"}, "enabled")):
            with pytest.raises(svc.InvalidScript) as err:
                await svc.check_draft(session, raw)
            assert err.value.detail["field"] == field


def test_attachment_shapes() -> None:
    bad = [
        ({"type": "video"}, "附件类型"),
        ({"type": "image"}, "media_id"),
        ({"type": "image", "media_url": "ftp://x/y.png"}, "http(s)"),
        ({"type": "link", "title": "活动"}, "url"),
        ({"type": "link", "url": "https://example.com"}, "标题"),
        ({"type": "miniprogram", "appid": "wx1", "title": "商城", "page": "pages/index/index"}, ".html"),
        ({"type": "miniprogram", "title": "商城", "page": "pages/index/index.html"}, "appid"),
        ("not json", "JSON"),
        ([1], "JSON 对象"),
    ]
    for raw, expected in bad:
        with pytest.raises(svc.InvalidScript) as err:
            svc.check_attachment(raw)
        assert expected in err.value.message, (raw, err.value.message)
    assert svc.check_attachment(None) is None and svc.check_attachment("") is None
    assert svc.check_attachment({"type": "image", "media_id": "3a8asd", "junk": 1}) == {"type": "image", "media_id": "3a8asd"}
    assert svc.check_attachment('{"type": "miniprogram", "appid": "wx1", "title": "商城", '
                                '"page": "pages/index/index.html?from=sidebar"}')["page"].endswith("from=sidebar")
    link = {"type": "link", "url": "https://example.com/a", "title": "会员日", "desc": "满减", "image_url": "https://e.com/i.png"}
    assert svc.check_attachment(link) == link


# -- matching, ranking, filling ---------------------------------------------------------------------------


async def test_ranking_for_a_customer_with_orders_and_membership(client: TestClient, shop: Brand, clock: Any) -> None:
    data = await _scripts(client, shop.wangfang, "zhangsan", clock)
    found = data["scripts"]
    titles = [s["title"] for s in found]
    # Bought milk powder 30 days ago: the repurchase reminder leads, then the other matches by priority.
    assert titles[:4] == ["奶粉快喝完了吧", "银卡升金卡", "小程序一键复购", "积分兑换提醒"]
    assert all(s["matched"] for s in found[:4]) and not any(s["matched"] for s in found[4:])
    assert titles[4:] == ["会员日活动", "宝宝生日礼", "自我介绍", "育儿小贴士", "门店地址"]  # unconditional, by priority
    assert "好久不见" not in titles and "新客欢迎" not in titles and "纸尿裤该囤货了" not in titles
    assert [s["score"] for s in found] == sorted((s["score"] for s in found), reverse=True)
    first = found[0]
    assert first["category"] == "复购提醒"
    assert first["text"] == ("王芳您好，我是上海徐汇店的张三～您上次买的有机婴儿奶粉2段 800g差不多快喝完啦，"
                             "需要的话我帮您留一罐，到店自提或者直接下单都可以哦。")
    upgrade = found[1]["text"]
    assert "您现在是银卡会员，再消费580元就能升级为金卡会员" in upgrade
    assert "1200积分" in found[3]["text"]
    card = next(s["attachment"] for s in found if s["title"] == "小程序一键复购")
    assert card["type"] == "miniprogram" and card["page"].endswith(".html")
    assert {c["name"] for c in data["categories"]} == {name for name, _ in demo.DEMO_CATEGORIES}
    assert set(data["variables"]) == set(svc.VARIABLES)

    lapsed = await _scripts(client, shop.hanmeimei, "zhaoliu", clock)
    assert [s["title"] for s in lapsed["scripts"] if s["matched"]] == ["好久不见"]


async def test_more_specific_conditions_rank_first_at_equal_priority(maker: Any, shop: Brand, clock: Any) -> None:
    async with maker.begin() as session:
        broad = await svc.create_script(session, {"category": "测试", "title": "宽", "body": "b", "priority": 99,
                                                  "condition": "orders >= 1"}, now=clock.now)
        narrow = await svc.create_script(session, {"category": "测试", "title": "窄", "body": "b", "priority": 99,
                                                   "condition": "orders >= 1 AND tier = '银卡会员'"}, now=clock.now)
        plain = await svc.create_script(session, {"category": "测试", "title": "无条件", "body": "b", "priority": 9999},
                                        now=clock.now)
        customer_id = await _customer_id(session, shop.wangfang)
        found = await svc.suggest_scripts(session, customer_id, {}, now=clock.now, category="测试")
    assert [s.id for s in found] == [narrow["id"], broad["id"], plain["id"]]
    assert svc.specificity(parse("orders >= 1 AND (tier = 'x' OR NOT bought(sku='a'))")) == 3


async def test_conditions_are_evaluated_in_chunked_union_queries(maker: Any, shop: Brand, clock: Any) -> None:
    rules = [(i, parse("points >= 1000" if i % 2 else "points < 1000")) for i in range(1, 452)]
    async with maker() as session:
        customer_id = await _customer_id(session, shop.wangfang)
        matched = await svc.matched_script_ids(session, rules, customer_id, now=clock.now)
    assert matched == {i for i, _ in rules if i % 2}


async def test_fallbacks_never_leave_raw_placeholders(client: TestClient, shop: Brand, clock: Any) -> None:
    data = await _scripts(client, shop.lilei, "lisi", clock)
    welcome = data["scripts"][0]
    assert welcome["matched"] and [s["title"] for s in data["scripts"] if s["matched"]] == ["新客欢迎"]  # no orders: new
    assert welcome["text"].startswith("亲，欢迎来到上海徐汇店！我是您的专属育婴顾问李四")
    assert all("{" not in s["text"] and "}" not in s["text"] for s in data["scripts"])
    intro = next(s for s in data["scripts"] if s["title"] == "自我介绍")
    assert intro["text"].startswith("亲您好，我是上海徐汇店的李四")
    upgrade = await _scripts(client, shop.lilei, "lisi", clock, category="会员升级")
    (script,) = upgrade["scripts"]
    assert not script["matched"]  # browsing lists conditional scripts that do not match, last
    assert "您现在是会员，再消费少许元就能升级为更高等级会员" in script["text"]
    assert svc.fill("{customer_name}{last_product}{points}{nope}", {"customer_name": ""}) == "亲宝贝0"


async def test_search_and_browse(client: TestClient, shop: Brand, clock: Any) -> None:
    found = (await _scripts(client, shop.wangfang, "zhangsan", clock, q="生日"))["scripts"]
    assert {s["title"] for s in found} == {"宝宝生日礼", "银卡升金卡"}  # 银卡升金卡 mentions 生日礼包
    assert found[0]["title"] == "银卡升金卡" and found[0]["matched"]
    by_category = (await _scripts(client, shop.wangfang, "zhangsan", clock, q="唤醒"))["scripts"]
    assert {s["title"] for s in by_category} == {"好久不见", "积分兑换提醒"}  # the category's name matches
    browse = (await _scripts(client, shop.wangfang, "zhangsan", clock, category="日常问候"))["scripts"]
    assert [s["title"] for s in browse] == ["自我介绍", "育儿小贴士", "门店地址"]
    async with client.app[keys.SESSIONMAKER]() as session:
        category_id = await session.scalar(select(ScriptCategory.id).where(ScriptCategory.name == "日常问候"))
    same = (await _scripts(client, shop.wangfang, "zhangsan", clock, category=str(category_id)))["scripts"]
    assert same == browse
    none = await client.get("/sidebar/api/scripts", params={"q": "门店地址"}, headers=_as("lisi", clock))
    assert [s["text"] for s in (await none.json())["scripts"]] == ["这是上海徐汇店的位置，到店前跟我（李四）说一声，我提前帮您把东西准备好～"]


async def test_guides_only_get_scripts_for_customers_they_may_see(client: TestClient, shop: Brand, maker: Any,
                                                                  clock: Any) -> None:
    resp = await client.get(f"/sidebar/api/contact/{shop.lilei}/scripts", headers=_as("zhangsan", clock))
    assert resp.status == 403 and (await resp.json())["error"] == "forbidden"
    resp = await client.post("/sidebar/api/scripts/1/sent", json={"external_userid": shop.lilei},
                             headers=_as("zhangsan", clock))
    assert resp.status in (403, 404)
    async with maker() as session:
        script_id = await session.scalar(select(TalkScript.id).limit(1))
    resp = await client.post(f"/sidebar/api/scripts/{script_id}/sent", json={"external_userid": shop.lilei},
                             headers=_as("zhangsan", clock))
    assert resp.status == 403
    resp = await client.get("/sidebar/api/contact/wm-nobody/scripts", headers=_as("zhangsan", clock))
    assert resp.status == 404
    resp = await client.get(f"/sidebar/api/contact/{shop.wangfang}/scripts")
    assert resp.status == 401
    resp = await client.get(f"/sidebar/api/contact/{shop.lilei}/scripts", headers=_as("wangmgr", clock))
    assert resp.status == 200  # the store manager sees the store's customers
    async with maker() as session:
        assert await session.scalar(select(func.count()).select_from(ScriptSend)) == 0


# -- sends and stats -----------------------------------------------------------------------------------


async def test_sends_are_recorded_audited_and_counted_with_conversions(
    client: TestClient, shop: Brand, maker: Any, clock: Any
) -> None:
    async with maker.begin() as session:
        ids = dict((await session.execute(select(TalkScript.title, TalkScript.id))).all())
        session.add(CustomerGroup(chat_id="wrGroup01", name="徐汇宝妈群", owner_userid="zhangsan"))
    milk, lapsed = ids["奶粉快喝完了吧"], ids["好久不见"]
    sent_at = clock.now

    resp = await client.post(f"/sidebar/api/scripts/{milk}/sent", json={"external_userid": shop.wangfang},
                             headers=_as("zhangsan", clock))
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["script_id"] == milk
    clock.advance(3600)
    assert (await client.post(f"/sidebar/api/scripts/{milk}/sent", json={"external_userid": shop.wangfang},
                              headers=_as("zhangsan", clock))).status == 201
    assert (await client.post(f"/sidebar/api/scripts/{milk}/sent", json={"chat_id": "wrGroup01"},
                              headers=_as("zhangsan", clock))).status == 201
    assert (await client.post(f"/sidebar/api/scripts/{milk}/sent", json={"chat_id": "wrGroup01"},
                              headers=_as("lisi", clock))).status == 403
    assert (await client.post(f"/sidebar/api/scripts/{lapsed}/sent", json={"external_userid": shop.hanmeimei},
                              headers=_as("zhaoliu", clock))).status == 201
    for body in ({}, {"external_userid": shop.wangfang, "chat_id": "wrGroup01"}, {"chat_id": 5}):
        resp = await client.post(f"/sidebar/api/scripts/{milk}/sent", json=body, headers=_as("zhangsan", clock))
        assert resp.status == 400 and "external_userid" in (await resp.json())["message"]
    resp = await client.post("/sidebar/api/scripts/999999/sent", json={"external_userid": shop.wangfang},
                             headers=_as("zhangsan", clock))
    assert resp.status == 404

    day = dt.timedelta(days=1)
    async with maker.begin() as session:
        wangfang = await _customer_id(session, shop.wangfang)
        hanmeimei = await _customer_id(session, shop.hanmeimei)
        await _order(session, wangfang, sent_at + 2 * day, [("有机婴儿奶粉2段 800g", "奶粉")])  # converted
        await _order(session, hanmeimei, sent_at + 10 * day, [("轻薄纸尿裤 S 码", "纸尿裤")])  # too late
        await _order(session, hanmeimei, sent_at + 1 * day, [("果泥", "辅食")], status=OrderStatus.CANCELLED)
        audits = (await session.scalars(select(AuditEntry).where(AuditEntry.action == "script_sent")
                                        .order_by(AuditEntry.id))).all()
    assert [(a.actor, a.subject_id) for a in audits] == [("zhangsan", str(milk))] * 3 + [("zhaoliu", str(lapsed))]
    assert audits[0].detail["external_userid"] == shop.wangfang and audits[2].detail["chat_id"] == "wrGroup01"

    async with maker() as session:
        stats = await svc.script_stats(session)
    rows = {r["script_id"]: r for r in stats["scripts"]}
    assert {k: rows[milk][k] for k in ("sends", "customers", "conversions", "conversion_rate")} == \
        {"sends": 3, "customers": 1, "conversions": 1, "conversion_rate": 1.0}
    assert {k: rows[lapsed][k] for k in ("sends", "customers", "conversions", "conversion_rate")} == \
        {"sends": 1, "customers": 1, "conversions": 0, "conversion_rate": 0.0}
    assert rows[ids["门店地址"]]["sends"] == 0
    assert [(g["userid"], g["sends"], g["conversions"]) for g in stats["guides"]] == [("zhangsan", 3, 1), ("zhaoliu", 1, 0)]

    resp = await client.get("/admin/api/scripts/stats", params={"days": "1"}, headers=ADMIN)
    assert resp.status == 200
    assert (await resp.json())["scripts"][0]["sends"] == 3
    clock.advance(3 * 86400)
    resp = await client.get("/admin/api/scripts/stats", params={"days": "1"}, headers=ADMIN)
    assert (await resp.json())["guides"] == []


# -- import and export ---------------------------------------------------------------------------------


CSV_IMPORT = """分类,标题,内容,条件,优先级
复购提醒,辅食补货,{customer_name}，宝宝的辅食该补货啦,"bought(category='辅食') AND recency_days >= 20",60
复购提醒,坏变量,送您{coupon},,10
唤醒关怀,坏条件,好久不见,recency_days >> 60,10
新分类,问候,"您好，我是{guide_name}",,
日常问候,坏优先级,你好,,高
"""


async def test_import_csv_and_json_reports_bad_rows_and_keeps_good_ones(maker: Any, shop: Brand, clock: Any) -> None:
    rows = svc.parse_import("\ufeff" + CSV_IMPORT)
    async with maker.begin() as session:
        result = await svc.import_scripts(session, rows, now=clock.now)
    assert (result["total"], result["created"], result["updated"]) == (5, 2, 0)
    errors = {e["row"]: e for e in result["errors"]}
    assert set(errors) == {2, 3, 5}
    assert "未知变量 {coupon}" in errors[2]["error"] and errors[2]["field"] == "body"
    assert errors[3]["field"] == "condition" and errors[3]["position"] == 15 and errors[3]["error"].startswith("第3条：")
    assert errors[5]["field"] == "priority"
    async with maker() as session:
        imported = await svc.list_scripts(session, category="新分类")
    assert [(s["title"], s["priority"], s["condition"]) for s in imported] == [("问候", 0, None)]

    payload = json.dumps([
        {"分类": "复购提醒", "标题": "辅食补货", "内容": "更新后的内容 {customer_name}", "优先级": 61},
        {"category": "活动邀约", "title": "小程序卡", "body": "点开看看", "attachment": {"type": "miniprogram",
         "appid": "wx123", "title": "商城", "page": "pages/home"}},
        {"category": "活动邀约", "title": "链接卡", "body": "点开看看", "enabled": False,
         "attachment": {"type": "link", "url": "https://example.com/x", "title": "新品"}},
    ], ensure_ascii=False)
    async with maker.begin() as session:
        result = await svc.import_scripts(session, svc.parse_import(payload), now=clock.now)
    assert (result["created"], result["updated"]) == (1, 1)
    assert [(e["row"], e["field"]) for e in result["errors"]] == [(2, "attachment")]
    assert ".html" in result["errors"][0]["error"]

    for bad, expected in (("", "为空"), ("[1, 2]", "对象"), ("标题,内容\nx,y", "分类"), ("分类,标题,内容,备注\n", "备注"),
                          ("[{", "JSON")):
        with pytest.raises(svc.InvalidScript) as err:
            svc.parse_import(bad)
        assert expected in err.value.message


async def test_export_round_trips_through_json_and_csv(client: TestClient, shop: Brand, maker: Any) -> None:
    resp = await client.get("/admin/api/scripts/export", headers=ADMIN)
    exported = await resp.json()
    assert len(exported) == len(demo.DEMO_SCRIPTS) and exported[0]["category"] == "复购提醒"
    resp = await client.get("/admin/api/scripts/export", params={"format": "csv"}, headers=ADMIN)
    assert resp.content_type == "text/csv"
    csv_text = await resp.text()
    assert csv_text.startswith("\ufeff分类,标题,内容,条件,优先级,启用,附件")
    assert (await client.get("/admin/api/scripts/export", params={"format": "xml"}, headers=ADMIN)).status == 400

    for body, content_type in ((json.dumps(exported, ensure_ascii=False), "application/json"), (csv_text, "text/csv")):
        async with maker.begin() as session:
            await session.execute(delete(TalkScript))
            await session.execute(delete(ScriptCategory))
        resp = await client.post("/admin/api/scripts/import", data=body.encode(), headers=ADMIN | {"Content-Type": content_type})
        result = await resp.json()
        assert resp.status == 200 and result["errors"] == [] and result["created"] == len(exported), result
        again = await (await client.get("/admin/api/scripts/export", headers=ADMIN)).json()
        assert sorted(again, key=lambda r: r["title"]) == sorted(exported, key=lambda r: r["title"])
    resp = await client.post("/admin/api/scripts/import", data=csv_text.encode(), headers=ADMIN)
    assert (await resp.json())["updated"] == len(exported)  # same category and title: updated, not duplicated


# -- admin API -----------------------------------------------------------------------------------------


async def test_admin_crud(client: TestClient, shop: Brand) -> None:
    assert (await client.get("/admin/api/scripts")).status == 401
    resp = await client.post("/admin/api/script-categories", json={"name": "节日祝福", "order": 5}, headers=ADMIN)
    assert resp.status == 201
    category = await resp.json()
    resp = await client.post("/admin/api/script-categories", json={"name": "节日祝福"}, headers=ADMIN)
    assert resp.status == 409

    script = {"category_id": category["id"], "title": "中秋祝福", "body": "{customer_name}中秋快乐！",
              "condition": "orders >= 1", "priority": 30,
              "attachment": {"type": "link", "url": "https://example.com/moon", "title": "中秋礼盒"}}
    resp = await client.post("/admin/api/scripts", json=script, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    assert created["category"] == "节日祝福" and created["attachment"]["title"] == "中秋礼盒"

    resp = await client.post("/admin/api/scripts", json=script | {"condition": "orders >= 1 AND"}, headers=ADMIN)
    err = await resp.json()
    assert resp.status == 400 and err["field"] == "condition" and err["position"] == 16
    resp = await client.post("/admin/api/scripts", json=script | {"body": "{name}"}, headers=ADMIN)
    assert resp.status == 400 and "未知变量 {name}" in (await resp.json())["error"]

    resp = await client.put(f"/admin/api/scripts/{created['id']}", json={"enabled": False, "condition": None},
                            headers=ADMIN)
    updated = await resp.json()
    assert resp.status == 200 and updated["enabled"] is False and updated["condition"] is None
    assert updated["title"] == "中秋祝福"
    resp = await client.put(f"/admin/api/scripts/{created['id']}", json={"category": "新的分类"}, headers=ADMIN)
    assert (await resp.json())["category"] == "新的分类"
    assert (await (await client.get(f"/admin/api/scripts/{created['id']}", headers=ADMIN)).json())["title"] == "中秋祝福"
    listed = await (await client.get("/admin/api/scripts", params={"q": "中秋"}, headers=ADMIN)).json()
    assert [s["id"] for s in listed["scripts"]] == [created["id"]]

    resp = await client.put(f"/admin/api/script-categories/{category['id']}", json={"name": "节日", "order": 1},
                            headers=ADMIN)
    assert (await resp.json()) == {"id": category["id"], "name": "节日", "order": 1}
    cats = await (await client.get("/admin/api/script-categories", headers=ADMIN)).json()
    new_cat = next(c for c in cats["categories"] if c["name"] == "新的分类")
    resp = await client.delete(f"/admin/api/script-categories/{new_cat['id']}", headers=ADMIN)
    assert resp.status == 409 and "还有 1 条话术" in (await resp.json())["error"]
    assert (await client.delete(f"/admin/api/scripts/{created['id']}", headers=ADMIN)).status == 200
    assert (await client.get(f"/admin/api/scripts/{created['id']}", headers=ADMIN)).status == 404
    assert (await client.delete(f"/admin/api/script-categories/{new_cat['id']}", headers=ADMIN)).status == 200
    assert (await client.delete("/admin/api/script-categories/999999", headers=ADMIN)).status == 404


async def test_seed_is_idempotent_and_its_conditions_validate(maker: Any, shop: Brand, clock: Any) -> None:
    assert await demo.seed_demo_scripts(maker, clock.now) == 0
    async with maker() as session:
        assert await session.scalar(select(func.count()).select_from(TalkScript)) == len(demo.DEMO_SCRIPTS)
        # With orders of every category present, the full check passes too (the map's asset included).
        for raw in await svc.export_scripts(session):
            await svc.check_draft(session, raw)


# -- the per-process library -----------------------------------------------------------------------------


async def test_script_edits_show_in_the_next_scripts_response(client: TestClient, shop: Brand, maker: Any,
                                                              clock: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    first = (await _scripts(client, shop.wangfang, "zhangsan", clock))["scripts"][0]
    assert first["title"] == "奶粉快喝完了吧"
    resp = await client.put(f"/admin/api/scripts/{first['id']}", json={"title": "奶粉快喝完了", "priority": 1},
                            headers=ADMIN)
    assert resp.status == 200, await resp.text()
    found = (await _scripts(client, shop.wangfang, "zhangsan", clock))["scripts"]
    edited = next(s for s in found if s["id"] == first["id"])
    assert edited["title"] == "奶粉快喝完了" and edited["score"] < first["score"]

    resp = await client.put(f"/admin/api/scripts/{first['id']}", json={"enabled": False}, headers=ADMIN)
    assert resp.status == 200
    data = await _scripts(client, shop.wangfang, "zhangsan", clock)
    assert first["id"] not in {s["id"] for s in data["scripts"]}
    counts = {c["name"]: c["scripts"] for c in data["categories"]}
    assert counts["复购提醒"] == sum(1 for s in await _enabled(maker) if s == "复购提醒")
    resp = await client.post("/admin/api/scripts/import", headers=ADMIN, data=json.dumps(
        [{"分类": "节日祝福", "标题": "中秋快乐", "内容": "{customer_name}中秋快乐！", "优先级": 9999}]))
    assert (await resp.json())["created"] == 1
    data = await _scripts(client, shop.wangfang, "zhangsan", clock)
    assert _texts(data)["中秋快乐"] == "王芳中秋快乐！" and "节日祝福" in {c["name"] for c in data["categories"]}

    # Another process's edit (here: plain SQL, no service) shows once this process's copy is old enough.
    monkeypatch.setattr(library, "RELOAD_SECONDS", 3600.0)
    async with maker.begin() as session:
        await session.execute(update(TalkScript).where(TalkScript.title == "中秋快乐").values(title="国庆快乐"))
    assert "中秋快乐" in _texts(await _scripts(client, shop.wangfang, "zhangsan", clock))
    monkeypatch.setattr(library, "RELOAD_SECONDS", 0.0)
    assert "国庆快乐" in _texts(await _scripts(client, shop.wangfang, "zhangsan", clock))


async def test_an_edit_rolled_back_is_never_served(client: TestClient, shop: Brand, clock: Any) -> None:
    async with client.app[keys.SESSIONMAKER]() as session:  # the service's own engine, so its own copy
        await svc.create_script(session, {"category": "测试", "title": "未提交", "body": "b", "priority": 9999},
                                now=clock.now)
        customer_id = await _customer_id(session, shop.wangfang)
        mine = await svc.suggest_scripts(session, customer_id, {}, now=clock.now)
        assert "未提交" in {s.title for s in mine}  # the editing session sees its own change
        assert "未提交" not in _texts(await _scripts(client, shop.wangfang, "zhangsan", clock))
        await session.rollback()
    assert "未提交" not in _texts(await _scripts(client, shop.wangfang, "zhangsan", clock))


def _texts(data: Any) -> dict[str, str]:
    """Title -> filled text of a scripts response."""
    return {s["title"]: s["text"] for s in data["scripts"]}


async def _enabled(maker: Any) -> list[str]:
    """The category name of every enabled script."""
    async with maker() as session:
        return list((await session.scalars(
            select(ScriptCategory.name).join(TalkScript, TalkScript.category_id == ScriptCategory.id)
            .where(TalkScript.enabled.is_(True)))).all())
