"""Follow relations: which staff member has which customer in WeCom, and how it started."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Enum, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, intpk, str64


class FollowStatus(enum.StrEnum):
    """State of a staff <-> customer relation."""

    ACTIVE = "active"
    # Added with skip-verify before the member confirmed (add_half_external_contact).
    HALF = "half"
    # The customer deleted the member (del_follow_user): churn.
    LOST = "lost"
    # The member deleted the customer (del_external_contact).
    DELETED = "deleted"
    # Deleted because the customer was transferred to another member.
    TRANSFERRED = "transferred"


class FollowRelation(Base):
    """One staff member's relation to one customer."""

    __tablename__ = "follow_relations"
    __table_args__ = (UniqueConstraint("staff_id", "customer_id", name="uq_follow_relations_staff_customer"),)

    id: Mapped[intpk]
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    external_userid: Mapped[str64] = mapped_column(index=True)
    remark: Mapped[str] = mapped_column(String(128), default="")
    description: Mapped[str] = mapped_column(String(512), default="")
    remark_mobiles: Mapped[str] = mapped_column(String(255), default="")
    state: Mapped[str] = mapped_column(String(64), default="")
    add_way: Mapped[int] = mapped_column(default=0)
    oper_userid: Mapped[str] = mapped_column(String(64), default="")
    contact_way_id: Mapped[int | None] = mapped_column(ForeignKey("contact_ways.id", ondelete="SET NULL"))
    status: Mapped[FollowStatus] = mapped_column(
        Enum(FollowStatus, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]),
        default=FollowStatus.ACTIVE,
    )
    added_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    removed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    welcomed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
