"""Silent sign-in of the member with WeCom OAuth snsapi_base (PROTOCOL.md §4.14, §5.1).

``GET /sidebar/`` without a session redirects to the authorize link; WeCom sends the member back
with ``?code=&state=``; the code becomes a userid (auth/getuserinfo), the member a staff row, and
the browser gets a signed session cookie and a redirect to the same URL without code and state
(the JS-SDK signs the exact page URL, so it must be clean).
"""

from __future__ import annotations

import logging
from typing import Final
from urllib.parse import quote, urlencode

from aiohttp import web
from sqlalchemy import select
from yarl import URL

from bot import sync
from bot.context import BotContext
from models import Staff, Store
from scrm import keys
from scrm.settings import Settings
from sidebar import page, pages
from sidebar.context import bot_context
from sidebar.errors import AccessDenied, InvalidRequest, SidebarError, UpstreamError
from sidebar.permissions import audit
from sidebar.session import (
    SESSION_COOKIE,
    SESSION_TTL,
    STATE_COOKIE,
    STATE_TTL,
    Session,
    clear_cookie,
    new_state,
    read_session,
    require_secret,
    set_cookie,
    sign_session,
    sign_state,
    state_matches,
)
from wecom.errors import WeComError, WeComUnavailable
from wecom.gateway import NON_MEMBER_ERRCODE

_LOGGER = logging.getLogger(__name__)

routes = web.RouteTableDef()
INDEX_ROUTE: Final = "sidebar-index"
#: auth/getuserinfo: the code is invalid, used or older than 5 minutes.
_BAD_CODE: Final = 40029
_OAUTH_PARAMS: Final = ("code", "state")
#: user/get status: 2 disabled, 5 quit.
_INACTIVE: Final = frozenset({2, 5})


def authorize_url(settings: Settings, redirect_uri: str, state: str) -> str:
    """The OAuth link of §4.14: snsapi_base, our corp and agent, ``#wechat_redirect`` at the end."""
    query = urlencode(
        [("appid", settings.corp_id), ("redirect_uri", redirect_uri), ("response_type", "code"),
         ("scope", "snsapi_base"), ("state", state), ("agentid", str(settings.agent_id))],
        quote_via=quote, safe="",
    )
    return f"{settings.oauth_authorize_url}?{query}#wechat_redirect"


def clean_url(rel_url: URL) -> URL:
    """The page URL without the OAuth parameters (other query parameters kept)."""
    return rel_url.without_query_params(*_OAUTH_PARAMS)


def redirect(location: str) -> web.Response:
    """A 302 with ``location`` exactly as given (yarl would un-escape the nested redirect_uri)."""
    return web.Response(status=302, headers={"Location": location, "Cache-Control": "no-store"})


def cookie_path(request: web.Request) -> str:
    """Cookies are scoped to wherever the sidebar is mounted (the index path without its slash)."""
    return request.path.rstrip("/") or "/"


def now_seconds(request: web.Request) -> int:
    """The app clock as unix seconds."""
    return int(request.config_dict[keys.CLOCK]().timestamp())


def current_session(request: web.Request) -> Session | None:
    """The request's valid session, if any."""
    settings = request.config_dict[keys.SETTINGS]
    return read_session(settings.session_secret, request.cookies.get(SESSION_COOKIE, ""), now_seconds(request))


@routes.get("/", name=INDEX_ROUTE)
async def index(request: web.Request) -> web.StreamResponse:
    """The toolbar URL: sign in silently, finish a sign-in, or show the page."""
    settings = request.config_dict[keys.SETTINGS]
    require_secret(settings)
    if "code" in request.query:
        return await _finish_sign_in(request)
    if "state" in request.query:  # WeCom came back without a code: the member did not authorise
        return pages.error_page("企业微信没有完成授权，无法确认您的身份。", 403)
    session = current_session(request)
    if session is not None:
        async with request.config_dict[keys.SESSIONMAKER]() as db:
            row = (await db.execute(select(Staff, Store.name).outerjoin(Store, Store.id == Staff.store_id)
                                    .where(Staff.userid == session.userid))).first()
        if row is not None:  # a member removed from our records signs in again (and is re-created)
            staff, store = row
            if staff.wecom_status in _INACTIVE:
                return pages.error_page("您的企业微信账号已停用或已离职，不能使用客户助手。", 403)
            return page.render_sidebar(request, staff.name or staff.userid, store or "")
    return _start_sign_in(request)


def _start_sign_in(request: web.Request) -> web.StreamResponse:
    settings = request.config_dict[keys.SETTINGS]
    state = new_state()
    redirect_uri = settings.public_base_url.rstrip("/") + str(clean_url(request.rel_url))
    response = redirect(authorize_url(settings, redirect_uri, state))
    set_cookie(response, settings, STATE_COOKIE, sign_state(settings.session_secret, state, now_seconds(request)),
               path=cookie_path(request), max_age=STATE_TTL)
    return response


async def _finish_sign_in(request: web.Request) -> web.StreamResponse:
    settings = request.config_dict[keys.SETTINGS]
    path = cookie_path(request)
    if not state_matches(settings.session_secret, request.cookies.get(STATE_COOKIE, ""),
                         request.query.get("state", ""), now_seconds(request)):
        response = pages.error_page(
            "登录校验失败：这个登录链接不是本次打开侧边栏时发起的，或已超过 10 分钟。",
            400, "请关闭侧边栏后重新打开；如反复出现，请确认企业微信允许本页面保存 Cookie。")
        clear_cookie(response, settings, STATE_COOKIE, path=path)
        return response
    try:
        staff = await sign_in(bot_context(request), request.query.get("code", ""))
    except SidebarError as exc:
        response = pages.error_page(exc.message, exc.status)
        clear_cookie(response, settings, STATE_COOKIE, path=path)
        return response
    response = redirect(str(clean_url(request.rel_url)))
    set_cookie(response, settings, SESSION_COOKIE, sign_session(settings.session_secret, staff.userid,
                                                                 now_seconds(request)),
               path=path, max_age=SESSION_TTL)
    clear_cookie(response, settings, STATE_COOKIE, path=path)
    return response


async def sign_in(ctx: BotContext, code: str) -> Staff:
    """The staff member an OAuth code belongs to (created from user/get on first sight), audited."""
    if not code or len(code) > 512:
        raise InvalidRequest("登录凭证缺失或格式不正确。")
    try:
        userid = await ctx.gateway.get_userid_by_code(code)
    except WeComError as exc:
        if exc.errcode == _BAD_CODE:
            raise InvalidRequest("登录凭证无效、已被使用或已过期（企业微信授权码只能使用一次，5 分钟内有效）。") from None
        if exc.errcode == NON_MEMBER_ERRCODE:
            raise AccessDenied("您不是本企业的成员，无法使用客户助手。") from None
        raise UpstreamError(f"企业微信登录失败（错误码 {exc.errcode}），请联系管理员检查应用配置。") from None
    except WeComUnavailable:
        raise UpstreamError("暂时无法连接企业微信，请稍后重试。") from None
    try:
        staff = await sync.ensure_staff(ctx, userid)
    except WeComError as exc:
        raise UpstreamError(
            f"无法读取您的成员信息（错误码 {exc.errcode}），请联系管理员确认您在应用的可见范围内。") from None
    except WeComUnavailable:
        raise UpstreamError("暂时无法连接企业微信，请稍后重试。") from None
    if staff.wecom_status in _INACTIVE:
        raise AccessDenied("您的企业微信账号已停用或已离职，不能使用客户助手。")
    async with ctx.maker.begin() as session:
        session.add(audit(userid, "sidebar_signed_in", "staff", userid, ctx.clock()))
    _LOGGER.info("sidebar sign-in: %s", userid)
    return staff
