"""The guide's sidebar page: the server-rendered shell, its script config, and the demo's customer picker."""

from __future__ import annotations

import hashlib
import html
import json
from functools import cache
from pathlib import Path
from string import Template
from typing import Any, Final
from urllib.parse import urlsplit

from aiohttp import web
from sqlalchemy import func, or_, select

from models import Customer, CustomerGroup, FollowRelation, GroupMember, GroupStatus, Order, Staff, Store
from scrm import keys
from scrm.settings import Settings
from sidebar.errors import NotFound
from sidebar.handlers import USERID, json_response
from sidebar.permissions import LIVE_FOLLOW, load_viewer, staff_in_scope

routes = web.RouteTableDef()

TEMPLATES: Final = Path(__file__).resolve().parent / "templates"
STATIC: Final = Path(__file__).resolve().parent.parent / "static"
STATIC_URL: Final = "/static/"
#: The legacy JS-SDK (PROTOCOL.md §5.3): jweixin for wx.config, jwxwork for wx.agentConfig.
JSSDK_SCRIPTS: Final = (
    "https://res.wx.qq.com/open/js/jweixin-1.2.0.js",
    "https://open.work.weixin.qq.com/wwopen/js/jwxwork-1.0.0.js",
)
DEMO_CONTACTS_LIMIT: Final = 200
DEMO_GROUPS_LIMIT: Final = 50


@cache
def _template(name: str) -> Template:
    return Template((TEMPLATES / name).read_text(encoding="utf-8"))


@cache
def _asset(name: str) -> str:
    """The asset's URL with a content hash, so phones cache it until it changes."""
    digest = hashlib.sha1((STATIC / name).read_bytes()).hexdigest()[:10]
    return f"{STATIC_URL}{name}?v={digest}"


@cache
def _bridge() -> tuple[bytes, str]:
    data = (TEMPLATES / "bridge.js").read_bytes()
    return data, hashlib.sha1(data).hexdigest()[:10]


def script_json(data: Any) -> str:
    """JSON safe inside a <script> element (no '<', '>' or '&' that could close or confuse it)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def simulator_base(settings: Settings) -> str:
    """In the demo, the path the simulator is mounted at (derived from the API base on our own origin)."""
    api, public = urlsplit(settings.api_base), urlsplit(settings.public_base_url)
    if not settings.demo or (api.scheme, api.netloc) != (public.scheme, public.netloc):
        return ""
    return api.path.removesuffix("cgi-bin/").rstrip("/") + "/"


def page_config(settings: Settings, base: str) -> dict[str, Any]:
    """What sidebar.js needs: ids, API paths and the demo flag (never tokens or tickets)."""
    api = base + "api/"
    return {
        "corpId": settings.corp_id,
        "agentId": settings.agent_id,
        "demo": settings.demo,
        "signin": base,
        "api": {
            "jssdkConfig": api + "jssdk-config",
            "contact": api + "contact/",
            "group": api + "group/",
            "tags": api + "tags",
            "scripts": api + "scripts",
            "demoContacts": api + "demo/contacts",
        },
        "simulator": simulator_base(settings),
    }


def render_sidebar(request: web.Request, name: str, store: str) -> web.Response:
    """The sidebar page for a signed-in member: shell, config block and the page script."""
    settings: Settings = request.config_dict[keys.SETTINGS]
    base = request.path if request.path.endswith("/") else request.path + "/"
    scripts = [] if settings.demo else list(JSSDK_SCRIPTS)
    if settings.demo:
        scripts.append(f"{base}demo/bridge.js?v={_bridge()[1]}")
    scripts.append(_asset("sidebar.js"))
    text = _template("sidebar.html").substitute(
        name=html.escape(name),
        store=html.escape(store or "未绑定门店"),
        initial=html.escape(name[:1] or "导"),
        css=html.escape(_asset("sidebar.css")),
        config=script_json(page_config(settings, base)),
        scripts="\n".join(f'<script src="{html.escape(src)}" defer></script>' for src in scripts),
        body_class="demo" if settings.demo else "",
    )
    response = web.Response(text=text, content_type="text/html", charset="utf-8")
    response.headers["Cache-Control"] = "no-store"
    return response


@routes.get("/demo/bridge.js")
async def demo_bridge(request: web.Request) -> web.Response:
    """Demo only: the stand-in JS-SDK bridge backed by the simulator (production pages use WeCom's SDK)."""
    if not request.config_dict[keys.SETTINGS].demo:
        raise NotFound("仅演示模式可用。")
    return web.Response(body=_bridge()[0], content_type="application/javascript", charset="utf-8",
                        headers={"Cache-Control": "private, max-age=86400"})


@routes.get("/api/demo/contacts")
async def demo_contacts(request: web.Request) -> web.Response:
    """Demo only: customers and groups the signed-in member may open (their own first), for the bridge's picker."""
    if not request.config_dict[keys.SETTINGS].demo:
        raise NotFound("仅演示模式可用。")
    userid = request[USERID]
    async with request.config_dict[keys.SESSIONMAKER]() as session:
        viewer = await load_viewer(session, userid)
        orders = (select(Order.customer_id, func.count().label("n")).group_by(Order.customer_id).subquery())
        customers = (await session.execute(
            select(FollowRelation.external_userid, Customer.name, FollowRelation.remark,
                   func.coalesce(orders.c.n, 0))
            .join(Customer, Customer.id == FollowRelation.customer_id)
            .join(Staff, Staff.id == FollowRelation.staff_id).outerjoin(Store, Store.id == Staff.store_id)
            .outerjoin(orders, orders.c.customer_id == FollowRelation.customer_id)
            .where(FollowRelation.status.in_(LIVE_FOLLOW), staff_in_scope(viewer))
            .order_by((Staff.id == viewer.staff_id).desc(), func.coalesce(orders.c.n, 0).desc(), Customer.name,
                      FollowRelation.id)
            .limit(2 * DEMO_CONTACTS_LIMIT))).all()
        member_of = select(GroupMember.group_id).where(GroupMember.member_userid == userid,
                                                       GroupMember.member_type == 1)
        owned = (select(Staff.userid).outerjoin(Store, Store.id == Staff.store_id).where(staff_in_scope(viewer)))
        groups = (await session.scalars(
            select(CustomerGroup).where(CustomerGroup.status != GroupStatus.DISMISSED,
                                        or_(CustomerGroup.owner_userid.in_(owned), CustomerGroup.id.in_(member_of)))
            .order_by(CustomerGroup.name, CustomerGroup.id).limit(DEMO_GROUPS_LIMIT))).all()
    picked: dict[str, dict[str, Any]] = {}
    for external_userid, name, remark, count in customers:  # a customer of several guides: the first row
        if external_userid not in picked and len(picked) < DEMO_CONTACTS_LIMIT:
            picked[external_userid] = {"external_userid": external_userid, "name": name, "remark": remark,
                                       "orders": int(count)}
    return json_response({
        "customers": list(picked.values()),
        "groups": [{"chat_id": g.chat_id, "name": g.name} for g in groups],
    })
