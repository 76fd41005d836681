"""The guide's share links in the sidebar (under /sidebar/api/share/): the library, my links, posters, results."""

from __future__ import annotations

from typing import Any, cast

from aiohttp import web
from sqlalchemy import select

from models import ContentItem, Staff
from scrm import keys
from sharing import links
from sharing.add_me import AddMeUnavailable, add_me_poster
from sharing.dashboard import results_json
from sharing.fonts import FontNotFound
from sharing.poster_service import (Poster, PosterFormat, TemplateUnavailable, enabled_templates, guide_poster,
                                    parse_template_param)
from sharing.recipients import RECIPIENT_PARAM, recipient_token
from sharing.performance import PERIODS, Period, Row, performance, period_bounds
from sidebar.context import bot_context
from sidebar.errors import InvalidRequest, NotFound, SidebarDisabled, UpstreamError
from sidebar.handlers import USERID, json_body, json_response
from sidebar.permissions import customer_in_scope, load_viewer

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
    """The guide's own short link to an item: {"content_id": 1, "channel": "moments" | "group" | "private"}.

    With "external_userid" (the customer of the one-to-one chat it is sent into) the URL names that
    customer (``?r=``, sharing/recipients.py), so their click is known to be theirs.
    """
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
        recipient = body.get("external_userid")
        if recipient is not None:
            if not isinstance(recipient, str) or not recipient or len(recipient) > 64:
                raise InvalidRequest("external_userid 须为当前单聊客户的 external_userid。")
            customer_id = await customer_in_scope(session, viewer, recipient)
            data["url"] += f"?{RECIPIENT_PARAM}={recipient_token(settings.share_key, customer_id)}"
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


async def _render_poster(request: web.Request, channel_raw: Any, fmt: PosterFormat, *,
                         add_me: bool = False, template_id: int | None = None) -> Poster:
    """The signed-in guide's poster for the item in the URL; domain errors the middleware maps."""
    try:
        channel = links.parse_channel(channel_raw or None)
    except links.InvalidContent as exc:
        raise InvalidRequest(exc.message) from None
    app = request.config_dict
    async with app[keys.SESSIONMAKER]() as session:
        viewer = await load_viewer(session, request[USERID])
    try:
        if add_me:  # the guide's 「联系我」 code for the item instead of their link (sharing/add_me.py)
            return await add_me_poster(bot_context(request), app[keys.POSTER_CACHE], staff_id=viewer.staff_id,
                                       content_id=int(request.match_info["content_id"]), fmt=fmt)
        return await guide_poster(app[keys.SESSIONMAKER], app[keys.SETTINGS], app[keys.POSTER_CACHE],
                                  staff_id=viewer.staff_id, content_id=int(request.match_info["content_id"]),
                                  channel=channel, template_id=template_id, fmt=fmt, now=app[keys.CLOCK]())
    except TemplateUnavailable as exc:  # before ContentNotFound, its base class
        raise InvalidRequest(exc.message_zh) from None
    except links.ContentNotFound:
        raise NotFound("该内容不存在或已下架。") from None
    except FontNotFound as exc:
        raise SidebarDisabled(exc.message_zh) from None
    except AddMeUnavailable as exc:
        raise UpstreamError(exc.message_zh) from None


def _kind(raw: Any) -> str:
    kind = raw or "link"
    if kind not in ("link", "addme"):
        raise InvalidRequest("kind 须为 link（链接海报）或 addme（「加我」海报）。")
    return str(kind)


@routes.get(r"/api/share/content/{content_id:\d+}/poster")
async def my_poster(request: web.Request) -> web.Response:
    """The guide's poster for an item (PNG, or ?format=jpeg), its QR code their own link; ?channel= as for links;
    ?template=<id> one of /api/share/poster-templates (default: the first enabled one).

    ?kind=addme: the 「加我」 poster, its QR code the guide's 「联系我」 code for the item (X-Share-Url: its image).
    """
    fmt = request.query.get("format", "png").upper()
    if fmt not in ("PNG", "JPEG", "JPG"):
        raise InvalidRequest("format 须为 png 或 jpeg。")
    kind = _kind(request.query.get("kind"))
    try:
        template_id = parse_template_param(request.query.get("template"))
    except ValueError as exc:
        raise InvalidRequest(f"{exc}。") from None
    poster = await _render_poster(request, request.query.get("channel"), "JPEG" if fmt != "PNG" else "PNG",
                                  add_me=kind == "addme", template_id=template_id)
    return web.Response(body=poster.data, content_type=poster.content_type,
                        headers={"Cache-Control": "private, max-age=300", "X-Share-Url": poster.url})


@routes.post(r"/api/share/content/{content_id:\d+}/poster/media")
async def my_poster_media(request: web.Request) -> web.Response:
    """My poster as a WeCom temporary media id, for sendChatMessage's image.

    Body (all optional): {"channel": "private", "kind": "link" | "addme", "template": <id>}.
    """
    body: Any = {}
    if request.can_read_body:
        body = await json_body(request, '{"channel": "private"}')
    if not isinstance(body, dict):
        raise InvalidRequest('请求体须为 JSON 对象，例如 {"channel": "private"}。')
    kind = _kind(body.get("kind"))
    try:
        template_id = parse_template_param(None if body.get("template") is None else str(body["template"]))
    except ValueError as exc:
        raise InvalidRequest(f"{exc}。") from None
    poster = await _render_poster(request, body.get("channel"), "JPEG",  # JPEG: a third of the PNG's bytes
                                  add_me=kind == "addme", template_id=template_id)
    # Uploaded on every send rather than kept in the media library: posters are one per guide and item, so
    # the library would fill with images nobody manages, and a send is a guide's tap, not a batch.
    media_id = await request.config_dict[keys.GATEWAY].upload_media(
        "image", f"poster-{request.match_info['content_id']}.jpg", poster.data, poster.content_type)
    return json_response({"media_id": media_id, "url": poster.url})


@routes.get("/api/share/poster-templates")
async def poster_templates(request: web.Request) -> web.Response:
    """The poster templates a guide may pick with ?template= (the first is the default)."""
    async with request.config_dict[keys.SESSIONMAKER]() as session:
        await load_viewer(session, request[USERID])
        return json_response({"templates": await enabled_templates(session)})
