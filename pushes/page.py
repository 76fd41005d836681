"""The admin page of pushes (/admin/pushes): a server-rendered shell that static/pushes.js fills from the JSON API.

The page lists active pushes with their next runs (即将发送), runs in progress with a progress bar (发送中)
and finished runs with their numbers (已完成); it creates pushes, dry-runs them and cancels single runs.
Every value from the database is rendered by the script with ``textContent``; this shell holds none.
"""

from __future__ import annotations

import hashlib
from functools import cache
from html import escape
from pathlib import Path
from typing import Final

from aiohttp import web

from pushes.spec import TEXT_MAX_BYTES, VARIABLES
from scrm import keys

routes = web.RouteTableDef()

STATIC: Final = Path(__file__).resolve().parent.parent / "static"
SCRIPT: Final = "pushes.js"
STYLE: Final = "admin.css"


@cache
def _asset(name: str) -> str:
    """The asset's URL with a content hash, so a browser never runs a stale script against a newer page."""
    digest = hashlib.sha1((STATIC / name).read_bytes()).hexdigest()[:10]
    return f"/static/{name}?v={digest}"


def _weekday_boxes() -> str:
    days = [(1, "一"), (2, "二"), (3, "三"), (4, "四"), (5, "五"), (6, "六"), (0, "日")]
    return "".join(f'<label class="day"><input type="checkbox" name="weekday" value="{n}">周{cn}</label>'
                   for n, cn in days)


def render_page(timezone: str) -> str:
    """The page's HTML; ``timezone`` is the brand's zone, in which times are entered and shown."""
    variables = "、".join(f"{{{k}}}（{v}）" for k, v in VARIABLES.items())
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>定时群发 · 企微SCRM</title><link rel="stylesheet" href="{_asset(STYLE)}"></head>
<body class="pushes" data-tz="{escape(timezone)}" data-text-max="{TEXT_MAX_BYTES}" data-state="loading">
<main>
<header class="page-head"><h1>定时群发</h1>
<p class="muted">时间均按品牌时区 <b>{escape(timezone)}</b>。群发任务由总部创建，导购在企业微信中确认后才会发出。
<button type="button" id="refresh" class="ghost">刷新</button> <span id="updated" class="muted"></span></p>
<p id="load-error" class="bad" role="alert" hidden></p></header>

<div class="push-grid">
<div class="push-main">
<section id="upcoming" aria-labelledby="upcoming-h"><h2 id="upcoming-h">即将发送</h2>
<div id="push-list" class="push-list"><p class="empty">加载中…</p></div>
<details id="ended-pushes" hidden><summary>已结束或已取消的群发（<span class="n">0</span>）</summary>
<div class="push-list"></div></details></section>

<section id="running" aria-labelledby="running-h"><h2 id="running-h">发送中</h2>
<div id="running-list"><p class="empty">没有正在进行的群发</p></div></section>

<section id="finished" aria-labelledby="finished-h"><h2 id="finished-h">已完成</h2>
<table><thead><tr><th>群发</th><th>计划时间</th><th>状态</th><th>目标客户</th><th>已发送</th><th>结果</th></tr></thead>
<tbody id="finished-list"><tr><td colspan="6" class="empty">还没有完成的群发</td></tr></tbody></table></section>

<section id="run-detail" aria-labelledby="run-detail-h" hidden><h2 id="run-detail-h">群发详情</h2>
<button type="button" class="ghost close" id="run-detail-close" aria-label="关闭详情">关闭</button>
<div class="body"></div></section>
</div>

<aside class="push-side">
<section id="create" aria-labelledby="create-h"><h2 id="create-h">新建群发</h2>
<form id="push-form" novalidate>
<label class="field" data-field="name">名称<input id="f-name" name="name" maxlength="128" placeholder="如：周三第二杯半价" required></label>

<fieldset class="field" data-field="audience"><legend>受众</legend>
<select id="f-aud-kind" aria-label="受众类型">
<option value="tags">按标签</option><option value="segment">按人群</option>
<option value="customers">指定客户</option><option value="groups">客户群</option></select>
<div class="aud" data-kind="tags"><label data-field="audience.tag_ids">标签编号（逗号分隔，或点选下方标签）<input id="f-tag-ids" placeholder="如：3, 7"></label>
<div class="picks" data-pick="tags" data-into="f-tag-ids" data-multi="1" hidden></div>
<label data-field="audience.match">匹配<select id="f-tag-match"><option value="any">任一标签</option><option value="all">全部标签</option></select></label></div>
<div class="aud" data-kind="segment" hidden><label data-field="audience.segment_id">人群编号（或点选下方人群）<input id="f-segment-id" inputmode="numeric"></label>
<div class="picks" data-pick="segments" data-into="f-segment-id" hidden></div></div>
<div class="aud" data-kind="customers" hidden><label data-field="audience.customer_ids">客户编号（逗号或换行分隔）<textarea id="f-customer-ids" rows="2"></textarea></label></div>
<div class="aud" data-kind="groups" hidden><label data-field="audience.owners">群主 userid（逗号分隔，或点选下方群主）<input id="f-owners" placeholder="如：zhangsan, lisi"></label>
<div class="picks" data-pick="owners" data-into="f-owners" data-multi="1" hidden></div>
<label data-field="audience.name_contains">群名包含<input id="f-group-name"></label></div>
</fieldset>

<label class="field" data-field="content.text">内容<textarea id="f-text" rows="4" placeholder="我是{{guide_name}}，{{store_name}}本周三第二杯半价！"></textarea></label>
<p class="hint"><span id="f-text-bytes">0</span> / {TEXT_MAX_BYTES} 字节 · 只能使用变量 {escape(variables)}；
同一条消息发给导购的所有客户，不能使用客户变量。</p>

<fieldset class="field" data-field="content.attachments"><legend>附件（可选：链接卡片）</legend>
<label>标题<input id="f-link-title" maxlength="128"></label>
<label>链接<input id="f-link-url" type="url" placeholder="https://"></label></fieldset>

<fieldset class="field" data-field="schedule"><legend>时间</legend>
<select id="f-sched-kind" aria-label="发送方式">
<option value="once">一次</option><option value="daily">每天</option><option value="weekly">每周</option></select>
<div class="sched" data-kind="once"><label data-field="schedule.at">发送时间<input id="f-at" type="datetime-local"></label></div>
<div class="sched" data-kind="weekly" hidden><div class="days" data-field="schedule.weekdays">{_weekday_boxes()}</div></div>
<div class="sched" data-kind="daily weekly" hidden><label data-field="schedule.time">时刻<input id="f-time" type="time" value="10:00"></label></div>
</fieldset>

<label class="field" data-field="cap">每次上限（可选）<input id="f-cap" type="number" min="1" step="1" placeholder="不限"></label>
<div class="actions"><button type="submit" id="f-submit">创建群发</button></div>
<p id="form-error" class="form-error" role="alert" hidden></p>
<p id="form-ok" class="ok" role="status" hidden></p>
</form></section>
</aside>
</div>
</main>
<script src="{_asset(SCRIPT)}" defer></script>
</body></html>"""


@routes.get("/pushes")
async def page(request: web.Request) -> web.Response:
    """The pushes page (群发管理)."""
    text = render_page(request.config_dict[keys.SETTINGS].timezone)
    return web.Response(text=text, content_type="text/html", charset="utf-8",
                        headers={"Cache-Control": "no-store"})
