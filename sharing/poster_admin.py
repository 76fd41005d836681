"""Admin JSON API of poster templates (mounted in the /admin sub-app): list, create, edit, disable, preview.

A template is a layout ``spec`` (parsed by sharing/posters.py, exactly what the renderer reads: canvas
size, background colour, QR box, avatar, name / title / subtitle / caption text boxes, an optional card)
plus an optional background image from the media library (``POST /admin/api/media``). Every change
bumps ``version``, which is part of the poster cache key, so no guide is served a poster of the old
layout; every change is audited. Disabling keeps the row (``enabled`` false), so it can be re-enabled.

Errors answer ``{"error": "…", "field": "…"}``: 400 for bad input (the message names the field, e.g.
``spec.qr.x``), 404 for an unknown template, guide or item, 409 for a name already taken.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import io
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from aiohttp import web
from PIL import Image, UnidentifiedImageError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models import AuditEntry, MediaAsset, PosterTemplate
from scrm import keys
from scrm.errors import FieldError
from scrm.jsonweb import json_object, json_response
from sharing.fonts import FontNotFound
from sharing.poster_service import PreviewSubjectNotFound, TemplateUnavailable, preview_poster
from sharing.posters import DEFAULT_TEMPLATE, MAX_INPUT_PIXELS, InvalidTemplate, parse_template

routes = web.RouteTableDef()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: Who the audit trail names for changes made with the admin token.
ADMIN_ACTOR: Final = "admin"
MAX_BODY: Final = 64 * 1024
NAME_MAX: Final = 64
_FIELDS: Final = frozenset({"name", "spec", "background_asset_id", "enabled"})

# Chinese names of the spec's keys, so an error reads 「spec.qr.x（二维码横坐标）：…」.
_BOX_LABELS: Final = {"size": "画布尺寸", "background": "背景色", "qr": "二维码", "card": "卡片底板", "avatar": "头像",
                      "name": "导购姓名", "title": "标题", "subtitle": "副标题", "caption": "说明文字"}
_KEY_LABELS: Final = {"width": "宽度", "height": "高度", "x": "横坐标", "y": "纵坐标", "size": "边长",
                      "font_size": "字号", "color": "颜色", "max_width": "最大宽度", "max_lines": "最多行数",
                      "line_height": "行高", "align": "对齐方式", "bold": "加粗", "text": "文字", "background": "底色",
                      "radius": "圆角半径", "round": "圆形裁剪", "placeholder_color": "占位底色"}


class InvalidPosterTemplate(FieldError):
    """Bad input for a template; ``message`` (Chinese) names the field, ``status`` is 400 or 409."""

    def __init__(self, message: str, field: str = "", status: int = 400) -> None:
        super().__init__(message, field)
        self.status = status


class PosterTemplateNotFound(LookupError):
    """No template with this id."""


def _label(path: str) -> str:
    box, _, key = path.partition(".")
    if box == "size" and key:
        return f"画布{_KEY_LABELS.get(key, key)}"
    if box not in _BOX_LABELS:
        return ""
    return _BOX_LABELS[box] + (_KEY_LABELS.get(key, "") if key else "")


def spec_error(exc: InvalidTemplate) -> InvalidPosterTemplate:
    """The renderer's validation error as an admin error naming ``spec.<field>`` and what it is in Chinese."""
    inner = "" if exc.field in ("", "模板") else exc.field
    field = f"spec.{inner}" if inner else "spec"
    label = _label(inner) if inner else "模板布局"
    return InvalidPosterTemplate(f"{field}（{label}）：{exc.message_zh}" if label else f"{field}：{exc.message_zh}",
                                 field)


# -- service ----------------------------------------------------------------------------------


async def _check_background(session: AsyncSession, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidPosterTemplate("背景图 background_asset_id 须为媒体库图片的编号（整数），或 null 表示不用背景图",
                                    "background_asset_id")
    asset = await session.get(MediaAsset, value)
    if asset is None:
        raise InvalidPosterTemplate(f"背景图 background_asset_id：媒体库中没有编号为 {value} 的图片，"
                                    "请先通过 POST /admin/api/media 上传", "background_asset_id")
    try:
        # Only the header is read: enough to refuse what the renderer would refuse, cheaply.
        with Image.open(io.BytesIO(asset.data)) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        raise InvalidPosterTemplate(f"背景图 background_asset_id：图片 {value} 无法识别，请重新上传 JPG 或 PNG",
                                    "background_asset_id") from None
    if width * height > MAX_INPUT_PIXELS:
        raise InvalidPosterTemplate(f"背景图 background_asset_id：图片 {value} 太大（{width}×{height}），"
                                    "请压缩到 2500 万像素以内", "background_asset_id")
    return value


async def check_template(session: AsyncSession, raw: Mapping[str, Any], *,
                         current: PosterTemplate | None = None) -> dict[str, Any]:
    """Validated column values from an admin's JSON; keys absent from ``raw`` are left out (kept on update)."""
    unknown = sorted(str(k) for k in raw if k not in _FIELDS)
    if unknown:
        raise InvalidPosterTemplate(f"不认识的字段：{'、'.join(unknown)}（可用：name、spec、background_asset_id、enabled）",
                                    unknown[0])
    values: dict[str, Any] = {}
    if "name" in raw or current is None:
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            raise InvalidPosterTemplate("模板名称 name 不能为空", "name")
        name = name.strip()
        if len(name) > NAME_MAX:
            raise InvalidPosterTemplate(f"模板名称 name 最多 {NAME_MAX} 个字符，当前 {len(name)} 个", "name")
        taken = select(PosterTemplate.id).where(PosterTemplate.name == name)
        if current is not None:
            taken = taken.where(PosterTemplate.id != current.id)
        if await session.scalar(taken) is not None:
            raise InvalidPosterTemplate(f"模板名称「{name}」已被其他模板使用", "name", 409)
        values["name"] = name
    if "spec" in raw or current is None:
        # Without a spec a new template starts from the built-in layout, for the admin to adjust.
        spec = raw["spec"] if "spec" in raw else copy.deepcopy(DEFAULT_TEMPLATE)
        try:
            parse_template(spec)
        except InvalidTemplate as exc:
            raise spec_error(exc) from None
        values["spec"] = spec
    if "background_asset_id" in raw:
        values["background_asset_id"] = await _check_background(session, raw["background_asset_id"])
    if "enabled" in raw:
        if not isinstance(raw["enabled"], bool):
            raise InvalidPosterTemplate("启用状态 enabled 须为 true 或 false", "enabled")
        values["enabled"] = raw["enabled"]
    return values


def template_json(row: PosterTemplate) -> dict[str, Any]:
    """A template as the admin sees it."""
    return {"id": row.id, "name": row.name, "spec": row.spec, "background_asset_id": row.background_asset_id,
            "background_url": f"/admin/api/media/{row.background_asset_id}" if row.background_asset_id else None,
            "version": row.version, "enabled": row.enabled,
            "preview_url": f"/admin/api/poster-templates/{row.id}/preview",
            "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat()}


def _audit(action: str, row: PosterTemplate, at: dt.datetime, **detail: Any) -> AuditEntry:
    return AuditEntry(at=at, actor=ADMIN_ACTOR, action=action, subject_type="poster_template", subject_id=str(row.id),
                      detail={"name": row.name, "version": row.version, **detail})


async def create_template(session: AsyncSession, raw: Mapping[str, Any], *, now: dt.datetime) -> PosterTemplate:
    """Add a template (version 1) and audit it."""
    values = await check_template(session, raw)
    row = PosterTemplate(**values, version=1, created_at=now, updated_at=now)
    session.add(row)
    await session.flush()
    session.add(_audit("poster_template_created", row, now, enabled=row.enabled,
                       background_asset_id=row.background_asset_id))
    return row


async def _get(session: AsyncSession, template_id: int) -> PosterTemplate:
    row = await session.get(PosterTemplate, template_id, with_for_update=True)
    if row is None:
        raise PosterTemplateNotFound(template_id)
    return row


async def update_template(session: AsyncSession, template_id: int, raw: Mapping[str, Any], *,
                          now: dt.datetime) -> PosterTemplate:
    """Change a template (fields not given keep their value; a spec replaces the whole spec), bump its version."""
    row = await _get(session, template_id)
    values = await check_template(session, raw, current=row)
    changed = sorted(k for k, v in values.items() if getattr(row, k) != v)
    previous = {k: getattr(row, k) for k in changed}
    for key, value in values.items():
        setattr(row, key, value)
    # Bumped on every accepted edit, even one that changes nothing: the admin asked for a fresh render.
    row.version += 1
    row.updated_at = now
    session.add(_audit("poster_template_updated", row, now, changed=changed, previous=previous))
    return row


async def disable_template(session: AsyncSession, template_id: int, *, now: dt.datetime) -> PosterTemplate:
    """Retire a template without losing it: ``enabled`` false, version bumped, audited."""
    row = await _get(session, template_id)
    was_enabled = row.enabled
    row.enabled = False
    row.version += 1
    row.updated_at = now
    session.add(_audit("poster_template_disabled", row, now, was_enabled=was_enabled))
    return row


# -- handlers ---------------------------------------------------------------------------------


def _error(message: str, field: str, status: int) -> web.Response:
    return json_response({"error": message, "field": field}, status)


def _domain_errors(handler: Handler) -> Handler:
    """Map the template errors to JSON answers."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except InvalidPosterTemplate as exc:
            return json_response(exc.as_json(), exc.status)
        except (PosterTemplateNotFound, TemplateUnavailable):
            return _error(f"海报模板 {request.match_info.get('id', '')} 不存在", "id", 404)
        except PreviewSubjectNotFound as exc:
            return _error(exc.message_zh, exc.field, 404)
        except FontNotFound as exc:
            return _error(exc.message_zh, "", 503)

    return wrapper


async def _body(request: web.Request) -> dict[str, Any]:
    return await json_object(request, InvalidPosterTemplate, max_bytes=MAX_BODY,
                             example='{"name": "会员日红色", "spec": {...}, "background_asset_id": null}')


def _now(request: web.Request) -> dt.datetime:
    return request.config_dict[keys.CLOCK]()


def _id(request: web.Request) -> int:
    return int(request.match_info["id"])


@routes.get("/api/poster-templates")
@_domain_errors
async def list_templates(request: web.Request) -> web.Response:
    """Every template, disabled ones too (guides get the first enabled one unless they pick), and the built-in spec."""
    async with request.config_dict[keys.SESSIONMAKER]() as session:
        rows = (await session.scalars(select(PosterTemplate).order_by(PosterTemplate.id))).all()
        data = [template_json(r) for r in rows]
    return json_response({"templates": data, "default_spec": DEFAULT_TEMPLATE})


@routes.post("/api/poster-templates")
@_domain_errors
async def create(request: web.Request) -> web.Response:
    """Add a template: {"name", "spec"? (default: the built-in layout), "background_asset_id"?, "enabled"?}."""
    body = await _body(request)
    async with request.config_dict[keys.SESSIONMAKER].begin() as session:
        row = await create_template(session, body, now=_now(request))
        data = template_json(row)
    return json_response(data, 201)


@routes.get(r"/api/poster-templates/{id:\d+}")
@_domain_errors
async def show(request: web.Request) -> web.Response:
    """One template."""
    async with request.config_dict[keys.SESSIONMAKER]() as session:
        row = await session.get(PosterTemplate, _id(request))
        if row is None:
            raise PosterTemplateNotFound(_id(request))
        return json_response(template_json(row))


@routes.put(r"/api/poster-templates/{id:\d+}")
@_domain_errors
async def update(request: web.Request) -> web.Response:
    """Change a template; every accepted edit bumps its version, so guides' cached posters are rendered again."""
    body = await _body(request)
    async with request.config_dict[keys.SESSIONMAKER].begin() as session:
        row = await update_template(session, _id(request), body, now=_now(request))
        data = template_json(row)
    return json_response(data)


@routes.delete(r"/api/poster-templates/{id:\d+}")
@_domain_errors
async def disable(request: web.Request) -> web.Response:
    """Disable a template (kept; ``PUT {"enabled": true}`` brings it back)."""
    async with request.config_dict[keys.SESSIONMAKER].begin() as session:
        row = await disable_template(session, _id(request), now=_now(request))
        data = template_json(row)
    return json_response(data)


@routes.get(r"/api/poster-templates/{id:\d+}/preview")
@_domain_errors
async def preview(request: web.Request) -> web.Response:
    """The template rendered: ?content_id= (else a sample title), ?staff=<userid> (else a demo guide), ?format=jpeg."""
    raw_content = request.query.get("content_id", "").strip()
    if raw_content and not raw_content.isdigit():
        raise InvalidPosterTemplate(f"content_id 须为内容编号，实际是 {raw_content[:20]!r}", "content_id")
    fmt = request.query.get("format", "png").upper()
    if fmt not in ("PNG", "JPEG", "JPG"):
        raise InvalidPosterTemplate("format 须为 png 或 jpeg", "format")
    app = request.config_dict
    poster = await preview_poster(app[keys.SESSIONMAKER], app[keys.SETTINGS], _id(request),
                                  content_id=int(raw_content) if raw_content else None,
                                  staff_userid=request.query.get("staff", "").strip() or None,
                                  fmt="PNG" if fmt == "PNG" else "JPEG")
    return web.Response(body=poster.data, content_type=poster.content_type,
                        headers={"Cache-Control": "no-store", "X-Share-Url": poster.url})
