"""Talk scripts (话术) for store guides: categories, scripts with variables and a card, and sends."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, created, intpk, str64, str128


class ScriptCategory(Base):
    """A shelf of scripts in the sidebar (复购提醒, 新客欢迎 ...), shown by ``order`` descending."""

    __tablename__ = "script_categories"

    id: Mapped[intpk]
    name: Mapped[str64] = mapped_column(unique=True)
    order: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[created]


class TalkScript(Base):
    """A message a guide sends in one click: text with {variables}, an optional card, an optional condition."""

    __tablename__ = "talk_scripts"
    __table_args__ = (Index("ix_talk_scripts_enabled_priority", "enabled", "priority"),)

    id: Mapped[intpk]
    category_id: Mapped[int] = mapped_column(ForeignKey("script_categories.id"), index=True)
    title: Mapped[str128]
    body: Mapped[str] = mapped_column(Text)
    # {"type": "image" | "link" | "miniprogram", ...}: the shape sidebar/scripts.py validates.
    attachment: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # A rule-language expression (customers/rules.py); None for a script every customer may get.
    condition: Mapped[str | None] = mapped_column(Text)
    priority: Mapped[int] = mapped_column(default=0)
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class ScriptSend(Base):
    """One script sent by a guide into a single chat (customer) or a group chat."""

    __tablename__ = "script_sends"
    __table_args__ = (
        Index("ix_script_sends_script_sent", "script_id", "sent_at"),
        Index("ix_script_sends_staff_sent", "staff_id", "sent_at"),
    )

    id: Mapped[intpk]
    script_id: Mapped[int] = mapped_column(ForeignKey("talk_scripts.id", ondelete="CASCADE"))
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"), index=True)
    external_userid: Mapped[str64] = mapped_column(default="")
    chat_id: Mapped[str64] = mapped_column(default="")
    sent_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
