"""Admin JSON API for talk scripts and their categories (mounted in the /admin sub-app).

Errors answer ``{"error": "…"}`` plus ``"field"`` and, for a condition or a variable, ``"position"``:
400 for bad input, 404 for an unknown id, 409 for a category name in use or a category not empty.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from scrm import keys
from sidebar import scripts as svc
from sidebar.errors import SidebarError
from sidebar.handlers import json_response

routes = web.RouteTableDef()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _domain_errors(handler: Handler) -> Handler:
    """Map the service's domain errors to JSON answers."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except SidebarError as exc:
            return json_response({"error": exc.message, **exc.detail}, exc.status)

    return wrapper


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.text())
    except ValueError:
        raise svc.InvalidScript("请求体须为 JSON") from None
    if not isinstance(body, dict):
        raise svc.InvalidScript("请求体须为 JSON 对象")
    return body


def _id(request: web.Request) -> int:
    return int(request.match_info["id"])


def _now(request: web.Request) -> dt.datetime:
    return request.config_dict[keys.CLOCK]()


# -- categories --------------------------------------------------------------------------------


@routes.get("/api/script-categories")
@_domain_errors
async def list_categories(request: web.Request) -> web.Response:
    """Every category with its count of enabled scripts."""
    async with request.config_dict[keys.SESSIONMAKER]() as session:
        return json_response({"categories": await svc.list_categories(session)})


@routes.post("/api/script-categories")
@_domain_errors
async def create_category(request: web.Request) -> web.Response:
    """Create a category: {name, order?}."""
    body = await _body(request)
    async with request.config_dict[keys.SESSIONMAKER].begin() as session:
        category = await svc.save_category(session, body.get("name"), body.get("order"))
        data = {"id": category.id, "name": category.name, "order": category.order}
    return json_response(data, 201)


@routes.put(r"/api/script-categories/{id:\d+}")
@_domain_errors
async def update_category(request: web.Request) -> web.Response:
    """Rename or reorder a category: {name?, order?}."""
    body = await _body(request)
    async with request.config_dict[keys.SESSIONMAKER].begin() as session:
        category = await svc.save_category(session, body.get("name"), body.get("order"), category_id=_id(request))
        data = {"id": category.id, "name": category.name, "order": category.order}
    return json_response(data)


@routes.delete(r"/api/script-categories/{id:\d+}")
@_domain_errors
async def delete_category(request: web.Request) -> web.Response:
    """Delete an empty category."""
    async with request.config_dict[keys.SESSIONMAKER].begin() as session:
        await svc.delete_category(session, _id(request))
    return json_response({"deleted": _id(request)})


# -- scripts -----------------------------------------------------------------------------------


@routes.get("/api/scripts")
@_domain_errors
async def list_scripts(request: web.Request) -> web.Response:
    """Every script, enabled or not: ?q= searches title, body and category; ?category= is an id or a name."""
    async with request.config_dict[keys.SESSIONMAKER]() as session:
        found = await svc.list_scripts(session, q=request.query.get("q"), category=request.query.get("category"))
    return json_response({"scripts": found, "variables": svc.VARIABLES})


@routes.post("/api/scripts")
@_domain_errors
async def create_script(request: web.Request) -> web.Response:
    """Create a script: {category | category_id, title, body, condition?, priority?, enabled?, attachment?}."""
    body = await _body(request)
    async with request.config_dict[keys.SESSIONMAKER].begin() as session:
        data = await svc.create_script(session, body, now=_now(request))
    return json_response(data, 201)


@routes.get(r"/api/scripts/{id:\d+}")
@_domain_errors
async def get_script(request: web.Request) -> web.Response:
    """One script."""
    async with request.config_dict[keys.SESSIONMAKER]() as session:
        return json_response(await svc.get_script(session, _id(request)))


@routes.put(r"/api/scripts/{id:\d+}")
@_domain_errors
async def update_script(request: web.Request) -> web.Response:
    """Change any of a script's fields; the result is validated as a whole."""
    body = await _body(request)
    async with request.config_dict[keys.SESSIONMAKER].begin() as session:
        data = await svc.update_script(session, _id(request), body, now=_now(request))
    return json_response(data)


@routes.delete(r"/api/scripts/{id:\d+}")
@_domain_errors
async def delete_script(request: web.Request) -> web.Response:
    """Delete a script and its send records."""
    async with request.config_dict[keys.SESSIONMAKER].begin() as session:
        await svc.delete_script(session, _id(request))
    return json_response({"deleted": _id(request)})


@routes.post("/api/scripts/import")
@_domain_errors
async def import_scripts(request: web.Request) -> web.Response:
    """Import a JSON array or CSV text (分类,标题,内容,条件,优先级[,启用,附件]); bad rows are reported, good ones kept."""
    rows = svc.parse_import(await request.text())
    async with request.config_dict[keys.SESSIONMAKER].begin() as session:
        result = await svc.import_scripts(session, rows, now=_now(request))
    return json_response(result)


@routes.get("/api/scripts/export")
@_domain_errors
async def export_scripts(request: web.Request) -> web.StreamResponse:
    """Every script as ?format=json (default) or csv, in the shape the import reads."""
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise svc.InvalidScript("format 须为 json 或 csv", field="format")
    async with request.config_dict[keys.SESSIONMAKER]() as session:
        rows = await svc.export_scripts(session)
    if fmt == "json":
        return json_response(rows)
    return web.Response(text=svc.to_csv(rows), content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": 'attachment; filename="talk-scripts.csv"'})


@routes.get("/api/scripts/stats")
@_domain_errors
async def script_stats(request: web.Request) -> web.Response:
    """Sends, customers reached and 7-day conversions per script and per guide; ?days=N limits to recent sends."""
    raw = request.query.get("days", "")
    if raw and (not raw.isdigit() or not 1 <= int(raw) <= 3650):
        raise svc.InvalidScript("days 须为 1–3650 的整数", field="days")
    since = _now(request) - dt.timedelta(days=int(raw)) if raw else None
    async with request.config_dict[keys.SESSIONMAKER]() as session:
        return json_response(await svc.script_stats(session, since=since))
