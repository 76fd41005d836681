"""Guide notes on a customer: shown with the profile to everyone who may see the customer, withdrawn by the author."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from customers.identity import merge_customers
from models import AuditEntry, Customer, CustomerNote, IdentityKind
from tests.brand import Brand, _as


async def _note(client: TestClient, brand: Brand, userid: str, clock: Any, body: Any) -> Any:
    return await client.post(f"/sidebar/api/contact/{brand.wangfang}/notes", json=body, headers=_as(userid, clock))


async def _profile(client: TestClient, external_userid: str, userid: str, clock: Any) -> Any:
    resp = await client.get(f"/sidebar/api/contact/{external_userid}", headers=_as(userid, clock))
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_a_note_is_shown_to_the_author_and_to_their_manager(client: TestClient, brand: Brand,
                                                                   clock: Any) -> None:
    resp = await _note(client, brand, "zhangsan", clock, {"body": "  想要 3 段奶粉，周六到店自提  "})
    assert resp.status == 201, await resp.text()
    added = await resp.json()
    assert [n["body"] for n in added["notes"]] == ["想要 3 段奶粉，周六到店自提"]
    clock.advance(60)
    await _note(client, brand, "zhangsan", clock, {"body": "宝宝对牛奶蛋白过敏"})

    mine = (await _profile(client, brand.wangfang, "zhangsan", clock))["notes"]
    assert [n["body"] for n in mine] == ["宝宝对牛奶蛋白过敏", "想要 3 段奶粉，周六到店自提"]  # newest first
    assert all(n["mine"] and n["author"] == "张三" for n in mine)
    theirs = (await _profile(client, brand.wangfang, "wangmgr", clock))["notes"]  # 王店长, same store
    assert [n["body"] for n in theirs] == [n["body"] for n in mine] and not any(n["mine"] for n in theirs)


async def test_only_the_author_withdraws_a_note_and_the_row_is_kept(client: TestClient, brand: Brand, clock: Any,
                                                                    maker: Any) -> None:
    note_id = (await (await _note(client, brand, "zhangsan", clock, {"body": "周末回访"})).json())["note_id"]
    url = f"/sidebar/api/contact/{brand.wangfang}/notes/{note_id}"
    resp = await client.delete(url, headers=_as("wangmgr", clock))
    assert resp.status == 403 and "只能删除自己写的备注" in (await resp.json())["message"]

    resp = await client.delete(url, headers=_as("zhangsan", clock))
    assert resp.status == 200 and (await resp.json())["notes"] == []
    assert (await _profile(client, brand.wangfang, "zhangsan", clock))["notes"] == []
    assert (await client.delete(url, headers=_as("zhangsan", clock))).status == 404
    async with maker() as session:
        row = await session.get(CustomerNote, note_id)
        assert row is not None and row.body == "周末回访" and row.deleted_at is not None
        actions = (await session.scalars(select(AuditEntry.action).where(AuditEntry.action.like("customer_note%"))
                                         .order_by(AuditEntry.id))).all()
    assert actions == ["customer_note_added", "customer_note_deleted"]


async def test_bad_notes_and_strangers_are_refused_and_nothing_is_stored(client: TestClient, brand: Brand,
                                                                         clock: Any, maker: Any) -> None:
    for body, message in [({"body": "   "}, "不能为空"), ({"body": "字" * 1001}, "最多 1000 字"),
                          ({"text": "x"}, "请求体须为 JSON 对象"), (["x"], "请求体须为 JSON 对象")]:
        resp = await _note(client, brand, "zhangsan", clock, body)
        assert resp.status == 400 and message in (await resp.json())["message"], body
    resp = await _note(client, brand, "gzguide", clock, {"body": "不是我的客户"})  # 广州 guide, another region
    assert resp.status == 403
    resp = await client.post("/sidebar/api/contact/wm-nobody/notes", json={"body": "x"},
                             headers=_as("zhangsan", clock))
    assert resp.status == 404
    async with maker() as session:
        assert (await session.scalars(select(CustomerNote))).all() == []


async def test_notes_follow_the_customer_through_a_merge(client: TestClient, brand: Brand, clock: Any,
                                                         maker: Any) -> None:
    await _note(client, brand, "zhangsan", clock, {"body": "老客户，爱买有机米粉"})
    async with maker.begin() as session:
        twin = Customer(name="王芳（天猫）", created_at=clock.now, updated_at=clock.now)
        session.add(twin)
        await session.flush()
        wangfang = (await session.scalars(select(CustomerNote.customer_id))).one()
        await merge_customers(session, survivor_id=twin.id, merged_id=wangfang, reason=(IdentityKind.PHONE, "+8613812341234"), now=clock.now)
    notes = (await _profile(client, brand.wangfang, "zhangsan", clock))["notes"]
    assert [n["body"] for n in notes] == ["老客户，爱买有机米粉"]
