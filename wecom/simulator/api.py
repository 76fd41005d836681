"""The fake WeCom HTTP API: `/cgi-bin/<path>` as qyapi.weixin.qq.com serves it, plus `/_sim/` controls.

Every `/cgi-bin/` answer is HTTP 200 with the JSON envelope `{"errcode", "errmsg", ...}` (§1.4, §8.2).
One dispatcher does what all WeCom APIs share (call counting, HTTP method, access_token, injected
faults, permission, lenient JSON); the per-API handlers only pick parameters and call the state.
"""

from __future__ import annotations

import html
import io
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import qrcode
from aiohttp import BodyPartReader, web
from yarl import URL

from wecom.simulator.errors import SimApiError, errmsg_for
from wecom.simulator.oa import add_oa_routes
from wecom.simulator.state import SimulatorState

_LOGGER = logging.getLogger(__name__)

SIMULATOR_STATE: Final = web.AppKey("simulator_state", SimulatorState)

MAX_UPLOAD_BYTES: Final = 21 * 1024 * 1024  # the largest media type (file, 20 MB) plus multipart overhead
_UNICODE_ESCAPE: Final = re.compile(rb"\\u[0-9a-fA-F]{4}")
_MORE_INFO: Final = "https://open.work.weixin.qq.com/devtool/query?e="


@dataclass(frozen=True)
class ApiCall:
    """What a handler gets: the state, the raw request, the query and the decoded JSON body."""

    state: SimulatorState
    request: web.Request
    query: Mapping[str, str]
    body: dict[str, Any]


Handler = Callable[[ApiCall], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class _Endpoint:
    method: Literal["GET", "POST"]
    handler: Handler
    needs_token: bool
    customer_contact: bool  # needs the app listed under 客户联系 → 可调用接口的应用 (48002)
    json_body: bool


_ENDPOINTS: dict[str, _Endpoint] = {}


def _api(
    path: str,
    method: Literal["GET", "POST"],
    *,
    needs_token: bool = True,
    customer_contact: bool = False,
    json_body: bool = True,
) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        _ENDPOINTS[path] = _Endpoint(method, handler, needs_token, customer_contact, json_body and method == "POST")
        return handler

    return register


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def _envelope(errcode: int, detail: str = "", payload: Mapping[str, Any] | None = None) -> web.Response:
    if errcode == 0:
        errmsg = "ok"
    else:
        # Real errmsgs carry a hint suffix; clients must branch on errcode, never on this text.
        extra = f" ({detail})" if detail else ""
        errmsg = f"{errmsg_for(errcode)}{extra}, hint: [fake], more info at {_MORE_INFO}{errcode}"
    body = {"errcode": errcode, "errmsg": errmsg, **(payload or {})}
    return web.Response(text=_dumps(body), content_type="application/json", charset="utf-8")


async def _read_json(request: web.Request, state: SimulatorState) -> dict[str, Any]:
    raw = await request.read()
    if state.reject_unicode_escapes and _UNICODE_ESCAPE.search(raw):
        raise SimApiError(40033)
    if not raw.strip():
        return {}
    try:
        # strict=False: WeCom tolerates raw control characters inside strings, as wechatpy does.
        data = json.loads(raw.decode("utf-8"), strict=False)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise SimApiError(47001, "Warning: wrong json format.") from None
    if not isinstance(data, dict):
        raise SimApiError(47001, "the body must be a JSON object")
    return data


async def _cgi_bin(request: web.Request) -> web.Response:
    state = request.app[SIMULATOR_STATE]
    path = request.match_info["path"].strip("/")
    state.calls[path] += 1
    # Where the simulator is reachable (it may be mounted under a prefix): QR images it hands out point here.
    state.public_base = str(request.url.with_query(None)).split("/cgi-bin/", 1)[0]
    endpoint = _ENDPOINTS.get(path)
    if endpoint is None:
        # Loud on purpose: a path the simulator lacks is a gap in the fake, not a client error.
        return web.json_response({"errcode": 404, "errmsg": f"api {path!r} is not served by the simulator"},
                                 status=404, dumps=_dumps)
    try:
        if state.trusted_ips is not None and request.remote not in state.trusted_ips:
            raise SimApiError(60020, f"from ip: {request.remote}")
        if request.method != endpoint.method:
            raise SimApiError(40035, f"{path} must be called with {endpoint.method}")
        if endpoint.needs_token:
            state.check_token(request.query.get("access_token", ""))
        injected = state.take_injected_error(path)
        if injected is not None:
            raise SimApiError(injected, "injected fault")
        if endpoint.customer_contact and not state.customer_contact_authorized:
            raise SimApiError(48002, "app is not in 客户联系 → 可调用接口的应用")
        body = await _read_json(request, state) if endpoint.json_body else {}
        payload = await endpoint.handler(ApiCall(state, request, request.query, body))
    except SimApiError as exc:
        _LOGGER.debug("simulator %s -> %s", path, exc)
        return _envelope(exc.errcode, exc.detail)
    return _envelope(0, payload=payload)


# ---------------------------------------------------------------------- /cgi-bin/ handlers


@_api("gettoken", "GET", needs_token=False)
async def _gettoken(call: ApiCall) -> dict[str, Any]:
    return call.state.gettoken(call.query.get("corpid", ""), call.query.get("corpsecret", ""))


@_api("getcallbackip", "GET")
async def _getcallbackip(call: ApiCall) -> dict[str, Any]:
    return call.state.getcallbackip()


@_api("externalcontact/get_follow_user_list", "GET", customer_contact=True)
async def _get_follow_user_list(call: ApiCall) -> dict[str, Any]:
    return call.state.get_follow_user_list()


@_api("externalcontact/list", "GET", customer_contact=True)
async def _list(call: ApiCall) -> dict[str, Any]:
    return call.state.list_external_contacts(call.query.get("userid", ""))


@_api("externalcontact/get", "GET", customer_contact=True)
async def _get(call: ApiCall) -> dict[str, Any]:
    return call.state.get_external_contact(call.query.get("external_userid", ""), call.query.get("cursor", ""))


def _body_api(path: str, operation: Callable[[SimulatorState, dict[str, Any]], dict[str, Any]]) -> None:
    """Register a customer-contact POST API whose state operation takes the JSON body."""

    async def handler(call: ApiCall) -> dict[str, Any]:
        return operation(call.state, call.body)

    _api(path, "POST", customer_contact=True)(handler)


for _path, _operation in {
    "externalcontact/batch/get_by_user": SimulatorState.batch_get_by_user,
    "externalcontact/add_contact_way": SimulatorState.add_contact_way,
    "externalcontact/get_contact_way": SimulatorState.get_contact_way,
    "externalcontact/update_contact_way": SimulatorState.update_contact_way,
    "externalcontact/del_contact_way": SimulatorState.del_contact_way,
    "externalcontact/list_contact_way": SimulatorState.list_contact_way,
    "externalcontact/send_welcome_msg": SimulatorState.send_welcome_msg,
    "externalcontact/add_msg_template": SimulatorState.add_msg_template,
    "externalcontact/get_groupmsg_list_v2": SimulatorState.get_groupmsg_list_v2,
    "externalcontact/get_groupmsg_task": SimulatorState.get_groupmsg_task,
    "externalcontact/get_groupmsg_send_result": SimulatorState.get_groupmsg_send_result,
    "externalcontact/groupchat/list": SimulatorState.groupchat_list,
    "externalcontact/groupchat/get": SimulatorState.groupchat_get,
    "externalcontact/get_corp_tag_list": SimulatorState.get_corp_tag_list,
    "externalcontact/add_corp_tag": SimulatorState.add_corp_tag,
    "externalcontact/edit_corp_tag": SimulatorState.edit_corp_tag,
    "externalcontact/del_corp_tag": SimulatorState.del_corp_tag,
    "externalcontact/mark_tag": SimulatorState.mark_tag,
}.items():
    _body_api(_path, _operation)


@_api("user/get", "GET")
async def _user_get(call: ApiCall) -> dict[str, Any]:
    return call.state.user_get(call.query.get("userid", ""))


@_api("auth/getuserinfo", "GET")
async def _auth_getuserinfo(call: ApiCall) -> dict[str, Any]:
    return {"userid": call.state.getuserinfo(call.query.get("code", ""))}


@_api("user/getuserinfo", "GET")
async def _legacy_getuserinfo(call: ApiCall) -> dict[str, Any]:
    # The legacy path (still used by wechatpy) answers with capitalised keys (§4.14).
    return {"UserId": call.state.getuserinfo(call.query.get("code", "")), "DeviceId": ""}


@_api("get_jsapi_ticket", "GET")
async def _get_jsapi_ticket(call: ApiCall) -> dict[str, Any]:
    return call.state.jsapi_ticket("corp")


@_api("ticket/get", "GET")
async def _ticket_get(call: ApiCall) -> dict[str, Any]:
    if call.query.get("type") != "agent_config":
        raise SimApiError(40058, "type must be agent_config")
    return call.state.jsapi_ticket("agent")


@_api("message/send", "POST")
async def _message_send(call: ApiCall) -> dict[str, Any]:
    return call.state.message_send(call.body)


@_api("media/upload", "POST", json_body=False)
async def _media_upload(call: ApiCall) -> dict[str, Any]:
    media_type = call.query.get("type", "")
    if not media_type:
        raise SimApiError(40005, "type is required")
    data: bytes | None = None
    filename = ""
    if call.request.content_type.startswith("multipart/"):
        reader = await call.request.multipart()
        async for part in reader:
            if isinstance(part, BodyPartReader) and part.name == "media":
                data = bytes(await part.read(decode=False))
                filename = part.filename or ""
                break
    return call.state.media_upload(media_type, filename, data)


# ---------------------------------------------------------------------- /_sim/ controls (not WeCom)


async def _sim_state(request: web.Request) -> web.Response:
    return web.json_response(request.app[SIMULATOR_STATE].summary(), dumps=_dumps)


async def _sim_body(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json(loads=lambda text: json.loads(text, strict=False)) if request.can_read_body else {}
    except json.JSONDecodeError:
        raise web.HTTPBadRequest(text="body must be JSON") from None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    return data


async def _sim_faults(request: web.Request) -> web.Response:
    state = request.app[SIMULATOR_STATE]
    body = await _sim_body(request)
    if body.get("expire_tokens"):
        state.expire_tokens()
    if body.get("revoke_tokens"):
        state.revoke_tokens()
    if "rotate_tokens_on_gettoken" in body:
        state.rotate_tokens_on_gettoken = bool(body["rotate_tokens_on_gettoken"])
    if "mass_dispatch_delay" in body:
        state.mass_dispatch_delay = float(body["mass_dispatch_delay"])
    if body.get("api"):
        try:
            state.inject_error(str(body["api"]), int(body["errcode"]), int(body.get("times", 1)))
        except (KeyError, TypeError, ValueError):
            raise web.HTTPBadRequest(text="api needs an integer errcode (and optional times)") from None
    return web.json_response({"ok": True})


async def _sim_mass_confirm(request: web.Request) -> web.Response:
    state = request.app[SIMULATOR_STATE]
    body = await _sim_body(request)
    try:
        state.confirm_mass_task(str(body.get("msgid", "")), str(body.get("userid", "")))
    except KeyError:
        raise web.HTTPNotFound(text="unknown msgid or no task for that userid") from None
    return web.json_response({"ok": True})


async def _sim_jsapi_verify(request: web.Request) -> web.Response:
    state = request.app[SIMULATOR_STATE]
    body = await _sim_body(request)
    kind = body.get("kind")
    if kind not in ("corp", "agent"):
        raise web.HTTPBadRequest(text="kind must be corp or agent")
    ok = state.verify_jsapi_signature(
        kind, str(body.get("noncestr", "")), str(body.get("timestamp", "")), str(body.get("url", "")),
        str(body.get("signature", "")),
    )
    return web.json_response({"ok": ok})


def _oauth_error_page(message: str) -> web.Response:
    page = f"<!doctype html><meta charset='utf-8'><title>企业微信</title><p>{html.escape(message)}</p>"
    return web.Response(text=page, content_type="text/html", charset="utf-8")


async def _oauth_authorize(request: web.Request) -> web.Response:
    """The fake open.weixin.qq.com authorize page: pick a member, get redirected with a code."""
    state = request.app[SIMULATOR_STATE]
    query = request.query
    if query.get("appid") != state.corp_id:
        return _oauth_error_page("参数错误：appid 不正确")
    redirect_uri = query.get("redirect_uri", "")
    target = URL(redirect_uri)
    if not redirect_uri or not target.is_absolute() or target.scheme not in ("http", "https"):
        return _oauth_error_page("参数错误：redirect_uri 无效")
    if state.trusted_redirect_hosts is not None and target.host not in state.trusted_redirect_hosts:
        return _oauth_error_page("redirect_uri 需使用应用可信域名（50001）")
    if query.get("scope", "snsapi_base") not in ("snsapi_base", "snsapi_privateinfo"):
        return _oauth_error_page("参数错误：scope 无效")
    userid = query.get("sim_userid", "")
    if userid:
        if userid not in state.members:
            return _oauth_error_page(f"成员 {userid} 不存在")
        code = state.create_oauth_code(userid)
        raise web.HTTPFound(target.update_query(code=code, state=query.get("state", "")))
    links = []
    for member in state.members.values():
        if member.status != 1:
            continue
        href = request.rel_url.update_query(sim_userid=member.userid)
        links.append(f"<li><a href=\"{html.escape(str(href))}\">{html.escape(member.name)}"
                     f"（{html.escape(member.userid)}）</a></li>")
    page = (
        "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<title>企业微信授权（模拟）</title></head><body>"
        "<h1>模拟企业微信网页授权</h1><p>请选择以哪位成员的身份登录：</p>"
        f"<ul>{''.join(links)}</ul></body></html>"
    )
    return web.Response(text=page, content_type="text/html", charset="utf-8")


async def _contact_way_qr(request: web.Request) -> web.Response:
    """The image behind a contact way's qr_code URL: a QR code that opens the simulator's scan page."""
    state = request.app[SIMULATOR_STATE]
    config_id = request.match_info["config_id"]
    if config_id not in state.contact_ways:
        raise web.HTTPNotFound(text="no such contact way")
    scan_url = str(request.url.with_query(None)).split("/_sim/qr/", 1)[0] + f"/_sim/scan/{config_id}"
    image = qrcode.make(scan_url, box_size=8, border=2)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return web.Response(body=out.getvalue(), content_type="image/png")


def create_simulator_app(state: SimulatorState) -> web.Application:
    """Build the fake WeCom: serve it and point the client's API base URL at `http://host:port/cgi-bin/`."""
    app = web.Application(client_max_size=MAX_UPLOAD_BYTES)
    app[SIMULATOR_STATE] = state
    app.router.add_route("*", "/cgi-bin/{path:.+}", _cgi_bin)
    app.router.add_get("/_sim/state", _sim_state)
    app.router.add_post("/_sim/faults", _sim_faults)
    app.router.add_post("/_sim/mass/confirm", _sim_mass_confirm)
    app.router.add_post("/_sim/jsapi/verify", _sim_jsapi_verify)
    app.router.add_get("/connect/oauth2/authorize", _oauth_authorize)
    app.router.add_get("/_sim/qr/{config_id}.png", _contact_way_qr)
    add_oa_routes(app, state)
    return app
