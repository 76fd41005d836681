"""Admin JSON API of commission (mounted in the /admin sub-app): HQ's plan, store overrides, recompute, statements.

Errors answer ``{"error": "…", "field": "…"}``: 400 for bad input (rules, limits, month), 400 with
``"code": "outside_limits"`` for an override beyond HQ's limits, 404 for an unknown store or statement,
409 when HQ has not set a plan yet.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web

from models import AuditEntry
from scrm import keys
from scrm.jsonweb import json_object, json_response
from sharing import commission_service as svc
from sharing.commission import InvalidMonth, InvalidRules, OutsideLimits, parse_month

_LOGGER = logging.getLogger(__name__)

routes = web.RouteTableDef()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: Who the audit trail names for changes made with the admin token.
ADMIN_ACTOR: Final = "admin"
MAX_BODY: Final = 64 * 1024


def _error(message: str, field: str, status: int, **extra: Any) -> web.Response:
    return json_response({"error": message, "field": field, **extra}, status)


def _domain_errors(handler: Handler) -> Handler:
    """Map the commission errors to JSON answers."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except OutsideLimits as exc:
            return _error(exc.message, exc.field, 400, code="outside_limits")
        except (InvalidRules, InvalidMonth) as exc:
            return _error(exc.message, exc.field, 400)
        except svc.CommissionError as exc:
            return _error(exc.message, exc.field, exc.status)

    return wrapper


async def _body(request: web.Request, example: str) -> dict[str, Any]:
    return await json_object(request, InvalidRules, example=example, max_bytes=MAX_BODY)


def _now(request: web.Request) -> dt.datetime:
    return request.config_dict[keys.CLOCK]()


def _audit(action: str, subject_type: str, subject_id: str, at: dt.datetime, **detail: Any) -> AuditEntry:
    return AuditEntry(at=at, actor=ADMIN_ACTOR, action=action, subject_type=subject_type, subject_id=subject_id,
                      detail=detail)


@routes.get("/api/commission/plan")
@_domain_errors
async def get_plan(request: web.Request) -> web.Response:
    """HQ's rules and limits (null until set) and every store override."""
    async with request.config_dict[keys.SESSIONMAKER]() as session:
        return json_response(await svc.plan_view(session))


@routes.put("/api/commission/plan")
@_domain_errors
async def put_plan(request: web.Request) -> web.Response:
    """Replace HQ's plan: {"rules": {...}, "limits": {...}}; lists overrides the new limits exclude."""
    body = await _body(request, '{"rules": {"base_rate": "3%"}, "limits": {"min_base_rate": "2%", '
                                '"max_base_rate": "5%", "max_category_rate": "8%"}}')
    now = _now(request)
    async with request.config_dict[keys.SESSIONMAKER].begin() as session:
        data = await svc.save_plan(session, body, actor=ADMIN_ACTOR, now=now)
        session.add(_audit("commission_plan_set", "commission_plan", "hq", now, rules=data["rules"],
                           limits=data["limits"]))
    return json_response(data)


def _store_id(request: web.Request) -> int:
    return int(request.match_info["store_id"])


@routes.put(r"/api/commission/stores/{store_id:\d+}")
@_domain_errors
async def put_store_override(request: web.Request) -> web.Response:
    """Set a store's rates within HQ's limits: {"base_rate"?, "category_rates"?, "tiers"?}; {} clears them."""
    body = await _body(request, '{"base_rate": "4%", "category_rates": {"奶粉": "2%"}}')
    now = _now(request)
    async with request.config_dict[keys.SESSIONMAKER].begin() as session:
        data = await svc.set_store_override(session, _store_id(request), body, actor=ADMIN_ACTOR, now=now)
        session.add(_audit("commission_override_set", "store", str(_store_id(request)), now,
                           override=data["override"], previous=data["previous"]))
    return json_response(data)


@routes.delete(r"/api/commission/stores/{store_id:\d+}")
@_domain_errors
async def delete_store_override(request: web.Request) -> web.Response:
    """Clear a store's override: its guides are paid by HQ's plan again."""
    now = _now(request)
    async with request.config_dict[keys.SESSIONMAKER].begin() as session:
        data = await svc.set_store_override(session, _store_id(request), {}, actor=ADMIN_ACTOR, now=now)
        session.add(_audit("commission_override_set", "store", str(_store_id(request)), now,
                           override=None, previous=data["previous"]))
    return json_response(data)


@routes.post("/api/commission/recompute")
@_domain_errors
async def recompute(request: web.Request) -> web.Response:
    """Recompute one month's statements now: {"month": "YYYY-MM"}; answers what was written."""
    body = await _body(request, '{"month": "2026-11"}')
    app = request.config_dict
    month = parse_month(body.get("month"))
    result = await svc.recompute_month(app[keys.SESSIONMAKER], month, tz=app[keys.SETTINGS].timezone, now=_now(request))
    async with app[keys.SESSIONMAKER].begin() as session:
        session.add(_audit("commission_recomputed", "commission_month", result.month, result.computed_at,
                           statements=result.statements, total_cents=result.total_cents))
    return json_response(result.to_dict())


@routes.get("/api/commission/statements")
@_domain_errors
async def list_statements(request: web.Request) -> web.Response:
    """?month=YYYY-MM: one row per guide with totals, and the month's totals."""
    month = parse_month(request.query.get("month", ""))
    async with request.config_dict[keys.SESSIONMAKER]() as session:
        return json_response(await svc.list_statements(session, month))


@routes.get(r"/api/commission/statements/{id:\d+}")
@_domain_errors
async def get_statement(request: web.Request) -> web.Response:
    """One statement, the rules it was computed with, and each (order, category) line."""
    async with request.config_dict[keys.SESSIONMAKER]() as session:
        return json_response(await svc.statement_detail(session, int(request.match_info["id"])))
