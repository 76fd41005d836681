"""Admin routes of the media library (mounted in the /admin sub-app): upload an image, look at it."""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import unquote

from aiohttp import BodyPartReader, web

from media.assets import IMAGE_MAX, InvalidMedia, store_image
from models import MediaAsset
from scrm import keys
from scrm.jsonweb import json_response

routes = web.RouteTableDef()
MULTIPART_SLACK: Final = 64 * 1024


def _error(message: str, status: int = 400) -> web.Response:
    return json_response({"error": message}, status)


def asset_json(asset: MediaAsset) -> dict[str, Any]:
    """What an admin sees of a stored image."""
    return {"id": asset.id, "filename": asset.filename, "content_type": asset.content_type, "size": asset.size,
            "sha256": asset.sha256, "url": f"/admin/api/media/{asset.id}"}


async def _file_part(request: web.Request) -> tuple[str, bytes] | None:
    if not request.content_type.startswith("multipart/"):
        return None
    reader = await request.multipart()
    async for part in reader:
        if isinstance(part, BodyPartReader) and part.name == "file":
            data = bytearray()
            while chunk := await part.read_chunk():
                data += chunk
                if len(data) > IMAGE_MAX:
                    raise InvalidMedia("图片不能超过 10 MB（企业微信的限制）。")
            # aiohttp clients percent-encode non-ASCII names (RFC 5987); browsers send them raw.
            return unquote(part.filename or "image"), bytes(data)
    return None


@routes.post("/api/media")
async def upload_image(request: web.Request) -> web.Response:
    """Store an image (multipart field ``file``, JPG/PNG ≤ 10 MB); answers its asset id for attachments."""
    if request.content_length is not None and request.content_length > IMAGE_MAX + MULTIPART_SLACK:
        return _error("图片不能超过 10 MB（企业微信的限制）。", 413)
    try:
        upload = await _file_part(request)
        if upload is None:
            return _error("请用 multipart/form-data 上传，文件字段名为 file。")
        async with request.config_dict[keys.SESSIONMAKER].begin() as session:
            asset = await store_image(session, upload[0], upload[1], now=request.config_dict[keys.CLOCK]())
            body = asset_json(asset)
    except InvalidMedia as exc:
        return _error(exc.message)
    return json_response(body, 201)


@routes.get(r"/api/media/{id:\d+}")
async def show_image(request: web.Request) -> web.Response:
    """The stored image itself, for the admin's preview."""
    async with request.config_dict[keys.SESSIONMAKER]() as session:
        asset = await session.get(MediaAsset, int(request.match_info["id"]))
    if asset is None:
        return _error("素材不存在。", 404)
    return web.Response(body=asset.data, content_type=asset.content_type,
                        headers={"Cache-Control": "private, max-age=86400"})
