"""Demo orders across channels, shaped so identity mapping has real work to do.

WeCom customers with a unionid buy in the mini-program (which reports the unionid), customers whose
guide noted a phone buy in stores (POS reports the member phone), and a crowd of marketplace buyers
(Tmall, JD, Douyin) appears with phones -- some of them the same people as store members, so the
ingestion merges them. Everything goes through the real ingestion path.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from typing import Final

from customers.mapping import MembershipUpdate, NormalisedItem, NormalisedOrder
from models import IdentityKind, OrderStatus
from wecom.simulator import demo_data
from wecom.simulator.state import SimulatorState

K = IdentityKind
PRODUCTS: Final = (
    ("MILK-A1", "有机婴儿奶粉1段 800g", "奶粉", 32800),
    ("MILK-A2", "有机婴儿奶粉2段 800g", "奶粉", 31800),
    ("MILK-A3", "幼儿配方奶粉3段 800g", "奶粉", 29800),
    ("DIAP-S", "轻薄纸尿裤 S 码 84片", "纸尿裤", 12900),
    ("DIAP-M", "轻薄纸尿裤 M 码 72片", "纸尿裤", 12900),
    ("FOOD-R", "有机高铁米粉 225g", "辅食", 6800),
    ("FOOD-P", "果泥组合装 6袋", "辅食", 5900),
    ("TOY-B", "安抚摇铃玩具套装", "玩具", 9900),
    ("CARE-W", "婴儿洗护二合一 400ml", "洗护", 7900),
    ("MOM-V", "孕妈DHA营养素 60粒", "孕妈", 19800),
)
STORE_CODES: Final = tuple(s.code for s in demo_data.STORES)
TIERS: Final = (("普通会员", "银卡会员", 100000), ("银卡会员", "金卡会员", 300000), ("金卡会员", "钻石会员", 800000))


def _status(rng: random.Random) -> OrderStatus:
    roll = rng.random()
    if roll < 0.05:
        return OrderStatus.REFUNDED
    if roll < 0.08:
        return OrderStatus.PARTIALLY_REFUNDED
    if roll < 0.10:
        return OrderStatus.CANCELLED
    return OrderStatus.PAID


def _order(rng: random.Random, channel: str, ref: str, identities: list[tuple[IdentityKind, str]], name: str,
           when: dt.datetime, store: str = "") -> NormalisedOrder:
    lines = rng.sample(PRODUCTS, rng.choice((1, 1, 1, 2, 3)))
    items = [NormalisedItem(sku, title, cat, q, price, price * q) for sku, title, cat, price in lines
             for q in [rng.choice((1, 1, 2))]]
    total = sum(i.amount_cents for i in items)
    discount = rng.choice((0, 0, 0, 1000, 2000)) if total > 20000 else 0
    status = _status(rng)
    paid = 0 if status in (OrderStatus.CANCELLED, OrderStatus.CREATED) else total - discount
    refunded = paid if status is OrderStatus.REFUNDED else (paid // 3 if status is OrderStatus.PARTIALLY_REFUNDED else 0)
    later = when + dt.timedelta(days=rng.randint(1, 7))
    return NormalisedOrder(
        channel=channel, channel_order_id=ref, identities=identities, status=status, ordered_at=when,
        buyer_name=name, store_code=store, total_cents=total, discount_cents=discount, paid_cents=paid,
        refunded_cents=refunded, paid_at=when if paid else None, refunded_at=later if refunded else None,
        cancelled_at=when if status is OrderStatus.CANCELLED else None, items=items, ref=ref,
    )


def demo_orders(state: SimulatorState, now: dt.datetime, *, marketplace_buyers: int = 2500,
                seed: int = 11) -> Iterator[NormalisedOrder]:
    """Orders for the simulated corp's customers and for marketplace-only buyers."""
    rng = random.Random(seed)
    n = 0

    def when() -> dt.datetime:
        # More recent orders are likelier, so every lifecycle stage is populated.
        return now - dt.timedelta(days=int(540 * rng.random() ** 1.6), minutes=rng.randint(0, 1439))

    store_phones: list[str] = []
    for ext, customer in sorted(state.customers.items()):
        follows = [f for (u, e), f in state.follows.items() if e == ext]
        phones = [str(m) for f in follows for m in f.remark_mobiles]
        if customer.unionid:
            openid = "oMini" + ext[2:24]
            for _ in range(rng.choice((0, 1, 1, 2, 3, 5))):
                n += 1
                order = _order(rng, "miniapp", f"MP{n:08d}", [(K.MINIAPP_OPENID, openid), (K.UNIONID, customer.unionid)],
                               customer.name, when())
                if rng.random() < 0.5:
                    tier, next_tier, gap = rng.choice(TIERS)
                    order = _with_membership(order, MembershipUpdate(tier, rng.randint(0, 5000), next_tier,
                                                                     rng.randint(1, gap // 1000) * 1000))
                yield order
        for phone in phones:
            store_phones.append(phone)
            for _ in range(rng.choice((1, 2, 3, 4))):
                n += 1
                yield _order(rng, "pos", f"POS{n:08d}", [(K.POS, f"M{phone[-8:]}"), (K.PHONE, phone)], customer.name,
                             when(), store=rng.choice(STORE_CODES))
    surnames, given = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗", ("静", "敏", "婷", "雪", "丽", "娜", "芳", "欣怡", "子涵", "梦瑶")
    for b in range(marketplace_buyers):
        channel = rng.choice(("tmall", "tmall", "jd", "douyin"))
        # One in ten marketplace buyers is a store member: same phone, so the records merge.
        phone = rng.choice(store_phones) if store_phones and rng.random() < 0.1 else f"1{rng.choice('3589')}{b:09d}"
        buyer = {"tmall": K.TMALL, "jd": K.JD, "douyin": K.DOUYIN}[channel]
        name = rng.choice(surnames) + rng.choice(given)
        member = phone in store_phones
        for k in range(rng.choice((2, 2, 3, 6)) if member else rng.choice((1, 1, 1, 2, 2, 3, 6))):
            n += 1
            # Marketplaces often withhold the phone: a member's first order carries only the buyer id,
            # a later one both -- which proves the two records are one person and merges them.
            ids = [(buyer, f"{channel}_{b:06d}")] + ([] if member and k == 0 else [(K.PHONE, phone)])
            yield _order(rng, channel, f"{channel.upper()}{n:08d}", ids, name, when())


def _with_membership(order: NormalisedOrder, membership: MembershipUpdate) -> NormalisedOrder:
    import dataclasses

    return dataclasses.replace(order, membership=membership)
