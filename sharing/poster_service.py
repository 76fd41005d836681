"""A guide's poster for a content item: their short link as the QR code, rendered once per version and cached."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from typing import Final, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import ContentItem, MediaAsset, PosterTemplate, ShareChannel, ShareLink, Staff, Store
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


class TemplateUnavailable(ContentNotFound):
    """The poster template asked for is unknown or disabled; ``message_zh`` says which, for the guide."""

    def __init__(self, template_id: int, *, disabled: bool) -> None:
        self.template_id = template_id
        self.disabled = disabled
        self.message_zh = (f"海报模板 {template_id} 已停用，请选择其他模板。" if disabled
                           else f"海报模板 {template_id} 不存在，请选择其他模板。")
        super().__init__(f"poster template {template_id}")


async def _background(session: AsyncSession, row: PosterTemplate) -> bytes | None:
    if row.background_asset_id is None:
        return None
    asset = await session.get(MediaAsset, row.background_asset_id)
    return asset.data if asset else None


async def load_template(session: AsyncSession, template_id: int | None
                        ) -> tuple[dict[str, object], str, bytes | None]:
    """(spec, version tag, background) of template ``template_id``; None: the first enabled one, else built-in."""
    if template_id:
        row = await session.get(PosterTemplate, template_id)
        if row is None or not row.enabled:
            raise TemplateUnavailable(template_id, disabled=row is not None)
    else:
        row = (await session.scalars(select(PosterTemplate).where(PosterTemplate.enabled.is_(True))
                                     .order_by(PosterTemplate.id).limit(1))).first()
        if row is None:
            return DEFAULT_TEMPLATE, DEFAULT_VERSION, None
    return dict(row.spec), f"{row.id}:{row.version}", await _background(session, row)


async def guide_poster(maker: async_sessionmaker[AsyncSession], settings: Settings, cache: PosterCache, *,
                       staff_id: int, content_id: int, channel: ShareChannel = ShareChannel.NONE,
                       template_id: int | None = None, fmt: PosterFormat = "PNG", now: dt.datetime) -> Poster:
    """The guide's poster for the item: its QR code is the guide's own short link (created if need be).

    ``template_id`` picks an enabled template (TemplateUnavailable otherwise); None means the first enabled
    one, or the built-in default when there is none.
    """
    async with maker.begin() as session:
        link = await share_link_for(session, staff_id, content_id, channel, secret=settings.share_key, now=now)
        assert link.code is not None
        item = await session.get(ContentItem, content_id)
        guide = (await session.execute(select(Staff.name, Store.name).outerjoin(Store, Store.id == Staff.store_id)
                                       .where(Staff.id == staff_id))).one()
        spec, version, background = await load_template(session, template_id)
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


PREVIEW_GUIDE: Final = "示例导购"
PREVIEW_STORE: Final = "示例门店"
PREVIEW_TITLE: Final = "示例商品 · 会员日满 299 减 50，限时两天"
# A well-formed code no link holds: the preview's QR code is as dense as a real one but leads nowhere.
PREVIEW_CODE: Final = "SAMPLE2"


class PreviewSubjectNotFound(LookupError):
    """The guide or item asked for in a preview does not exist; ``field`` names the query parameter."""

    def __init__(self, message_zh: str, field: str) -> None:
        super().__init__(message_zh)
        self.message_zh = message_zh
        self.field = field


async def preview_poster(maker: async_sessionmaker[AsyncSession], settings: Settings, template_id: int, *,
                         content_id: int | None = None, staff_userid: str | None = None,
                         fmt: PosterFormat = "PNG") -> Poster:
    """A template rendered for an admin (disabled ones too), never cached and without creating any link.

    The guide is ``staff_userid`` or a demo guide; the title is the item's or a sample; the QR code holds
    the guide's existing link to the item when there is one, else a placeholder link.
    """
    async with maker() as session:
        row = await session.get(PosterTemplate, template_id)
        if row is None:
            raise TemplateUnavailable(template_id, disabled=False)
        spec, background = dict(row.spec), await _background(session, row)
        guide_name, store_name, staff_id = PREVIEW_GUIDE, PREVIEW_STORE, None
        if staff_userid:
            found = (await session.execute(select(Staff.id, Staff.name, Store.name)
                                           .outerjoin(Store, Store.id == Staff.store_id)
                                           .where(Staff.userid == staff_userid))).first()
            if found is None:
                raise PreviewSubjectNotFound(f"没有这位员工：{staff_userid}", "staff")
            staff_id, guide_name, store_name = found[0], found[1] or staff_userid, found[2] or ""
        title, code = PREVIEW_TITLE, PREVIEW_CODE
        if content_id is not None:
            item = await session.get(ContentItem, content_id)
            if item is None:
                raise PreviewSubjectNotFound(f"内容 {content_id} 不存在", "content_id")
            title = item.title
            if staff_id is not None:
                existing = await session.scalar(select(ShareLink.code).where(
                    ShareLink.staff_id == staff_id, ShareLink.content_id == content_id, ShareLink.code.is_not(None))
                    .order_by(ShareLink.id).limit(1))
                code = existing or code
    url = short_url(settings.public_base_url, code)
    data = await render_poster_async(parse_template(spec), qr_data=url, guide_name=guide_name, title=title,
                                     subtitle=store_name, background=background, fmt=fmt,
                                     font_path=await font_path(settings))
    return Poster(data, CONTENT_TYPES[fmt], url, False)


def parse_template_param(raw: str | None) -> int | None:
    """A guide's ``?template=`` (a template id, or empty for the default); ValueError with a Chinese reason."""
    if raw is None or not raw.strip():
        return None
    if not raw.strip().isdigit() or int(raw) <= 0:
        raise ValueError(f"template 须为海报模板编号，实际是 {raw[:20]!r}")
    return int(raw)


async def enabled_templates(session: AsyncSession) -> list[dict[str, object]]:
    """The templates a guide may pick (id, name, version), the default (first) one first."""
    rows = (await session.execute(select(PosterTemplate.id, PosterTemplate.name, PosterTemplate.version)
                                  .where(PosterTemplate.enabled.is_(True)).order_by(PosterTemplate.id))).all()
    return [{"id": i, "name": n, "version": v} for i, n, v in rows]
