"""Guide-facing talk-script routes (under /sidebar/api/); the sidebar middleware requires the session."""

from __future__ import annotations

import json
from typing import Final

from aiohttp import web

from scrm import keys
from sidebar import script_media, scripts
from sidebar.context import bot_context
from sidebar.errors import InvalidRequest
from sidebar.handlers import USERID, json_response

routes = web.RouteTableDef()
MAX_BODY: Final = 4 * 1024


def _filters(request: web.Request) -> dict[str, str | None]:
    return {"q": request.query.get("q") or None, "category": request.query.get("category") or None}


@routes.get("/api/contact/{external_userid}/scripts")
async def contact_scripts(request: web.Request) -> web.Response:
    """Scripts for the customer in the current chat, ranked and filled in: ?q= search, ?category= browse."""
    app = request.config_dict
    async with app[keys.SESSIONMAKER]() as session:
        data = await scripts.scripts_for_contact(session, request[USERID], request.match_info["external_userid"],
                                                 now=app[keys.CLOCK](), **_filters(request))
    return json_response(data)


@routes.get("/api/scripts")
async def all_scripts(request: web.Request) -> web.Response:
    """Scripts without a customer (a group chat): unconditional ones first, customer variables as fallbacks."""
    app = request.config_dict
    async with app[keys.SESSIONMAKER]() as session:
        data = await scripts.scripts_for_contact(session, request[USERID], None, now=app[keys.CLOCK](),
                                                 **_filters(request))
    return json_response(data)


@routes.post(r"/api/scripts/{id:\d+}/sent")
async def script_sent(request: web.Request) -> web.Response:
    """Record that the guide sent a script: {"external_userid": …} or {"chat_id": …}."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise InvalidRequest("请求体过大。")
    try:
        body = json.loads(await request.text())
    except ValueError:
        raise InvalidRequest('请求体须为 JSON，例如 {"external_userid": "wm…"}。') from None
    target = scripts.parse_send_target(body)
    app = request.config_dict
    async with app[keys.SESSIONMAKER].begin() as session:
        data = await scripts.record_send(session, request[USERID], int(request.match_info["id"]), target,
                                         now=app[keys.CLOCK]())
    return json_response(data, status=201)


@routes.post(r"/api/scripts/{id:\d+}/media")
async def script_media_id(request: web.Request) -> web.Response:
    """A WeCom temporary media id for an image script's picture, uploaded now if the last one is too old."""
    data = await script_media.script_image_media(bot_context(request), request[USERID], int(request.match_info["id"]))
    return json_response(data)
