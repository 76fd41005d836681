"""Each callback topic, driven end to end: simulator event -> encrypted push -> inbox -> worker -> data."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from models import (
    AuditEntry, CallbackEvent, ContactWay, Customer, CustomerGroup, CustomerIdentity, CustomerTag, FollowRelation,
    FollowStatus, GroupMember, GroupStatus, IdentityKind, InboxStatus, Region, Staff, StaffRole, Store, Tag, TagGroup,
)
from tests.conftest import drain


@pytest.fixture
async def org(maker: Any) -> dict[str, int]:
    """One store with two guides and a store manager."""
    async with maker.begin() as session:
        region = Region(code="east", name="华东")
        session.add(region)
        await session.flush()
        store = Store(code="SH01", name="上海南京西路店", region_id=region.id)
        session.add(store)
        await session.flush()
        for userid, name, role in (("zhangsan", "张三", StaffRole.GUIDE), ("lisi", "李四", StaffRole.GUIDE),
                                   ("wangmgr", "王店长", StaffRole.STORE_MANAGER)):
            session.add(Staff(userid=userid, name=name, role=role, store_id=store.id, region_id=region.id))
        await session.flush()
        staff_id = await session.scalar(select(Staff.id).where(Staff.userid == "zhangsan"))
        session.add(ContactWay(config_id="cfg-spring", state="spring_sh01", staff_id=staff_id, campaign="春季上新",
                               welcome_text="{customer_name}您好，我是{guide_name}，春季上新已为您备好！"))
    return {"store": store.id}


async def _one(maker: Any, stmt: Any) -> Any:
    async with maker() as session:
        return (await session.scalars(stmt)).one()


async def _all(maker: Any, stmt: Any) -> list[Any]:
    async with maker() as session:
        return list((await session.scalars(stmt)).all())


async def _add(sender: Any, app: Any, sim_state: Any, **kw: Any) -> str:
    ext, xml = sim_state.ev_customer_adds_member("zhangsan", **kw)
    report = await sender.send(xml)
    assert report.acknowledged and report.attempts[0].body == ""
    await drain(app)
    return ext


async def test_add_via_contact_way_records_customer_attribution_and_welcomes(
    app: Any, sender: Any, sim_state: Any, maker: Any, org: Any
) -> None:
    ext = await _add(sender, app, sim_state, name="王小美", state="spring_sh01", unionid="ozUnion123")
    relation = await _one(maker, select(FollowRelation))
    assert relation.external_userid == ext and relation.status is FollowStatus.ACTIVE
    assert relation.state == "spring_sh01" and relation.contact_way_id is not None
    customer = await _one(maker, select(Customer))
    assert customer.name == "王小美"
    kinds = {i.kind for i in await _all(maker, select(CustomerIdentity))}
    assert kinds == {IdentityKind.EXTERNAL_USERID, IdentityKind.UNIONID}
    assert len(sim_state.welcome_messages) == 1
    assert "王小美您好，我是张三" in str(sim_state.welcome_messages[0])
    audit = await _one(maker, select(AuditEntry).where(AuditEntry.action == "customer_added"))
    assert audit.detail["campaign"] == "春季上新" and audit.event_id is not None


async def test_half_add_then_full_add_is_one_relation(app: Any, sender: Any, sim_state: Any, maker: Any, org: Any) -> None:
    ext = await _add(sender, app, sim_state, name="半路客", half=True)
    assert (await _one(maker, select(FollowRelation))).status is FollowStatus.HALF
    _, xml = sim_state.ev_customer_adds_member("zhangsan", external_userid=ext, name="半路客")
    await sender.send(xml)
    await drain(app)
    assert (await _one(maker, select(FollowRelation))).status is FollowStatus.ACTIVE


async def test_retried_add_is_acted_on_once(app: Any, sender: Any, sim_state: Any, maker: Any, org: Any) -> None:
    _, xml = sim_state.ev_customer_adds_member("zhangsan", name="重复")
    first, second = await sender.send_twice(xml)
    assert first.status == second.status == 200
    await drain(app)
    assert len(await _all(maker, select(Customer))) == 1
    assert len(sim_state.welcome_messages) == 1
    assert len(await _all(maker, select(AuditEntry).where(AuditEntry.action == "customer_added"))) == 1


async def test_edit_refreshes_remark_and_mirrors_new_tags(app: Any, sender: Any, sim_state: Any, maker: Any, org: Any) -> None:
    ext = await _add(sender, app, sim_state, name="老顾客")
    sim_state.add_tag_group("客户等级", ["金卡会员", "银卡会员"])
    gold = sim_state.tag_id("客户等级", "金卡会员")
    await sender.send(sim_state.ev_member_edits_customer("zhangsan", ext, remark="王姐-金卡", add_tag_ids=[gold]))
    await drain(app)
    assert (await _one(maker, select(FollowRelation))).remark == "王姐-金卡"
    tag = await _one(maker, select(Tag).join(CustomerTag))
    assert tag.name == "金卡会员" and tag.wecom_tag_id == gold
    assert {g.name for g in await _all(maker, select(TagGroup))} >= {"客户等级"}


async def test_staff_deletes_customer_and_transfer_deletion(app: Any, sender: Any, sim_state: Any, maker: Any, org: Any) -> None:
    ext = await _add(sender, app, sim_state, name="甲")
    await sender.send(sim_state.ev_member_deletes_customer("zhangsan", ext))
    await drain(app)
    relation = await _one(maker, select(FollowRelation))
    assert relation.status is FollowStatus.DELETED and relation.removed_at is not None
    ext2 = await _add(sender, app, sim_state, name="乙")
    await sender.send(sim_state.ev_member_deletes_customer("zhangsan", ext2, by_transfer=True))
    await drain(app)
    assert (await _one(maker, select(FollowRelation).where(FollowRelation.external_userid == ext2))).status is FollowStatus.TRANSFERRED


async def test_customer_deletes_guide_is_churn_tagged_and_manager_told(
    app: Any, sender: Any, sim_state: Any, maker: Any, org: Any
) -> None:
    ext = await _add(sender, app, sim_state, name="流失的顾客")
    await sender.send(sim_state.ev_customer_deletes_member("zhangsan", ext))
    await drain(app)
    relation = await _one(maker, select(FollowRelation))
    assert relation.status is FollowStatus.LOST and relation.removed_at is not None
    tag = await _one(maker, select(Tag).join(CustomerTag))
    assert tag.name == "已流失"
    to_manager = [m for m in sim_state.app_messages if "wangmgr" in str(m.get("touser", ""))]
    assert len(to_manager) == 1
    assert "流失的顾客" in str(to_manager[0]) and "张三" in str(to_manager[0])


async def test_transfer_fail_tells_the_takeover_member(app: Any, sender: Any, sim_state: Any, maker: Any, org: Any) -> None:
    ext = await _add(sender, app, sim_state, name="转接客")
    await sender.send(sim_state.ev_transfer_fail("lisi", ext, reason="customer_refused"))
    await drain(app)
    msg = [m for m in sim_state.app_messages if "lisi" in str(m.get("touser", ""))]
    assert msg and "客户拒绝" in str(msg[0])
    assert await _one(maker, select(AuditEntry).where(AuditEntry.action == "transfer_failed"))


async def test_group_lifecycle(app: Any, sender: Any, sim_state: Any, maker: Any, org: Any) -> None:
    ext = await _add(sender, app, sim_state, name="群成员甲")
    other = sim_state.add_customer("群成员乙")
    chat_id, xml = sim_state.ev_group_created("zhangsan", [ext], "会员福利群")
    await sender.send(xml)
    await drain(app)
    group = await _one(maker, select(CustomerGroup))
    assert group.name == "会员福利群" and group.owner_userid == "zhangsan" and group.status is GroupStatus.ACTIVE
    version = group.member_version
    await sender.send(sim_state.ev_group_members_join(chat_id, [other]))
    await drain(app)
    members = await _all(maker, select(GroupMember))
    ids = {m.member_userid for m in members}
    assert {ext, other, "zhangsan"} <= ids
    assert next(m for m in members if m.member_userid == ext).customer_id is not None
    assert (await _one(maker, select(CustomerGroup))).member_version != version
    await sender.send(sim_state.ev_group_members_leave(chat_id, [other]))
    await sender.send(sim_state.ev_group_renamed(chat_id, "会员福利群2"))
    await drain(app)
    assert other not in {m.member_userid for m in await _all(maker, select(GroupMember))}
    assert (await _one(maker, select(CustomerGroup))).name == "会员福利群2"
    await sender.send(sim_state.ev_group_dismissed(chat_id))
    await drain(app)
    group = await _one(maker, select(CustomerGroup))
    assert group.status is GroupStatus.DISMISSED and group.dismissed_at is not None


async def test_tag_library_follows_console_changes(app: Any, sender: Any, sim_state: Any, maker: Any, org: Any) -> None:
    tag_id, xml = sim_state.ev_tag_created("兴趣偏好", "奶粉")
    await sender.send(xml)
    await drain(app)
    tag = await _one(maker, select(Tag))
    assert tag.name == "奶粉" and tag.wecom_tag_id == tag_id and not tag.deleted
    await sender.send(sim_state.ev_tag_renamed(tag_id, "婴儿奶粉"))
    await drain(app)
    assert (await _one(maker, select(Tag))).name == "婴儿奶粉"
    await sender.send(sim_state.ev_tags_shuffled())
    await sender.send(sim_state.ev_tag_deleted(tag_id))
    await drain(app)
    assert (await _one(maker, select(Tag))).deleted


async def test_staff_commands_are_answered_through_the_app(app: Any, sender: Any, sim_state: Any, maker: Any, org: Any) -> None:
    await _add(sender, app, sim_state, name="王小美")
    await sender.send(sim_state.ev_member_text("zhangsan", "帮助"))
    await sender.send(sim_state.ev_member_text("zhangsan", "客户 小美"))
    await sender.send(sim_state.ev_member_text("zhangsan", "今日"))
    await sender.send(sim_state.ev_member_text("zhangsan", "随便说说"))
    await drain(app)
    texts = [str(m) for m in sim_state.app_messages if "zhangsan" in str(m.get("touser", ""))]
    assert len(texts) == 4
    assert "可用命令" in texts[0]
    assert "王小美" in texts[1]
    assert "新增客户 1 位" in texts[2]
    assert "发送「帮助」" in texts[3]


async def test_enter_agent_discovers_unknown_member(app: Any, sender: Any, sim_state: Any, maker: Any) -> None:
    sim_state.add_member("newbie", "新导购")
    await sender.send(sim_state.ev_enter_agent("newbie"))
    await drain(app)
    assert (await _one(maker, select(Staff).where(Staff.userid == "newbie"))).name == "新导购"


async def test_unknown_event_is_stored_and_ignored(app: Any, sender: Any, maker: Any, clock: Any) -> None:
    xml = (f"<xml><ToUserName><![CDATA[{sender.crypto.receive_id}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
           f"<CreateTime>{int(clock.timestamp())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
           "<Event><![CDATA[some_future_event]]></Event></xml>")
    await sender.send(xml)
    await drain(app)
    row = await _one(maker, select(CallbackEvent))
    assert row.status is InboxStatus.IGNORED and row.event == "some_future_event"


async def test_welcome_code_expired_while_queued_is_recorded_not_retried(
    app: Any, sender: Any, sim_state: Any, maker: Any, org: Any, clock: Any
) -> None:
    _, xml = sim_state.ev_customer_adds_member("zhangsan", name="迟到的欢迎")
    await sender.send(xml)
    clock.advance(25)  # the worker was busy: WeCom's 20-second window has passed
    await drain(app)
    audit = await _one(maker, select(AuditEntry).where(AuditEntry.action == "welcome_message"))
    assert audit.detail["outcome"] == "errcode 41050"
    assert not sim_state.welcome_messages
    assert (await _one(maker, select(CallbackEvent))).status is InboxStatus.DONE
    assert (await _one(maker, select(Customer))).name == "迟到的欢迎"


async def test_group_events_for_a_group_dismissed_meanwhile_do_not_fail(
    app: Any, sender: Any, sim_state: Any, maker: Any, org: Any
) -> None:
    # Create, update and dismiss arrive before the worker runs: groupchat/get already says 40050.
    chat_id, created = sim_state.ev_group_created("zhangsan", [], "短命群")
    joined = sim_state.ev_group_members_join(chat_id, [sim_state.add_customer("路人")])
    dismissed = sim_state.ev_group_dismissed(chat_id)
    for xml in (created, joined, dismissed):
        await sender.send(xml)
    await drain(app)
    assert {r.status for r in await _all(maker, select(CallbackEvent))} == {InboxStatus.DONE}
    group = await _one(maker, select(CustomerGroup))
    assert group.chat_id == chat_id and group.status is GroupStatus.DISMISSED
