"""Share links: the content guides share, each guide's short link to it, and every click on it."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, intpk, str32, str64, str128


class ContentKind(enum.StrEnum):
    """What a piece of content is."""

    PRODUCT = "product"  # 商品页
    CAMPAIGN = "campaign"  # 活动落地页
    ARTICLE = "article"  # 文章
    MINIPROGRAM = "miniprogram"  # 小程序页面


class ShareChannel(enum.StrEnum):
    """Where a guide posts a link, so the brand sees where clicks come from."""

    NONE = ""
    MOMENTS = "moments"  # 朋友圈
    GROUP = "group"  # 群
    PRIVATE = "private"  # 私聊


def _enum(cls: type[enum.StrEnum], length: int) -> Enum:
    return Enum(cls, native_enum=False, length=length, values_callable=lambda e: [m.value for m in e])


class ContentItem(Base):
    """A product page, campaign landing page, article or mini-program page in the content library."""

    __tablename__ = "content_items"

    id: Mapped[intpk]
    kind: Mapped[ContentKind] = mapped_column(_enum(ContentKind, 16))
    title: Mapped[str128]
    cover_url: Mapped[str] = mapped_column(String(1024), default="")
    # Where the short link redirects (an https URL; for a mini-program page, its web fallback).
    target_url: Mapped[str] = mapped_column(String(2048))
    miniprogram_appid: Mapped[str] = mapped_column(String(64), default="")
    miniprogram_page: Mapped[str] = mapped_column(String(512), default="")
    category: Mapped[str64] = mapped_column(default="")
    # Our tag ids given to a known visitor who opens it (interest tags).
    interest_tag_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class ShareLink(Base):
    """One guide's short link to one item (per channel): the same guide and item always get the same code."""

    __tablename__ = "share_links"
    __table_args__ = (UniqueConstraint("staff_id", "content_id", "channel", name="uq_share_links_staff_content_channel"),)

    id: Mapped[intpk]
    # Set right after insert from the row id (sharing/codes.py), hence nullable.
    code: Mapped[str | None] = mapped_column(String(16), unique=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), index=True)
    content_id: Mapped[int] = mapped_column(ForeignKey("content_items.id", ondelete="CASCADE"), index=True)
    channel: Mapped[ShareChannel] = mapped_column(_enum(ShareChannel, 16), default=ShareChannel.NONE)
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class LinkClick(Base):
    """One open of a short link: when, by which visitor (cookie), from which kind of browser."""

    __tablename__ = "link_clicks"
    __table_args__ = (
        Index("ix_link_clicks_link_at", "link_id", "at"),
        Index("ix_link_clicks_visitor_at", "visitor_id", "at"),
        Index("ix_link_clicks_customer_at", "customer_id", "at"),
    )

    id: Mapped[intpk]
    link_id: Mapped[int] = mapped_column(ForeignKey("share_links.id", ondelete="CASCADE"))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    visitor_id: Mapped[str32]
    ua_class: Mapped[str] = mapped_column(String(8))  # wecom | wechat | other
    # Set when the visitor is known (a follow relation with this visitor id, or OAuth); merges move it.
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"))


class Visitor(Base):
    """A visitor id (cookie) we know the customer behind."""

    __tablename__ = "visitors"

    visitor_id: Mapped[str32] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    # How we learnt it: "follow" (the customer's own link from their guide), "oauth".
    source: Mapped[str] = mapped_column(String(16))
    identified_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
