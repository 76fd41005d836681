"""Demo group pushes: a weekly plan to wake silent customers, and one push already sent and partly confirmed."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import PushDelivery, Segment
from pushes.runner import PushRunner
from pushes.service import create_push, run_now
from wecom.simulator.state import SimulatorState

ACTOR = "demo"


async def _segment_id(maker: async_sessionmaker[AsyncSession], name: str) -> int | None:
    async with maker() as session:
        return await session.scalar(select(Segment.id).where(Segment.name == name))


async def seed_pushes(maker: async_sessionmaker[AsyncSession], runner: PushRunner, state: SimulatorState, *,
                      now: dt.datetime, timezone: str) -> str:
    """Create the demo pushes; one is sent now and half its guides confirm in the simulator. A summary line."""
    silent, tmall = await _segment_id(maker, "华东沉默客户"), await _segment_id(maker, "天猫高价值客户")
    if silent is None or tmall is None:
        return "群发 / pushes: demo segments missing, none seeded"
    await create_push(maker, runner, {
        "name": "周三唤醒：沉默客户第二杯半价",
        "audience": {"kind": "segment", "segment_id": silent},
        "content": {"text": "好久不见！我是{store_name}的{guide_name}，本周三到店第二杯半价，给您留了位置～",
                    "attachments": [{"type": "link", "title": "周三第二杯半价", "url": "https://example.com/wed",
                                     "desc": "仅限本周三"}]},
        "schedule": {"kind": "weekly", "weekdays": [3], "time": "10:00"}, "cap": 5000,
    }, now=now, actor=ACTOR, default_tz=timezone)
    sent = await create_push(maker, runner, {
        "name": "天猫高价值客户：新品优先试用",
        "audience": {"kind": "segment", "segment_id": tmall},
        "content": {"text": "我是{guide_name}，新品到店，您是我们的高价值会员，优先为您预留试用装。"},
        "schedule": {"kind": "once", "at": (now + dt.timedelta(days=1)).isoformat()},
    }, now=now, actor=ACTOR, default_tz=timezone)
    run_id = await run_now(maker, runner, sent.id, now=now, actor=ACTOR)
    await runner.wait(run_id)
    async with maker() as session:
        deliveries = (await session.execute(select(PushDelivery.msgid, PushDelivery.sender_userid).where(
            PushDelivery.run_id == run_id, PushDelivery.msgid.is_not(None)).order_by(PushDelivery.id))).all()
    for msgid, userid in deliveries[::2]:  # every other guide has confirmed already
        state.confirm_mass_task(msgid, userid)
    await runner.poll(run_id)
    return f"群发 / pushes: 2 plans, one sent through {len(deliveries)} guides (half confirmed) — see /admin/pushes"
