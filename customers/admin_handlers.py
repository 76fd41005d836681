"""Admin JSON API for tag rules, segments and the recompute (mounted in the /admin sub-app).

Errors answer ``{"error": "…"}`` (plus ``"position"`` for a rule that does not parse or check):
400 for bad input, 404 for an unknown id, 409 for a name in use or a recompute already running.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from customers import segments as svc
from customers.rules import RuleError
from customers.scheduler import RUNNER
from scrm import keys

routes = web.RouteTableDef()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def _domain_errors(handler: Handler) -> Handler:
    """Map the services' domain errors to JSON answers."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except RuleError as exc:
            return _error(400, str(exc), position=exc.position)
        except svc.InvalidInput as exc:
            return _error(400, str(exc))
        except (svc.SegmentNotFound, svc.TagRuleNotFound) as exc:
            return _error(404, str(exc.args[0]))
        except svc.NameTaken as exc:
            return _error(409, str(exc))

    return wrapper


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise svc.InvalidInput("请求体须为 JSON") from None
    if not isinstance(body, dict):
        raise svc.InvalidInput("请求体须为 JSON 对象")
    return body


def _text(body: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise svc.InvalidInput(f"缺少字段 {key}")
        return None
    if not isinstance(value, str):
        raise svc.InvalidInput(f"{key} 须为字符串")
    return value


def _flag(body: dict[str, Any], key: str) -> bool | None:
    value = body.get(key)
    if value is not None and not isinstance(value, bool):
        raise svc.InvalidInput(f"{key} 须为 true 或 false")
    return value


def _id(request: web.Request) -> int:
    return int(request.match_info["id"])


# -- tag rules ---------------------------------------------------------------------------------


@routes.get("/api/tag-rules")
@_domain_errors
async def list_tag_rules(request: web.Request) -> web.Response:
    """Every tag rule with its tag and last run."""
    rules = await svc.list_tag_rules(request.config_dict[keys.SESSIONMAKER])
    return web.json_response({"rules": [r.to_dict() for r in rules]})


@routes.post("/api/tag-rules")
@_domain_errors
async def create_tag_rule(request: web.Request) -> web.Response:
    """Create a rule: {name, expression, description?, tag_group?, tag?, enabled?}."""
    body = await _body(request)
    rule = await svc.save_tag_rule(
        request.config_dict[keys.SESSIONMAKER],
        _text(body, "name", required=True) or "",
        _text(body, "expression", required=True) or "",
        now=request.config_dict[keys.CLOCK](),
        tag_group=_text(body, "tag_group") or svc.DEFAULT_RULE_GROUP,
        tag_name=_text(body, "tag"),
        description=_text(body, "description") or "",
        enabled=_flag(body, "enabled") is not False,
    )
    return web.json_response(rule.to_dict(), status=201)


@routes.put(r"/api/tag-rules/{id:\d+}")
@_domain_errors
async def update_tag_rule(request: web.Request) -> web.Response:
    """Change a rule's name, expression, description or enabled flag."""
    body = await _body(request)
    rule = await svc.update_tag_rule(
        request.config_dict[keys.SESSIONMAKER], _id(request), now=request.config_dict[keys.CLOCK](),
        name=_text(body, "name"), expression=_text(body, "expression"),
        description=_text(body, "description"), enabled=_flag(body, "enabled"),
    )
    return web.json_response(rule.to_dict())


@routes.delete(r"/api/tag-rules/{id:\d+}")
@_domain_errors
async def delete_tag_rule(request: web.Request) -> web.Response:
    """Delete a rule and its rule-sourced tag links."""
    removed = await svc.delete_tag_rule(request.config_dict[keys.SESSIONMAKER], _id(request))
    return web.json_response({"deleted": _id(request), "untagged": removed})


# -- segments ----------------------------------------------------------------------------------


@routes.get("/api/segments")
@_domain_errors
async def list_segments(request: web.Request) -> web.Response:
    """Every saved segment."""
    found = await svc.list_segments(request.config_dict[keys.SESSIONMAKER])
    return web.json_response({"segments": [svc.segment_dict(s) for s in found]})


@routes.post("/api/segments")
@_domain_errors
async def create_segment(request: web.Request) -> web.Response:
    """Save a segment: {name, expression, description?}."""
    body = await _body(request)
    segment = await svc.create_segment(
        request.config_dict[keys.SESSIONMAKER],
        _text(body, "name", required=True) or "",
        _text(body, "expression", required=True) or "",
        now=request.config_dict[keys.CLOCK](),
        description=_text(body, "description") or "",
    )
    return web.json_response(svc.segment_dict(segment), status=201)


@routes.put(r"/api/segments/{id:\d+}")
@_domain_errors
async def update_segment(request: web.Request) -> web.Response:
    """Change a segment's name, expression or description."""
    body = await _body(request)
    segment = await svc.update_segment(
        request.config_dict[keys.SESSIONMAKER], _id(request), now=request.config_dict[keys.CLOCK](),
        name=_text(body, "name"), expression=_text(body, "expression"), description=_text(body, "description"),
    )
    return web.json_response(svc.segment_dict(segment))


@routes.delete(r"/api/segments/{id:\d+}")
@_domain_errors
async def delete_segment(request: web.Request) -> web.Response:
    """Delete a segment."""
    await svc.delete_segment(request.config_dict[keys.SESSIONMAKER], _id(request))
    return web.json_response({"deleted": _id(request)})


@routes.post("/api/segments/count")
@_domain_errors
async def count_segment(request: web.Request) -> web.Response:
    """Live count of {expression}: {"count": n}, or 400 {"error", "position"}."""
    body = await _body(request)
    count = await svc.count_segment(
        request.config_dict[keys.SESSIONMAKER], _text(body, "expression", required=True) or "",
        now=request.config_dict[keys.CLOCK](),
    )
    return web.json_response({"count": count})


@routes.post("/api/segments/preview")
@_domain_errors
async def preview_segment(request: web.Request) -> web.Response:
    """The first customers matching {expression, limit?}."""
    body = await _body(request)
    limit = body.get("limit", 20)
    if not isinstance(limit, int) or isinstance(limit, bool):
        raise svc.InvalidInput("limit 须为整数")
    rows = await svc.preview(
        request.config_dict[keys.SESSIONMAKER], _text(body, "expression", required=True) or "",
        now=request.config_dict[keys.CLOCK](), limit=limit,
    )
    return web.json_response({"customers": [{"id": r.id, "name": r.name} for r in rows]})


# -- recompute ---------------------------------------------------------------------------------


def _runner(request: web.Request) -> Any:
    runner = request.config_dict.get(RUNNER)
    if runner is None:
        raise web.HTTPServiceUnavailable(
            text=json.dumps({"error": "后台重算未启用（服务未挂载 recompute_scheduler_ctx）"}, ensure_ascii=False),
            content_type="application/json",
        )
    return runner


@routes.post("/api/tags/recompute")
async def start_recompute(request: web.Request) -> web.Response:
    """Start a recompute in the background: 202, or 409 while one runs."""
    runner = _runner(request)
    if not runner.start("admin"):
        return _error(409, "重算正在进行中，请稍后再试", **runner.status())
    return web.json_response(runner.status(), status=202)


@routes.get("/api/tags/recompute")
async def recompute_status(request: web.Request) -> web.Response:
    """{stage, done, total, running, last_report, ...}."""
    return web.json_response(_runner(request).status())
