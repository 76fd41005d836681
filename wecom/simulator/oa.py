"""A fake of the brand's WeChat official account OAuth (open.weixin.qq.com / api.weixin.qq.com), for share links.

``GET /_sim/oa/connect/oauth2/authorize`` stands in for WeChat's silent ``snsapi_base`` page: it sends
the browser back to ``redirect_uri`` with a code and the state, as the WeChat user ``sim_unionid``
names (a customer of the fake corp with that unionid), or, without it, after a page to pick one.
``GET /_sim/oa/sns/oauth2/access_token`` exchanges the code (once, within 5 minutes) for the openid and
unionid, with WeChat's error codes for a wrong AppID/secret (40125) or a bad code (40029, 40163 used).
"""

from __future__ import annotations

import hashlib
import html
import secrets
from dataclasses import dataclass
from typing import Final

from aiohttp import web
from yarl import URL

from wecom.simulator.state import SimulatorState

OA_APPID: Final = "wx5151000000000a0a"
OA_SECRET: Final = "sim-official-account-secret"
CODE_TTL: Final = 300.0
STRANGER: Final = "-"  # a WeChat user the brand does not know, with no unionid


@dataclass
class _Code:
    openid: str
    unionid: str
    issued_at: float
    used: bool = False


_CODES: Final = web.AppKey("oa_codes", dict[str, _Code])
_STATE: Final = web.AppKey("oa_simulator_state", SimulatorState)


def _openid(unionid: str) -> str:
    return "oOA" + hashlib.sha256(unionid.encode()).hexdigest()[:25]


async def _authorize(request: web.Request) -> web.Response:
    state = request.app[_STATE]
    query = request.query
    if query.get("appid") != OA_APPID:
        return _page("参数错误：appid 不正确（10003）")
    target = URL(query.get("redirect_uri", ""))
    if not target.is_absolute() or target.scheme not in ("http", "https"):
        return _page("redirect_uri 参数错误（10003）")
    if query.get("scope") != "snsapi_base":
        return _page("scope 参数错误（10005）")
    chosen = query.get("sim_unionid")
    if chosen is None:
        links = [f"<li><a href=\"{html.escape(str(request.rel_url.update_query(sim_unionid=c.unionid)))}\">"
                 f"{html.escape(c.name)}</a></li>" for c in state.customers.values() if c.unionid]
        links.append(f"<li><a href=\"{html.escape(str(request.rel_url.update_query(sim_unionid=STRANGER)))}\">"
                     "陌生微信用户（品牌不认识）</a></li>")
        return _page("以哪位微信用户的身份打开？", "".join(links))
    unionid = "" if chosen == STRANGER else chosen
    code = secrets.token_urlsafe(24)
    request.app[_CODES][code] = _Code(_openid(unionid or code), unionid, state.clock())
    raise web.HTTPFound(target.update_query(code=code, state=query.get("state", "")))


async def _access_token(request: web.Request) -> web.Response:
    state = request.app[_STATE]
    query = request.query
    if query.get("appid") != OA_APPID or query.get("secret") != OA_SECRET:
        return web.json_response({"errcode": 40125, "errmsg": "invalid appsecret"})
    if query.get("grant_type") != "authorization_code":
        return web.json_response({"errcode": 40002, "errmsg": "invalid grant_type"})
    found = request.app[_CODES].get(query.get("code", ""))
    if found is None or state.clock() - found.issued_at > CODE_TTL:
        return web.json_response({"errcode": 40029, "errmsg": "invalid code"})
    if found.used:
        return web.json_response({"errcode": 40163, "errmsg": "code been used"})
    found.used = True
    body = {"access_token": secrets.token_urlsafe(32), "expires_in": 7200, "refresh_token": secrets.token_urlsafe(32),
            "openid": found.openid, "scope": "snsapi_base"}
    if found.unionid:
        body["unionid"] = found.unionid
    return web.json_response(body)


def _page(title: str, body: str = "") -> web.Response:
    page = (f"<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'><title>微信授权（模拟）</title></head>"
            f"<body><h1>{html.escape(title)}</h1><ul>{body}</ul></body></html>")
    return web.Response(text=page, content_type="text/html", charset="utf-8")


def add_oa_routes(app: web.Application, state: SimulatorState) -> None:
    """Serve the fake official account under ``/_sim/oa/``: authorize page and the code exchange."""
    app[_STATE] = state
    app[_CODES] = {}
    app.router.add_get("/_sim/oa/connect/oauth2/authorize", _authorize)
    app.router.add_get("/_sim/oa/sns/oauth2/access_token", _access_token)
