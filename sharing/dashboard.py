"""Admin share dashboard (HTML with inline SVG charts) and its JSON API, plus the attribution recompute."""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import Any, Final, cast

from aiohttp import web

from scrm import keys
from scrm.jsonweb import json_response
from sharing import charts
from sharing.attribution import recompute_attribution
from sharing.performance import GROUPS, PERIODS, GroupBy, Period, Row, performance, period_bounds, totals

routes = web.RouteTableDef()
PERIOD_NAMES: Final = {"day": "今日", "week": "本周", "month": "本月"}
GROUP_NAMES: Final = {"guide": "导购", "store": "门店", "region": "区域", "link": "链接", "content": "内容"}
MAX_RECOMPUTE_DAYS: Final = 400


def _choice(request: web.Request, name: str, allowed: tuple[str, ...], default: str) -> str:
    value = request.query.get(name, default)
    if value not in allowed:
        raise web.HTTPBadRequest(text=f"{name} 须为 {' / '.join(allowed)} 之一，实际是 {value!r}\n")
    return value


def _offset(request: web.Request) -> int:
    raw = request.query.get("offset", "0")
    if not raw.isdigit() or int(raw) > 120:
        raise web.HTTPBadRequest(text="offset 须为 0–120 的整数（往前第几个周期）\n")
    return int(raw)


async def report(request: web.Request, group_by: str, period: str, offset: int) -> tuple[list[Row], dt.datetime,
                                                                                           dt.datetime]:
    """Rows of one report for the period the query names."""
    app = request.config_dict
    start, end = period_bounds(cast(Period, period), app[keys.CLOCK](), app[keys.SETTINGS].timezone, offset)
    async with app[keys.SESSIONMAKER]() as session:
        rows = await performance(session, start=start, end=end, group_by=cast(GroupBy, group_by))
    return rows, start, end


@routes.get("/api/share/performance")
async def performance_api(request: web.Request) -> web.Response:
    """?by=guide|store|region|link|content &period=day|week|month &offset=N: rows, best GMV first, and totals."""
    group_by = _choice(request, "by", GROUPS, "guide")
    period = _choice(request, "period", PERIODS, "week")
    rows, start, end = await report(request, group_by, period, _offset(request))
    return json_response({"by": group_by, "period": period, "start": start.isoformat(), "end": end.isoformat(),
                          "rows": [r.as_json() for r in rows], "totals": totals(rows).as_json()})


@routes.post("/api/share/attribution/recompute")
async def recompute_api(request: web.Request) -> web.Response:
    """Credit again the orders of the last ?days=N (default 35): idempotent."""
    raw = request.query.get("days", "35")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_RECOMPUTE_DAYS:
        return json_response({"error": f"days 须为 1–{MAX_RECOMPUTE_DAYS} 的整数"}, 400)
    app = request.config_dict
    now = app[keys.CLOCK]()
    summary = await recompute_attribution(app[keys.SESSIONMAKER], since=now - dt.timedelta(days=int(raw)), now=now,
                                          window_days=app[keys.SETTINGS].attribution_days)
    return json_response({"by_share_code": summary.by_share_code, "by_click": summary.by_click,
                          "reversed": summary.reversed, "seconds": round(summary.elapsed, 3)})


def funnel_of(total: Row) -> str:
    """The funnel chart of a totals row."""
    return charts.funnel_svg([("点击", total.clicks), ("访客", total.visitors), ("新增好友", total.new_contacts),
                              ("成交订单", total.orders)])


def leaderboard_of(rows: list[Row], title: str, highlight: str | None = None, top: int = 10) -> str:
    """A GMV leaderboard chart of report rows."""
    return charts.leaderboard_svg([(r.name or r.key, r.gmv_cents, f"¥{r.gmv_cents / 100:,.0f}") for r in rows[:top]],
                                  title=title, highlight=highlight)


def _table(rows: list[Row]) -> str:
    body = "".join(
        f"<tr><td>{escape(r.name or r.key)}</td><td>{r.clicks}</td><td>{r.visitors}</td><td>{r.new_contacts}</td>"
        f"<td>{r.orders}</td><td>¥{r.gmv_cents / 100:,.2f}</td><td>{r.conversion * 100:.1f}%</td></tr>"
        for r in rows) or '<tr><td colspan="7" class="empty">暂无数据</td></tr>'
    return ("<table><thead><tr><th>名称</th><th>点击</th><th>访客</th><th>新增好友</th><th>订单</th><th>成交额</th>"
            f"<th>转化率</th></tr></thead><tbody>{body}</tbody></table>")


@routes.get("/share")
async def dashboard(request: web.Request) -> web.Response:
    """The share dashboard: funnel, guide and store leaderboards, the table; ?period= and ?by= pick the view."""
    period = _choice(request, "period", PERIODS, "week")
    group_by = _choice(request, "by", GROUPS, "guide")
    offset = _offset(request)
    rows, start, end = await report(request, group_by, period, offset)
    stores, _, _ = await report(request, "store", period, offset)
    links = " · ".join(
        f'<a href="?period={p}&by={group_by}"{" class=on" if p == period else ""}>{PERIOD_NAMES[p]}</a>'
        for p in PERIODS)
    groups = " · ".join(
        f'<a href="?period={period}&by={g}"{" class=on" if g == group_by else ""}>{GROUP_NAMES[g]}</a>' for g in GROUPS)
    total = totals(rows)
    text = f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>分享业绩 · 企微SCRM</title><link rel="stylesheet" href="/static/admin.css"></head>
<body><main>
<h1>分享业绩</h1>
<p class="nav">周期：{links}　　维度：{groups}</p>
<p class="muted">{escape(start.astimezone(end.tzinfo).isoformat()[:10])} 起（{escape(request.config_dict[keys.SETTINGS].timezone)}）。
订单按分享码或 {request.config_dict[keys.SETTINGS].attribution_days} 天内最后一次点击归因；退款订单不计。</p>
<div class="charts">
<figure id="funnel"><figcaption>转化漏斗</figcaption>{funnel_of(total)}</figure>
<figure id="leaderboard"><figcaption>{GROUP_NAMES[group_by]}排行（成交额）</figcaption>
{leaderboard_of(rows, GROUP_NAMES[group_by] + "排行")}</figure>
<figure id="stores"><figcaption>门店排行（成交额）</figcaption>{leaderboard_of(stores, "门店排行")}</figure>
</div>
<section><h2>{GROUP_NAMES[group_by]}明细</h2>{_table(rows)}</section>
</main></body></html>"""
    return web.Response(text=text, content_type="text/html", charset="utf-8")


def results_json(mine: Row, peers: list[Row], userid: str, start: dt.datetime, end: dt.datetime,
                 period: str) -> dict[str, Any]:
    """A guide's own results with their funnel and their store's leaderboard."""
    rank = next((i + 1 for i, r in enumerate(peers) if r.key == userid), None)
    return {"period": period, "period_name": PERIOD_NAMES[period], "start": start.isoformat(), "end": end.isoformat(),
            "mine": mine.as_json(), "rank": rank, "peers": len(peers),
            "funnel_svg": funnel_of(mine), "leaderboard_svg": leaderboard_of(peers, "本店排行", highlight=mine.name)}
