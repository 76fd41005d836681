"""The content library and each guide's share link to an item (one per guide × item × channel)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from models import ContentItem, ContentKind, LinkClick, ShareChannel, ShareLink, Tag, TagGroup, insert_ignore
from sharing.codes import code_for, encode

TITLE_MAX: Final = 128
URL_MAX: Final = 2048
INTEREST_TAGS_MAX: Final = 20  # a visitor is tagged with all of them at once
SHORT_PATH: Final = "/s/"
CHANNEL_NAMES: Final = {ShareChannel.NONE: "未指定", ShareChannel.MOMENTS: "朋友圈", ShareChannel.GROUP: "群",
                        ShareChannel.PRIVATE: "私聊"}
KIND_NAMES: Final = {ContentKind.PRODUCT: "商品", ContentKind.CAMPAIGN: "活动", ContentKind.ARTICLE: "文章",
                     ContentKind.MINIPROGRAM: "小程序"}


class InvalidContent(ValueError):
    """Bad input for the content library; ``message`` (Chinese) names the field and what is wrong."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ContentNotFound(LookupError):
    """No such content item (or it is disabled, for guides)."""


def _text(raw: Mapping[str, Any], key: str, label: str, limit: int, *, required: bool = True) -> str:
    value = raw.get(key)
    if value is None or value == "":
        if required:
            raise InvalidContent(f"{label}不能为空", key)
        return ""
    if not isinstance(value, str):
        raise InvalidContent(f"{label}须为文字", key)
    value = value.strip()
    if required and not value:
        raise InvalidContent(f"{label}不能为空", key)
    if len(value) > limit:
        raise InvalidContent(f"{label}最多 {limit} 个字符，当前 {len(value)} 个", key)
    return value


def _url(raw: Mapping[str, Any], key: str, label: str, *, required: bool) -> str:
    value = _text(raw, key, label, URL_MAX, required=required)
    if value:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidContent(f"{label}须为 http(s) 地址，实际是 {value!r}", key)
    return value


def parse_channel(value: Any) -> ShareChannel:
    """A share channel from its value ('moments', 'group', 'private' or '') or Chinese name."""
    if value is None:
        return ShareChannel.NONE
    for channel, name in CHANNEL_NAMES.items():
        if value in (channel.value, name):
            return channel
    raise InvalidContent(f"渠道须为 moments（朋友圈）、group（群）或 private（私聊），实际是 {value!r}", "channel")


async def check_content(session: AsyncSession, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Validated column values for a content item from an admin's JSON."""
    kind_raw = raw.get("kind")
    try:
        kind = ContentKind(kind_raw)
    except ValueError:
        raise InvalidContent(f"类型须为 product（商品）、campaign（活动）、article（文章）或 miniprogram（小程序），"
                             f"实际是 {kind_raw!r}", "kind") from None
    values: dict[str, Any] = {
        "kind": kind, "title": _text(raw, "title", "标题", TITLE_MAX),
        "target_url": _url(raw, "target_url", "跳转地址 target_url", required=True),
        "cover_url": _url(raw, "cover_url", "封面 cover_url", required=False),
        "category": _text(raw, "category", "品类", 64, required=False),
        "miniprogram_appid": _text(raw, "miniprogram_appid", "小程序 appid", 64, required=kind is ContentKind.MINIPROGRAM),
        "miniprogram_page": _text(raw, "miniprogram_page", "小程序页面", 512, required=kind is ContentKind.MINIPROGRAM),
        "enabled": raw.get("enabled", True) is not False,
    }
    # Only null means "no tags": 0, "" or {} are mistakes to report.
    tags = raw.get("interest_tag_ids")
    if tags is None:
        tags = []
    if not isinstance(tags, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in tags):
        raise InvalidContent("兴趣标签 interest_tag_ids 须为标签编号的列表", "interest_tag_ids")
    if len(tags) > INTEREST_TAGS_MAX:
        raise InvalidContent(f"兴趣标签最多 {INTEREST_TAGS_MAX} 个，当前 {len(tags)} 个", "interest_tag_ids")
    if tags:
        known = set((await session.scalars(select(Tag.id).join(TagGroup, TagGroup.id == Tag.group_id).where(
            Tag.id.in_(tags), Tag.deleted.is_(False), TagGroup.deleted.is_(False)))).all())
        missing = [t for t in tags if t not in known]
        if missing:
            raise InvalidContent(f"兴趣标签不存在或已删除：{missing}", "interest_tag_ids")
    values["interest_tag_ids"] = list(dict.fromkeys(tags))
    return values


def content_json(item: ContentItem) -> dict[str, Any]:
    """A content item as the admin and the sidebar see it."""
    return {"id": item.id, "kind": item.kind.value, "kind_name": KIND_NAMES[item.kind], "title": item.title,
            "cover_url": item.cover_url, "target_url": item.target_url, "category": item.category,
            "miniprogram_appid": item.miniprogram_appid, "miniprogram_page": item.miniprogram_page,
            "interest_tag_ids": item.interest_tag_ids, "enabled": item.enabled,
            "updated_at": item.updated_at.isoformat()}


async def create_content(session: AsyncSession, raw: Mapping[str, Any], *, now: dt.datetime) -> ContentItem:
    """Add an item to the library."""
    item = ContentItem(**await check_content(session, raw), created_at=now, updated_at=now)
    session.add(item)
    await session.flush()
    return item


async def update_content(session: AsyncSession, content_id: int, changes: Mapping[str, Any], *,
                         now: dt.datetime) -> ContentItem:
    """Change an item (fields not given keep their value); its links keep their codes."""
    item = await session.get(ContentItem, content_id)
    if item is None:
        raise ContentNotFound(content_id)
    current = content_json(item) | {"kind": item.kind.value}
    values = await check_content(session, current | dict(changes))
    for key, value in values.items():
        setattr(item, key, value)
    item.updated_at = now
    return item


async def list_content(session: AsyncSession, *, q: str | None = None, kind: str | None = None,
                       enabled_only: bool = False, limit: int = 200) -> list[ContentItem]:
    """Library items, newest first, filtered by words in the title or category and by kind."""
    query = select(ContentItem).order_by(ContentItem.updated_at.desc(), ContentItem.id.desc()).limit(limit)
    if q:
        like = f"%{q.strip()}%"
        query = query.where(or_(ContentItem.title.like(like), ContentItem.category.like(like)))
    if kind:
        query = query.where(ContentItem.kind == kind)
    if enabled_only:
        query = query.where(ContentItem.enabled.is_(True))
    return list((await session.scalars(query)).all())


def short_url(public_base_url: str, code: str) -> str:
    """The link a guide shares."""
    return public_base_url.rstrip("/") + SHORT_PATH + code


async def share_link_for(session: AsyncSession, staff_id: int, content_id: int, channel: ShareChannel, *,
                         secret: str, now: dt.datetime) -> ShareLink:
    """The guide's link to the item on a channel: created on first ask, the same link every time after."""
    item = await session.get(ContentItem, content_id)
    if item is None or not item.enabled:
        raise ContentNotFound(content_id)
    key = {"staff_id": staff_id, "content_id": content_id, "channel": channel}
    await insert_ignore(session, ShareLink, key | {"enabled": True, "created_at": now},
                        ["staff_id", "content_id", "channel"])
    link = (await session.scalars(select(ShareLink).where(*(getattr(ShareLink, k) == v for k, v in key.items()))
                                  .execution_options(populate_existing=True))).one()
    if link.code is None:
        link.code = await _free_code(session, link.id, secret)
        await session.flush()
    return link


async def _free_code(session: AsyncSession, link_id: int, secret: str) -> str:
    code = code_for(link_id, secret)
    # Codes minted under an earlier secret may occupy this one; a suffix keeps the new code unique.
    suffix = 0
    candidate = code
    while await session.scalar(select(ShareLink.id).where(ShareLink.code == candidate)) is not None:
        candidate = code + encode(suffix)[-2:]
        suffix += 1
    return candidate


async def guide_links(session: AsyncSession, public_base_url: str, *,
                      staff_id: int | None = None) -> list[tuple[int, dict[str, Any]]]:
    """(staff id, link) for one guide's links, or everyone's, with clicks and unique visitors; most clicked first."""
    scope = [ShareLink.code.is_not(None)] + ([ShareLink.staff_id == staff_id] if staff_id is not None else [])
    # Aggregate only the clicks of the links asked for, not the whole click table.
    clicks = (select(LinkClick.link_id, func.count().label("clicks"),
                     func.count(func.distinct(LinkClick.visitor_id)).label("visitors"))
              .join(ShareLink, ShareLink.id == LinkClick.link_id).where(*scope)
              .group_by(LinkClick.link_id).subquery())
    rows = (await session.execute(
        select(ShareLink, ContentItem, func.coalesce(clicks.c.clicks, 0), func.coalesce(clicks.c.visitors, 0))
        .join(ContentItem, ContentItem.id == ShareLink.content_id)
        .outerjoin(clicks, clicks.c.link_id == ShareLink.id)
        .where(*scope)
        .order_by(func.coalesce(clicks.c.clicks, 0).desc(), ShareLink.id.desc()))).all()
    return [(link.staff_id, link_json(link, item, public_base_url) | {"clicks": int(n), "visitors": int(v)})
            for link, item, n, v in rows]


def link_json(link: ShareLink, item: ContentItem, public_base_url: str) -> dict[str, Any]:
    """A share link as the guide sees it."""
    assert link.code is not None
    return {"id": link.id, "code": link.code, "url": short_url(public_base_url, link.code),
            "channel": link.channel.value, "channel_name": CHANNEL_NAMES[link.channel], "enabled": link.enabled,
            "content": content_json(item)}
