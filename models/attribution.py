"""Which guide (and which share link) an order is credited to, recomputed idempotently by sharing/attribution.py."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigIntPK, UTCDateTime


class OrderAttribution(Base):
    """An order credited to a guide: by the share code it carries, or by the customer's last click in the window."""

    __tablename__ = "order_attributions"
    __table_args__ = (Index("ix_order_attributions_staff_ordered", "staff_id", "ordered_at"),)

    order_id: Mapped[int] = mapped_column(BigIntPK, ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"))
    link_id: Mapped[int | None] = mapped_column(ForeignKey("share_links.id", ondelete="SET NULL"), index=True)
    # "share_code" (the order carried the code) or "click" (last touch within the window).
    source: Mapped[str] = mapped_column(String(16))
    touched_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    # Denormalised from the order so period reports and commission need no join.
    ordered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    # Paid minus refunded; 0 once fully refunded or cancelled (the attribution is then reversed).
    gmv_cents: Mapped[int] = mapped_column(BigInteger)
    reversed: Mapped[bool] = mapped_column(default=False)
    computed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
