"""The callback inbox: every verified delivery, stored before it is acknowledged."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Enum, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, intpk, str32, str64


class InboxStatus(enum.StrEnum):
    """Processing state of an inbox entry."""

    PENDING = "pending"
    PROCESSING = "processing"
    DONE = "done"
    IGNORED = "ignored"  # stored, no handler: unknown event
    PARKED = "parked"  # failed too often; visible on the status page


class CallbackEvent(Base):
    """One decrypted callback, deduplicated on its plaintext (or MsgId)."""

    __tablename__ = "callback_events"
    __table_args__ = (Index("ix_callback_events_status_due", "status", "next_attempt_at"),)

    id: Mapped[intpk]
    dedup_key: Mapped[str] = mapped_column(String(96), unique=True)
    agent_id: Mapped[str] = mapped_column(String(32), default="")
    msg_type: Mapped[str32] = mapped_column(default="")
    event: Mapped[str64] = mapped_column(default="")
    change_type: Mapped[str64] = mapped_column(default="")
    plaintext: Mapped[str] = mapped_column(Text)
    status: Mapped[InboxStatus] = mapped_column(
        Enum(InboxStatus, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]),
        default=InboxStatus.PENDING,
    )
    attempts: Mapped[int] = mapped_column(default=0)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    # While PROCESSING: when the claim lapses (a crashed worker's events come back).
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    processed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str] = mapped_column(Text, default="")
    # Number of identical deliveries received after the first (WeCom retries).
    duplicates: Mapped[int] = mapped_column(default=0)
