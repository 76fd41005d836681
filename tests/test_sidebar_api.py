"""Sidebar JSON API: JS-SDK signatures, permissions with audit, on-the-spot fetches, groups and tags."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy.exc
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select, update

from bot import sync
from models import (
    AuditEntry, CustomerGroup, CustomerIdentity, CustomerTag, FollowRelation, FollowStatus, IdentityKind,
    Staff, Tag, TagRule, TagSource,
)
import scrm.db
from scrm import keys
from scrm.app import create_app
from sidebar.errors import InvalidRequest
from sidebar.jssdk import jsapi_signature, page_url
from tests.brand import Brand, _as, _ctx

PAGE = "http://127.0.0.1:8080/sidebar/?from=toolbar"


async def _audits(maker: Any, action: str) -> list[tuple[str, str]]:
    async with maker() as session:
        rows = (await session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id))).all()
    return [(a.actor, a.detail.get("external_userid", a.subject_id)) for a in rows]


# -- JS-SDK ------------------------------------------------------------------------------------------


def test_signature_matches_the_verified_vector(vectors: dict[str, Any]) -> None:
    v = vectors["jsapi_signature"]
    assert jsapi_signature(v["jsapi_ticket"], v["noncestr"], v["timestamp"], v["url"]) == v["signature"]
    assert jsapi_signature(v["jsapi_ticket"], v["noncestr"], int(v["timestamp"]), v["url"] + "#frag") == v["signature"]


def test_only_our_pages_are_signed() -> None:
    base = "https://scrm.example.com"
    assert page_url("https://scrm.example.com/sidebar/?a=1#x", base) == "https://scrm.example.com/sidebar/?a=1"
    assert page_url("https://SCRM.example.com:443/sidebar/", base) == "https://SCRM.example.com:443/sidebar/"
    for bad in ("https://evil.example.com/sidebar/", "http://scrm.example.com/sidebar/",
                "https://scrm.example.com.evil.cn/", "https://scrm.example.com@evil.cn/", "https://scrm.example.com:8443/",
                "javascript:alert(1)", "/sidebar/", ""):
        with pytest.raises(InvalidRequest):
            page_url(bad, base)
    with pytest.raises(InvalidRequest):
        page_url("https://scrm.example.com/other/", "https://scrm.example.com/shop")


async def test_jssdk_config_verifies_and_tickets_are_fetched_once(
    client: TestClient, brand: Brand, sim_state: Any, clock: Any
) -> None:
    resp = await client.get("/sidebar/api/jssdk-config", params={"url": PAGE + "#/contact"}, headers=_as("zhangsan", clock))
    assert resp.status == 200, await resp.text()
    data = await resp.json()
    assert data["corpId"] == sim_state.corp_id and data["agentId"] == sim_state.agent_id
    for kind, key in (("corp", "config"), ("agent", "agentConfig")):
        sig = data[key]
        assert sig["timestamp"] == int(clock.timestamp())
        assert sim_state.verify_jsapi_signature(kind, sig["nonceStr"], str(sig["timestamp"]), PAGE, sig["signature"])
        # ... and as the simulator's verify endpoint (what the fake webview does) sees it.
        verify = await client.session.post(
            client.app[keys.SETTINGS].api_base.replace("/cgi-bin/", "/_sim/jsapi/verify"),
            json={"kind": kind, "noncestr": sig["nonceStr"], "timestamp": sig["timestamp"], "url": PAGE,
                  "signature": sig["signature"]})
        assert (await verify.json())["ok"] is True
    # Tickets are bound to their app: the corp signature does not pass as agentConfig.
    cfg = data["config"]
    assert not sim_state.verify_jsapi_signature("agent", cfg["nonceStr"], str(cfg["timestamp"]), PAGE, cfg["signature"])
    text = await resp.text()
    assert sim_state.corp_jsapi_ticket not in text and sim_state.agent_jsapi_ticket not in text

    many = await asyncio.gather(*(client.get("/sidebar/api/jssdk-config", params={"url": f"{PAGE}&n={i}"},
                                             headers=_as("lisi", clock)) for i in range(20)))
    assert all(r.status == 200 for r in many)
    assert sim_state.calls["get_jsapi_ticket"] == 1 and sim_state.calls["ticket/get"] == 1

    # Near expiry (and after the access token's proactive refresh) both tickets are fetched again, once.
    clock.advance(7000)
    resp = await client.get("/sidebar/api/jssdk-config", params={"url": PAGE}, headers=_as("zhangsan", clock))
    sig = (await resp.json())["agentConfig"]
    assert sim_state.verify_jsapi_signature("agent", sig["nonceStr"], str(sig["timestamp"]), PAGE, sig["signature"])
    assert sim_state.calls["get_jsapi_ticket"] == 2 and sim_state.calls["ticket/get"] == 2


async def test_jssdk_config_refuses_foreign_urls_and_anonymous_callers(client: TestClient, brand: Brand, clock: Any) -> None:
    for url in ("https://evil.example.com/sidebar/", "http://127.0.0.1:8080.evil.cn/", ""):
        resp = await client.get("/sidebar/api/jssdk-config", params={"url": url}, headers=_as("zhangsan", clock))
        assert resp.status == 400 and (await resp.json())["error"] == "bad_request", url
    resp = await client.get("/sidebar/api/jssdk-config", params={"url": "https://evil.example.com/sidebar/"},
                            headers=_as("zhangsan", clock))
    assert "PUBLIC_BASE_URL" in (await resp.json())["message"]
    resp = await client.get("/sidebar/api/jssdk-config", params={"url": PAGE})
    assert resp.status == 401 and (await resp.json())["signin"] == "/sidebar/"


# -- permissions -------------------------------------------------------------------------------------


async def test_who_sees_which_customer(client: TestClient, brand: Brand, maker: Any, clock: Any) -> None:
    b = brand
    cases = [
        ("zhangsan", b.wangfang, 200), ("zhangsan", b.half, 200), ("zhangsan", b.lilei, 403),
        ("zhangsan", b.lost, 403),
        ("wangmgr", b.lilei, 200), ("wangmgr", b.wangfang, 200), ("wangmgr", b.hanmeimei, 403),
        ("chenregion", b.hanmeimei, 200), ("chenregion", b.wangfang, 200), ("chenregion", b.chenchen, 403),
        ("sunhq", b.chenchen, 200), ("sunhq", b.lost, 200),
        ("ghost", b.wangfang, 403),  # a signed cookie for someone we do not know as staff
    ]
    for userid, external_userid, status in cases:
        resp = await client.get(f"/sidebar/api/contact/{external_userid}", headers=_as(userid, clock))
        data = await resp.json()
        assert resp.status == status, (userid, external_userid, data)
        if status == 403:
            assert data["error"] == "forbidden" and ("查看" in data["message"] or "登记" in data["message"])
    viewed = await _audits(maker, "profile_viewed")
    denied = await _audits(maker, "profile_view_denied")
    assert viewed == [(u, e) for u, e, s in cases if s == 200]
    assert denied == [(u, e) for u, e, s in cases if s == 403]


async def test_profile_content_and_phone_masking(client: TestClient, brand: Brand, clock: Any) -> None:
    resp = await client.get(f"/sidebar/api/contact/{brand.wangfang}", headers=_as("zhangsan", clock))
    data = await resp.json()
    assert data["viewer"] == {"userid": "zhangsan", "name": "张三", "role": "guide", "store": "上海徐汇店",
                              "sees_full_phone": False}
    profile = data["profile"]
    assert profile["name"] == "王芳" and data["fetched_from_wecom"] is False
    assert {"kind": "phone", "value": "138****1234"} in profile["identities"]
    assert [(g["userid"], g["store"], g["remark"]) for g in profile["guides"]] == [("zhangsan", "上海徐汇店", "王姐")]
    hq = await (await client.get(f"/sidebar/api/contact/{brand.wangfang}", headers=_as("sunhq", clock))).json()
    assert {"kind": "phone", "value": "+8613812341234"} in hq["profile"]["identities"]


async def test_unknown_customer_is_fetched_on_the_spot(
    client: TestClient, brand: Brand, sim_state: Any, maker: Any, clock: Any
) -> None:
    group_id = sim_state.add_tag_group("兴趣", ["母婴", "美妆"])
    tag = sim_state.tag_id("兴趣", "母婴")
    newcomer = sim_state.add_customer("周雨", unionid="o-union-zhouyu")
    sim_state.add_follow("zhangsan", newcomer, remark="周小姐", tag_ids=[tag])  # the callback has not arrived yet
    resp = await client.get(f"/sidebar/api/contact/{newcomer}", headers=_as("zhangsan", clock))
    assert resp.status == 200, await resp.text()
    data = await resp.json()
    assert data["fetched_from_wecom"] is True and data["profile"]["name"] == "周雨"
    assert [(t["group"], t["name"], t["source"]) for t in data["profile"]["tags"]] == [("兴趣", "母婴", "wecom")]
    async with maker() as session:
        customer = await sync.find_customer_by_identity(session, IdentityKind.EXTERNAL_USERID, newcomer)
        assert customer is not None
        relation = await session.scalar(select(FollowRelation).where(FollowRelation.customer_id == customer.id))
        assert relation.remark == "周小姐" and relation.status is FollowStatus.ACTIVE
        unionid = await session.scalar(select(CustomerIdentity.value).where(
            CustomerIdentity.customer_id == customer.id, CustomerIdentity.kind == IdentityKind.UNIONID))
    assert unionid == "o-union-zhouyu" and group_id
    assert [a for a in await _audits(maker, "customer_fetched") if a[0] != "test"] == [("zhangsan", newcomer)]
    assert ("zhangsan", newcomer) in await _audits(maker, "profile_viewed")
    # A second view reads our records only.
    calls = sim_state.calls["externalcontact/get"]
    assert (await client.get(f"/sidebar/api/contact/{newcomer}", headers=_as("zhangsan", clock))).status == 200
    assert sim_state.calls["externalcontact/get"] == calls
    # Someone else's new customer is fetched, stored, and still refused to this guide.
    other = sim_state.add_customer("郑新")
    sim_state.add_follow("gzguide", other)
    resp = await client.get(f"/sidebar/api/contact/{other}", headers=_as("zhangsan", clock))
    assert resp.status == 403
    # Unknown to WeCom as well: a clear 404.
    resp = await client.get("/sidebar/api/contact/wmNoSuchCustomer000000000000000", headers=_as("zhangsan", clock))
    assert resp.status == 404 and "找不到该客户" in (await resp.json())["message"]


async def test_relation_added_before_its_callback_is_recognised(
    client: TestClient, brand: Brand, sim_state: Any, maker: Any, clock: Any
) -> None:
    sim_state.add_follow("zhangsan", brand.lilei)  # 李雷 just added 张三 too; we only know lisi's relation
    resp = await client.get(f"/sidebar/api/contact/{brand.lilei}", headers=_as("zhangsan", clock))
    assert resp.status == 200, await resp.text()
    guides = {g["userid"] for g in (await resp.json())["profile"]["guides"]}
    assert guides == {"zhangsan", "lisi"}
    assert await _audits(maker, "profile_view_denied") == []


# -- groups ------------------------------------------------------------------------------------------


async def test_group_summary(client: TestClient, brand: Brand, sim_state: Any, maker: Any, clock: Any) -> None:
    stranger = sim_state.add_customer("冯路人")
    chat_id = sim_state.add_group_chat("zhangsan", [brand.wangfang, brand.lilei, stranger, "lisi"], name="徐汇店宝妈群")
    resp = await client.get(f"/sidebar/api/group/{chat_id}", headers=_as("zhangsan", clock))
    assert resp.status == 200, await resp.text()
    data = await resp.json()
    assert data["name"] == "徐汇店宝妈群" and data["fetched_from_wecom"] is True
    assert data["owner"] == {"userid": "zhangsan", "name": "张三", "store": "上海徐汇店"}
    assert (data["member_count"], data["staff_count"], data["customer_count"], data["known_customer_count"]) == (5, 2, 3, 2)
    joins = {j["name"]: j for j in data["recent_joins"]}
    assert joins["王芳"]["known"] and not joins["冯路人"]["known"] and joins["李四"]["type"] == "staff"
    async with maker() as session:
        assert await session.scalar(select(CustomerGroup.owner_userid).where(CustomerGroup.chat_id == chat_id)) == "zhangsan"
    # Known now: no second groupchat/get; the store manager and a member of the group may look, others not.
    for userid, status in (("lisi", 200), ("wangmgr", 200), ("chenregion", 200), ("gzguide", 403), ("zhaoliu", 403)):
        resp = await client.get(f"/sidebar/api/group/{chat_id}", headers=_as(userid, clock))
        assert resp.status == status, userid
    assert sim_state.calls["externalcontact/groupchat/get"] == 1
    resp = await client.get("/sidebar/api/group/wrNoSuchGroup00000000000000000", headers=_as("zhangsan", clock))
    assert resp.status == 404 and "客户群" in (await resp.json())["message"]


# -- tags --------------------------------------------------------------------------------------------


@pytest.fixture
async def tags(app: web.Application, brand: Brand, sim_state: Any, maker: Any, clock: Any) -> dict[str, int]:
    sim_state.add_tag_group("客户等级", ["金卡", "银卡"], order=10)
    await sync.sync_tag_library(_ctx(app))
    async with maker.begin() as session:
        local = await sync.local_tag(session, "门店活动", "到店试用")
        ruled = await sync.local_tag(session, "消费", "高消费")
        session.add(TagRule(tag_id=ruled.id, name="高消费", expression="spend >= 5000", created_at=clock(),
                            updated_at=clock()))
        ids = {t.name: t.id for t in (await session.scalars(select(Tag))).all()}
    assert local.id == ids["到店试用"]
    return ids


async def test_tag_library(client: TestClient, tags: dict[str, int], clock: Any) -> None:
    data = await (await client.get("/sidebar/api/tags", headers=_as("zhangsan", clock))).json()
    groups = {g["name"]: g for g in data["groups"]}
    assert [g["name"] for g in data["groups"]][0] == "客户等级"  # WeCom's order first
    assert [(t["name"], t["in_wecom"]) for t in groups["客户等级"]["tags"]] == [("金卡", True), ("银卡", True)]
    assert groups["门店活动"]["tags"][0]["in_wecom"] is False and groups["消费"]["tags"][0]["by_rule"] is True


async def test_tags_reach_wecom_then_our_records(
    client: TestClient, brand: Brand, tags: dict[str, int], sim_state: Any, maker: Any, clock: Any
) -> None:
    gold = sim_state.tag_id("客户等级", "金卡")
    url = f"/sidebar/api/contact/{brand.wangfang}/tags"
    resp = await client.post(url, json={"add": [tags["金卡"], tags["到店试用"]]}, headers=_as("zhangsan", clock))
    assert resp.status == 200, await resp.text()
    data = await resp.json()
    assert {(t["name"], t["source"]) for t in data["tags"]} == {("金卡", "staff"), ("到店试用", "staff")}
    assert [(m["userid"], m["external_userid"], m["add_tag"], m["remove_tag"]) for m in sim_state.mark_tag_log] == [
        ("zhangsan", brand.wangfang, [gold], [])]  # only the WeCom tag went to WeCom
    assert gold in sim_state.follows[("zhangsan", brand.wangfang)].tag_ids
    async with maker() as session:
        zhangsan = await session.scalar(select(Staff.id).where(Staff.userid == "zhangsan"))
        rows = (await session.scalars(select(CustomerTag))).all()
    assert {(r.tag_id, r.source, r.staff_id) for r in rows} == {
        (tags["金卡"], TagSource.STAFF, zhangsan), (tags["到店试用"], TagSource.STAFF, zhangsan)}

    resp = await client.post(url, json={"remove": [gold]}, headers=_as("zhangsan", clock))  # WeCom ids work too
    assert resp.status == 200
    assert sim_state.mark_tag_log[-1]["remove_tag"] == [gold]
    assert gold not in sim_state.follows[("zhangsan", brand.wangfang)].tag_ids
    assert [t["name"] for t in (await resp.json())["tags"]] == ["到店试用"]
    assert [a for a, _ in await _audits(maker, "customer_tags_changed")] == ["zhangsan", "zhangsan"]

    # A store manager tags a guide's customer through that guide's relation.
    resp = await client.post(f"/sidebar/api/contact/{brand.lilei}/tags", json={"add": [tags["银卡"]]},
                             headers=_as("wangmgr", clock))
    assert resp.status == 200
    assert sim_state.mark_tag_log[-1]["userid"] == "lisi"


async def test_bad_tag_requests_are_refused(
    client: TestClient, brand: Brand, tags: dict[str, int], sim_state: Any, maker: Any, clock: Any
) -> None:
    url = f"/sidebar/api/contact/{brand.wangfang}/tags"
    async with maker.begin() as session:
        await session.execute(update(Tag).where(Tag.id == tags["银卡"]).values(deleted=True))
    for body, fragment in (
        ({"add": [999999]}, "不存在或已删除"), ({"add": [tags["银卡"]]}, "不存在或已删除"),
        ({"add": ["etNoSuchTag"]}, "不存在或已删除"), ({"add": [tags["高消费"]]}, "规则"),
        ({}, "至少"), ({"add": "金卡"}, "列表"), ({"add": [tags["金卡"]], "remove": [tags["金卡"]]}, "既添加又移除"),
    ):
        resp = await client.post(url, json=body, headers=_as("zhangsan", clock))
        assert resp.status == 400, body
        assert fragment in (await resp.json())["message"], body
    resp = await client.post(url, data="not json", headers=_as("zhangsan", clock))
    assert resp.status == 400
    resp = await client.post(f"/sidebar/api/contact/{brand.lilei}/tags", json={"add": [tags["金卡"]]},
                             headers=_as("zhangsan", clock))
    assert resp.status == 403
    resp = await client.post(url, json={"add": [tags["金卡"]]})
    assert resp.status == 401
    assert sim_state.mark_tag_log == []
    async with maker() as session:
        assert (await session.scalars(select(CustomerTag))).all() == []


async def test_a_full_connection_pool_answers_busy_not_500(
    brand: Brand, settings: Any, clock: Any, aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scrm.db, "POOL_WAIT", 0.2)
    busy_app = create_app(settings, clock=clock, run_worker=False)
    busy = await aiohttp_client(busy_app)
    engine = busy_app[keys.ENGINE]
    held = []
    while True:  # take every connection the pool will give
        try:
            held.append(await engine.connect())
        except sqlalchemy.exc.TimeoutError:
            break
    url = f"/sidebar/api/contact/{brand.wangfang}"
    resp = await busy.get(url, headers=_as("zhangsan", clock))
    assert resp.status == 503 and resp.headers["Retry-After"]
    assert (await resp.json())["message"] == "当前访问人数较多，请稍后重试。"
    for conn in held:
        await conn.close()
    assert (await busy.get(url, headers=_as("zhangsan", clock))).status == 200
