"""A guide's poster for a content item: their short link as the QR code, rendered once per version and cached."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from typing import Final, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import ContentItem, MediaAsset, PosterTemplate, ShareChannel, Staff, Store
from scrm.settings import Settings
from sharing.fonts import find_cjk_font
from sharing.links import ContentNotFound, share_link_for, short_url
from sharing.poster_cache import PosterCache, PosterKey
from sharing.posters import DEFAULT_TEMPLATE, CONTENT_TYPES, parse_template, render_poster_async

PosterFormat = Literal["PNG", "JPEG"]
DEFAULT_VERSION: Final = "default:1"
_FONTS: dict[str, str] = {}


@dataclass(frozen=True)
class Poster:
    """Rendered bytes with their content type and the link the QR code holds."""

    data: bytes
    content_type: str
    url: str
    cached: bool


async def font_path(settings: Settings) -> str:
    """The CJK font for posters (looked up once per process; FontNotFound when there is none)."""
    configured = settings.poster_font or ""
    if configured not in _FONTS:
        _FONTS[configured] = await asyncio.to_thread(find_cjk_font, configured or None)
    return _FONTS[configured]


async def _template(session: AsyncSession, template_id: int | None) -> tuple[dict[str, object], str, bytes | None]:
    query = select(PosterTemplate).where(PosterTemplate.enabled.is_(True))
    query = query.where(PosterTemplate.id == template_id) if template_id else query.order_by(PosterTemplate.id)
    row = (await session.scalars(query.limit(1))).first()
    if row is None:
        if template_id:
            raise ContentNotFound(f"poster template {template_id}")
        return DEFAULT_TEMPLATE, DEFAULT_VERSION, None
    background = None
    if row.background_asset_id is not None:
        asset = await session.get(MediaAsset, row.background_asset_id)
        background = asset.data if asset else None
    return dict(row.spec), f"{row.id}:{row.version}", background


async def guide_poster(maker: async_sessionmaker[AsyncSession], settings: Settings, cache: PosterCache, *,
                       staff_id: int, content_id: int, channel: ShareChannel = ShareChannel.NONE,
                       template_id: int | None = None, fmt: PosterFormat = "PNG", now: dt.datetime) -> Poster:
    """The guide's poster for the item: its QR code is the guide's own short link (created if need be)."""
    async with maker.begin() as session:
        link = await share_link_for(session, staff_id, content_id, channel, secret=settings.share_key, now=now)
        assert link.code is not None
        item = await session.get(ContentItem, content_id)
        guide = (await session.execute(select(Staff.name, Store.name).outerjoin(Store, Store.id == Staff.store_id)
                                       .where(Staff.id == staff_id))).one()
        spec, version, background = await _template(session, template_id)
    assert item is not None
    url = short_url(settings.public_base_url, link.code)
    key = PosterKey(guide=str(link.id), item=f"{item.id}:{item.updated_at.isoformat()}", template_version=version,
                    fmt=fmt)
    hit = cache.get(key)
    if hit is not None:
        return Poster(hit, CONTENT_TYPES[fmt], url, True)
    data = await render_poster_async(parse_template(spec), qr_data=url, guide_name=guide[0] or "导购",
                                     title=item.title, subtitle=guide[1] or "", background=background, fmt=fmt,
                                     font_path=await font_path(settings))
    cache.put(key, data)
    return Poster(data, CONTENT_TYPES[fmt], url, False)
