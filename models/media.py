"""Images the service sends into WeCom chats: the bytes we keep and the temporary media id WeCom gave them."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, created, intpk, str64, str128


class MediaAsset(Base):
    """An image stored once by content hash; WeCom's media_id lives 3 days and is renewed on use."""

    __tablename__ = "media_assets"

    id: Mapped[intpk]
    sha256: Mapped[str64] = mapped_column(unique=True)
    filename: Mapped[str128]
    content_type: Mapped[str] = mapped_column(String(32))
    size: Mapped[int]
    data: Mapped[bytes] = mapped_column(LargeBinary)
    # Where an admin pointed us (a script's media_url), so the URL is fetched once.
    source_url: Mapped[str | None] = mapped_column(String(1024), index=True)
    wecom_media_id: Mapped[str | None] = mapped_column(String(256))
    wecom_uploaded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[created]
