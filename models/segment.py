"""Tag rules (the tag factory) and saved segments: both are expressions over the same fields."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, intpk, str128


class TagRule(Base):
    """Customers matching ``expression`` carry ``tag_id`` (source: rule); others lose it."""

    __tablename__ = "tag_rules"

    id: Mapped[intpk]
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id", ondelete="CASCADE"), unique=True)
    name: Mapped[str128]
    expression: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(String(512), default="")
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    last_run_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    last_count: Mapped[int | None] = mapped_column()


class Segment(Base):
    """A saved filter over customers; pushes (a later capability) target these."""

    __tablename__ = "segments"

    id: Mapped[intpk]
    name: Mapped[str128] = mapped_column(unique=True)
    expression: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(String(512), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
