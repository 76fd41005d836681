"""The sidebar's JSON API (under /sidebar/api/); every route needs a session (see sidebar.app)."""

from __future__ import annotations

import json
from typing import Any, Final

from aiohttp import web

from scrm import keys
from scrm.jsonweb import json_response
from sidebar import contact, group, jssdk, notes, tagging
from sidebar.context import bot_context
from sidebar.errors import InvalidRequest

routes = web.RouteTableDef()
#: The signed-in member's userid, set by the session middleware.
USERID: Final = web.RequestKey("sidebar_userid", str)
MAX_BODY: Final = 16 * 1024


async def json_body(request: web.Request, example: str) -> Any:
    """The request's JSON body (at most MAX_BODY bytes), or InvalidRequest quoting an example."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise InvalidRequest("请求体过大。")
    try:
        return json.loads(await request.text())
    except ValueError:
        raise InvalidRequest(f"请求体须为 JSON，例如 {example}。") from None


@routes.get("/api/jssdk-config")
async def jssdk_config(request: web.Request) -> web.Response:
    """Signatures for wx.config / ww.register and wx.agentConfig on exactly ``?url=``."""
    app = request.config_dict
    clock = app[keys.CLOCK]
    config = await jssdk.jssdk_config(app[keys.GATEWAY], request.query.get("url", ""),
                                      app[keys.SETTINGS].public_base_url, lambda: clock().timestamp())
    return json_response(config)


@routes.get("/api/contact/{external_userid}")
async def contact_profile(request: web.Request) -> web.Response:
    """The customer in the current single chat, if the member may see them."""
    data = await contact.view_contact(bot_context(request), request[USERID], request.match_info["external_userid"])
    return json_response(data)


@routes.post("/api/contact/{external_userid}/tags")
async def contact_tags(request: web.Request) -> web.Response:
    """Add/remove tags on the customer: {"add": [tag ids], "remove": [tag ids]}."""
    body = await json_body(request, '{"add": [1], "remove": [2]}')
    change = tagging.parse_tag_change(body)
    data = await tagging.change_tags(bot_context(request), request[USERID], request.match_info["external_userid"],
                                     change)
    return json_response(data)


@routes.post("/api/contact/{external_userid}/notes")
async def add_note(request: web.Request) -> web.Response:
    """Add a note on the customer: {"body": "..."}; answers the notes as now shown."""
    text = notes.parse_note(await json_body(request, '{"body": "…"}'))
    data = await notes.add_note(bot_context(request), request[USERID], request.match_info["external_userid"], text)
    return json_response(data, status=201)


@routes.delete(r"/api/contact/{external_userid}/notes/{note_id:\d+}")
async def delete_note(request: web.Request) -> web.Response:
    """Withdraw one of the viewer's own notes."""
    data = await notes.delete_note(bot_context(request), request[USERID], request.match_info["external_userid"],
                                   int(request.match_info["note_id"]))
    return json_response(data)


@routes.get("/api/group/{chat_id}")
async def group_summary(request: web.Request) -> web.Response:
    """The customer group in the current group chat."""
    return json_response(await group.view_group(bot_context(request), request[USERID], request.match_info["chat_id"]))


@routes.get("/api/tags")
async def tag_library(request: web.Request) -> web.Response:
    """The tag library, grouped, to pick from."""
    return json_response(await tagging.tag_library(request.config_dict[keys.SESSIONMAKER], request[USERID]))
