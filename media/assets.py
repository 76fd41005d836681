"""Store images by content hash and turn them into WeCom temporary media ids on demand (PROTOCOL.md §4.16).

sendChatMessage, the welcome message and mass messages take an image only as a ``media_id`` that
lives 3 days, so we keep the bytes and upload again when the id we hold is about to expire. The
upload happens outside any transaction; two concurrent first uses may both upload, which is harmless.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Final

import aiohttp
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import MediaAsset, insert_ignore
from wecom.gateway import WeComGateway

_LOGGER = logging.getLogger(__name__)

IMAGE_MAX: Final = 10 * 1024 * 1024  # media/upload: image ≤ 10 MB, JPG/PNG
IMAGE_MIN: Final = 6  # every file > 5 bytes
#: Re-upload before WeCom's 3 days run out, so an id handed to a page is still valid when it is used.
MEDIA_REUSE: Final = dt.timedelta(days=2, hours=12)
FETCH_TIMEOUT: Final = 10.0
_MAGIC: Final = ((b"\x89PNG\r\n\x1a\n", "image/png", ".png"), (b"\xff\xd8\xff", "image/jpeg", ".jpg"))

Fetch = Callable[[str], Awaitable[bytes]]


class InvalidMedia(ValueError):
    """The file is not an image WeCom accepts; ``message`` says why in Chinese."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class MediaUnavailable(RuntimeError):
    """The image could not be fetched from its URL; ``message`` says why in Chinese."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def sniff_image(data: bytes) -> tuple[str, str]:
    """(content type, extension) of a PNG or JPEG by its magic bytes; InvalidMedia otherwise."""
    if len(data) < IMAGE_MIN:
        raise InvalidMedia("图片文件为空或已损坏。")
    if len(data) > IMAGE_MAX:
        raise InvalidMedia(f"图片不能超过 10 MB（企业微信的限制），当前 {len(data) / 1048576:.1f} MB。")
    for magic, content_type, ext in _MAGIC:
        if data.startswith(magic):
            return content_type, ext
    raise InvalidMedia("只支持 JPG 或 PNG 图片（企业微信临时素材的要求）。")


def _filename(name: str, ext: str) -> str:
    stem = (name or "image").rsplit("/", 1)[-1].rsplit(".", 1)[0][:100] or "image"
    return stem + ext


async def store_image(session: AsyncSession, filename: str, data: bytes, *, now: dt.datetime,
                      source_url: str | None = None) -> MediaAsset:
    """The asset holding these bytes (stored once per content hash); InvalidMedia if not a JPG/PNG."""
    content_type, ext = sniff_image(data)
    digest = hashlib.sha256(data).hexdigest()
    await insert_ignore(session, MediaAsset, {
        "sha256": digest, "filename": _filename(filename, ext), "content_type": content_type, "size": len(data),
        "data": data, "source_url": source_url, "created_at": now}, ["sha256"])
    asset = await session.scalar(select(MediaAsset).where(MediaAsset.sha256 == digest))
    assert asset is not None
    if source_url and asset.source_url is None:
        asset.source_url = source_url
    return asset


async def fetch_url(url: str) -> bytes:
    """GET an image URL with a time and size limit; MediaUnavailable with the reason otherwise."""
    try:
        timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as http, http.get(url) as response:
            if response.status != 200:
                raise MediaUnavailable(f"图片地址返回 HTTP {response.status}：{url}")
            data = await response.content.read(IMAGE_MAX + 1)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise MediaUnavailable(f"无法下载图片（{type(exc).__name__}）：{url}") from None
    return data


async def asset_for_url(maker: async_sessionmaker[AsyncSession], url: str, *, now: dt.datetime,
                        fetch: Fetch = fetch_url) -> int:
    """The asset id for an image URL, fetched once and kept."""
    async with maker() as session:
        known = await session.scalar(select(MediaAsset.id).where(MediaAsset.source_url == url).limit(1))
    if known is not None:
        return known
    data = await fetch(url)  # outside any transaction
    try:
        async with maker.begin() as session:
            return (await store_image(session, url, data, now=now, source_url=url)).id
    except InvalidMedia as exc:
        raise InvalidMedia(f"{exc.message}（{url}）") from None


async def media_id_for(maker: async_sessionmaker[AsyncSession], gateway: WeComGateway, asset_id: int, *,
                       now: dt.datetime) -> str:
    """A WeCom temporary media id for the asset, reusing the last upload while it has half a day left."""
    async with maker() as session:
        asset = await session.get(MediaAsset, asset_id)
        if asset is None:
            raise LookupError(f"media asset {asset_id} does not exist")
        if asset.wecom_media_id and asset.wecom_uploaded_at and now - asset.wecom_uploaded_at < MEDIA_REUSE:
            return asset.wecom_media_id
        filename, data, content_type = asset.filename, asset.data, asset.content_type
    media_id = await gateway.upload_media("image", filename, data, content_type)
    async with maker.begin() as session:
        asset = await session.get(MediaAsset, asset_id)
        if asset is not None:
            asset.wecom_media_id, asset.wecom_uploaded_at = media_id, now
    _LOGGER.info("uploaded media asset %s as %s", asset_id, media_id)
    return media_id
