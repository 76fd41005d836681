"""Customer merges: which record was folded into which, why, and what moved."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, intpk, str32


class CustomerMerge(Base):
    """One merge of ``merged_id`` into ``survivor_id`` (the merged record stays, pointing at the survivor)."""

    __tablename__ = "customer_merges"

    id: Mapped[intpk]
    survivor_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    merged_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), unique=True)
    reason_kind: Mapped[str32]  # the identity kind that proved it (phone, unionid ...)
    reason_value: Mapped[str] = mapped_column(String(128))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    # Rows moved per table, and rows dropped because the survivor already had them.
    moved: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
