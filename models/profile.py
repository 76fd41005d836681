"""Per-customer figures the tag factory and the sidebar read; recomputed set-based, never per row."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import BigInteger, Enum, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime


class LifecycleStage(enum.StrEnum):
    """Where a customer is in their life with the brand."""

    NEW = "new"
    ACTIVE = "active"
    SILENT = "silent"
    LOST = "lost"


class CustomerStats(Base):
    """Totals, RFM scores and lifecycle stage of one customer, as of ``computed_at``."""

    __tablename__ = "customer_stats"

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    order_count: Mapped[int] = mapped_column(default=0, index=True)
    spend_cents: Mapped[int] = mapped_column(BigInteger, default=0, index=True)
    avg_order_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    first_purchase_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    last_purchase_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), index=True)
    # 1 (worst) .. 5 (best) quintiles among buyers; 0 for customers who never bought.
    r_score: Mapped[int] = mapped_column(default=0)
    f_score: Mapped[int] = mapped_column(default=0)
    m_score: Mapped[int] = mapped_column(default=0)
    stage: Mapped[LifecycleStage] = mapped_column(
        Enum(LifecycleStage, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]),
        default=LifecycleStage.NEW,
        index=True,
    )
    # Channels bought in, comma-separated (e.g. "jd,tmall"), for display.
    channels: Mapped[str] = mapped_column(String(255), default="")
    # Store and region codes the customer is linked to, sorted and comma-separated (e.g. "BJ01,SH01"):
    # a counted order there, or an active follow by a guide of that store or region. Rules read them.
    # Unbounded: a customer followed by guides of many stores must not fail the recompute on PostgreSQL.
    stores: Mapped[str] = mapped_column(String(), default="", server_default="")
    regions: Mapped[str] = mapped_column(String(), default="", server_default="")
    computed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class Membership(Base):
    """Member tier and points balance, when a POS or mini-program reports them."""

    __tablename__ = "memberships"

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    tier: Mapped[str] = mapped_column(String(32), default="")
    points: Mapped[int] = mapped_column(BigInteger, default=0)
    # Spend still needed for the next tier, if the source says (e.g. 再消费200元升黄金会员).
    next_tier: Mapped[str] = mapped_column(String(32), default="")
    next_tier_gap_cents: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
