"""Synthetic brand data at scale for benchmarks: customers, identities, follows, orders, items.

Loads straight through the database driver (sqlite3 executemany / asyncpg COPY) into a migrated
schema: generating millions of rows through the ORM would measure the generator, not the service.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

CHANNELS = ("tmall", "jd", "douyin", "pos", "miniapp")
CATEGORIES = ("奶粉", "纸尿裤", "辅食", "玩具", "洗护", "童装", "孕妈", "营养品", "喂养", "出行")
PRICES = (3900, 9900, 12900, 19900, 29900, 39900, 59900)
STATUSES = ("paid",) * 17 + ("refunded", "partially_refunded", "cancelled")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
GIVEN = ("静", "敏", "婷", "雪", "丽", "娜", "芳", "琳", "欣怡", "子涵", "雨萱", "思彤", "梦瑶", "佳怡", "浩然", "子轩")


@dataclass(frozen=True)
class Scale:
    """How much to generate."""

    customers: int = 1_000_000
    orders: int = 5_000_000
    guides: int = 200
    stores: int = 40
    now: dt.datetime = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)


def _ts(value: dt.datetime) -> str:
    # The format SQLAlchemy's SQLite DateTime writes (naive UTC text), so range comparisons agree.
    return value.astimezone(dt.timezone.utc).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


def _rows(scale: Scale, seed: int = 42) -> dict[str, Iterator[tuple[Any, ...]]]:
    rng = random.Random(seed)
    now = scale.now
    start = now - dt.timedelta(days=730)
    # Formatting a timestamp per row dominated generation: draw from a pool (one per ~15 minutes).
    pool = [_ts(start + dt.timedelta(seconds=900 * k)) for k in range(730 * 96)]
    t0 = pool[0]

    def when_ts() -> str:
        return pool[int(rng.random() * len(pool))]

    def regions() -> Iterator[tuple[Any, ...]]:
        yield (1, "east", "华东", t0)
        yield (2, "south", "华南", t0)

    def stores() -> Iterator[tuple[Any, ...]]:
        for i in range(1, scale.stores + 1):
            yield (i, f"S{i:03d}", f"门店{i:03d}", 1 + i % 2, t0)

    def staff() -> Iterator[tuple[Any, ...]]:
        for i in range(1, scale.guides + 1):
            store = 1 + i % scale.stores
            yield (i, f"guide{i:04d}", f"导购{i:04d}", "guide", store, 1 + store % 2, "导购", 1, t0)

    def customers() -> Iterator[tuple[Any, ...]]:
        for i in range(1, scale.customers + 1):
            name = rng.choice(SURNAMES) + rng.choice(GIVEN)
            yield (i, name, "", i % 3, 1, "", None, t0, None)

    def identities() -> Iterator[tuple[Any, ...]]:
        n = 0
        for i in range(1, scale.customers + 1):
            n += 1
            yield (n, i, "phone", f"+861{3 + i % 7}{i:09d}", t0)
            n += 1
            yield (n, i, "external_userid", f"wm{i:030d}", t0)

    def follows() -> Iterator[tuple[Any, ...]]:
        for i in range(1, scale.customers + 1):
            yield (i, 1 + i % scale.guides, i, f"wm{i:030d}", "", "", "", "", 1, "", None, "active",
                   when_ts(), None, None, None)

    def orders_and_items() -> Iterator[tuple[tuple[Any, ...], tuple[Any, ...]]]:
        for i in range(1, scale.orders + 1):
            # Skewed: a minority of customers place most orders, as in real retail.
            cid = 1 + int(scale.customers * rng.random() ** 2)
            channel = CHANNELS[i % len(CHANNELS)]
            status = STATUSES[int(rng.random() * len(STATUSES))]
            when = when_ts()
            price = PRICES[int(rng.random() * len(PRICES))]
            qty = 1 + int(rng.random() * 3)
            paid = price * qty if status != "cancelled" else 0
            refunded = paid if status == "refunded" else (paid // 2 if status == "partially_refunded" else 0)
            store = 1 + i % scale.stores if channel == "pos" else None
            order = (i, channel, f"{channel}-{i:09d}", cid, store, status, price * qty, 0, paid, refunded, "", "",
                     when, when if paid else None, when if refunded else None,
                     when if status == "cancelled" else None, when, when, "{}")
            sku = 1 + int(rng.random() * 500)
            item = (i, i, f"SKU{sku:04d}", f"商品{sku:04d}", CATEGORIES[sku % len(CATEGORIES)], qty, price, price * qty)
            yield order, item

    return {"regions": regions(), "stores": stores(), "staff": staff(), "customers": customers(),
            "customer_identities": identities(), "follow_relations": follows(), "orders_items": orders_and_items()}


COLUMNS = {
    "regions": ("id", "code", "name", "created_at"),
    "stores": ("id", "code", "name", "region_id", "created_at"),
    "staff": ("id", "userid", "name", "role", "store_id", "region_id", "position", "wecom_status", "created_at"),
    "customers": ("id", "name", "avatar", "gender", "wecom_type", "corp_name", "merged_into_id", "created_at",
                  "updated_at"),
    "customer_identities": ("id", "customer_id", "kind", "value", "created_at"),
    "follow_relations": ("id", "staff_id", "customer_id", "external_userid", "remark", "description", "remark_mobiles",
                         "state", "add_way", "oper_userid", "contact_way_id", "status", "added_at", "removed_at",
                         "welcomed_at", "updated_at"),
    "orders": ("id", "channel", "channel_order_id", "customer_id", "store_id", "status", "total_cents",
               "discount_cents", "paid_cents", "refunded_cents", "coupon_code", "share_code", "ordered_at", "paid_at",
               "refunded_at", "cancelled_at", "received_at", "updated_at", "source"),
    "order_items": ("id", "order_id", "sku", "name", "category", "quantity", "price_cents", "amount_cents"),
}


def _chunks(it: Iterator[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for row in it:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def load_sqlite(path: str, scale: Scale, progress: Any = print) -> float:
    """Fill a migrated SQLite file; returns seconds taken."""
    started = time.perf_counter()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    rows = _rows(scale)
    for table in ("regions", "stores", "staff", "customers", "customer_identities", "follow_relations"):
        cols = COLUMNS[table]
        sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        for chunk in _chunks(rows[table], 100_000):
            conn.executemany(sql, chunk)
        conn.commit()
        progress(f"  {table} loaded")
    o_sql = f"INSERT INTO orders ({', '.join(COLUMNS['orders'])}) VALUES ({', '.join('?' * len(COLUMNS['orders']))})"
    i_sql = (f"INSERT INTO order_items ({', '.join(COLUMNS['order_items'])}) "
             f"VALUES ({', '.join('?' * len(COLUMNS['order_items']))})")
    done = 0
    for chunk in _chunks(rows["orders_items"], 200_000):
        conn.executemany(o_sql, [o for o, _ in chunk])
        conn.executemany(i_sql, [i for _, i in chunk])
        conn.commit()
        done += len(chunk)
        progress(f"  orders {done:,}/{scale.orders:,}")
    conn.execute("ANALYZE")
    conn.commit()
    conn.close()
    return time.perf_counter() - started


async def load_postgres(dsn: str, scale: Scale, progress: Any = print) -> float:
    """Fill a migrated PostgreSQL database with COPY; returns seconds taken."""
    import asyncpg

    started = time.perf_counter()
    conn = await asyncpg.connect(dsn)
    rows = _rows(scale)

    def typed(table: str, row: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(dt.datetime.fromisoformat(v).replace(tzinfo=dt.timezone.utc)
                     if isinstance(v, str) and c.endswith("_at") else v for c, v in zip(COLUMNS[table], row))

    for table in ("regions", "stores", "staff", "customers", "customer_identities", "follow_relations"):
        for chunk in _chunks(rows[table], 100_000):
            await conn.copy_records_to_table(table, records=[typed(table, r) for r in chunk], columns=COLUMNS[table])
        progress(f"  {table} loaded")
    done = 0
    for chunk in _chunks(rows["orders_items"], 200_000):
        await conn.copy_records_to_table("orders", records=[typed("orders", o) for o, _ in chunk],
                                         columns=COLUMNS["orders"])
        await conn.copy_records_to_table("order_items", records=[i for _, i in chunk], columns=COLUMNS["order_items"])
        done += len(chunk)
        progress(f"  orders {done:,}/{scale.orders:,}")
    for table in ("regions", "stores", "staff", "customers", "customer_identities", "follow_relations", "orders",
                  "order_items"):
        await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
    await conn.execute("ANALYZE")
    await conn.close()
    return time.perf_counter() - started


def load(database_url: str, scale: Scale, progress: Any = print) -> float:
    """Load into the database behind a SQLAlchemy URL (sqlite+aiosqlite:/// or postgresql+asyncpg://)."""
    if database_url.startswith("sqlite"):
        return load_sqlite(database_url.split("///", 1)[1], scale, progress)
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
    return asyncio.run(load_postgres(dsn, scale, progress))
