"""Group pushes against the simulator: planning, validation, delivery, crash recovery, quotas, results."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import (
    Customer, CustomerGroup, CustomerTag, DeliveryStatus, FollowRelation, FollowStatus, Outcome, PushDelivery,
    PushRecipient, PushRun, RunStatus, ScriptCategory, ScriptSend, Staff, TalkScript, Tag, TagGroup, TagSource,
)
from pushes.runner import PUSH_RUNNER, STALE_AFTER, PushRunner, SimulatedCrash
from scrm import keys
from tests.brand import Brand
from wecom.gateway import WeComGateway
from wecom.simulator.state import SimulatorState

ADMIN = {"Authorization": "Bearer admin-secret"}


async def _tag(maker: async_sessionmaker[AsyncSession], clock: Any, customer_ids: list[int], name: str = "活跃") -> int:
    async with maker.begin() as session:
        group = TagGroup(name=f"运营-{name}")
        session.add(group)
        await session.flush()
        tag = Tag(group_id=group.id, name=name)
        session.add(tag)
        await session.flush()
        session.add_all([CustomerTag(customer_id=c, tag_id=tag.id, source=TagSource.STAFF, created_at=clock())
                         for c in customer_ids])
        return tag.id


async def _customer_id(maker: async_sessionmaker[AsyncSession], external_userid: str) -> int:
    async with maker() as session:
        return int(await session.scalar(select(FollowRelation.customer_id).where(
            FollowRelation.external_userid == external_userid).limit(1)))


async def _all_customers(maker: async_sessionmaker[AsyncSession]) -> list[int]:
    async with maker() as session:
        return list((await session.scalars(select(Customer.id).order_by(Customer.id))).all())


def _once(clock: Any, minutes: int = 60) -> dict[str, Any]:
    return {"kind": "once", "at": (clock() + dt.timedelta(minutes=minutes)).isoformat()}


async def _create(client: TestClient, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
    response = await client.post("/admin/api/pushes", json=body, headers=ADMIN)
    data = await response.json()
    assert response.status == status, data
    return data


def _runner(app: web.Application) -> PushRunner:
    return app[PUSH_RUNNER]


async def _fire(app: web.Application, clock: Any, push: dict[str, Any]) -> int:
    at = dt.datetime.fromisoformat(push["upcoming"][0]["at"])
    clock.now = at
    run_id = await _runner(app).fire(push["id"], at)
    assert run_id is not None
    return run_id


async def _detail(client: TestClient, run_id: int) -> dict[str, Any]:
    response = await client.get(f"/admin/api/push-runs/{run_id}", headers=ADMIN)
    assert response.status == 200
    return await response.json()


async def test_a_once_push_reaches_every_guides_customers_and_reports_what_reached_whom(
        app: web.Application, client: TestClient, brand: Brand, sim_state: SimulatorState, maker: Any,
        clock: Any) -> None:
    ids = await _all_customers(maker)
    tag_id = await _tag(maker, clock, ids)
    push = await _create(client, {
        "name": "周三第二杯半价", "audience": {"kind": "tags", "tag_ids": [tag_id]},
        "content": {"text": "我是{guide_name}，{store_name}本周三第二杯半价！"}, "schedule": _once(clock)})
    assert push["status"] == "active" and push["schedule_text"].endswith("一次")
    assert push["audience"]["names"]["tags"] == {str(tag_id): "活跃"}  # ids named for people to read
    run_id = await _fire(app, clock, push)

    # One WeCom task per guide with a live relation; 刘半 (half) and 吴走 (lost) have none: no guide.
    messages = list(sim_state.mass_messages.values())
    senders = sorted(u for m in messages for u in m.tasks)
    assert senders == ["gzguide", "lisi", "zhangsan", "zhaoliu"]
    zhangsan = next(m for m in messages if "zhangsan" in m.tasks)
    assert zhangsan.text == {"content": "我是张三，上海徐汇店本周三第二杯半价！"}
    assert zhangsan.tasks["zhangsan"].targets == [brand.wangfang]
    reminded = sorted(u for m in sim_state.app_messages for u in m["touser"] if "群发待确认" in m["text"]["content"])
    assert reminded == senders

    detail = await _detail(client, run_id)
    assert detail["status"] == "polling"
    assert detail["counts"]["targeted"] == 4 and detail["counts"]["no_guide"] == 2
    assert detail["tasks"] == {"planned": 4, "created": 4, "confirmed": 0, "failed": 0}
    assert detail["progress"] == {"done": 4, "total": 4}

    # Three guides confirm; one customer removed lisi in the meantime (not a friend any more).
    sim_state.ev_customer_deletes_member("lisi", brand.lilei)
    for message in messages:
        userid = next(iter(message.tasks))
        if userid != "zhaoliu":
            sim_state.confirm_mass_task(message.msgid, userid)
    assert not await _runner(app).poll(run_id)
    detail = await _detail(client, run_id)
    assert detail["outcomes"] == {"sent": 2, "not_friend": 1, "pending": 1, "no_guide": 2}
    assert detail["tasks"]["confirmed"] == 3

    clock.advance(25 * 3600)  # past the 24-hour confirmation deadline
    assert await _runner(app).poll(run_id)
    detail = await _detail(client, run_id)
    assert detail["status"] == "finished"
    assert detail["outcomes"] == {"sent": 2, "not_friend": 1, "unconfirmed": 1, "no_guide": 2}
    guides = {g["userid"]: g for g in detail["guides"]}
    assert guides["zhaoliu"]["outcomes"] == {"unconfirmed": 1} and guides["zhangsan"]["name"] == "张三"
    listed = await (await client.get(f"/admin/api/pushes/{push['id']}", headers=ADMIN)).json()
    assert listed["status"] == "finished" and listed["runs"][0]["outcomes"]["sent"] == 2


async def test_an_occurrence_runs_once_however_often_it_is_fired(
        app: web.Application, client: TestClient, brand: Brand, sim_state: SimulatorState, maker: Any,
        clock: Any) -> None:
    push = await _create(client, {
        "name": "会员日", "audience": {"kind": "customers", "customer_ids": await _all_customers(maker)},
        "content": {"text": "会员日快乐"}, "schedule": {"kind": "weekly", "weekdays": [3], "time": "10:00"}})
    at = dt.datetime.fromisoformat(push["upcoming"][0]["at"])
    clock.now = at
    assert await _runner(app).fire(push["id"], at) is not None
    assert await _runner(app).fire(push["id"], at) is None
    assert len(sim_state.mass_messages) == 4
    async with maker() as session:
        assert await session.scalar(select(func.count()).select_from(PushRun)) == 1


async def test_a_customer_followed_by_two_guides_goes_through_the_latest_interaction(
        app: web.Application, client: TestClient, brand: Brand, sim_state: SimulatorState, maker: Any,
        clock: Any) -> None:
    wangfang = await _customer_id(maker, brand.wangfang)
    sim_state.add_follow("lisi", brand.wangfang)
    async with maker.begin() as session:
        lisi = await session.scalar(select(Staff).where(Staff.userid == "lisi"))
        zhangsan = await session.scalar(select(Staff).where(Staff.userid == "zhangsan"))
        session.add(FollowRelation(staff_id=lisi.id, customer_id=wangfang, external_userid=brand.wangfang,
                                   status=FollowStatus.ACTIVE, added_at=clock() - dt.timedelta(days=30)))
        category = ScriptCategory(name="回访")
        session.add(category)
        await session.flush()
        script = TalkScript(category_id=category.id, title="问候", body="您好", created_at=clock(), updated_at=clock())
        session.add(script)
        await session.flush()
        # zhangsan added her earlier (brand fixture); lisi sent her a talk script yesterday, zhangsan before.
        session.add(ScriptSend(script_id=script.id, staff_id=lisi.id, customer_id=wangfang,
                               sent_at=clock() - dt.timedelta(days=1)))
        session.add(ScriptSend(script_id=script.id, staff_id=zhangsan.id, customer_id=wangfang,
                               sent_at=clock() - dt.timedelta(days=3)))
    push = await _create(client, {"name": "回访", "audience": {"kind": "customers", "customer_ids": [wangfang]},
                                  "content": {"text": "好久不见"}, "schedule": _once(clock)})
    await _fire(app, clock, push)
    (message,) = sim_state.mass_messages.values()
    assert list(message.tasks) == ["lisi"] and message.tasks["lisi"].targets == [brand.wangfang]


async def test_invalid_pushes_are_refused_with_the_field_named(
        client: TestClient, brand: Brand, maker: Any, clock: Any) -> None:
    tag_id = await _tag(maker, clock, [await _customer_id(maker, brand.wangfang)])
    good = {"name": "x", "audience": {"kind": "tags", "tag_ids": [tag_id]}, "content": {"text": "hi"},
            "schedule": _once(clock)}
    empty_tag = await _tag(maker, clock, [], name="无人")
    cases = [
        ({"audience": {"kind": "tags", "tag_ids": [empty_tag]}}, "audience", "受众为空"),
        ({"audience": {"kind": "tags", "tag_ids": [999999]}}, "audience.tag_ids", "不存在"),
        ({"audience": {"kind": "everyone"}}, "audience.kind", "segment"),
        ({"content": {"text": "好" * 1400}}, "content.text", "4000 字节"),
        ({"content": {"text": "亲爱的{customer_name}"}}, "content.text", "客户变量"),
        ({"content": {"text": "", "attachments": []}}, "content", "不能都为空"),
        ({"content": {"text": "a", "attachments": [{"type": "link", "title": "t", "url": "https://x.cn"}] * 10}},
         "content.attachments", "最多 9 个"),
        ({"schedule": {"kind": "once", "at": (clock() - dt.timedelta(hours=1)).isoformat()}}, "schedule.at", "已经过去"),
        ({"schedule": {"kind": "cron", "cron": "0 10 * *"}}, "schedule.cron", "无法识别"),
        ({"cap": 0}, "cap", "正整数"),
        ({"name": " "}, "name", "不能为空"),
    ]
    for change, field, words in cases:
        data = await _create(client, good | change, status=400)
        assert data["field"] == field and words in data["error"], (change, data)
    response = await client.post("/admin/api/pushes", data="not json", headers=ADMIN)
    assert response.status == 400 and "JSON" in (await response.json())["error"]
    async with maker() as session:
        assert await session.scalar(select(func.count()).select_from(PushRun)) == 0


async def test_a_dry_run_shows_the_split_and_sends_nothing(
        app: web.Application, client: TestClient, brand: Brand, sim_state: SimulatorState, maker: Any,
        clock: Any) -> None:
    push = await _create(client, {
        "name": "试一试", "audience": {"kind": "customers", "customer_ids": await _all_customers(maker)},
        "content": {"text": "新品到店"}, "schedule": _once(clock), "cap": 3})
    response = await client.post(f"/admin/api/pushes/{push['id']}/dry-run", headers=ADMIN)
    data = await response.json()
    assert response.status == 200
    assert data["counts"] == {"audience": 6, "targeted": 3, "tasks": 3, "guides": 3, "no_guide": 2,
                              "skipped_quota": 0, "capped": 1}
    assert sum(g["targeted"] for g in data["guides"]) == 3 and all(g["name"] for g in data["guides"])
    assert not sim_state.mass_messages
    async with maker() as session:
        assert await session.scalar(select(func.count()).select_from(PushRun)) == 0


async def test_customers_over_the_brand_quota_are_skipped_and_counted(
        app: web.Application, client: TestClient, brand: Brand, sim_state: SimulatorState, maker: Any,
        clock: Any) -> None:
    wangfang, lilei = await _customer_id(maker, brand.wangfang), await _customer_id(maker, brand.lilei)
    first = await _create(client, {"name": "早", "audience": {"kind": "customers", "customer_ids": [wangfang]},
                                   "content": {"text": "早上好"}, "schedule": _once(clock, 60)})
    second = await _create(client, {"name": "晚", "audience": {"kind": "customers", "customer_ids": [wangfang, lilei]},
                                    "content": {"text": "晚上好"}, "schedule": _once(clock, 120)})
    await _fire(app, clock, first)
    run_id = await _fire(app, clock, second)  # same natural day: the default quota is 1/day
    detail = await _detail(client, run_id)
    assert detail["counts"]["skipped_quota"] == 1 and detail["counts"]["targeted"] == 1
    assert detail["outcomes"] == {"pending": 1, "skipped_quota": 1}
    last = list(sim_state.mass_messages.values())[-1]
    assert [t for task in last.tasks.values() for t in task.targets] == [brand.lilei]


async def test_a_crash_between_the_wecom_call_and_its_record_creates_no_second_task(
        app: web.Application, client: TestClient, brand: Brand, sim_state: SimulatorState, maker: Any,
        clock: Any) -> None:
    push = await _create(client, {
        "name": "断电", "audience": {"kind": "customers", "customer_ids": await _all_customers(maker)},
        "content": {"text": "双十二预热"}, "schedule": _once(clock)})
    crashed: list[int] = []

    def crash_once(delivery_id: int) -> None:
        if not crashed:
            crashed.append(delivery_id)
            raise SimulatedCrash(delivery_id)

    settings = app[keys.SETTINGS]
    dying = PushRunner(maker, app[keys.GATEWAY], settings, clock=clock, after_call=crash_once)
    at = dt.datetime.fromisoformat(push["upcoming"][0]["at"])
    clock.now = at
    with pytest.raises(SimulatedCrash):
        await dying.fire(push["id"], at)
    assert len(sim_state.mass_messages) == 1  # WeCom has the task; we had not recorded it
    async with maker() as session:
        stuck = await session.get(PushDelivery, crashed[0])
        assert stuck.status == DeliveryStatus.CALLING and stuck.msgid is None

    survivor = PushRunner(maker, app[keys.GATEWAY], settings, clock=clock)
    async with maker() as session:
        run_id = await session.scalar(select(PushRun.id))
    await survivor.resume()  # the dying worker's heartbeat is fresh: it may still be working, hands off
    await survivor.wait(run_id)
    assert len(sim_state.mass_messages) == 1
    clock.advance(STALE_AFTER.total_seconds() + 1)
    await survivor.resume()
    assert run_id in survivor._active
    await survivor.wait(run_id)
    assert len(sim_state.mass_messages) == 4  # one per guide: the crashed one was found, not made again
    async with maker() as session:
        found = await session.get(PushDelivery, crashed[0])
        assert found.status == DeliveryStatus.CREATED and found.msgid in sim_state.mass_messages
        run = await session.scalar(select(PushRun))
        assert run.status == RunStatus.POLLING
        msgids = (await session.scalars(select(PushDelivery.msgid))).all()
        assert sorted(msgids) == sorted(sim_state.mass_messages)


async def test_rate_limits_back_off_and_resume_and_other_errors_fail_only_that_guide(
        app: web.Application, client: TestClient, brand: Brand, sim_state: SimulatorState, maker: Any,
        clock: Any) -> None:
    push = await _create(client, {
        "name": "限流", "audience": {"kind": "customers", "customer_ids": await _all_customers(maker)},
        "content": {"text": "周末特惠"}, "schedule": _once(clock)})
    settings = app[keys.SETTINGS]
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    gateway = WeComGateway(settings.corp_id, settings.agent_secret, api_base=settings.api_base,
                           agent_id=settings.agent_id, max_rate_limit_retries=0, sleep=sleep)
    runner = PushRunner(maker, gateway, settings, clock=clock, sleep=sleep)
    sim_state.inject_error("externalcontact/add_msg_template", 45009, times=3)
    sim_state.members["zhaoliu"].customer_contact = False  # → 84074 for zhaoliu's task only
    at = dt.datetime.fromisoformat(push["upcoming"][0]["at"])
    clock.now = at
    run_id = await runner.fire(push["id"], at)
    await gateway.close()
    assert sleeps[:3] == [2.0, 4.0, 8.0]
    detail = await _detail(client, run_id)
    assert detail["tasks"] == {"planned": 4, "created": 3, "confirmed": 0, "failed": 1}
    assert detail["failures"][0]["error_code"] == 84074
    zhaoliu = next(g for g in detail["guides"] if g["userid"] == "zhaoliu")
    assert zhaoliu["outcomes"] == {"failed": 1} and zhaoliu["tasks"][0]["error_code"] == 84074


async def test_chunks_hold_at_most_ten_thousand_customers(
        app: web.Application, client: TestClient, brand: Brand, sim_state: SimulatorState, maker: Any,
        clock: Any) -> None:
    async with maker() as session:
        zhangsan = await session.scalar(select(Staff.id).where(Staff.userid == "zhangsan"))
    rows: list[dict[str, Any]] = []
    async with maker.begin() as session:
        first = int(await session.scalar(select(func.max(Customer.id))) or 0) + 1
        await session.execute(insert(Customer), [{"id": first + i, "name": f"客{i}"} for i in range(10_001)])
        for i in range(10_001):
            external_userid = sim_state.add_customer(f"客{i}")
            sim_state.add_follow("zhangsan", external_userid)
            rows.append({"staff_id": zhangsan, "customer_id": first + i, "external_userid": external_userid,
                         "status": FollowStatus.ACTIVE, "added_at": clock()})
        await session.execute(insert(FollowRelation), rows)
    tag_id = await _tag(maker, clock, [first + i for i in range(10_001)], name="大促")
    push = await _create(client, {"name": "大促", "audience": {"kind": "tags", "tag_ids": [tag_id]},
                                  "content": {"text": "大促开始"}, "schedule": _once(clock)})
    run_id = await _fire(app, clock, push)
    sizes = sorted(len(m.tasks["zhangsan"].targets) for m in sim_state.mass_messages.values())
    assert sizes == [1, 10_000]
    async with maker() as session:
        assert await session.scalar(select(func.count()).select_from(PushRecipient).where(
            PushRecipient.run_id == run_id, PushRecipient.outcome == Outcome.PENDING)) == 10_001


async def test_a_group_push_creates_one_task_per_group_owner(
        app: web.Application, client: TestClient, brand: Brand, sim_state: SimulatorState, maker: Any,
        clock: Any) -> None:
    chats = [sim_state.add_group_chat("zhangsan", [brand.wangfang], name="徐汇老客群"),
             sim_state.add_group_chat("lisi", [brand.lilei], name="徐汇新客群"),
             sim_state.add_group_chat("zhaoliu", [brand.hanmeimei], name="西湖群")]
    async with maker.begin() as session:
        session.add_all([CustomerGroup(chat_id=c, name=n, owner_userid=o) for c, n, o in
                         zip(chats, ["徐汇老客群", "徐汇新客群", "西湖群"], ["zhangsan", "lisi", "zhaoliu"], strict=True)])
    push = await _create(client, {"name": "群发到徐汇", "audience": {"kind": "groups", "name_contains": "徐汇"},
                                  "content": {"text": "群里的朋友们好"}, "schedule": _once(clock)})
    assert push["chat_type"] == "group"
    run_id = await _fire(app, clock, push)
    tasks = {u: t.targets for m in sim_state.mass_messages.values() for u, t in m.tasks.items()}
    assert tasks == {"zhangsan": [chats[0]], "lisi": [chats[1]]}
    for message in sim_state.mass_messages.values():
        sim_state.confirm_mass_task(message.msgid, next(iter(message.tasks)))
    assert await _runner(app).poll(run_id)
    assert (await _detail(client, run_id))["outcomes"] == {"sent": 2}


async def test_an_admin_cancels_one_upcoming_run_and_it_never_starts(
        app: web.Application, client: TestClient, brand: Brand, sim_state: SimulatorState, maker: Any,
        clock: Any) -> None:
    push = await _create(client, {
        "name": "每周三", "audience": {"kind": "customers", "customer_ids": await _all_customers(maker)},
        "content": {"text": "周三见"}, "schedule": {"kind": "weekly", "weekdays": [3], "time": "10:00"}})
    second = push["upcoming"][1]["at"]
    response = await client.post(f"/admin/api/pushes/{push['id']}/cancel-run", json={"scheduled_for": second},
                                 headers=ADMIN)
    data = await response.json()
    assert response.status == 200 and data["upcoming"][1] == {"at": second, "cancelled": True}
    at = dt.datetime.fromisoformat(second)
    clock.now = at
    assert await _runner(app).fire(push["id"], at) is None
    assert not sim_state.mass_messages
    bad = await client.post(f"/admin/api/pushes/{push['id']}/cancel-run",
                            json={"scheduled_for": (at + dt.timedelta(hours=1)).isoformat()}, headers=ADMIN)
    assert bad.status == 400 and "不是这个群发的计划时间" in (await bad.json())["error"]


async def test_sending_a_once_push_now_sends_it_instead_of_at_its_time(
        app: web.Application, client: TestClient, brand: Brand, sim_state: SimulatorState, maker: Any,
        clock: Any) -> None:
    push = await _create(client, {
        "name": "提前发", "audience": {"kind": "customers", "customer_ids": await _all_customers(maker)},
        "content": {"text": "提前通知"}, "schedule": _once(clock, 24 * 60)})
    response = await client.post(f"/admin/api/pushes/{push['id']}/run", headers=ADMIN)
    run = await response.json()
    assert response.status == 202 and run["trigger"] == "manual"
    await _runner(app).wait(run["id"])
    after = await (await client.get(f"/admin/api/pushes/{push['id']}", headers=ADMIN)).json()
    assert after["status"] == "finished" and after["upcoming"] == [] and len(sim_state.mass_messages) == 4
    again = await client.post(f"/admin/api/pushes/{push['id']}/run", headers=ADMIN)
    assert again.status == 409 and "结束" in (await again.json())["error"]


async def test_a_group_push_interrupted_after_a_call_resumes_without_a_second_task(
        app: web.Application, client: TestClient, brand: Brand, sim_state: SimulatorState, maker: Any,
        clock: Any) -> None:
    chats = [sim_state.add_group_chat("zhangsan", [brand.wangfang], name="老客群"),
             sim_state.add_group_chat("lisi", [brand.lilei], name="新客群")]
    async with maker.begin() as session:
        session.add_all([CustomerGroup(chat_id=c, name=n, owner_userid=o) for c, n, o in
                         zip(chats, ["老客群", "新客群"], ["zhangsan", "lisi"], strict=True)])
    push = await _create(client, {"name": "群里见", "audience": {"kind": "groups", "owners": ["zhangsan", "lisi"]},
                                  "content": {"text": "今晚直播"}, "schedule": _once(clock)})

    def crash(delivery_id: int) -> None:
        raise SimulatedCrash(delivery_id)

    at = dt.datetime.fromisoformat(push["upcoming"][0]["at"])
    clock.now = at
    with pytest.raises(SimulatedCrash):
        await PushRunner(maker, app[keys.GATEWAY], app[keys.SETTINGS], clock=clock, after_call=crash).fire(push["id"], at)
    assert len(sim_state.mass_messages) == 1  # the first owner's task exists, unconfirmed: it lists no results yet
    clock.advance(STALE_AFTER.total_seconds() + 1)
    survivor = PushRunner(maker, app[keys.GATEWAY], app[keys.SETTINGS], clock=clock)
    await survivor.resume()
    async with maker() as session:
        run_id = await session.scalar(select(PushRun.id))
    await survivor.wait(run_id)
    assert sorted(u for m in sim_state.mass_messages.values() for u in m.tasks) == ["lisi", "zhangsan"]
    async with maker() as session:
        msgids = sorted((await session.scalars(select(PushDelivery.msgid))).all())
    assert msgids == sorted(sim_state.mass_messages)


async def test_the_form_can_name_tags_segments_and_group_owners(
        client: TestClient, brand: Brand, sim_state: SimulatorState, maker: Any, clock: Any) -> None:
    tag_id = await _tag(maker, clock, [], name="新客")
    chat = sim_state.add_group_chat("lisi", [brand.lilei], name="新客群")
    async with maker.begin() as session:
        session.add(CustomerGroup(chat_id=chat, name="新客群", owner_userid="lisi"))
    data = await (await client.get("/admin/api/push-options", headers=ADMIN)).json()
    assert {"id": tag_id, "name": "新客", "group": "运营-新客"} in data["tags"]
    assert data["owners"] == [{"userid": "lisi", "name": "李四"}]
    assert {s["name"] for s in data["stores"]} == {"上海徐汇店", "杭州西湖店", "广州天河店"}
