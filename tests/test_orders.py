"""Order ingestion: upserts by (channel, order id), no regressions, one customer across channels."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from customers.mapping import MembershipUpdate, NormalisedItem, NormalisedOrder, normalise_record
from customers.orders import ingest_orders
from models import Customer, CustomerIdentity, CustomerMerge, Membership, Order, OrderItem, OrderStatus, Store
from models import IdentityKind as K
from tests.test_channel_mappings import pos_rows, tmall_row

NOW = dt.datetime(2024, 6, 1, tzinfo=dt.timezone.utc)
T0 = dt.datetime(2024, 5, 1, 2, 0, tzinfo=dt.timezone.utc)
Maker = async_sessionmaker[AsyncSession]


def order(oid: str = "T1", *, channel: str = "tmall", identities: Any = ((K.TMALL, "tb_lily"),),
          status: OrderStatus = OrderStatus.PAID, paid: int = 10000, refunded: int = 0, hours: float = 0,
          refunded_at: dt.datetime | None = None, items: Any = (("SKU-1", 1, 10000),), **kw: Any) -> NormalisedOrder:
    return NormalisedOrder(
        channel=channel, channel_order_id=oid, identities=list(identities), status=status,
        ordered_at=T0, paid_at=T0 + dt.timedelta(hours=hours), total_cents=paid, paid_cents=paid,
        refunded_cents=refunded, refunded_at=refunded_at,
        items=[NormalisedItem(sku, sku, "护肤", q, p, q * p) for sku, q, p in items], **kw,
    )


async def count(maker: Maker, model: Any, *where: Any) -> int:
    async with maker() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where))


async def orders(maker: Maker) -> dict[str, Order]:
    async with maker() as session:
        return {o.channel_order_id: o for o in (await session.scalars(select(Order))).all()}


async def test_new_orders_land_with_items_and_customers(maker: Maker) -> None:
    report = await ingest_orders(maker, [order("T1"), order("T2", identities=[(K.TMALL, "tb_chen")],
                                                            items=[("A", 2, 500), ("B", 1, 300)])], now=NOW)
    assert (report.created, report.updated, report.unchanged, report.customers_created) == (2, 0, 0, 2)
    stored = await orders(maker)
    assert stored["T2"].status is OrderStatus.PAID and stored["T2"].paid_cents == 10000
    assert stored["T2"].received_at == NOW and stored["T2"].paid_at == T0
    async with maker() as session:
        items = (await session.scalars(select(OrderItem).where(OrderItem.order_id == stored["T2"].id)
                                       .order_by(OrderItem.sku))).all()
    assert [(i.sku, i.quantity, i.price_cents, i.amount_cents) for i in items] == [("A", 2, 500, 1000), ("B", 1, 300, 300)]


async def test_resent_order_updates_and_never_duplicates(maker: Maker) -> None:
    await ingest_orders(maker, [order("T1")], now=NOW)
    again = await ingest_orders(maker, [order("T1")], now=NOW)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 1)
    refund_at = T0 + dt.timedelta(days=3)
    refunded = order("T1", status=OrderStatus.REFUNDED, refunded=10000, refunded_at=refund_at,
                     items=[("SKU-1", 1, 10000), ("SKU-2", 1, 0)])
    report = await ingest_orders(maker, [refunded], now=NOW + dt.timedelta(days=1))
    assert (report.created, report.updated) == (0, 1)
    stored = (await orders(maker))["T1"]
    assert stored.status is OrderStatus.REFUNDED and stored.refunded_cents == 10000 and stored.refunded_at == refund_at
    assert stored.updated_at == NOW + dt.timedelta(days=1) and stored.received_at == NOW
    assert await count(maker, Order) == 1
    assert await count(maker, OrderItem) == 2  # replaced, not appended
    # A status-only update (no items in the record) keeps the items.
    await ingest_orders(maker, [order("T1", status=OrderStatus.REFUNDED, refunded=10000,
                                      refunded_at=refund_at + dt.timedelta(hours=1), items=[])], now=NOW)
    assert await count(maker, OrderItem) == 2


async def test_a_late_older_record_does_not_regress_status(maker: Maker) -> None:
    refund_at = T0 + dt.timedelta(days=2)
    await ingest_orders(maker, [order("T1", status=OrderStatus.REFUNDED, refunded=10000, refunded_at=refund_at)], now=NOW)
    late = await ingest_orders(maker, [order("T1")], now=NOW + dt.timedelta(hours=1))  # the 'paid' push, delayed
    assert (late.updated, late.unchanged) == (0, 1)
    assert (await orders(maker))["T1"].status is OrderStatus.REFUNDED
    # Within one batch, in either order.
    report = await ingest_orders(maker, [
        order("T2", status=OrderStatus.REFUNDED, refunded=10000, refunded_at=refund_at), order("T2"),
        order("T3"), order("T3", status=OrderStatus.REFUNDED, refunded=10000, refunded_at=refund_at),
    ], now=NOW)
    stored = await orders(maker)
    assert stored["T2"].status is stored["T3"].status is OrderStatus.REFUNDED
    assert (report.created, report.updated, report.unchanged) == (2, 1, 1)
    # Same moment, less advanced (a re-send of the paid state with the same modification time): ignored.
    same = order("T2", updated_at=refund_at)
    await ingest_orders(maker, [order("T2", status=OrderStatus.REFUNDED, refunded=10000, refunded_at=refund_at,
                                      updated_at=refund_at), same], now=NOW)
    assert (await orders(maker))["T2"].status is OrderStatus.REFUNDED


async def test_same_phone_on_tmall_and_pos_is_one_customer(maker: Maker) -> None:
    async with maker.begin() as session:
        session.add(Store(code="BJ001", name="北京三里屯店"))
    tmall = normalise_record("tmall", tmall_row(联系手机="15900159005", 买家会员名="tb_qian"))
    pos = normalise_record("pos", pos_rows())  # member phone "159 0015 9005"
    report = await ingest_orders(maker, [tmall], now=NOW)
    report2 = await ingest_orders(maker, [pos], now=NOW)
    assert report.customers_created == 1 and report2.customers_created == 0
    stored = await orders(maker)
    assert stored["4012873365120451781"].customer_id == stored["BJ001-20240505-0007"].customer_id
    assert await count(maker, Customer) == 1
    async with maker() as session:
        kinds = set((await session.scalars(select(CustomerIdentity.kind))).all())
        membership = await session.get(Membership, stored["BJ001-20240505-0007"].customer_id)
        store = await session.scalar(select(Store).where(Store.code == "BJ001"))
    assert kinds == {K.TMALL, K.PHONE, K.POS}
    assert membership is not None and (membership.tier, membership.points) == ("钻石卡", 12800)
    assert stored["BJ001-20240505-0007"].store_id == store.id


async def test_a_record_that_proves_two_customers_are_one_merges_them(maker: Maker) -> None:
    await ingest_orders(maker, [order("T1", identities=[(K.TMALL, "tb_lily")]),
                                order("P1", channel="pos", identities=[(K.PHONE, "13800138001")])], now=NOW)
    assert await count(maker, Customer) == 2
    report = await ingest_orders(
        maker, [order("T2", identities=[(K.TMALL, "tb_lily"), (K.PHONE, "+86 138 0013 8001")]), order("P2", channel="pos",
                identities=[(K.PHONE, "13800138001")])], now=NOW)
    assert report.merges == 1 and report.created == 2
    stored = await orders(maker)
    assert len({o.customer_id for o in stored.values()}) == 1
    assert await count(maker, CustomerMerge) == 1


async def test_new_buyers_sharing_an_identity_in_one_batch_become_one_customer(maker: Maker) -> None:
    report = await ingest_orders(maker, [
        order("T1", identities=[(K.TMALL, "tb_a"), (K.PHONE, "13900000001")]),
        order("J1", channel="jd", identities=[(K.JD, "jd_a"), (K.PHONE, "13900000001")]),
        order("D1", channel="douyin", identities=[(K.DOUYIN, "dy_b")]),
    ], now=NOW)
    assert report.customers_created == 2
    assert await count(maker, CustomerIdentity) == 4
    stored = await orders(maker)
    assert stored["T1"].customer_id == stored["J1"].customer_id != stored["D1"].customer_id


async def test_bad_orders_never_stop_good_ones(maker: Maker) -> None:
    progress: list[int] = []
    bad = order("T2", identities=[(K.PHONE, "138****0001")], ref="7")
    report = await ingest_orders(maker, [order("T1"), bad, order("T3")], now=NOW, batch_size=2, progress=progress.append)
    assert report.created == 2 and report.rejected[0][0] == "7"
    assert "没有可用的买家身份" in report.rejected[0][1]
    assert progress == [2, 3]


async def test_unknown_store_code_keeps_the_order_and_warns(maker: Maker) -> None:
    report = await ingest_orders(maker, [order("P1", channel="pos", store_code="SH009", ref="12")], now=NOW)
    assert report.created == 1 and report.warnings == [
        ("12", "未知门店编码 unknown store code 'SH009': order kept without a store")]
    assert (await orders(maker))["P1"].store_id is None


async def test_membership_follows_the_newest_record(maker: Maker) -> None:
    pos = [(K.POS, "M1")]
    newer = order("P2", channel="pos", identities=pos, hours=5, membership=MembershipUpdate(tier="金卡", points=500))
    older = order("P1", channel="pos", identities=pos, hours=1, membership=MembershipUpdate(tier="银卡", points=100))
    await ingest_orders(maker, [newer], now=NOW)
    await ingest_orders(maker, [older], now=NOW)  # an older export imported later
    async with maker() as session:
        m = (await session.scalars(select(Membership))).one()
    assert (m.tier, m.points) == ("金卡", 500)
    await ingest_orders(maker, [order("P3", channel="pos", identities=pos, hours=9,
                                      membership=MembershipUpdate(points=650))], now=NOW)
    async with maker() as session:
        m = (await session.scalars(select(Membership))).one()
        await session.refresh(m)
    assert (m.tier, m.points) == ("金卡", 650)


async def test_a_batch_that_hits_a_concurrent_writer_is_redone_order_by_order(
    maker: Maker, monkeypatch: Any
) -> None:
    from customers import orders as orders_module

    await ingest_orders(maker, [order("T1")], now=NOW)
    real = orders_module._Batch.existing
    calls = []

    async def racing(self: Any, batch: list[NormalisedOrder]) -> Any:
        calls.append(len(batch))
        return {} if len(calls) == 1 else await real(self, batch)  # first look misses T1, as in a race

    monkeypatch.setattr(orders_module._Batch, "existing", racing)
    report = await ingest_orders(maker, [order("T0"), order("T1", status=OrderStatus.REFUNDED, refunded=10000,
                                                             refunded_at=T0 + dt.timedelta(days=1)), order("T2")],
                                 now=NOW)
    assert (report.created, report.updated, report.rejected) == (2, 1, [])
    assert calls == [3, 1, 1, 1]
    stored = await orders(maker)
    assert sorted(stored) == ["T0", "T1", "T2"] and stored["T1"].status is OrderStatus.REFUNDED
