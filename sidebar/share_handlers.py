"""The guide's share links in the sidebar (under /sidebar/api/share/): the library, my link to an item, my links."""

from __future__ import annotations

from typing import Any, cast

from aiohttp import web
from sqlalchemy import select

from models import ContentItem, Staff
from scrm import keys
from sharing import links
from sharing.dashboard import results_json
from sharing.fonts import FontNotFound
from sharing.poster_service import guide_poster
from sharing.performance import PERIODS, Period, Row, performance, period_bounds
from sidebar.errors import InvalidRequest, NotFound, SidebarDisabled
from sidebar.handlers import USERID, json_body, json_response
from sidebar.permissions import load_viewer

routes = web.RouteTableDef()


@routes.get("/api/share/content")
async def share_library(request: web.Request) -> web.Response:
    """Items a guide may share: ?q= search, ?kind= filter."""
    async with request.config_dict[keys.SESSIONMAKER]() as session:
        await load_viewer(session, request[USERID])
        items = await links.list_content(session, q=request.query.get("q"), kind=request.query.get("kind") or None,
                                         enabled_only=True, limit=100)
    return json_response({"content": [links.content_json(i) for i in items]})


@routes.post("/api/share/links")
async def my_link(request: web.Request) -> web.Response:
    """The guide's own short link to an item: {"content_id": 1, "channel": "moments" | "group" | "private"}."""
    body: Any = await json_body(request, '{"content_id": 1, "channel": "moments"}')
    if not isinstance(body, dict) or not isinstance(body.get("content_id"), int):
        raise InvalidRequest('请求体须为 JSON 对象，例如 {"content_id": 1, "channel": "moments"}。')
    try:
        channel = links.parse_channel(body.get("channel") or None)
    except links.InvalidContent as exc:
        raise InvalidRequest(exc.message) from None
    app = request.config_dict
    settings = app[keys.SETTINGS]
    async with app[keys.SESSIONMAKER].begin() as session:
        viewer = await load_viewer(session, request[USERID])
        try:
            link = await links.share_link_for(session, viewer.staff_id, body["content_id"], channel,
                                              secret=settings.share_key, now=app[keys.CLOCK]())
        except links.ContentNotFound:
            raise NotFound("该内容不存在或已下架。") from None
        item = await session.get(ContentItem, link.content_id)
        assert item is not None
        data = links.link_json(link, item, settings.public_base_url)
    return json_response(data)


@routes.get("/api/share/links")
async def my_links(request: web.Request) -> web.Response:
    """The guide's links with clicks and unique visitors."""
    app = request.config_dict
    async with app[keys.SESSIONMAKER]() as session:
        viewer = await load_viewer(session, request[USERID])
        data = await links.guide_links(session, app[keys.SETTINGS].public_base_url, staff_id=viewer.staff_id)
    return json_response({"links": [link for _, link in data]})


@routes.get("/api/share/results")
async def my_results(request: web.Request) -> web.Response:
    """我的业绩: the guide's funnel for ?period=day|week|month and where they stand in their store."""
    period = request.query.get("period", "week")
    if period not in PERIODS:
        raise InvalidRequest("period 须为 day（今日）、week（本周）或 month（本月）。")
    app = request.config_dict
    start, end = period_bounds(cast(Period, period), app[keys.CLOCK](), app[keys.SETTINGS].timezone)
    async with app[keys.SESSIONMAKER]() as session:
        viewer = await load_viewer(session, request[USERID])
        mine = await performance(session, start=start, end=end, group_by="guide", staff_ids=[viewer.staff_id])
        peers_ids = [viewer.staff_id]
        if viewer.store_id is not None:
            peers_ids = list((await session.scalars(select(Staff.id).where(Staff.store_id == viewer.store_id))).all())
        peers = await performance(session, start=start, end=end, group_by="guide", staff_ids=peers_ids)
    own = mine[0] if mine else Row(viewer.userid, viewer.name)
    return json_response(results_json(own, peers, viewer.userid, start, end, period))


@routes.get(r"/api/share/content/{content_id:\d+}/poster")
async def my_poster(request: web.Request) -> web.Response:
    """The guide's poster for an item (PNG, or ?format=jpeg), its QR code their own link; ?channel= as for links."""
    fmt = request.query.get("format", "png").upper()
    if fmt not in ("PNG", "JPEG", "JPG"):
        raise InvalidRequest("format 须为 png 或 jpeg。")
    try:
        channel = links.parse_channel(request.query.get("channel") or None)
    except links.InvalidContent as exc:
        raise InvalidRequest(exc.message) from None
    app = request.config_dict
    async with app[keys.SESSIONMAKER]() as session:
        viewer = await load_viewer(session, request[USERID])
    try:
        poster = await guide_poster(app[keys.SESSIONMAKER], app[keys.SETTINGS], app[keys.POSTER_CACHE],
                                    staff_id=viewer.staff_id, content_id=int(request.match_info["content_id"]),
                                    channel=channel, fmt="JPEG" if fmt != "PNG" else "PNG", now=app[keys.CLOCK]())
    except links.ContentNotFound:
        raise NotFound("该内容不存在或已下架。") from None
    except FontNotFound as exc:
        raise SidebarDisabled(exc.message_zh) from None
    return web.Response(body=poster.data, content_type=poster.content_type,
                        headers={"Cache-Control": "private, max-age=300", "X-Share-Url": poster.url})
