"""The /sidebar area: one sub-app whose middleware checks the session and maps domain errors."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from sqlalchemy.exc import TimeoutError as PoolTimeout

from scrm import keys
from sidebar import auth, handlers, page, pages, scripts_handlers, share_handlers
from sidebar import commission_handlers
from sidebar.errors import NotSignedIn, SidebarError
from sidebar.session import require_secret
from wecom.errors import WeComError, WeComUnavailable

_LOGGER = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _is_page(request: web.Request) -> bool:
    return request.match_info.route.name == auth.INDEX_ROUTE


def _signin_url(request: web.Request) -> str:
    # The index route's path, wherever the composition root mounted the sub-app.
    return request.app.router[auth.INDEX_ROUTE].url_for().path


def _error(request: web.Request, status: int, code: str, message: str) -> web.StreamResponse:
    if _is_page(request):
        response = pages.error_page(message, status)
    else:
        body = {"error": code, "message": message}
        if status == 401:
            body["signin"] = _signin_url(request)
            body["hint"] = "登录已失效，请重新打开侧边栏（或刷新页面）以重新登录。"
        response = handlers.json_response(body, status)
    if status == 503:
        response.headers["Retry-After"] = "2"
    return response


@web.middleware
async def sidebar_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Require a session on the API; turn domain and WeCom errors into clear 4xx/5xx answers."""
    try:
        if request.match_info.http_exception is None and not _is_page(request):
            require_secret(request.config_dict[keys.SETTINGS])
            session = auth.current_session(request)
            if session is None:
                raise NotSignedIn("未登录或登录已过期。")
            request[handlers.USERID] = session.userid
        return await handler(request)
    except SidebarError as exc:
        return _error(request, exc.status, exc.code, exc.message)
    except PoolTimeout:
        # Every database connection is busy: an overload, not a bug. Say so instead of a bare 500.
        _LOGGER.warning("no database connection free for %s", request.path)
        return _error(request, 503, "busy", "当前访问人数较多，请稍后重试。")
    except WeComUnavailable:
        _LOGGER.warning("WeCom unreachable during %s", request.path)
        return _error(request, 503, "wecom_unavailable", "暂时无法连接企业微信，请稍后重试。")
    except WeComError as exc:
        _LOGGER.warning("WeCom error during %s: %s", request.path, exc)
        return _error(request, 502, "wecom_error", f"企业微信返回错误（错误码 {exc.errcode}），请稍后重试或联系管理员。")


def create_sidebar_app() -> web.Application:
    """The sidebar sub-app, to be mounted at /sidebar by the composition root."""
    app = web.Application(middlewares=[sidebar_middleware])
    app.add_routes(auth.routes)
    app.add_routes(handlers.routes)
    app.add_routes(page.routes)
    app.add_routes(scripts_handlers.routes)
    app.add_routes(share_handlers.routes)
    app.add_routes(commission_handlers.routes)
    return app
