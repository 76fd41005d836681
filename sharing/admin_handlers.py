"""Admin JSON API of the content library and the share links (mounted in the /admin sub-app).

Errors answer ``{"error": "…", "field": "…"}``: 400 for bad input, 404 for an unknown id.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models import ContentItem, Staff
from scrm import keys
from scrm.jsonweb import json_object, json_response
from sharing import add_me
from sharing import links as svc

routes = web.RouteTableDef()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _domain_errors(handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except svc.InvalidContent as exc:
            return json_response({"error": exc.message, "field": exc.field}, 400)
        except svc.ContentNotFound:
            return json_response({"error": "内容不存在"}, 404)
        except _UnknownStaff:
            return json_response({"error": "没有这位员工", "field": "staff"}, 404)

    return wrapper


async def _body(request: web.Request) -> dict[str, Any]:
    return await json_object(request, svc.InvalidContent)


class _UnknownStaff(LookupError):
    """?staff= names no staff member."""


async def _staff_filter(session: AsyncSession, request: web.Request) -> int | None:
    """The staff id ?staff=<userid> names (None without the parameter)."""
    userid = request.query.get("staff")
    if not userid:
        return None
    staff_id = await session.scalar(select(Staff.id).where(Staff.userid == userid))
    if staff_id is None:
        raise _UnknownStaff(userid)
    return int(staff_id)


def _now(request: web.Request) -> dt.datetime:
    return request.config_dict[keys.CLOCK]()


@routes.get("/api/content")
@_domain_errors
async def list_content(request: web.Request) -> web.Response:
    """The library: ?q= words in title or category, ?kind= product | campaign | article | miniprogram."""
    async with request.config_dict[keys.SESSIONMAKER]() as session:
        items = await svc.list_content(session, q=request.query.get("q"), kind=request.query.get("kind") or None)
    return json_response({"content": [svc.content_json(i) for i in items]})


@routes.post("/api/content")
@_domain_errors
async def create_content(request: web.Request) -> web.Response:
    """Add an item: {kind, title, target_url, cover_url?, category?, miniprogram_appid?, miniprogram_page?, interest_tag_ids?}."""
    body = await _body(request)
    async with request.config_dict[keys.SESSIONMAKER].begin() as session:
        item = await svc.create_content(session, body, now=_now(request))
        data = svc.content_json(item)
    return json_response(data, 201)


@routes.get(r"/api/content/{id:\d+}")
@_domain_errors
async def get_content(request: web.Request) -> web.Response:
    """One item."""
    async with request.config_dict[keys.SESSIONMAKER]() as session:
        item = await session.get(ContentItem, int(request.match_info["id"]))
    if item is None:
        raise svc.ContentNotFound(request.match_info["id"])
    return json_response(svc.content_json(item))


@routes.put(r"/api/content/{id:\d+}")
@_domain_errors
async def update_content(request: web.Request) -> web.Response:
    """Change an item; ``{"enabled": false}`` retires it (its links then show the expired page)."""
    body = await _body(request)
    async with request.config_dict[keys.SESSIONMAKER].begin() as session:
        item = await svc.update_content(session, int(request.match_info["id"]), body, now=_now(request))
        data = svc.content_json(item)
    return json_response(data)


@routes.get("/api/share-links")
@_domain_errors
async def list_links(request: web.Request) -> web.Response:
    """Every guide's links with clicks and visitors: ?staff=<userid> for one guide."""
    settings = request.config_dict[keys.SETTINGS]
    async with request.config_dict[keys.SESSIONMAKER]() as session:
        staff_id = await _staff_filter(session, request)
        found = await svc.guide_links(session, settings.public_base_url, staff_id=staff_id)
        staff = {i: (u, n) for i, u, n in (await session.execute(
            select(Staff.id, Staff.userid, Staff.name).where(Staff.id.in_({s for s, _ in found})))).all()}
    guides: dict[int, dict[str, Any]] = {}
    for sid, link in found:
        userid, name = staff[sid]
        guides.setdefault(sid, {"userid": userid, "name": name, "links": []})["links"].append(link)
    return json_response({"guides": list(guides.values())})


@routes.get("/api/share/add-me-codes")
@_domain_errors
async def list_add_me_codes(request: web.Request) -> web.Response:
    """Guides' 「加我」 poster codes: ?staff=<userid> and/or ?content_id=<id> to narrow."""
    async with request.config_dict[keys.SESSIONMAKER]() as session:
        staff_id = await _staff_filter(session, request)
        raw_content = request.query.get("content_id", "")
        if raw_content and not raw_content.isdigit():
            return json_response({"error": "content_id 须为内容编号", "field": "content_id"}, 400)
        codes = await add_me.list_add_me_codes(session, staff_id=staff_id,
                                               content_id=int(raw_content) if raw_content else None)
    return json_response({"codes": codes})
