"""Admin status page of the bot (HTML for people, JSON for scripts)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from html import escape
from zoneinfo import ZoneInfo

from aiohttp import web

from bot import inbox
from bot.status import BotStatus, bot_status
from scrm import keys

routes = web.RouteTableDef()

_STATUS_LABEL = {"pending": "待处理", "processing": "处理中", "done": "已完成", "ignored": "已忽略", "parked": "已搁置"}


def _time(value: dt.datetime, tz: ZoneInfo) -> str:
    return value.astimezone(tz).strftime("%m-%d %H:%M:%S")


def _rows(status: BotStatus, parked: bool, tz: ZoneInfo) -> str:
    rows = status.parked if parked else status.recent
    if not rows:
        return '<tr><td colspan="6" class="empty">暂无</td></tr>'
    out = []
    for r in rows:
        action = (
            f'<form method="post" action="/admin/api/events/{r.id}/requeue"><button>重新处理</button></form>'
            if parked else escape(_STATUS_LABEL.get(r.status, r.status))
        )
        out.append(
            f"<tr><td>{r.id}</td><td>{_time(r.received_at, tz)}</td><td>{escape(r.kind)}</td>"
            f"<td>{r.attempts}{f' (+{r.duplicates} 重复)' if r.duplicates else ''}</td>"
            f"<td class=err>{escape(r.last_error[:200])}</td><td>{action}</td></tr>"
        )
    return "\n".join(out)


def render_status(status: BotStatus, tz: ZoneInfo) -> str:
    """The status page as HTML (every value escaped)."""
    checks = "\n".join(
        f'<li class="{"ok" if c.ok else "bad"}">{"✔" if c.ok else "✘"} {escape(c.name)}：{escape(c.detail)}</li>'
        for c in status.checks
    )
    counts = " · ".join(f"{_STATUS_LABEL.get(k, k)} {v}" for k, v in status.counts.items())
    sim = "（内置模拟器）" if status.uses_simulator else ""
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>回调状态 · 企微SCRM</title><link rel="stylesheet" href="/static/admin.css"></head>
<body><main>
<h1>企业微信回调状态</h1>
<p class="nav">管理页面：<a href="/admin/pushes">定时群发</a> · <a href="/admin/share">分享看板</a> ·
<a href="/admin/channel-codes">渠道活码</a></p>
<section><h2>接收消息服务器配置</h2>
<p>在企业微信管理后台「应用管理 → 自建应用 → 接收消息 → 设置API接收」中填写：</p>
<p class="url">URL：<code id="callback-url">{escape(status.callback_url)}</code></p>
<p>Token 与 EncodingAESKey 须与本服务的 WECOM_TOKEN、WECOM_ENCODING_AES_KEY 完全一致。</p>
<ul class="checks">{checks}</ul>
<p>企业微信 API 地址：<code>{escape(status.api_base)}</code>{sim}</p></section>
<section><h2>最近的回调</h2><p id="counts">{escape(counts)}</p>
<table><thead><tr><th>#</th><th>收到时间</th><th>事件</th><th>尝试次数</th><th>错误</th><th>状态</th></tr></thead>
<tbody id="recent">{_rows(status, parked=False, tz=tz)}</tbody></table></section>
<section><h2>已搁置的事件</h2><p>多次处理失败的事件会被搁置在这里，修复原因后可重新处理。</p>
<table><thead><tr><th>#</th><th>收到时间</th><th>事件</th><th>尝试次数</th><th>错误</th><th>操作</th></tr></thead>
<tbody id="parked">{_rows(status, parked=True, tz=tz)}</tbody></table></section>
</main></body></html>"""


def _jsonable(status: BotStatus) -> dict[str, object]:
    data = dataclasses.asdict(status)
    for row in data["recent"] + data["parked"]:
        row["received_at"] = row["received_at"].isoformat()
    return data


@routes.get("/status")
async def status_page(request: web.Request) -> web.Response:
    """The HTML page."""
    status = await bot_status(request.config_dict[keys.SESSIONMAKER], request.config_dict[keys.SETTINGS])
    tz = ZoneInfo(request.config_dict[keys.SETTINGS].timezone)
    return web.Response(text=render_status(status, tz), content_type="text/html")


@routes.get("/api/status")
async def status_json(request: web.Request) -> web.Response:
    """The same data as JSON."""
    status = await bot_status(request.config_dict[keys.SESSIONMAKER], request.config_dict[keys.SETTINGS])
    return web.json_response(_jsonable(status))


@routes.post("/api/events/{event_id:\\d+}/requeue")
async def requeue(request: web.Request) -> web.Response:
    """Send a parked event back to the worker."""
    event_id = int(request.match_info["event_id"])
    ok = await inbox.requeue(request.config_dict[keys.SESSIONMAKER], event_id, request.config_dict[keys.CLOCK]())
    if not ok:
        raise web.HTTPConflict(text=f"事件 {event_id} 不存在或未被搁置")
    worker = request.config_dict.get(keys.WORKER)
    if worker is not None:
        worker.wake()
    if "text/html" in request.headers.get("Accept", ""):
        raise web.HTTPSeeOther("/admin/status")
    return web.json_response({"requeued": event_id})
