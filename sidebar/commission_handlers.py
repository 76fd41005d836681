"""Commission in the sidebar (under /sidebar/api/commission/): my statement, and my store's rates for managers.

Who may set a store's rates here: only that store's manager, within HQ's limits. Guides, region
managers and HQ are refused with a message saying who can (HQ and admins use the admin API; a region
manager asks the store manager, so each store's override has one owner). Every change and every
refused attempt is written to the audit trail.

Errors answer ``{"error": code, "message": "…", "field": "…"}``: ``invalid_rules`` / ``invalid_month``
(400), ``outside_limits`` (400), ``forbidden`` (403), ``plan_not_set`` (409).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web

from models import StaffRole
from scrm import keys
from sharing import commission_service as svc
from sharing.commission import (
    InvalidMonth,
    InvalidRules,
    OutsideLimits,
    month_of,
    parse_month,
)
from sidebar.errors import AccessDenied
from sidebar.handlers import USERID, json_body, json_response
from sidebar.permissions import Viewer, audit, load_viewer

_LOGGER = logging.getLogger(__name__)

routes = web.RouteTableDef()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_REFUSED: Final = {
    StaffRole.GUIDE: "只有店长可以调整本门店的提成费率；如需调整，请联系您的店长。",
    StaffRole.REGION_MANAGER: "区域经理不能直接调整门店的提成费率：请由该门店店长调整，或联系总部在管理后台设置。",
    StaffRole.HQ: "总部请在管理后台设置提成方案与门店费率。",
}
_SERVICE_CODES: Final = {svc.PlanNotSet: "plan_not_set", svc.StoreNotFound: "not_found",
                         svc.StatementNotFound: "not_found"}


def _error(code: str, message: str, field: str, status: int) -> web.Response:
    return json_response({"error": code, "message": message, "field": field}, status)


def _commission_errors(handler: Handler) -> Handler:
    """Map commission errors to the sidebar's JSON error shape (sidebar errors pass to the middleware)."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except OutsideLimits as exc:
            return _error("outside_limits", exc.message, exc.field, 400)
        except InvalidRules as exc:
            return _error("invalid_rules", exc.message, exc.field, 400)
        except InvalidMonth as exc:
            return _error("invalid_month", exc.message, exc.field, 400)
        except svc.CommissionError as exc:
            return _error(_SERVICE_CODES.get(type(exc), "bad_request"), exc.message, exc.field, exc.status)

    return wrapper


def team_store(viewer: Viewer, requested: Any = None) -> int:
    """The store whose rates the viewer may set (``requested``: an optional store id); AccessDenied otherwise."""
    if viewer.role is not StaffRole.STORE_MANAGER:
        raise AccessDenied(_REFUSED.get(viewer.role, "您没有权限调整提成费率。"))
    if viewer.store_id is None:
        raise AccessDenied("您的账号尚未绑定门店，不能调整提成费率，请联系管理员。")
    if requested is not None and requested != viewer.store_id:
        raise AccessDenied(f"您只能调整本门店（{viewer.store_name}）的提成费率。")
    return viewer.store_id


@routes.get("/api/commission/me")
@_commission_errors
async def my_statement(request: web.Request) -> web.Response:
    """The signed-in member's statement for ?month=YYYY-MM (default: this month), with every line."""
    app = request.config_dict
    raw = request.query.get("month", "")
    month = parse_month(raw) if raw else month_of(app[keys.CLOCK](), app[keys.SETTINGS].timezone)
    async with app[keys.SESSIONMAKER]() as session:
        viewer = await load_viewer(session, request[USERID])
        data = await svc.staff_statement(session, viewer.staff_id, month)
    return json_response(data)


@routes.get("/api/commission/team")
@_commission_errors
async def team_rates(request: web.Request) -> web.Response:
    """A store manager's view of their store's rates: HQ's rules and limits, the override, what applies."""
    async with request.config_dict[keys.SESSIONMAKER]() as session:
        viewer = await load_viewer(session, request[USERID])
        store_id = team_store(viewer)
        data = await svc.store_view(session, store_id)
    return json_response(data)


async def _audit_refusal(request: web.Request, viewer: Viewer, store_id: Any, reason: str, body: Any) -> None:
    # In its own transaction: the refused change's transaction (if any) was rolled back.
    app = request.config_dict
    async with app[keys.SESSIONMAKER].begin() as session:
        session.add(audit(viewer.userid, "commission_override_denied", "store", str(store_id or viewer.store_id or ""),
                          app[keys.CLOCK](), role=viewer.role.value, reason=reason, requested=body))


@routes.put("/api/commission/team")
@_commission_errors
async def set_team_rates(request: web.Request) -> web.Response:
    """A store manager sets their store's rates within HQ's limits: {base_rate?, category_rates?, tiers?}; {} clears."""
    body = await json_body(request, '{"base_rate": "4%", "category_rates": {"奶粉": "2%"}}')
    if not isinstance(body, dict):
        raise InvalidRules('请求体须为 JSON 对象，例如 {"base_rate": "4%"}')
    requested = body.pop("store_id", None)
    app = request.config_dict
    async with app[keys.SESSIONMAKER]() as session:
        viewer = await load_viewer(session, request[USERID])
    try:
        store_id = team_store(viewer, requested)
    except AccessDenied as exc:
        _LOGGER.info("commission override refused for %s (%s)", viewer.userid, viewer.role.value)
        await _audit_refusal(request, viewer, requested, exc.message, body)
        raise
    now = app[keys.CLOCK]()
    try:
        async with app[keys.SESSIONMAKER].begin() as session:
            data = await svc.set_store_override(session, store_id, body, actor=viewer.userid, now=now)
            session.add(audit(viewer.userid, "commission_override_set", "store", str(store_id), now,
                              override=data["override"], previous=data["previous"]))
    except OutsideLimits as exc:
        await _audit_refusal(request, viewer, store_id, exc.message, body)
        raise
    return json_response(data)
