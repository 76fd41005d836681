"""The demo brand used by the sidebar tests: regions, stores, guides, managers, HQ and their customers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import update

from bot.context import BotContext
from models import FollowRelation, FollowStatus, Region, Staff, StaffRole, Store
from scrm import keys
from sidebar.contact import store_contact
from sidebar.session import SESSION_COOKIE, sign_session

SECRET = "test-session-secret-0123456789abcdef"


@dataclass
class Brand:
    """The demo brand: two regions, three stores, guides, managers, HQ, and their customers."""

    wangfang: str  # zhangsan's customer (phone in remark)
    lilei: str  # lisi's customer, same store as zhangsan
    hanmeimei: str  # zhaoliu's customer (杭州, same region)
    chenchen: str  # gzguide's customer (广州, another region)
    half: str  # half-added by zhangsan
    lost: str  # deleted zhangsan (lost relation)


@pytest.fixture
async def brand(app: web.Application, client: TestClient, sim_state: Any, maker: Any, clock: Any) -> Brand:
    for userid, name, position in [("zhaoliu", "赵六", "导购"), ("gzguide", "黄小明", "导购"),
                                   ("chenregion", "陈区经理", "区域经理"), ("sunhq", "孙总部", "总部运营")]:
        sim_state.add_member(userid, name, position=position)
    async with maker.begin() as session:
        east, south = Region(code="EC", name="华东"), Region(code="SC", name="华南")
        session.add_all([east, south])
        await session.flush()
        sh = Store(code="SH01", name="上海徐汇店", region_id=east.id)
        hz = Store(code="HZ01", name="杭州西湖店", region_id=east.id)
        gz = Store(code="GZ01", name="广州天河店", region_id=south.id)
        session.add_all([sh, hz, gz])
        await session.flush()
        session.add_all([
            Staff(userid="zhangsan", name="张三", role=StaffRole.GUIDE, store_id=sh.id),
            Staff(userid="lisi", name="李四", role=StaffRole.GUIDE, store_id=sh.id),
            Staff(userid="wangmgr", name="王店长", role=StaffRole.STORE_MANAGER, store_id=sh.id),
            Staff(userid="zhaoliu", name="赵六", role=StaffRole.GUIDE, store_id=hz.id),
            Staff(userid="gzguide", name="黄小明", role=StaffRole.GUIDE, store_id=gz.id),
            Staff(userid="chenregion", name="陈区经理", role=StaffRole.REGION_MANAGER, region_id=east.id),
            Staff(userid="sunhq", name="孙总部", role=StaffRole.HQ),
        ])
    ids = {}
    for key, name, guide, extra in [
        ("wangfang", "王芳", "zhangsan", {"remark": "王姐", "remark_mobiles": ["13812341234"]}),
        ("lilei", "李雷", "lisi", {}), ("hanmeimei", "韩梅梅", "zhaoliu", {}), ("chenchen", "陈晨", "gzguide", {}),
        ("half", "刘半", "zhangsan", {}), ("lost", "吴走", "zhangsan", {}),
    ]:
        ids[key] = sim_state.add_customer(name, unionid=f"o-union-{key}")
        sim_state.add_follow(guide, ids[key], **extra)
    ctx = _ctx(app)
    for external_userid in ids.values():  # through the real path: externalcontact/get, then bot.sync
        await store_contact(ctx, await ctx.gateway.get_external_contact(external_userid), actor="test")
    sim_state.ev_customer_deletes_member("zhangsan", ids["lost"])  # 吴走 deleted 张三 in WeCom
    async with maker.begin() as session:
        for key, status in (("half", FollowStatus.HALF), ("lost", FollowStatus.LOST)):
            await session.execute(update(FollowRelation).where(FollowRelation.external_userid == ids[key])
                                  .values(status=status))
    return Brand(**ids)


def _ctx(app: web.Application) -> BotContext:
    return BotContext(maker=app[keys.SESSIONMAKER], gateway=app[keys.GATEWAY], settings=app[keys.SETTINGS],
                      clock=app[keys.CLOCK])


def _as(userid: str, clock: Any) -> dict[str, str]:
    """The session cookie the sign-in would have set (the round trip itself is in test_sidebar_auth)."""
    return {"Cookie": f"{SESSION_COOKIE}={sign_session(SECRET, userid, int(clock.timestamp()))}"}
