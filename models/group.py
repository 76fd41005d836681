"""Customer groups (客户群) and their members."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Enum, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, intpk, str64


class GroupStatus(enum.StrEnum):
    """Lifecycle of a customer group."""

    ACTIVE = "active"
    DISMISSED = "dismissed"


class CustomerGroup(Base):
    """A WeCom customer group chat."""

    __tablename__ = "customer_groups"

    id: Mapped[intpk]
    chat_id: Mapped[str64] = mapped_column(unique=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    owner_userid: Mapped[str] = mapped_column(String(64), default="", index=True)
    notice: Mapped[str] = mapped_column(String(1024), default="")
    member_version: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[GroupStatus] = mapped_column(
        Enum(GroupStatus, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]),
        default=GroupStatus.ACTIVE,
    )
    created_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    dismissed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    synced_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class GroupMember(Base):
    """A member of a customer group: staff (type 1) or customer (type 2)."""

    __tablename__ = "group_members"

    group_id: Mapped[int] = mapped_column(ForeignKey("customer_groups.id", ondelete="CASCADE"), primary_key=True)
    member_userid: Mapped[str64] = mapped_column(primary_key=True)
    member_type: Mapped[int] = mapped_column(default=2)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"), index=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    group_nickname: Mapped[str] = mapped_column(String(128), default="")
    join_time: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    join_scene: Mapped[int] = mapped_column(default=0)
    invitor_userid: Mapped[str] = mapped_column(String(64), default="")
