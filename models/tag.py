"""Corp tag groups and tags (mirrored from WeCom or made by rules) and customer tag links."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Enum, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, created, intpk, str128


class TagSource(enum.StrEnum):
    """Who put a tag on a customer."""

    WECOM = "wecom"  # read from WeCom (a guide tagged them in the client)
    STAFF = "staff"  # a guide tagged them in our sidebar
    RULE = "rule"  # the tag factory
    BOT = "bot"  # the callback bot (e.g. 已流失 on del_follow_user)


class TagGroup(Base):
    """A group of tags (客户等级, 兴趣 ...)."""

    __tablename__ = "tag_groups"

    id: Mapped[intpk]
    wecom_group_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    name: Mapped[str128]
    order: Mapped[int] = mapped_column(default=0)
    deleted: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[created]


class Tag(Base):
    """A corp tag."""

    __tablename__ = "tags"
    __table_args__ = (UniqueConstraint("group_id", "name", name="uq_tags_group_name"),)

    id: Mapped[intpk]
    group_id: Mapped[int] = mapped_column(ForeignKey("tag_groups.id", ondelete="CASCADE"), index=True)
    wecom_tag_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    name: Mapped[str128]
    order: Mapped[int] = mapped_column(default=0)
    deleted: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[created]


class CustomerTag(Base):
    """A tag on a customer, with where it came from."""

    __tablename__ = "customer_tags"

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True, index=True)
    source: Mapped[TagSource] = mapped_column(
        Enum(TagSource, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])
    )
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
