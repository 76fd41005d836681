"""Channel codes (渠道活码): a multi-guide 「联系我」 QR code with a duty schedule, tags and its own welcome.

A code owns one type-2 contact way (``contact_way_id``): WeCom hands the customers who scan it out
among the users currently on it, and we change that user list as the schedule moves. Each add
through a code is a ``ChannelCodeAdd`` row, the fact table its counts are read from.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, intpk, str64


class ChannelKind(enum.StrEnum):
    """What a code is for."""

    CAMPAIGN = "campaign"  # 活动
    STORE = "store"  # 门店


class DutyRole(enum.StrEnum):
    """A member's place on a code: primaries take scanners in their slots, backups when no primary is on."""

    PRIMARY = "primary"
    BACKUP = "backup"


def _enum(cls: type[enum.StrEnum], length: int) -> Enum:
    return Enum(cls, native_enum=False, length=length, values_callable=lambda e: [m.value for m in e])


class ChannelCode(Base):
    """One channel code; ``contact_way_id`` is NULL until WeCom has made its contact way."""

    __tablename__ = "channel_codes"

    id: Mapped[intpk]
    name: Mapped[str64]
    kind: Mapped[ChannelKind] = mapped_column(_enum(ChannelKind, 16))
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id", ondelete="SET NULL"), index=True)
    contact_way_id: Mapped[int | None] = mapped_column(
        ForeignKey("contact_ways.id", ondelete="SET NULL"), unique=True, default=None
    )
    # cc.<id in base 36>: set right after the row gets its id; comes back as State on every add.
    state: Mapped[str | None] = mapped_column(String(30), unique=True, default=None)
    skip_verify: Mapped[bool] = mapped_column(default=True)
    # Our tag ids (tags.id) put on whoever adds through the code.
    tag_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    welcome_text: Mapped[str] = mapped_column(String(4000), default="")
    # [{type: image, asset_id} | {type: link, title, url, picurl, desc} | {type: miniprogram, title, appid, page,
    # pic_asset_id}], at most 9 (send_welcome_msg's limit).
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(default=True)
    # The userids last given to WeCom, so the duty job calls update_contact_way only on a change.
    duty_userids: Mapped[list[str]] = mapped_column(JSON, default=list)
    duty_synced_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    disabled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)


class ChannelCodeMember(Base):
    """A guide on a code, with their role and weekly slots ([weekday 0=Monday, start, end) minutes, brand time)."""

    __tablename__ = "channel_code_members"
    __table_args__ = (UniqueConstraint("code_id", "staff_id", name="uq_channel_code_members_code_staff"),)

    id: Mapped[intpk]
    code_id: Mapped[int] = mapped_column(ForeignKey("channel_codes.id", ondelete="CASCADE"), index=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), index=True)
    role: Mapped[DutyRole] = mapped_column(_enum(DutyRole, 16))
    position: Mapped[int] = mapped_column(default=0)
    # [[weekday, start_minute, end_minute], ...]; empty means always on (for a backup: always available).
    schedule: Mapped[list[list[int]]] = mapped_column(JSON, default=list)


class ChannelCodeAdd(Base):
    """One add through a code: who added which guide, when (the event's time). Retries insert it once."""

    __tablename__ = "channel_code_adds"
    __table_args__ = (
        UniqueConstraint("code_id", "staff_id", "external_userid", "added_at", name="uq_channel_code_adds_event"),
        Index("ix_channel_code_adds_code_added", "code_id", "added_at"),
    )

    id: Mapped[intpk]
    code_id: Mapped[int] = mapped_column(ForeignKey("channel_codes.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), index=True)
    external_userid: Mapped[str64]
    added_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
