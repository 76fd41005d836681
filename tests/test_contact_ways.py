"""Contact ways: created in WeCom, and the state that comes back on an add finds the guide."""

from __future__ import annotations

import io
from typing import Any

import aiohttp
import pytest
import zxingcpp
from PIL import Image
from sqlalchemy import select

from bot.contact_ways import ContactWayError, create_contact_way
from bot.context import BotContext
from models import FollowRelation
from scrm import keys
from tests.conftest import drain


@pytest.fixture
def ctx(app: Any, client: Any) -> BotContext:
    return BotContext(app[keys.SESSIONMAKER], app[keys.GATEWAY], app[keys.SETTINGS], app[keys.CLOCK])


async def test_created_in_wecom_and_recorded(ctx: BotContext, sim_state: Any) -> None:
    way = await create_contact_way(ctx, "zhangsan", "spring_sh01", campaign="春季上新")
    remote = sim_state.contact_ways[way.config_id]
    assert remote.state == "spring_sh01" and remote.user == ["zhangsan"]
    assert way.qr_code == remote.qr_code and way.staff_id is not None


async def test_bad_or_taken_state_is_refused_before_calling_wecom(ctx: BotContext, sim_state: Any) -> None:
    await create_contact_way(ctx, "zhangsan", "taken")
    with pytest.raises(ContactWayError, match="已被其他二维码使用"):
        await create_contact_way(ctx, "lisi", "taken")
    with pytest.raises(ContactWayError, match="1-30"):
        await create_contact_way(ctx, "lisi", "x" * 31)
    assert sim_state.calls["externalcontact/add_contact_way"] == 1


async def test_scanning_the_qr_image_adds_the_guide_with_the_state(
    ctx: BotContext, app: Any, sim_state: Any, sender: Any
) -> None:
    way = await create_contact_way(ctx, "zhangsan", "g-spring", campaign="春季上新")
    async with aiohttp.ClientSession() as http, http.get(way.qr_code) as resp:
        assert resp.status == 200 and resp.content_type == "image/png"
        image = Image.open(io.BytesIO(await resp.read()))
    [code] = zxingcpp.read_barcodes(image)
    assert code.text.endswith(f"/_sim/scan/{way.config_id}")

    _, external_userid, xml = sim_state.ev_customer_scans_contact_way(way.config_id, name="扫码客")
    assert (await sender.send(xml)).acknowledged
    await drain(app)
    async with ctx.maker() as session:
        relation = await session.scalar(
            select(FollowRelation).where(FollowRelation.external_userid == external_userid)
        )
    assert relation is not None and relation.state == "g-spring" and relation.contact_way_id == way.id


def test_a_multi_member_code_hands_scanners_out_in_turn(sim_state: Any) -> None:
    config_id = sim_state.add_contact_way({"type": 2, "scene": 2, "user": ["zhangsan", "lisi"], "state": "store"})[
        "config_id"
    ]
    guides = [sim_state.ev_customer_scans_contact_way(config_id)[0] for _ in range(3)]
    assert guides == ["zhangsan", "lisi", "zhangsan"]
