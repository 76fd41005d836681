"""Orders from every channel, normalised: one row per (channel, channel order id), with items."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, BigInteger, Enum, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigIntPK, UTCDateTime, intpk, str32, str64


class OrderStatus(enum.StrEnum):
    """Where an order stands; refunds and cancellations arrive as updates of the same order."""

    CREATED = "created"  # placed, not paid
    PAID = "paid"
    REFUNDED = "refunded"  # fully refunded
    PARTIALLY_REFUNDED = "partially_refunded"
    CANCELLED = "cancelled"


class Order(Base):
    """A normalised order."""

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("channel", "channel_order_id", name="uq_orders_channel_order"),
        Index("ix_orders_customer_paid", "customer_id", "paid_at"),
    )

    id: Mapped[intpk]
    channel: Mapped[str32]
    channel_order_id: Mapped[str64]
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id", ondelete="SET NULL"), index=True)
    status: Mapped[OrderStatus] = mapped_column(
        Enum(OrderStatus, native_enum=False, length=24, values_callable=lambda e: [m.value for m in e])
    )
    # Money in fen (1/100 CNY): exact, and cheap to sum over millions of rows.
    total_cents: Mapped[int] = mapped_column(BigInteger, default=0)  # goods total before discounts
    discount_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    paid_cents: Mapped[int] = mapped_column(BigInteger, default=0)  # what the customer paid
    refunded_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    coupon_code: Mapped[str] = mapped_column(String(64), default="")
    share_code: Mapped[str] = mapped_column(String(32), default="", index=True)
    ordered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    paid_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    refunded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    # The channel's record as received (after mapping), for audits and re-mapping.
    source: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class OrderItem(Base):
    """One line of an order."""

    __tablename__ = "order_items"

    id: Mapped[intpk]
    order_id: Mapped[int] = mapped_column(BigIntPK, ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    sku: Mapped[str64] = mapped_column(index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    category: Mapped[str] = mapped_column(String(64), default="", index=True)
    quantity: Mapped[int] = mapped_column(default=1)
    price_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_cents: Mapped[int] = mapped_column(BigInteger, default=0)
