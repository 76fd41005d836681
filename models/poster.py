"""Poster templates: where the QR code, the guide's avatar and name and the title go on a background."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, intpk, str64


class PosterTemplate(Base):
    """A layout (sharing/posters.py validates ``spec``); ``version`` grows on every edit so caches miss."""

    __tablename__ = "poster_templates"

    id: Mapped[intpk]
    name: Mapped[str64] = mapped_column(unique=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    background_asset_id: Mapped[int | None] = mapped_column(ForeignKey("media_assets.id", ondelete="SET NULL"))
    version: Mapped[int] = mapped_column(default=1)
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
