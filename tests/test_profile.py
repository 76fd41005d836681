"""The profile aggregate: one customer across channels, with phones masked for most viewers."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from customers.identity import resolve_customer
from customers.profile import CustomerNotFound, load_profile, mask_phone, yuan
from models import (
    CustomerStats, CustomerTag, FollowRelation, IdentityKind, LifecycleStage, Membership, Order, OrderItem,
    OrderStatus, Staff, Store, Tag, TagGroup, TagSource,
)

NOW = dt.datetime(2026, 11, 1, 12, tzinfo=dt.timezone.utc)
K = IdentityKind


def test_mask_and_money() -> None:
    assert mask_phone("+8613812341234") == "138****1234"
    assert yuan(129900) == "1299.00" and yuan(5) == "0.05" and yuan(-250) == "-2.50"


@pytest.fixture
async def customer_id(maker: Any) -> int:
    async with maker.begin() as session:
        cid = (await resolve_customer(session, [(K.TMALL, "tb1"), (K.PHONE, "13812341234")], name="王芳", now=NOW)).customer.id
        store = Store(code="SH01", name="上海徐汇店")
        session.add(store)
        await session.flush()
        guide = Staff(userid="g1", name="刘洋", store_id=store.id)
        session.add(guide)
        await session.flush()
        session.add(FollowRelation(staff_id=guide.id, customer_id=cid, external_userid="wm1", remark="王姐", added_at=NOW))
        for i, (channel, status, paid, refunded, days) in enumerate([
            ("tmall", OrderStatus.PAID, 29900, 0, 40), ("pos", OrderStatus.PARTIALLY_REFUNDED, 50000, 10000, 10),
            ("jd", OrderStatus.REFUNDED, 8000, 8000, 5), ("tmall", OrderStatus.CANCELLED, 0, 0, 1),
        ]):
            when = NOW - dt.timedelta(days=days)
            order = Order(channel=channel, channel_order_id=f"O{i}", customer_id=cid, status=status, paid_cents=paid,
                          refunded_cents=refunded, ordered_at=when, paid_at=when if paid else None,
                          store_id=store.id if channel == "pos" else None, received_at=NOW, updated_at=NOW)
            session.add(order)
            await session.flush()
            session.add(OrderItem(order_id=order.id, sku=f"SKU{i}", name="有机奶粉", category="奶粉", quantity=2,
                                  price_cents=paid // 2, amount_cents=paid))
        group = TagGroup(name="客户等级", order=5)
        session.add(group)
        await session.flush()
        tag = Tag(group_id=group.id, name="金卡会员")
        session.add(tag)
        await session.flush()
        session.add(CustomerTag(customer_id=cid, tag_id=tag.id, source=TagSource.WECOM, created_at=NOW))
        session.add(Membership(customer_id=cid, tier="金卡", points=3200, next_tier="钻石卡", next_tier_gap_cents=20000,
                               updated_at=NOW))
        session.add(CustomerStats(customer_id=cid, order_count=2, spend_cents=69900, avg_order_cents=34950,
                                  r_score=5, f_score=4, m_score=5, stage=LifecycleStage.ACTIVE, computed_at=NOW))
    return cid


async def test_profile_across_channels(maker: Any, customer_id: int) -> None:
    async with maker() as session:
        p = await load_profile(session, customer_id)
    assert p.name == "王芳"
    assert {(i.kind, i.value) for i in p.identities} == {("tmall", "tb1"), ("phone", "138****1234")}
    assert [g.name for g in p.guides] == ["刘洋"] and p.guides[0].store == "上海徐汇店" and p.guides[0].remark == "王姐"
    # Paid 299 + (500 - 100 refunded); the refunded and cancelled orders do not count.
    assert (p.totals.spend, p.totals.order_count, p.totals.average_order) == ("699.00", 2, "349.50")
    assert p.totals.last_purchase_at == NOW - dt.timedelta(days=10)
    assert [o.channel_order_id for o in p.orders] == ["O3", "O2", "O1", "O0"]  # latest first
    assert p.orders[2].store == "上海徐汇店" and p.orders[2].items[0].amount == "500.00"
    assert p.channels == ["jd", "pos", "tmall"]
    assert [(t.group, t.name, t.source) for t in p.tags] == [("客户等级", "金卡会员", "wecom")]
    assert (p.tier, p.points, p.next_tier, p.next_tier_gap) == ("金卡", 3200, "钻石卡", "200.00")
    assert p.stage == "active" and p.rfm == {"r": 5, "f": 4, "m": 5}
    assert p.as_json()["orders"][0]["ordered_at"].startswith("2026-10-31")


async def test_phone_visible_to_allowed_roles_only(maker: Any, customer_id: int) -> None:
    async with maker() as session:
        p = await load_profile(session, customer_id, show_phone=True)
    assert ("phone", "+8613812341234") in {(i.kind, i.value) for i in p.identities}


async def test_merged_record_shows_survivor(maker: Any, customer_id: int) -> None:
    async with maker.begin() as session:
        other = (await resolve_customer(session, [(K.JD, "jd9")], now=NOW)).customer.id
    async with maker.begin() as session:
        await resolve_customer(session, [(K.JD, "jd9"), (K.PHONE, "13812341234")], now=NOW)
    async with maker() as session:
        p = await load_profile(session, other)
        with pytest.raises(CustomerNotFound):
            await load_profile(session, 999999)
    assert p.customer_id == customer_id and p.merged_from == [other]


async def test_admin_search_and_profile_endpoints(client: Any, customer_id: int) -> None:
    auth = {"Authorization": "Bearer admin-secret"}
    found = await (await client.get("/admin/api/customers", params={"q": "138 1234 1234"}, headers=auth)).json()
    assert found["customers"] == [{"id": customer_id, "name": "王芳"}]
    assert (await client.get("/admin/api/customers", headers=auth)).status == 400
    profile = await (await client.get(f"/admin/api/customers/{customer_id}", headers=auth)).json()
    assert profile["totals"]["spend"] == "699.00" and profile["name"] == "王芳"
    assert (await client.get("/admin/api/customers/424242", headers=auth)).status == 404
    assert (await client.get(f"/admin/api/customers/{customer_id}")).status == 401
