"""Notes a guide keeps on a customer (跟进记录), shown in the sidebar."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, intpk


class CustomerNote(Base):
    """One note: who wrote it about whom, when; the author may delete it (kept, marked deleted)."""

    __tablename__ = "customer_notes"
    __table_args__ = (Index("ix_customer_notes_customer_created", "customer_id", "created_at"),)

    id: Mapped[intpk]
    # Merges move notes with the customer (customers.identity finds this foreign key).
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), index=True)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
