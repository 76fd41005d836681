"""Contact ways: created in WeCom, and the state that comes back on an add finds the guide."""

from __future__ import annotations

from typing import Any

import pytest

from bot.contact_ways import ContactWayError, create_contact_way
from bot.context import BotContext
from scrm import keys


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
