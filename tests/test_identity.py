"""One person, many identities: resolution, merges (chains, conflicts, idempotence), nothing lost."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import func, select

from customers.identity import IdentityError, merge_customers, merge_history, normalise_phone, resolve_customer
from models import (
    Customer, CustomerIdentity, CustomerMerge, CustomerTag, FollowRelation, IdentityKind, Order, OrderStatus,
    Staff, Tag, TagGroup, TagSource,
)

K = IdentityKind
NOW = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize(
    ("raw", "e164"),
    [("13800001111", "+8613800001111"), ("+86 138-0000-1111", "+8613800001111"), ("008613800001111", "+8613800001111"),
     ("8613800001111", "+8613800001111"), ("12345", None), ("021-12345678", None)],
)
def test_phone_normalisation(raw: str, e164: str | None) -> None:
    assert normalise_phone(raw) == e164


async def _resolve(maker: Any, *ids: tuple[IdentityKind, str], name: str = "") -> Any:
    async with maker.begin() as session:
        return await resolve_customer(session, list(ids), name=name, now=NOW)


async def _ids(maker: Any, customer_id: int) -> set[tuple[str, str]]:
    async with maker() as session:
        rows = (await session.execute(select(CustomerIdentity.kind, CustomerIdentity.value)
                                      .where(CustomerIdentity.customer_id == customer_id))).all()
    return {(k.value, v) for k, v in rows}


async def _order(maker: Any, customer_id: int, ref: str) -> None:
    async with maker.begin() as session:
        session.add(Order(channel="tmall", channel_order_id=ref, customer_id=customer_id, status=OrderStatus.PAID,
                          paid_cents=100, ordered_at=NOW, received_at=NOW, updated_at=NOW))


async def test_same_phone_in_two_formats_is_one_customer(maker: Any) -> None:
    a = await _resolve(maker, (K.TMALL, "tb_buyer_1"), (K.PHONE, "138 0000 1111"), name="王芳")
    b = await _resolve(maker, (K.POS, "M0001"), (K.PHONE, "+86-13800001111"))
    assert a.created and not b.created and a.customer.id == b.customer.id
    assert await _ids(maker, a.customer.id) == {("tmall", "tb_buyer_1"), ("phone", "+8613800001111"), ("pos", "M0001")}


async def test_record_proving_two_customers_are_one_merges_them_and_moves_everything(maker: Any) -> None:
    a = (await _resolve(maker, (K.TMALL, "tb_1"), name="甲")).customer
    b = (await _resolve(maker, (K.JD, "jd_1"), (K.PHONE, "13900002222"))).customer
    await _order(maker, a.id, "T1")
    await _order(maker, b.id, "J1")
    async with maker.begin() as session:
        group = TagGroup(name="兴趣")
        session.add(group)
        await session.flush()
        tags = [Tag(group_id=group.id, name="奶粉"), Tag(group_id=group.id, name="玩具")]
        session.add_all(tags)
        staff = Staff(userid="g1", name="导购")
        session.add(staff)
        await session.flush()
        # Both carry 奶粉 (a duplicate after the merge), only b carries 玩具; both follow the same guide.
        for cid in (a.id, b.id):
            session.add(CustomerTag(customer_id=cid, tag_id=tags[0].id, source=TagSource.WECOM, created_at=NOW))
            session.add(FollowRelation(staff_id=staff.id, customer_id=cid, external_userid=f"wm{cid}"))
        session.add(CustomerTag(customer_id=b.id, tag_id=tags[1].id, source=TagSource.RULE, created_at=NOW))
    # An order from the mini-program carries both the Tmall id and the phone: same person.
    r = await _resolve(maker, (K.TMALL, "tb_1"), (K.PHONE, "13900002222"), (K.MINIAPP_OPENID, "oX1"))
    assert r.customer.id == a.id and len(r.merges) == 1
    async with maker() as session:
        assert (await session.get(Customer, b.id)).merged_into_id == a.id
        assert await session.scalar(select(func.count()).select_from(Order).where(Order.customer_id == a.id)) == 2
        assert {t for (t,) in (await session.execute(select(CustomerTag.tag_id).where(CustomerTag.customer_id == a.id))).all()} == {
            tags[0].id, tags[1].id}
        assert await session.scalar(select(func.count()).select_from(FollowRelation)) == 1
        history = await merge_history(session, b.id)  # inspectable from either record
    assert [(m.survivor_id, m.merged_id, m.reason_kind) for m in history] == [(a.id, b.id, "phone")]
    assert history[0].moved["orders"] == 1 and history[0].moved["customer_identities"] == 2
    assert await _ids(maker, a.id) == {("tmall", "tb_1"), ("jd", "jd_1"), ("phone", "+8613900002222"), ("miniapp_openid", "oX1")}


async def test_merge_chain_points_at_the_final_survivor(maker: Any) -> None:
    a = (await _resolve(maker, (K.TMALL, "a"))).customer
    b = (await _resolve(maker, (K.JD, "b"))).customer
    c = (await _resolve(maker, (K.DOUYIN, "c"))).customer
    await _resolve(maker, (K.JD, "b"), (K.DOUYIN, "c"))  # c -> b
    await _resolve(maker, (K.TMALL, "a"), (K.DOUYIN, "c"))  # b (holding c) -> a
    async with maker() as session:
        assert (await session.get(Customer, b.id)).merged_into_id == a.id
        assert (await session.get(Customer, c.id)).merged_into_id == a.id
        merges = (await session.scalars(select(CustomerMerge).order_by(CustomerMerge.id))).all()
    assert {m.survivor_id for m in merges} == {a.id}
    again = await _resolve(maker, (K.DOUYIN, "c"))
    assert again.customer.id == a.id and not again.merges


async def test_merge_is_idempotent(maker: Any) -> None:
    a = (await _resolve(maker, (K.TMALL, "a"))).customer
    b = (await _resolve(maker, (K.JD, "b"))).customer
    async with maker.begin() as session:
        first = await merge_customers(session, a.id, b.id, (K.PHONE, "+8613800000000"), now=NOW)
        second = await merge_customers(session, a.id, b.id, (K.PHONE, "+8613800000000"), now=NOW)
    assert first.id == second.id
    async with maker() as session:
        assert await session.scalar(select(func.count()).select_from(CustomerMerge)) == 1


async def test_conflicting_unionids_are_not_merged(maker: Any) -> None:
    a = (await _resolve(maker, (K.UNIONID, "u-1"), (K.PHONE, "13700003333"))).customer
    b = (await _resolve(maker, (K.UNIONID, "u-2"), (K.TMALL, "tb"))).customer
    # A shared family phone on a Tmall order: not proof enough against two different WeChat accounts.
    r = await _resolve(maker, (K.TMALL, "tb"), (K.PHONE, "13700003333"))
    assert not r.merges and r.conflicts and r.customer.id in (a.id, b.id)
    async with maker() as session:
        assert (await session.get(Customer, a.id)).merged_into_id is None
        assert (await session.get(Customer, b.id)).merged_into_id is None


async def test_no_usable_identity_is_refused(maker: Any) -> None:
    with pytest.raises(IdentityError):
        await _resolve(maker, (K.PHONE, "not a phone"), (K.TMALL, "  "))
