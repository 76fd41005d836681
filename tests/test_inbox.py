"""The inbox survives crashes, retries failures with back-off, parks what keeps failing."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from bot import inbox
from models import CallbackEvent, Customer, InboxStatus
from scrm import keys
from scrm.app import create_app
from tests.conftest import drain


async def _rows(maker: Any) -> list[CallbackEvent]:
    async with maker() as session:
        return list((await session.scalars(select(CallbackEvent).order_by(CallbackEvent.id))).all())


async def test_acknowledged_events_survive_a_restart(
    aiohttp_client: Any, settings: Any, clock: Any, maker: Any, sender: Any, client: Any, sim_state: Any
) -> None:
    # The service acknowledges, then "crashes" before its worker gets to the events.
    for name in ("甲", "乙", "丙"):
        _, xml = sim_state.ev_customer_adds_member("zhangsan", name=name)
        assert (await sender.send(xml)).acknowledged
    await client.close()
    assert {r.status for r in await _rows(maker)} == {InboxStatus.PENDING}
    restarted = create_app(settings, clock=clock, run_worker=False)
    await aiohttp_client(restarted)
    assert await drain(restarted) == 3
    async with maker() as session:
        assert sorted((await session.scalars(select(Customer.name))).all()) == sorted(["甲", "乙", "丙"])
    assert {r.status for r in await _rows(maker)} == {InboxStatus.DONE}


async def test_event_claimed_by_a_worker_that_died_comes_back_after_its_lease(
    app: Any, sender: Any, maker: Any, clock: Any, sim_state: Any
) -> None:
    await sender.send(sim_state.ev_enter_agent("zhangsan"))
    claimed = await inbox.claim_due(maker, clock(), dt.timedelta(seconds=120))
    assert len(claimed) == 1  # ... and then the process died
    assert await drain(app) == 0  # still leased
    clock.advance(121)
    assert await drain(app) == 1
    assert (await _rows(maker))[0].status is InboxStatus.DONE


async def test_failures_back_off_then_park_and_can_be_requeued(
    app: Any, sender: Any, maker: Any, clock: Any, sim_state: Any, client: Any
) -> None:
    ext, xml = sim_state.ev_customer_adds_member("zhangsan", name="出错的顾客")
    max_attempts = app[keys.SETTINGS].inbox_max_attempts
    sim_state.inject_error("externalcontact/get", 40096, times=max_attempts)
    await sender.send(xml)
    for attempt in range(1, max_attempts + 1):
        assert await drain(app) == 1
        row = (await _rows(maker))[0]
        assert row.attempts == attempt and "40096" in row.last_error
        if attempt < max_attempts:
            assert row.status is InboxStatus.PENDING and row.next_attempt_at > clock()
            assert await drain(app) == 0  # not due yet: back-off
            clock.advance(3600)
    assert row.status is InboxStatus.PARKED
    status = await (await client.get("/admin/api/status", headers={"Authorization": "Bearer admin-secret"})).json()
    assert status["counts"]["parked"] == 1 and status["parked"][0]["id"] == row.id
    page = await (await client.get("/admin/status", headers={"Authorization": "Bearer admin-secret"})).text()
    assert "40096" in page and "重新处理" in page
    resp = await client.post(f"/admin/api/events/{row.id}/requeue", headers={"Authorization": "Bearer admin-secret"})
    assert resp.status == 200
    assert await drain(app) == 1
    assert (await _rows(maker))[0].status is InboxStatus.DONE


async def test_token_expiry_mid_run_is_transparent(app: Any, sender: Any, maker: Any, sim_state: Any) -> None:
    _, first = sim_state.ev_customer_adds_member("zhangsan", name="一号")
    await sender.send(first)
    await drain(app)
    sim_state.expire_tokens()
    _, second = sim_state.ev_customer_adds_member("zhangsan", name="二号")
    await sender.send(second)
    await drain(app)
    assert {r.status for r in await _rows(maker)} == {InboxStatus.DONE}
    assert sim_state.calls["gettoken"] == 2
