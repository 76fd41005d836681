"""「联系我」 contact ways: config_id <-> state <-> staff, for channel and campaign attribution."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, created, intpk, str64


class ContactWay(Base):
    """A QR code / button through which customers add a staff member."""

    __tablename__ = "contact_ways"

    id: Mapped[intpk]
    config_id: Mapped[str64] = mapped_column(unique=True)
    # WeCom limits state to 30 characters; it comes back on the add event.
    state: Mapped[str] = mapped_column(String(30), unique=True)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"), index=True)
    campaign: Mapped[str] = mapped_column(String(128), default="")
    remark: Mapped[str] = mapped_column(String(30), default="")
    qr_code: Mapped[str] = mapped_column(String(512), default="")
    # Overrides the default welcome message for customers arriving through this way.
    welcome_text: Mapped[str] = mapped_column(String(4000), default="")
    # Set for a guide's "add me" poster code: new contacts through it count for this content item.
    content_id: Mapped[int | None] = mapped_column(
        ForeignKey("content_items.id", ondelete="SET NULL"), index=True, default=None
    )
    created_at: Mapped[created]
