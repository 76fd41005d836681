"""The /admin area: one sub-app, one token check for all of it."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot import status_page
from customers import admin_handlers as customer_admin
from customers import profile_handlers
from media import handlers as media_admin
from sharing import admin_handlers as sharing_admin
from sharing import commission_admin
from sharing import dashboard as share_dashboard
from sidebar import scripts_admin
from scrm import keys

COOKIE = "scrm_admin"


def _token_ok(request: web.Request, expected: str) -> bool:
    supplied = request.cookies.get(COOKIE, "")
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        supplied = auth[len("Bearer ") :]
    return bool(expected) and hmac.compare_digest(supplied.encode(), expected.encode())


@web.middleware
async def require_admin(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every admin page needs SCRM_ADMIN_TOKEN (cookie from /admin/login, or a Bearer header)."""
    expected = request.config_dict[keys.SETTINGS].admin_token
    if request.path == "/admin/login":
        return await handler(request)
    if not expected:
        raise web.HTTPForbidden(text="管理后台未启用：请设置环境变量 SCRM_ADMIN_TOKEN 后重启服务。\n")
    if not _token_ok(request, expected):
        raise web.HTTPUnauthorized(text="需要管理员令牌：请打开 /admin/login?token=<SCRM_ADMIN_TOKEN>。\n")
    return await handler(request)


async def login(request: web.Request) -> web.Response:
    """Exchange ?token= for an HttpOnly cookie, then go to the status page."""
    expected = request.config_dict[keys.SETTINGS].admin_token
    token = request.query.get("token", "")
    if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
        raise web.HTTPUnauthorized(text="管理员令牌不正确。\n")
    response = web.HTTPSeeOther("/admin/status")
    response.set_cookie(COOKIE, token, httponly=True, samesite="Lax", path="/admin")
    raise response


def create_admin_app() -> web.Application:
    """The admin sub-app (mounted at /admin)."""
    admin = web.Application(middlewares=[require_admin])
    admin.router.add_get("/login", login)
    admin.add_routes(status_page.routes)
    admin.add_routes(profile_handlers.routes)
    admin.add_routes(customer_admin.routes)
    admin.add_routes(scripts_admin.routes)
    admin.add_routes(media_admin.routes)
    admin.add_routes(sharing_admin.routes)
    admin.add_routes(commission_admin.routes)
    admin.add_routes(share_dashboard.routes)
    return admin
