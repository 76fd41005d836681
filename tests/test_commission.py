"""Commission: the monthly recompute from order attributions, the admin and sidebar APIs, permissions, the CLI."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import itertools
import zoneinfo
from collections.abc import Sequence
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import (
    AuditEntry,
    CommissionStatement,
    CommissionStatementLine,
    Customer,
    Order,
    OrderAttribution,
    OrderItem,
    OrderStatus,
    Region,
    Staff,
    Store,
)
from sharing import commission_service as svc
from sharing.cli import commission_recompute
from sharing.commission import InvalidMonth, OutsideLimits
from tests.brand import Brand, _as

TZ = "Asia/Shanghai"
SHANGHAI = zoneinfo.ZoneInfo(TZ)
MONTH = "2026-10"
NOW = dt.datetime(2026, 11, 15, 4, tzinfo=dt.UTC)
ADMIN = {"Authorization": "Bearer admin-secret"}
LIMITS = {"min_base_rate": "2%", "max_base_rate": "5%", "max_category_rate": "8%"}
RULES = {"base_rate": "3%", "category_rates": {"奶粉": "2%"}, "tiers": [{"min_gmv": 1000, "rate": "4%"}],
         "order_bonus": {"above_orders": 2, "amount": 50}, "cap": 100}
PLAN = {"rules": RULES, "limits": LIMITS}
_ORDER_NO = itertools.count(1)


def local(month: int, day: int, hour: int = 12, minute: int = 0) -> dt.datetime:
    """A moment of 2026 in the brand's time zone."""
    return dt.datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI)


async def add_sale(session: AsyncSession, userid: str, *, yuan: int, at: dt.datetime,
                   items: Sequence[tuple[str, int]] = (), gmv_yuan: int | None = None, reversed: bool = False) -> int:
    """An order with items (category, yuan) credited to ``userid``; returns the order id."""
    staff_id = await session.scalar(select(Staff.id).where(Staff.userid == userid))
    assert staff_id is not None
    customer = Customer(name=f"顾客{next(_ORDER_NO)}")
    session.add(customer)
    await session.flush()
    when = at.astimezone(dt.UTC)
    order = Order(channel="tmall", channel_order_id=f"C{next(_ORDER_NO)}", customer_id=customer.id,
                  status=OrderStatus.REFUNDED if reversed else OrderStatus.PAID, total_cents=yuan * 100,
                  paid_cents=yuan * 100, ordered_at=when, paid_at=when, received_at=when, updated_at=when)
    session.add(order)
    await session.flush()
    for category, amount in items:
        session.add(OrderItem(order_id=order.id, sku=f"SKU-{category}", category=category, amount_cents=amount * 100))
    gmv = 0 if reversed else (yuan if gmv_yuan is None else gmv_yuan) * 100
    session.add(OrderAttribution(order_id=order.id, staff_id=staff_id, source="click", touched_at=when,
                                 ordered_at=when, gmv_cents=gmv, reversed=reversed, computed_at=when))
    await session.flush()
    return order.id


async def build_org(session: AsyncSession) -> dict[str, int]:
    """Two stores in one region; guides in each, one with no store."""
    east = Region(code="EC", name="华东")
    session.add(east)
    await session.flush()
    sh, hz = Store(code="SH01", name="上海徐汇店", region_id=east.id), Store(code="HZ01", name="杭州西湖店", region_id=east.id)
    session.add_all([sh, hz])
    await session.flush()
    session.add_all([Staff(userid="zhangsan", name="张三", store_id=sh.id),
                     Staff(userid="lisi", name="李四", store_id=sh.id),
                     Staff(userid="zhaoliu", name="赵六", store_id=hz.id), Staff(userid="floater", name="流动导购")])
    await session.flush()
    return {"SH01": sh.id, "HZ01": hz.id}


@pytest.fixture
async def world(maker: async_sessionmaker[AsyncSession]) -> dict[str, Any]:
    """The org, HQ's plan, SH01's override (base 5%) and October's sales."""
    async with maker.begin() as s:
        stores = await build_org(s)
        await svc.save_plan(s, PLAN, actor="admin", now=NOW)
        await svc.set_store_override(s, stores["SH01"], {"base_rate": "5%"}, actor="wangmgr", now=NOW)
        orders = {
            # zhangsan (SH01, base 5%): ¥300 split 奶粉 ¥200 / 玩具 ¥100
            "a": await add_sale(s, "zhangsan", yuan=300, at=local(10, 3), items=[("奶粉", 200), ("玩具", 100)]),
            # 00:30 on 1 October in Shanghai is still 30 September in UTC: it counts for October; no items
            "b": await add_sale(s, "zhangsan", yuan=200, at=local(10, 1, 0, 30)),
            # paid ¥250, ¥100 refunded: ¥150 left
            "c": await add_sale(s, "zhangsan", yuan=250, gmv_yuan=150, at=local(10, 20), items=[("玩具", 250)]),
            "refunded": await add_sale(s, "zhangsan", yuan=900, at=local(10, 21), items=[("玩具", 900)], reversed=True),
            # 00:30 on 1 November in Shanghai: November's
            "november": await add_sale(s, "zhangsan", yuan=500, at=local(11, 1, 0, 30), items=[("玩具", 500)]),
            # zhaoliu (HZ01, HQ's plan): ¥3000 reaches the ¥1000 tier, 3 orders earn the bonus, the cap cuts
            "z1": await add_sale(s, "zhaoliu", yuan=1000, at=local(10, 5), items=[("玩具", 1000)]),
            "z2": await add_sale(s, "zhaoliu", yuan=1000, at=local(10, 6), items=[("玩具", 1000)]),
            "z3": await add_sale(s, "zhaoliu", yuan=1000, at=local(10, 7), items=[("玩具", 1000)]),
            "f": await add_sale(s, "floater", yuan=100, at=local(10, 8), items=[("奶粉", 50), ("", 50)]),
        }
    return {"stores": stores, "orders": orders}


async def _by_user(maker: async_sessionmaker[AsyncSession], month: str = MONTH) -> dict[str, dict[str, Any]]:
    async with maker() as s:
        listing = await svc.list_statements(s, month)
        return {row["staff"]["userid"]: await svc.statement_detail(s, row["id"]) for row in listing["statements"]}


async def _snapshot(maker: async_sessionmaker[AsyncSession]) -> list[tuple[Any, ...]]:
    """Every statement and line of the month, without ids and computed_at."""
    async with maker() as s:
        rows = (await s.scalars(select(CommissionStatement).where(CommissionStatement.month == MONTH)
                                .order_by(CommissionStatement.staff_id))).all()
        snap = []
        for r in rows:
            lines = (await s.execute(select(
                CommissionStatementLine.order_id, CommissionStatementLine.ordered_at, CommissionStatementLine.category,
                CommissionStatementLine.gmv_cents, CommissionStatementLine.rate_bp, CommissionStatementLine.rate_source,
                CommissionStatementLine.amount_cents).where(CommissionStatementLine.statement_id == r.id)
                .order_by(CommissionStatementLine.order_id, CommissionStatementLine.category))).all()
            snap.append((r.staff_id, r.store_id, r.plan_scope, r.rules, r.order_count, r.gmv_cents, r.tier_rate_bp,
                         r.lines_cents, r.bonus_cents, r.capped_cents, r.total_cents, [tuple(line) for line in lines]))
        return snap


# -- the recompute ---------------------------------------------------------------------------------


async def test_recompute_builds_a_statement_per_guide_with_every_order(
        maker: async_sessionmaker[AsyncSession], world: dict[str, Any]) -> None:
    stages: list[tuple[str, int, int]] = []
    result = await svc.recompute_month(maker, MONTH, tz=TZ, now=NOW, progress=lambda *a: stages.append(a))
    assert (result.statements, result.orders, result.lines) == (3, 7, 9)
    assert {s for s, _, _ in stages} == {"orders", "guides", "write"} and stages[-1] == ("write", 9, 9)
    got = await _by_user(maker)
    assert set(got) == {"zhangsan", "zhaoliu", "floater"}  # lisi sold nothing: no statement
    o = world["orders"]

    zhang = got["zhangsan"]
    assert [(line["order_id"], line["category"], line["gmv_cents"], line["rate"], line["rate_source"],
             line["amount_cents"]) for line in zhang["lines"]] == [
        (o["b"], "", 20000, "5%", "base", 1000),  # the store's 5%
        (o["a"], "奶粉", 20000, "2%", "category", 400),  # HQ's category rate stays
        (o["a"], "玩具", 10000, "5%", "base", 500),
        (o["c"], "玩具", 15000, "5%", "base", 750),  # only what was not refunded
    ]
    assert zhang["lines"][0]["channel"] == "tmall" and zhang["lines"][0]["channel_order_id"].startswith("C")
    assert (zhang["order_count"], zhang["gmv_cents"], zhang["lines_amount_cents"], zhang["bonus_cents"],
            zhang["capped_cents"], zhang["total_cents"], zhang["total"]) == (3, 65000, 2650, 5000, 0, 7650, "76.50")
    assert zhang["plan_scope"] == f"store:{world['stores']['SH01']}" and zhang["store"]["code"] == "SH01"
    assert zhang["rules"]["base_rate"] == "5%" and zhang["tier"] is None

    zhao = got["zhaoliu"]
    assert [(line["rate"], line["rate_source"], line["amount_cents"]) for line in zhao["lines"]] == [
        ("4%", "tier", 4000)] * 3
    assert zhao["tier"] == {"min_gmv_cents": 100000, "min_gmv": "1000.00", "rate": "4%", "rate_bp": 400}
    assert (zhao["lines_amount_cents"], zhao["bonus_cents"], zhao["capped_cents"], zhao["total_cents"]) == (
        12000, 5000, 7000, 10000)  # capped at ¥100
    assert zhao["plan_scope"] == "hq"

    floater = got["floater"]
    assert [(line["category"], line["rate"], line["amount_cents"]) for line in floater["lines"]] == [
        ("", "3%", 150), ("奶粉", "2%", 100)]
    assert floater["store"] is None and floater["plan_scope"] == "hq"
    assert result.total_cents == 7650 + 10000 + 250 and result.gmv_cents == 65000 + 300000 + 10000


async def test_recomputing_twice_gives_identical_statements(
        maker: async_sessionmaker[AsyncSession], world: dict[str, Any]) -> None:
    first = await svc.recompute_month(maker, MONTH, tz=TZ, now=NOW)
    before = await _snapshot(maker)
    second = await svc.recompute_month(maker, MONTH, tz=TZ, now=NOW + dt.timedelta(hours=1))
    assert await _snapshot(maker) == before
    assert first.to_dict() | {"computed_at": "", "seconds": 0} == second.to_dict() | {"computed_at": "", "seconds": 0}
    async with maker() as s:
        assert len((await s.scalars(select(CommissionStatement))).all()) == 3
        assert len((await s.scalars(select(CommissionStatementLine))).all()) == 9


async def test_concurrent_recomputes_of_one_month_leave_one_set(
        maker: async_sessionmaker[AsyncSession], world: dict[str, Any]) -> None:
    await asyncio.gather(*(svc.recompute_month(maker, MONTH, tz=TZ, now=NOW) for _ in range(3)))
    snap = await _snapshot(maker)
    assert len(snap) == 3 and sum(len(s[-1]) for s in snap) == 9


async def test_refunds_drop_out_on_recompute(maker: async_sessionmaker[AsyncSession], world: dict[str, Any]) -> None:
    await svc.recompute_month(maker, MONTH, tz=TZ, now=NOW)
    o = world["orders"]
    async with maker.begin() as s:  # the attribution recompute reverses refunded orders
        await s.execute(update(OrderAttribution).where(OrderAttribution.order_id.in_([o["a"], o["f"]]))
                        .values(reversed=True, gmv_cents=0))
    await svc.recompute_month(maker, MONTH, tz=TZ, now=NOW)
    got = await _by_user(maker)
    assert set(got) == {"zhangsan", "zhaoliu"}  # the floater's only order was refunded
    zhang = got["zhangsan"]
    assert [line["order_id"] for line in zhang["lines"]] == [o["b"], o["c"]]
    assert (zhang["order_count"], zhang["bonus_cents"], zhang["total_cents"]) == (2, 0, 1750)  # 2 orders: no bonus


async def test_an_override_outside_new_limits_falls_back_to_hq(
        maker: async_sessionmaker[AsyncSession], world: dict[str, Any]) -> None:
    async with maker.begin() as s:
        view = await svc.save_plan(s, {"rules": RULES, "limits": {**LIMITS, "max_base_rate": "4%"}}, actor="admin",
                                   now=NOW)
    assert view["overrides_outside_limits"] == ["SH01"]
    assert view["overrides"][0]["within_limits"] is False and "须在 2%–4% 之间" in view["overrides"][0]["problem"]
    assert view["overrides"][0]["effective"]["base_rate"] == "3%"
    result = await svc.recompute_month(maker, MONTH, tz=TZ, now=NOW)
    assert [(i["store"], "超出总部限额" in i["reason"]) for i in result.ignored_overrides] == [("SH01", True)]
    assert "SH01" in result.summary() and "HQ plan used" in result.summary()
    zhang = (await _by_user(maker))["zhangsan"]
    assert zhang["plan_scope"] == "hq" and zhang["total_cents"] == 400 + 300 + 600 + 450 + 5000


async def test_recompute_refusals(maker: async_sessionmaker[AsyncSession]) -> None:
    with pytest.raises(svc.PlanNotSet, match="总部尚未设置提成方案"):
        await svc.recompute_month(maker, MONTH, tz=TZ, now=NOW)
    with pytest.raises(InvalidMonth, match="尚未开始"):
        await svc.recompute_month(maker, "2026-12", tz=TZ, now=NOW)
    with pytest.raises(InvalidMonth, match="YYYY-MM"):
        await svc.recompute_month(maker, "2026-1", tz=TZ, now=NOW)
    async with maker() as s:
        assert (await svc.list_statements(s, MONTH))["statements"] == []


async def test_override_service_validates_against_limits(
        maker: async_sessionmaker[AsyncSession], world: dict[str, Any]) -> None:
    sh = world["stores"]["SH01"]
    async with maker.begin() as s:
        with pytest.raises(OutsideLimits, match="分类「奶粉」的费率 9% 超过总部上限 8%"):
            await svc.set_store_override(s, sh, {"category_rates": {"奶粉": "9%"}}, actor="x", now=NOW)
        with pytest.raises(svc.StoreNotFound):
            await svc.set_store_override(s, 999999, {"base_rate": "4%"}, actor="x", now=NOW)
        cleared = await svc.set_store_override(s, sh, {}, actor="x", now=NOW)
    assert cleared["override"] is None and cleared["previous"] == {"base_rate": "5%"}
    async with maker() as s:
        assert (await svc.plan_view(s))["overrides"] == []


# -- the admin API -------------------------------------------------------------------------------


async def _ids(maker: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    async with maker() as s:
        rows = [*(await s.execute(select(Store.code, Store.id))).all(),
                *(await s.execute(select(Staff.userid, Staff.id))).all()]
    return dict(rows)


async def test_admin_plan_validation_and_round_trip(client: TestClient, brand: Brand) -> None:
    assert (await client.get("/admin/api/commission/plan")).status == 401
    empty = await (await client.get("/admin/api/commission/plan", headers=ADMIN)).json()
    assert empty == {"rules": None, "limits": None, "updated_by": None, "updated_at": None, "overrides": []}
    for body, field, message in [
        ({"rules": {"base_rate": "abc"}, "limits": LIMITS}, "rules.base_rate", "百分比字符串"),
        ({"rules": RULES}, "limits", "limits 不能为空"),
        ({"rules": RULES, "limits": {**LIMITS, "min_base_rate": "9%"}}, "limits.min_base_rate", "不能大于"),
        ({"rules": {**RULES, "tiers": [{"min_gmv": -1, "rate": "4%"}]}, "limits": LIMITS}, "rules.tiers[0].min_gmv",
         "须大于 0"),
        ({"rules": RULES, "limits": LIMITS, "extra": 1}, "extra", "未知字段"),
        ([1], "", "JSON 对象"),
    ]:
        resp = await client.put("/admin/api/commission/plan", json=body, headers=ADMIN)
        data = await resp.json()
        assert (resp.status, data["field"]) == (400, field) and message in data["error"], data
    resp = await client.put("/admin/api/commission/plan", data="{not json", headers=ADMIN)
    assert resp.status == 400 and "须为 JSON" in (await resp.json())["error"]
    resp = await client.put("/admin/api/commission/plan", json=PLAN, headers=ADMIN)
    data = await resp.json()
    assert resp.status == 200 and data["rules"]["base_rate"] == "3%" and data["limits"]["max_tier_rate"] == "5%"
    assert data["updated_by"] == "admin" and data["overrides_outside_limits"] == []
    again = await (await client.get("/admin/api/commission/plan", headers=ADMIN)).json()
    assert again["rules"] == data["rules"] and again["limits"] == data["limits"]


async def test_admin_store_overrides(client: TestClient, brand: Brand, maker: Any) -> None:
    ids = await _ids(maker)
    url = f"/admin/api/commission/stores/{ids['HZ01']}"
    resp = await client.put(url, json={"base_rate": "4%"}, headers=ADMIN)
    assert resp.status == 409 and "总部尚未设置提成方案" in (await resp.json())["error"]
    await client.put("/admin/api/commission/plan", json=PLAN, headers=ADMIN)
    resp = await client.put(url, json={"base_rate": "6%"}, headers=ADMIN)
    data = await resp.json()
    assert resp.status == 400 and data == {"error": "基础费率 6% 超出总部限额：须在 2%–5% 之间", "field": "base_rate",
                                           "code": "outside_limits"}
    resp = await client.put(url, json={"cap": 1}, headers=ADMIN)
    assert resp.status == 400 and (await resp.json())["field"] == "cap"
    assert (await client.put("/admin/api/commission/stores/999999", json={}, headers=ADMIN)).status == 404
    resp = await client.put(url, json={"base_rate": "4%", "category_rates": {"奶粉": "8%"}}, headers=ADMIN)
    data = await resp.json()
    assert resp.status == 200 and data["override"] == {"base_rate": "4%", "category_rates": {"奶粉": "8%"}}
    assert data["effective"]["base_rate"] == "4%" and data["effective"]["category_rates"] == {"奶粉": "8%"}
    assert data["store"]["code"] == "HZ01" and data["previous"] is None and data["updated_by"] == "admin"
    plan = await (await client.get("/admin/api/commission/plan", headers=ADMIN)).json()
    assert [o["store"]["code"] for o in plan["overrides"]] == ["HZ01"]
    resp = await client.delete(url, headers=ADMIN)
    assert resp.status == 200 and (await resp.json())["previous"]["base_rate"] == "4%"
    async with maker() as s:
        actions = (await s.scalars(select(AuditEntry.action).where(AuditEntry.actor == "admin"))).all()
    assert actions.count("commission_override_set") == 2 and "commission_plan_set" in actions


async def test_admin_recompute_and_statements(client: TestClient, brand: Brand, maker: Any, clock: Any) -> None:
    clock.now = NOW
    await client.put("/admin/api/commission/plan", json=PLAN, headers=ADMIN)
    async with maker.begin() as s:
        order_id = await add_sale(s, "zhangsan", yuan=100, at=local(10, 9), items=[("奶粉", 100)])
        await add_sale(s, "lisi", yuan=200, at=local(10, 9))
    for body, message in [({"month": "2026-13"}, "YYYY-MM"), ({}, "YYYY-MM"), ({"month": "2026-12"}, "尚未开始")]:
        resp = await client.post("/admin/api/commission/recompute", json=body, headers=ADMIN)
        data = await resp.json()
        assert resp.status == 400 and data["field"] == "month" and message in data["error"], data
    resp = await client.post("/admin/api/commission/recompute", json={"month": MONTH}, headers=ADMIN)
    result = await resp.json()
    assert resp.status == 200
    assert {k: result[k] for k in ("month", "statements", "orders", "lines", "total_cents", "total")} == {
        "month": MONTH, "statements": 2, "orders": 2, "lines": 2, "total_cents": 200 + 600, "total": "8.00"}

    resp = await client.get("/admin/api/commission/statements", headers=ADMIN)
    assert resp.status == 400 and (await resp.json())["field"] == "month"
    resp = await client.get("/admin/api/commission/statements", params={"month": MONTH}, headers=ADMIN)
    listing = await resp.json()
    assert [(r["staff"]["userid"], r["total_cents"], r["store"]["code"]) for r in listing["statements"]] == [
        ("lisi", 600, "SH01"), ("zhangsan", 200, "SH01")]
    assert listing["totals"] == {"guides": 2, "order_count": 2, "gmv_cents": 30000, "gmv": "300.00",
                                 "total_cents": 800, "total": "8.00"}
    zhang_id = listing["statements"][1]["id"]
    detail = await (await client.get(f"/admin/api/commission/statements/{zhang_id}", headers=ADMIN)).json()
    assert [(line["order_id"], line["category"], line["rate"], line["amount"]) for line in detail["lines"]] == [
        (order_id, "奶粉", "2%", "2.00")]
    assert detail["rules"]["base_rate"] == "3%"
    resp = await client.get("/admin/api/commission/statements/999999", headers=ADMIN)
    assert resp.status == 404 and "不存在" in (await resp.json())["error"]


# -- the sidebar API -------------------------------------------------------------------------------


async def test_my_statement_in_the_sidebar(client: TestClient, brand: Brand, maker: Any, clock: Any) -> None:
    clock.now = NOW
    empty = await (await client.get("/sidebar/api/commission/me", params={"month": MONTH},
                                    headers=_as("zhangsan", clock))).json()
    assert (empty["id"], empty["total_cents"], empty["lines"], empty["store"]["name"]) == (None, 0, [], "上海徐汇店")
    this_month = await (await client.get("/sidebar/api/commission/me", headers=_as("zhangsan", clock))).json()
    assert this_month["month"] == "2026-11"
    resp = await client.get("/sidebar/api/commission/me", params={"month": "10/2026"}, headers=_as("zhangsan", clock))
    assert resp.status == 400 and (await resp.json())["error"] == "invalid_month"
    assert (await client.get("/sidebar/api/commission/me")).status == 401

    async with maker.begin() as s:
        await svc.save_plan(s, PLAN, actor="admin", now=NOW)
        mine = await add_sale(s, "zhangsan", yuan=100, at=local(10, 9), items=[("玩具", 100)])
        await add_sale(s, "lisi", yuan=200, at=local(10, 9))
    await svc.recompute_month(maker, MONTH, tz=TZ, now=NOW)
    data = await (await client.get("/sidebar/api/commission/me", params={"month": MONTH},
                                   headers=_as("zhangsan", clock))).json()
    assert [(line["order_id"], line["amount"]) for line in data["lines"]] == [(mine, "3.00")]  # only their own
    assert data["staff"]["userid"] == "zhangsan" and data["total"] == "3.00"


async def test_who_may_set_store_rates_in_the_sidebar(client: TestClient, brand: Brand, maker: Any, clock: Any) -> None:
    ids = await _ids(maker)
    url = "/sidebar/api/commission/team"
    resp = await client.put(url, json={"base_rate": "4%"}, headers=_as("wangmgr", clock))
    assert resp.status == 409 and (await resp.json())["error"] == "plan_not_set"
    async with maker.begin() as s:
        await svc.save_plan(s, PLAN, actor="admin", now=NOW)
    for userid, body, fragment in [
        ("zhangsan", {"base_rate": "4%"}, "只有店长可以调整本门店的提成费率"),
        ("chenregion", {"base_rate": "4%"}, "区域经理不能直接调整门店的提成费率"),
        ("sunhq", {"base_rate": "4%"}, "总部请在管理后台设置"),
        ("wangmgr", {"store_id": ids["HZ01"], "base_rate": "4%"}, "您只能调整本门店（上海徐汇店）的提成费率"),
    ]:
        resp = await client.put(url, json=body, headers=_as(userid, clock))
        data = await resp.json()
        assert (resp.status, data["error"]) == (403, "forbidden") and fragment in data["message"], (userid, data)
    assert (await client.get(url, headers=_as("zhangsan", clock))).status == 403

    resp = await client.put(url, json={"base_rate": "5.5%"}, headers=_as("wangmgr", clock))
    data = await resp.json()
    assert resp.status == 400 and data["error"] == "outside_limits" and data["field"] == "base_rate"
    assert "须在 2%–5% 之间" in data["message"]
    resp = await client.put(url, json={"base_rate": "四个点"}, headers=_as("wangmgr", clock))
    assert resp.status == 400 and (await resp.json())["error"] == "invalid_rules"  # malformed: not audited
    resp = await client.put(url, json={"order_bonus": {"above_orders": 1, "amount": 1}}, headers=_as("wangmgr", clock))
    data = await resp.json()
    assert resp.status == 400 and data["error"] == "invalid_rules" and "由总部设定" in data["message"]

    body = {"store_id": ids["SH01"], "base_rate": "4.5%", "category_rates": {"奶粉": "8%"},
            "tiers": [{"min_gmv": 20000, "rate": "5%"}]}
    resp = await client.put(url, json=body, headers=_as("wangmgr", clock))
    data = await resp.json()
    assert resp.status == 200, data
    assert data["override"] == {"base_rate": "4.5%", "category_rates": {"奶粉": "8%"},
                                "tiers": [{"min_gmv": 20000, "rate": "5%"}]}
    assert data["effective"]["order_bonus"] == RULES["order_bonus"] and data["updated_by"] == "wangmgr"
    view = await (await client.get(url, headers=_as("wangmgr", clock))).json()
    assert view["override"] == data["override"] and view["hq_rules"]["base_rate"] == "3%" and view["within_limits"]

    async with maker() as s:
        entries = (await s.scalars(select(AuditEntry).where(AuditEntry.action.like("commission_override%"))
                                   .order_by(AuditEntry.id))).all()
    denied = [(e.actor, e.subject_id) for e in entries if e.action == "commission_override_denied"]
    assert denied == [("zhangsan", str(ids["SH01"])), ("chenregion", ""), ("sunhq", ""),
                      ("wangmgr", str(ids["HZ01"])), ("wangmgr", str(ids["SH01"]))]
    assert "超出总部限额" in entries[4].detail["reason"]
    done = [e for e in entries if e.action == "commission_override_set"]
    assert [(e.actor, e.subject_id, e.detail["override"]["base_rate"]) for e in done] == [
        ("wangmgr", str(ids["SH01"]), "4.5%")]


# -- the CLI -------------------------------------------------------------------------------------


async def test_cli_recompute(maker: async_sessionmaker[AsyncSession], database_url: str) -> None:
    env = {"DATABASE_URL": database_url, "SCRM_TIMEZONE": TZ}
    out, err = io.StringIO(), io.StringIO()
    assert await commission_recompute(MONTH, environ=env, out=out, err=err, now=NOW) == 2
    assert "总部尚未设置提成方案" in err.getvalue()
    async with maker.begin() as s:
        await build_org(s)
        await svc.save_plan(s, PLAN, actor="admin", now=NOW)
        await add_sale(s, "zhangsan", yuan=100, at=local(10, 9))
    out, err = io.StringIO(), io.StringIO()
    assert await commission_recompute(MONTH, environ=env, out=out, err=err, now=NOW) == 0
    assert "2026-10 提成已重算 / commission recomputed for 2026-10" in out.getvalue()
    assert "导购 guides: 1，订单 orders: 1" in out.getvalue() and "¥3.00" in out.getvalue()
    assert "guides" in err.getvalue()  # the progress bar
    err = io.StringIO()
    assert await commission_recompute("2026-13", environ=env, out=io.StringIO(), err=err, now=NOW) == 2
    assert "YYYY-MM" in err.getvalue()
    err = io.StringIO()
    assert await commission_recompute(MONTH, environ={**env, "SCRM_TIMEZONE": "Mars/Base"}, out=io.StringIO(),
                                      err=err, now=NOW) == 2
    assert "Mars/Base" in err.getvalue()


def test_cli_parser_has_the_subcommand() -> None:
    from scrm.cli import build_parser

    args = build_parser().parse_args(["commission", "recompute", "--month", "2026-11"])
    assert args.month == "2026-11" and args.func.__name__ == "cmd_commission_recompute"
