"""Known-visitor alerts: the guide is told through the app (once per window) when a customer of theirs opens
their link, the customer gets the item's interest tags in WeCom and locally, and WeCom errors cost no click."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from bot import sync
from models import AuditEntry, CustomerTag, IdentityKind, LinkClick, ShareChannel, Tag, TagSource, Visitor
from scrm import keys
from sharing.clicks import ClickRow, ClickWriter
from sharing.visitor_alerts import ALERT_ACTION, VISITOR_ALERTS, alert_text, find_alerts
from tests.brand import Brand, _as, _ctx

ADMIN = {"Authorization": "Bearer admin-secret"}
ITEM = {"kind": "product", "title": "有机奶粉 3段 800g", "target_url": "https://shop.example.com/p/milk"}
WANGFANG_VID = "wangfangVisitor0001"  # 王芳's cookie, known through her follow relation with 张三
LOST_VID = "wuzouVisitor000001"  # 吴走 deleted 张三: known, but no active relation
STRANGER_VID = "strangerVisitor001"


@dataclass
class Setup:
    item_id: int
    code: str  # 张三's link to the item, shared in 朋友圈
    lisi_code: str  # 李四's link to the same item
    wangfang: int
    milk: str  # WeCom id of the 兴趣/奶粉 corp tag
    food: str  # WeCom id of 兴趣/辅食, which 王芳 already has
    tags: dict[str, int]  # our ids: 奶粉, 辅食, 爱逛活动 (ours only, not in WeCom)


@pytest.fixture
async def setup(app: web.Application, client: TestClient, brand: Brand, sim_state: Any, maker: Any,
                clock: Any) -> Setup:
    sim_state.add_tag_group("兴趣", ["奶粉", "辅食"])
    await sync.sync_tag_library(_ctx(app))
    async with maker.begin() as session:
        own = await sync.local_tag(session, "兴趣（自有）", "爱逛活动")
        tags = {t.name: t.id for t in (await session.scalars(select(Tag))).all()}
        customers = {k: (await sync.find_customer_by_identity(session, IdentityKind.EXTERNAL_USERID,
                                                              getattr(brand, k))) for k in ("wangfang", "lost")}
        ids = {k: c.id for k, c in customers.items() if c is not None}
        session.add_all([
            Visitor(visitor_id=WANGFANG_VID, customer_id=ids["wangfang"], source="follow", identified_at=clock()),
            Visitor(visitor_id=LOST_VID, customer_id=ids["lost"], source="follow", identified_at=clock()),
            CustomerTag(customer_id=ids["wangfang"], tag_id=tags["辅食"], source=TagSource.WECOM, created_at=clock()),
        ])
        assert own.id == tags["爱逛活动"]
    body = ITEM | {"interest_tag_ids": [tags["奶粉"], tags["辅食"], tags["爱逛活动"]]}
    resp = await client.post("/admin/api/content", json=body, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    item = await resp.json()
    links = {}
    for userid in ("zhangsan", "lisi"):
        link = await (await client.post("/sidebar/api/share/links",
                                        json={"content_id": item["id"], "channel": "moments"},
                                        headers=_as(userid, clock))).json()
        links[userid] = link["code"]
    return Setup(item["id"], links["zhangsan"], links["lisi"], ids["wangfang"], sim_state.tag_id("兴趣", "奶粉"),
                 sim_state.tag_id("兴趣", "辅食"), tags)


async def _open(client: TestClient, code: str, visitor_id: str) -> None:
    async with client.get(f"/s/{code}", allow_redirects=False, headers={"Cookie": f"scrm_vid={visitor_id}"}) as resp:
        assert resp.status == 302


async def _settle(app: web.Application) -> None:
    await app[keys.CLICK_WRITER].flush()
    await app[VISITOR_ALERTS].drain()


def _alerts(sim_state: Any, userid: str) -> list[str]:
    return [m["content"] for m in sim_state.app_messages if userid in m["touser"] and "刚刚打开" in m["content"]]


def _wecom_tags(sim_state: Any, userid: str, external_userid: str) -> list[str]:
    follow = next(f for f in sim_state.follows.values()
                  if f.userid == userid and f.external_userid == external_userid)
    return list(follow.tag_ids)


async def _local_tags(maker: Any, customer_id: int) -> dict[int, TagSource]:
    async with maker() as session:
        rows = (await session.execute(select(CustomerTag.tag_id, CustomerTag.source)
                                      .where(CustomerTag.customer_id == customer_id))).all()
    return dict(rows)


async def _audit(maker: Any, action: str) -> list[AuditEntry]:
    async with maker() as session:
        return list((await session.scalars(select(AuditEntry).where(AuditEntry.action == action)
                                           .order_by(AuditEntry.id))).all())


async def test_a_known_visitor_alerts_their_guide_once_per_window_and_is_tagged(
    app: web.Application, client: TestClient, brand: Brand, setup: Setup, sim_state: Any, maker: Any, clock: Any
) -> None:
    await _open(client, setup.code, WANGFANG_VID)
    await _settle(app)
    for _ in range(2):  # two more opens within the hour, in another batch
        await _open(client, setup.code, WANGFANG_VID)
    await _settle(app)
    alerts = _alerts(sim_state, "zhangsan")
    assert alerts == ["客户 王姐 刚刚打开了你分享的《有机奶粉 3段 800g》（朋友圈），可以趁热跟进。"]

    # Tagged in WeCom on 张三's relation with only the corp tag she lacked, and locally with both missing tags.
    assert [(e["userid"], e["add_tag"]) for e in sim_state.mark_tag_log] == [("zhangsan", [setup.milk])]
    assert set(_wecom_tags(sim_state, "zhangsan", brand.wangfang)) >= {setup.milk}
    local = await _local_tags(maker, setup.wangfang)
    assert local == {setup.tags["奶粉"]: TagSource.BOT, setup.tags["辅食"]: TagSource.WECOM,
                     setup.tags["爱逛活动"]: TagSource.BOT}
    [added] = await _audit(maker, "interest_tags_added")
    assert added.detail["tags"] == ["奶粉", "爱逛活动"] and added.detail["in_wecom"] == ["奶粉"]

    clock.advance(59 * 60)
    await _open(client, setup.code, WANGFANG_VID)
    await _settle(app)
    assert len(_alerts(sim_state, "zhangsan")) == 1  # still within the hour
    clock.advance(2 * 60)
    await _open(client, setup.code, WANGFANG_VID)
    await _settle(app)
    assert len(_alerts(sim_state, "zhangsan")) == 2  # the window has passed
    assert len(sim_state.mark_tag_log) == 1  # she has every interest tag now: nothing more to mark
    async with maker() as session:
        assert await session.scalar(select(func.count()).select_from(LinkClick)) == 5
    assert len(await _audit(maker, ALERT_ACTION)) == 2


async def test_the_throttle_is_read_from_the_database_so_it_survives_a_restart(
    app: web.Application, client: TestClient, setup: Setup, maker: Any, clock: Any
) -> None:
    await _open(client, setup.code, WANGFANG_VID)
    await _settle(app)
    async with maker() as session:
        link_id = await session.scalar(select(LinkClick.link_id))
    opens = [(link_id, WANGFANG_VID, None, clock() + dt.timedelta(minutes=30))]
    window = dt.timedelta(hours=1)
    async with maker.begin() as session:  # a fresh process has nothing in memory, only the audit trail
        assert await find_alerts(session, opens, now=clock() + dt.timedelta(minutes=30), window=window) == []
    later = [(link_id, WANGFANG_VID, None, clock() + dt.timedelta(minutes=61))]
    async with maker.begin() as session:
        [alert] = await find_alerts(session, later, now=clock() + dt.timedelta(minutes=61), window=window)
    assert alert.userid == "zhangsan" and alert.customer_label == "王姐" and alert.tags == ()


async def test_unknown_visitors_and_guides_without_the_customer_get_no_alert(
    app: web.Application, client: TestClient, brand: Brand, setup: Setup, sim_state: Any, maker: Any
) -> None:
    await _open(client, setup.code, STRANGER_VID)  # nobody we know
    await _open(client, setup.lisi_code, WANGFANG_VID)  # 王芳 is 张三's customer, not 李四's
    await _open(client, setup.code, LOST_VID)  # 吴走 deleted 张三: the relation is lost
    await _settle(app)
    assert [m for m in sim_state.app_messages if "刚刚打开" in m["content"]] == []
    assert sim_state.mark_tag_log == []
    assert setup.tags["奶粉"] not in await _local_tags(maker, setup.wangfang)
    async with maker() as session:
        assert await session.scalar(select(func.count()).select_from(LinkClick)) == 3


async def test_a_fresh_click_that_carries_the_customer_alerts_without_a_visitor_row(
    app: web.Application, client: TestClient, setup: Setup, sim_state: Any, maker: Any, clock: Any
) -> None:
    await _open(client, setup.code, STRANGER_VID)
    await _settle(app)
    async with maker() as session:
        link_id = await session.scalar(select(LinkClick.link_id))
    # A click stored late (a backlog after an outage) is no news any more.
    app[keys.CLICK_WRITER].record(link_id, clock() - dt.timedelta(minutes=20), "oauthVisitor00001", "wechat",
                                  setup.wangfang)
    await _settle(app)
    assert _alerts(sim_state, "zhangsan") == []
    # As an OAuth-identified click would be recorded: the customer on the click itself.
    app[keys.CLICK_WRITER].record(link_id, clock(), "oauthVisitor00001", "wechat", setup.wangfang)
    await _settle(app)
    assert len(_alerts(sim_state, "zhangsan")) == 1


async def test_wecom_errors_are_logged_and_audited_and_lose_no_click(
    app: web.Application, client: TestClient, brand: Brand, setup: Setup, sim_state: Any, maker: Any, clock: Any,
    caplog: pytest.LogCaptureFixture
) -> None:
    sim_state.inject_error("message/send", 60011)
    sim_state.inject_error("externalcontact/mark_tag", 84061)
    for _ in range(3):
        await _open(client, setup.code, WANGFANG_VID)
    await _settle(app)
    async with maker() as session:
        assert await session.scalar(select(func.count()).select_from(LinkClick)) == 3
    assert _alerts(sim_state, "zhangsan") == [] and sim_state.mark_tag_log == []
    [failed] = await _audit(maker, "visitor_alert_failed")
    assert failed.detail["errcode"] == 60011 and failed.detail["guide"] == "zhangsan"
    [untagged] = await _audit(maker, "interest_tags_failed")
    assert untagged.detail["errcode"] == 84061 and untagged.detail["tags"] == ["奶粉"]
    local = await _local_tags(maker, setup.wangfang)
    assert setup.tags["奶粉"] not in local  # WeCom does not have it, so neither do we
    assert local[setup.tags["爱逛活动"]] is TagSource.BOT  # a tag of our own needs no WeCom call
    assert "visitor alert to zhangsan" in caplog.text

    # The failed alert counts for the window (no hammering a failing guide); the next one goes out.
    await _open(client, setup.code, WANGFANG_VID)
    await _settle(app)
    assert _alerts(sim_state, "zhangsan") == []
    clock.advance(61 * 60)
    await _open(client, setup.code, WANGFANG_VID)
    await _settle(app)
    assert len(_alerts(sim_state, "zhangsan")) == 1
    assert [e["add_tag"] for e in sim_state.mark_tag_log] == [[setup.milk]]  # retried after the window
    async with maker() as session:
        assert await session.scalar(select(func.count()).select_from(LinkClick)) == 5


def test_alert_text_names_the_customer_the_title_and_the_channel() -> None:
    assert alert_text("张三", "会员日", ShareChannel.GROUP) == "客户 张三 刚刚打开了你分享的《会员日》（群），可以趁热跟进。"
    assert alert_text("张三", "会员日", ShareChannel.NONE) == "客户 张三 刚刚打开了你分享的《会员日》，可以趁热跟进。"


@pytest.mark.parametrize(
    ("tags", "fragment"),
    [([424242], "不存在或已删除"), ("奶粉", "标签编号的列表"), (0, "标签编号的列表"), ([True], "标签编号的列表"),
     (list(range(1, 22)), "最多 20 个")],
)
async def test_content_interest_tags_are_validated(client: TestClient, tags: Any, fragment: str) -> None:
    resp = await client.post("/admin/api/content", json=ITEM | {"interest_tag_ids": tags}, headers=ADMIN)
    body = await resp.json()
    assert resp.status == 400 and body["field"] == "interest_tag_ids" and fragment in body["error"], body
    ok = await client.post("/admin/api/content", json=ITEM | {"interest_tag_ids": None}, headers=ADMIN)
    assert ok.status == 201 and (await ok.json())["interest_tag_ids"] == []


async def test_a_slow_wecom_holds_up_neither_the_redirect_nor_the_click_writer(
    app: web.Application, client: TestClient, setup: Setup, maker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = asyncio.Event()
    sent: list[str] = []

    async def stuck(touser: str, content: str) -> None:
        sent.append(content)
        await release.wait()

    monkeypatch.setattr(app[keys.GATEWAY], "send_app_text", stuck)
    await _open(client, setup.code, WANGFANG_VID)
    await asyncio.wait_for(app[keys.CLICK_WRITER].flush(), 2)
    for _ in range(200):
        if sent:
            break
        await asyncio.sleep(0.01)
    assert len(sent) == 1  # the alert is under way, and stuck
    for _ in range(2):
        await asyncio.wait_for(_open(client, setup.code, STRANGER_VID), 2)
    await asyncio.wait_for(app[keys.CLICK_WRITER].flush(), 2)
    async with maker() as session:
        assert await session.scalar(select(func.count()).select_from(LinkClick)) == 3
    release.set()
    await app[VISITOR_ALERTS].drain()


async def test_a_failing_after_store_hook_costs_no_click() -> None:
    stored: list[ClickRow] = []

    async def write(rows: Sequence[ClickRow]) -> None:
        stored.extend(rows)

    def broken(rows: Sequence[ClickRow]) -> None:
        raise RuntimeError("bug in a follow-up")

    writer = ClickWriter(write=write, on_stored=broken)
    now = dt.datetime.now(dt.timezone.utc)
    writer.record(1, now, "someVisitor000001", "wechat")
    await writer.flush()
    writer.record(1, now, "someVisitor000001", "wechat")
    await writer.flush()
    assert len(stored) == 2 and writer.stored == 2 and writer.failures == 0
