"""Commission: HQ's plan and each store's rate override, and the monthly statements with their lines."""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigIntPK, UTCDateTime, created, intpk, str64

#: ``CommissionPlan.scope`` of HQ's plan; a store override's scope is ``store:<store id>``.
HQ_SCOPE: Final = "hq"


def store_scope(store_id: int) -> str:
    """The plan scope of a store's override."""
    return f"store:{store_id}"


class CommissionPlan(Base):
    """HQ's rules and limits (scope ``hq``), or one store's rate override (scope ``store:<id>``).

    The unique scope makes "one HQ plan, at most one override per store" a database guarantee on
    every backend (a unique nullable store_id would allow several HQ rows).
    """

    __tablename__ = "commission_plans"

    id: Mapped[intpk]
    scope: Mapped[str] = mapped_column(String(32), unique=True)
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"), index=True)
    # sharing.commission JSON: full rules for HQ, rates only (base_rate, category_rates, tiers) for a store.
    rules: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # HQ only: the range of rates a store manager may set.
    limits: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_by: Mapped[str64]  # "admin" or the store manager's userid
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[created]


class CommissionStatement(Base):
    """A guide's commission for one month, replaced as a whole by each recompute of that month."""

    __tablename__ = "commission_statements"
    __table_args__ = (UniqueConstraint("staff_id", "month", name="uq_commission_statements_staff_month"),)

    id: Mapped[intpk]
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"))
    month: Mapped[str] = mapped_column(String(7), index=True)  # YYYY-MM in the brand's time zone
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id", ondelete="SET NULL"), index=True)
    plan_scope: Mapped[str] = mapped_column(String(32))  # whose rates applied: "hq" or "store:<id>"
    rules: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # the effective rules, as applied
    order_count: Mapped[int] = mapped_column(Integer, default=0)
    gmv_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    tier_min_gmv_cents: Mapped[int | None] = mapped_column(BigInteger)
    tier_rate_bp: Mapped[int | None] = mapped_column(Integer)
    lines_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    bonus_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    capped_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    total_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    computed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class CommissionStatementLine(Base):
    """One (order, category) behind a statement: its share of GMV, the rate applied and the commission."""

    __tablename__ = "commission_statement_lines"

    id: Mapped[intpk]
    statement_id: Mapped[int] = mapped_column(
        BigIntPK, ForeignKey("commission_statements.id", ondelete="CASCADE"), index=True)
    order_id: Mapped[int] = mapped_column(BigIntPK, ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    ordered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    category: Mapped[str] = mapped_column(String(64), default="")
    gmv_cents: Mapped[int] = mapped_column(BigInteger)
    rate_bp: Mapped[int] = mapped_column(Integer)
    rate_source: Mapped[str] = mapped_column(String(16))  # base | tier | category
    amount_cents: Mapped[int] = mapped_column(BigInteger)
