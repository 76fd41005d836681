"""The unified customer (one person) and the identities that point at them."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Enum, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, created, intpk, str128


class IdentityKind(enum.StrEnum):
    """Kinds of identifiers a customer can be known by."""

    EXTERNAL_USERID = "external_userid"
    UNIONID = "unionid"
    PHONE = "phone"
    TMALL = "tmall"
    JD = "jd"
    DOUYIN = "douyin"
    POS = "pos"
    MINIAPP_OPENID = "miniapp_openid"


class Customer(Base):
    """One person, whatever channels they are known in."""

    __tablename__ = "customers"

    id: Mapped[intpk]
    name: Mapped[str128] = mapped_column(default="")
    avatar: Mapped[str] = mapped_column(String(512), default="")
    # 0 unknown, 1 male, 2 female (WeCom's coding).
    gender: Mapped[int] = mapped_column(default=0)
    # 1 WeChat user, 2 WeCom user of another company.
    wecom_type: Mapped[int] = mapped_column(default=1)
    corp_name: Mapped[str128] = mapped_column(default="")
    # Set when this record was merged into another; the survivor holds everything.
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    created_at: Mapped[created]
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class CustomerIdentity(Base):
    """An identifier (external_userid, unionid, phone, channel id) pointing at a customer."""

    __tablename__ = "customer_identities"
    __table_args__ = (UniqueConstraint("kind", "value", name="uq_customer_identities_kind_value"),)

    id: Mapped[intpk]
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    kind: Mapped[IdentityKind] = mapped_column(
        Enum(IdentityKind, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e])
    )
    value: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[created]
