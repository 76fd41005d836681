"""Admin API and page of channel codes (渠道活码), mounted in the /admin sub-app.

``/admin/api/channel-codes``: GET lists codes with their counts (``?period=day|week|month&offset=N``),
POST creates one; ``/{id}``: GET, PUT (the keys given replace the old ones), ``POST /{id}/disable``;
``/{id}/qr.png`` the QR image to download (``?print=1``: an A5 sheet to print); ``/{id}/stats``.
Errors answer ``{"error": "…", "field": "…"}``: 400 bad input, 404 unknown code, 409 disabled code,
502 WeCom refused (its errcode and meaning in the message).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from html import escape
from typing import Any, Final, cast
from urllib.parse import quote

from aiohttp import web

from scrm import keys
from scrm.jsonweb import field_errors, json_object, json_response
from sharing.channel_code_qr import render_printable
from sharing.channel_codes import (
    CHANNEL_CODES,
    ChannelCodeError,
    ChannelCodes,
    CodeStats,
    CodeView,
    code_json,
    code_stats,
    load_code,
    load_codes,
)
from sharing.fonts import FontNotFound, find_cjk_font
from sharing.performance import PERIODS, Period, period_bounds

routes = web.RouteTableDef()

MAX_BODY: Final = 64 * 1024
PERIOD_NAMES: Final = {"day": "今日", "week": "本周", "month": "本月"}
KIND_NAMES: Final = {"campaign": "活动", "store": "门店"}
STATUS_NAMES: Final = {"active": "使用中", "creating": "创建中", "disabled": "已停用"}


def _service(request: web.Request) -> ChannelCodes:
    return request.config_dict[CHANNEL_CODES]


def _id(request: web.Request) -> int:
    return int(request.match_info["id"])


async def _body(request: web.Request) -> dict[str, Any]:
    return await json_object(request, ChannelCodeError, max_bytes=MAX_BODY,
                             example='{"name": "春季上新", "members": [{"userid": "zhangsan"}]}')


def _period(request: web.Request) -> tuple[str, dt.datetime, dt.datetime]:
    period = request.query.get("period", "week")
    if period not in PERIODS:
        raise ChannelCodeError(f"period 须为 {' / '.join(PERIODS)} 之一", "period")
    raw = request.query.get("offset", "0")
    if not raw.isdigit() or int(raw) > 120:
        raise ChannelCodeError("offset 须为 0–120 的整数（往前第几个周期）", "offset")
    app = request.config_dict
    start, end = period_bounds(cast(Period, period), app[keys.CLOCK](), app[keys.SETTINGS].timezone, int(raw))
    return period, start, end


def _period_json(period: str, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    return {"period": period, "start": start.isoformat(), "end": end.isoformat()}


@routes.get("/api/channel-codes")
@field_errors
async def list_codes(request: web.Request) -> web.Response:
    """Every code, newest first, each with its counts for the period and in total."""
    period, start, end = _period(request)
    app = request.config_dict
    async with app[keys.SESSIONMAKER]() as session:
        views = await load_codes(session)
        stats = await code_stats(session, None, now=app[keys.CLOCK](), start=start, end=end)
    return json_response({**_period_json(period, start, end),
                          "codes": [code_json(v, stats.get(v.code.id, CodeStats())) for v in views]})


@routes.post("/api/channel-codes")
@field_errors
async def create_code(request: web.Request) -> web.Response:
    """Create a code: {name, kind, store_id?, skip_verify?, members: [{userid, role, schedule}], tag_ids?, welcome?}."""
    return json_response(await _service(request).create(await _body(request)), 201)


async def _code_with_stats(request: web.Request
                           ) -> tuple[CodeView, CodeStats, tuple[str, dt.datetime, dt.datetime]]:
    """The code in the URL, its counts for ?period=, and that period."""
    app = request.config_dict
    period = _period(request)
    async with app[keys.SESSIONMAKER]() as session:
        view = await load_code(session, _id(request))
        stats = await code_stats(session, [view.code.id], now=app[keys.CLOCK](), start=period[1], end=period[2])
    return view, stats.get(view.code.id, CodeStats()), period


@routes.get(r"/api/channel-codes/{id:\d+}")
@field_errors
async def get_code(request: web.Request) -> web.Response:
    """One code with its members, on-duty guides and total counts."""
    view, stats, _ = await _code_with_stats(request)
    return json_response(code_json(view, stats))


@routes.put(r"/api/channel-codes/{id:\d+}")
@field_errors
async def update_code(request: web.Request) -> web.Response:
    """Change a code; members, tags and welcome are replaced as given; {"enabled": false} disables it."""
    return json_response(await _service(request).update(_id(request), await _body(request)))


@routes.post(r"/api/channel-codes/{id:\d+}/disable")
@field_errors
async def disable_code(request: web.Request) -> web.Response:
    """Delete the code's WeCom contact way (its QR stops working); the code and its counts stay."""
    return json_response(await _service(request).disable(_id(request)))


@routes.get(r"/api/channel-codes/{id:\d+}/stats")
@field_errors
async def code_stats_api(request: web.Request) -> web.Response:
    """Adds (period and total), still friends after 7 days, orders and GMV after the add."""
    view, stats, (period, start, end) = await _code_with_stats(request)
    return json_response({"id": view.code.id, "name": view.code.name, **_period_json(period, start, end),
                          **stats.as_json()})


def _disposition(name: str, fallback: str) -> str:
    # RFC 6266 / 5987: an ASCII name for old clients, the Chinese one for the rest.
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name)}"


@routes.get(r"/api/channel-codes/{id:\d+}/qr.png")
@field_errors
async def qr_png(request: web.Request) -> web.Response:
    """The code's QR image as a download named after the code; ``?print=1`` an A5 sheet with name and call to action."""
    view, image = await _service(request).qr_png(_id(request))
    code = view.code
    headers = {"Cache-Control": "private, max-age=3600"}
    if request.query.get("print") not in ("1", "true"):
        headers["Content-Disposition"] = _disposition(f"{code.name}.png", f"channel-code-{code.id}.png")
        return web.Response(body=image, content_type="image/png" if image.startswith(b"\x89PNG") else "image/jpeg",
                            headers=headers)
    configured = request.config_dict[keys.SETTINGS].poster_font or None
    try:
        regular = await asyncio.to_thread(find_cjk_font, configured)
        bold = await asyncio.to_thread(find_cjk_font, configured, bold=True)
    except FontNotFound as exc:
        raise ChannelCodeError(exc.message_zh) from None
    subtitle = view.store.name if view.store else "活动专属二维码" if code.kind.value == "campaign" else ""
    sheet = await asyncio.to_thread(render_printable, image, code.name, subtitle, font_path=regular,
                                    bold_font_path=bold)
    headers["Content-Disposition"] = _disposition(f"{code.name}-打印版.png", f"channel-code-{code.id}-print.png")
    return web.Response(body=sheet, content_type="image/png", headers=headers)


@routes.get("/channel-codes")
async def page(request: web.Request) -> web.Response:
    """The channel codes page: each code with its QR, guides on duty and counts."""
    app = request.config_dict
    try:
        period, start, end = _period(request)
    except ChannelCodeError as exc:
        raise web.HTTPBadRequest(text=exc.message + "\n") from None
    async with app[keys.SESSIONMAKER]() as session:
        views = await load_codes(session)
        stats = await code_stats(session, None, now=app[keys.CLOCK](), start=start, end=end)
    rows = []
    for view in views:
        data = code_json(view, stats.get(view.code.id, CodeStats()))
        s = data["stats"]
        qr = (f'<a href="{data["qr_png"]}"><img src="{data["qr_png"]}" alt="二维码" width="96" height="96"></a>'
              f'<br><a href="{data["print_png"]}">打印版</a>') if data["status"] == "active" else "—"
        rate = f"{s['kept_rate_7d'] * 100:.1f}%" if s["kept_rate_7d"] is not None else "—"
        on_duty = "、".join(m["name"] or m["userid"] for m in data["members"] if m["userid"] in data["on_duty"])
        rows.append(
            f"<tr><td>{qr}</td><td>{escape(view.code.name)}<br><span class=muted>{KIND_NAMES[data['kind']]}"
            f"{' · ' + escape(data['store']['name']) if data['store'] else ''}</span></td>"
            f"<td>{STATUS_NAMES[data['status']]}</td>"
            f"<td>{escape(on_duty)}</td>"
            f"<td>{s['adds_in_period']}</td><td>{s['adds']}</td><td>{s['kept_7d']}/{s['eligible_7d']}（{rate}）</td>"
            f"<td>{s['orders']}</td><td>¥{s['gmv_cents'] / 100:,.2f}</td></tr>")
    body = "".join(rows) or ('<tr><td colspan="9" class="empty">还没有渠道码：'
                             '用 POST /admin/api/channel-codes 创建</td></tr>')
    links = " · ".join(f'<a href="?period={p}"{" class=on" if p == period else ""}>{PERIOD_NAMES[p]}</a>'
                       for p in PERIODS)
    text = f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>渠道活码 · 企微SCRM</title><link rel="stylesheet" href="/static/admin.css"></head>
<body><main>
<h1>渠道活码</h1>
<p class="nav">周期：{links}</p>
<p class="muted">扫码的客户由企业微信在值班导购之间轮流分配；
7 日留存 = 添加满 7 天且 7 天内未删除的人数 / 添加满 7 天的人数；
订单与成交额按客户首次通过该码添加之后的已支付订单计（退款扣除）。</p>
<table><thead><tr><th>二维码</th><th>名称</th><th>状态</th><th>当前值班</th><th>{PERIOD_NAMES[period]}新增</th>
<th>累计新增</th><th>7 日留存</th><th>订单</th><th>成交额</th></tr></thead><tbody>{body}</tbody></table>
</main></body></html>"""
    return web.Response(text=text, content_type="text/html", charset="utf-8")
