"""Named scenarios: mutate the simulated corp and push the matching callbacks to the service."""

from __future__ import annotations

import html
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any, Final

from aiohttp import web

from wecom.simulator.callbacks import CallbackSender, DeliveryReport
from wecom.simulator.state import SimulatorState

_LOGGER = logging.getLogger(__name__)

_NAMES: Final = ["林晓", "陈静", "刘洋", "赵敏", "孙悦", "周婷", "吴昊", "郑爽", "王芳", "何琳"]

Scenario = Callable[[SimulatorState, CallbackSender, dict[str, Any]], Awaitable[list[DeliveryReport]]]


def _guides(state: SimulatorState) -> list[str]:
    return sorted(state.members)


def _pick_guide(state: SimulatorState, params: dict[str, Any]) -> str:
    return str(params.get("userid") or random.choice(_guides(state)))


def _followed(state: SimulatorState, userid: str) -> str:
    customers = state.customers_of(userid)
    if not customers:
        raise web.HTTPConflict(text=f"{userid} has no customers yet; run add_customer first")
    return random.choice(customers)


async def add_customer(state: SimulatorState, sender: CallbackSender, params: dict[str, Any]) -> list[DeliveryReport]:
    """A customer scans a guide's contact-way QR code (with its state) and adds them."""
    userid = _pick_guide(state, params)
    name = str(params.get("name") or random.choice(_NAMES))
    # By default the customer comes through one of the guide's own QR codes, as most do in a store.
    ways = [w.state for w in state.contact_ways.values() if userid in w.user and w.state]
    channel = str(params["state"]) if "state" in params else (ways[0] if ways else "")
    _, xml = state.ev_customer_adds_member(userid, name=name, state=channel)
    return [await sender.send(xml)]


async def edit_customer(state: SimulatorState, sender: CallbackSender, params: dict[str, Any]) -> list[DeliveryReport]:
    """A guide edits a customer's remark in the client."""
    userid = _pick_guide(state, params)
    ext = str(params.get("external_userid") or _followed(state, userid))
    return [await sender.send(state.ev_member_edits_customer(userid, ext, remark=str(params.get("remark", "VIP-已回访"))))]


async def guide_deletes_customer(state: SimulatorState, sender: CallbackSender, params: dict[str, Any]) -> list[DeliveryReport]:
    """A guide deletes a customer."""
    userid = _pick_guide(state, params)
    ext = str(params.get("external_userid") or _followed(state, userid))
    return [await sender.send(state.ev_member_deletes_customer(userid, ext))]


async def customer_deletes_guide(state: SimulatorState, sender: CallbackSender, params: dict[str, Any]) -> list[DeliveryReport]:
    """A customer deletes their guide (churn)."""
    userid = _pick_guide(state, params)
    ext = str(params.get("external_userid") or _followed(state, userid))
    return [await sender.send(state.ev_customer_deletes_member(userid, ext))]


async def group_lifecycle(state: SimulatorState, sender: CallbackSender, params: dict[str, Any]) -> list[DeliveryReport]:
    """A guide creates a customer group, a customer joins, then the group is dismissed."""
    userid = _pick_guide(state, params)
    members = state.customers_of(userid)[:3]
    chat_id, xml = state.ev_group_created(userid, members, str(params.get("name", "会员福利群")))
    reports = [await sender.send(xml)]
    newcomer = state.add_customer(random.choice(_NAMES))
    reports.append(await sender.send(state.ev_group_members_join(chat_id, [newcomer])))
    if params.get("dismiss", True):
        reports.append(await sender.send(state.ev_group_dismissed(chat_id)))
    return reports


async def tag_changes(state: SimulatorState, sender: CallbackSender, params: dict[str, Any]) -> list[DeliveryReport]:
    """An admin creates, renames and deletes a corp tag in the console."""
    tag_id, xml = state.ev_tag_created(str(params.get("group", "活动")), str(params.get("tag", "双十一")))
    reports = [await sender.send(xml)]
    reports.append(await sender.send(state.ev_tag_renamed(tag_id, str(params.get("tag", "双十一")) + "（已结束）")))
    reports.append(await sender.send(state.ev_tags_shuffled()))
    reports.append(await sender.send(state.ev_tag_deleted(tag_id)))
    return reports


async def staff_text(state: SimulatorState, sender: CallbackSender, params: dict[str, Any]) -> list[DeliveryReport]:
    """A guide sends the app a text command (default 帮助)."""
    userid = _pick_guide(state, params)
    return [await sender.send(state.ev_member_text(userid, str(params.get("text", "帮助"))))]


async def duplicate_delivery(state: SimulatorState, sender: CallbackSender, params: dict[str, Any]) -> list[DeliveryReport]:
    """The same add event delivered twice (WeCom retrying after a lost acknowledgement)."""
    userid = _pick_guide(state, params)
    _, xml = state.ev_customer_adds_member(userid, name=random.choice(_NAMES))
    return [await sender.send(xml), await sender.send(xml)]


async def scan_contact_way(state: SimulatorState, sender: CallbackSender, params: dict[str, Any]) -> list[DeliveryReport]:
    """A customer scans a contact-way QR code (params: config_id, name) and adds whoever it hands them to."""
    config_id = str(params.get("config_id") or "")
    if config_id not in state.contact_ways:
        raise web.HTTPNotFound(text=f"unknown contact way {config_id!r}")
    try:
        _, _, xml = state.ev_customer_scans_contact_way(
            config_id, name=str(params.get("name") or random.choice(_NAMES)),
            external_userid=params.get("external_userid") or None,
        )
    except ValueError as exc:
        raise web.HTTPConflict(text=str(exc)) from None
    return [await sender.send(xml)]


SCENARIOS: Final[dict[str, Scenario]] = {
    "add_customer": add_customer,
    "scan_contact_way": scan_contact_way,
    "edit_customer": edit_customer,
    "guide_deletes_customer": guide_deletes_customer,
    "customer_deletes_guide": customer_deletes_guide,
    "group_lifecycle": group_lifecycle,
    "tag_changes": tag_changes,
    "staff_text": staff_text,
    "duplicate_delivery": duplicate_delivery,
}


def _report_json(report: DeliveryReport) -> dict[str, Any]:
    return {
        "acknowledged": report.acknowledged,
        "attempts": [asdict(a) for a in report.attempts],
        "event": report.plaintext,
    }


def _page(title: str, body: str, *, status: int = 200) -> web.Response:
    page = (f"<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{html.escape(title)}</title>"
            f"</head><body><h1>{html.escape(title)}</h1>{body}</body></html>")
    return web.Response(text=page, content_type="text/html", charset="utf-8", status=status)


def add_scenario_routes(app: web.Application, state: SimulatorState, sender: CallbackSender) -> None:
    """``GET /_sim/scenarios`` lists them; ``POST /_sim/scenarios/{name}`` runs one (JSON params)."""

    async def list_scenarios(request: web.Request) -> web.Response:
        return web.json_response({name: (fn.__doc__ or "").strip() for name, fn in SCENARIOS.items()})

    async def run(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        scenario = SCENARIOS.get(name)
        if scenario is None:
            raise web.HTTPNotFound(text=f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
        params = await request.json() if request.can_read_body else {}
        reports = await scenario(state, sender, params)
        return web.json_response({"scenario": name, "callback_url": sender.url,
                                  "deliveries": [_report_json(r) for r in reports]}, dumps=_dumps)

    async def scan_page(request: web.Request) -> web.Response:
        # What the phone shows after scanning the QR code, so the demo can "scan" from a browser.
        config_id = request.match_info["config_id"]
        way = state.contact_ways.get(config_id)
        if way is None:
            return _page("二维码已失效", "<p>该「联系我」二维码已被删除。</p>", status=404)
        if request.method == "POST":
            form = await request.post()
            await scan_contact_way(state, sender, {"config_id": config_id, "name": str(form.get("name") or "")})
            return _page("已添加", "<p>已添加为联系人，导购会收到通知。</p>")
        who = "、".join(state.members[u].name for u in way.user if u in state.members) or "（无成员）"
        body = (f"<p>扫码添加：{html.escape(who)}</p><form method='post'>"
                "<label>你的昵称 <input name='name' maxlength='20'></label> <button>添加到通讯录</button></form>")
        return _page("添加企业微信联系人（模拟）", body)

    app.router.add_get("/_sim/scenarios", list_scenarios)
    app.router.add_post("/_sim/scenarios/{name}", run)
    app.router.add_route("*", "/_sim/scan/{config_id}", scan_page)

    async def close_sender(_: web.Application) -> None:
        await sender.close()

    app.on_cleanup.append(close_sender)


def _dumps(obj: Any) -> str:
    import json

    return json.dumps(obj, ensure_ascii=False)
