"""Regions, stores and staff (the brand's WeCom members)."""

from __future__ import annotations

import enum

from sqlalchemy import Enum, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, created, intpk, str64, str128


class StaffRole(enum.StrEnum):
    """What a member may see: guides their own customers, managers their store or region."""

    GUIDE = "guide"
    STORE_MANAGER = "store_manager"
    REGION_MANAGER = "region_manager"
    HQ = "hq"


class Region(Base):
    """A sales region (e.g. 华东)."""

    __tablename__ = "regions"

    id: Mapped[intpk]
    code: Mapped[str64] = mapped_column(unique=True)
    name: Mapped[str128]
    created_at: Mapped[created]


class Store(Base):
    """A physical store in one region."""

    __tablename__ = "stores"

    id: Mapped[intpk]
    code: Mapped[str64] = mapped_column(unique=True)
    name: Mapped[str128]
    region_id: Mapped[int | None] = mapped_column(ForeignKey("regions.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[created]


class Staff(Base):
    """A WeCom member of the brand: a guide, a manager, or HQ."""

    __tablename__ = "staff"

    id: Mapped[intpk]
    userid: Mapped[str64] = mapped_column(unique=True)
    name: Mapped[str128] = mapped_column(default="")
    role: Mapped[StaffRole] = mapped_column(
        Enum(StaffRole, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e]),
        default=StaffRole.GUIDE,
    )
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id", ondelete="SET NULL"), index=True)
    region_id: Mapped[int | None] = mapped_column(ForeignKey("regions.id", ondelete="SET NULL"), index=True)
    position: Mapped[str] = mapped_column(String(128), default="")
    # 1 active, 2 disabled, 4 not activated, 5 quit -- as user/get reports it.
    wecom_status: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[created]
