"""Share links opened in WeChat: the official account's silent OAuth names the opener, once per browser."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select
from yarl import URL

from bot import sync
from models import ContentItem, ContentKind, IdentityKind, LinkClick, ShareChannel, Staff, Visitor
from scrm import keys
from scrm.app import create_app
from scrm.settings import Settings
from sharing.links import share_link_for
from tests.brand import Brand
from tests.test_redirect import WECHAT_UA, WECOM_UA
from wecom.simulator.oa import OA_APPID, OA_SECRET

TARGET = "https://shop.example.com/p/1"


@pytest.fixture
async def oa_client(brand: Brand, settings: Settings, clock: Any, sim_server: TestServer,
                    aiohttp_client: Any) -> TestClient:
    """The service with the brand's official account configured (the simulator's fake of it)."""
    configured = settings.with_(oa_appid=OA_APPID, oa_secret=OA_SECRET, oa_api_base=str(sim_server.make_url("/_sim/oa/")),
                                oa_authorize_url=str(sim_server.make_url("/_sim/oa/connect/oauth2/authorize")))
    return await aiohttp_client(create_app(configured, clock=clock, run_worker=False))


async def _code(client: TestClient, settings: Settings, clock: Any) -> str:
    maker = client.app[keys.SESSIONMAKER]
    async with maker.begin() as session:
        item = ContentItem(kind=ContentKind.PRODUCT, title="有机奶粉", target_url=TARGET, created_at=clock.now,
                           updated_at=clock.now)
        session.add(item)
        await session.flush()
        staff_id = await session.scalar(select(Staff.id).where(Staff.userid == "zhangsan"))
        link = await share_link_for(session, int(staff_id or 0), item.id, ShareChannel.MOMENTS,
                                    secret=settings.share_key, now=clock.now)
        return link.code or ""


async def _wechat_authorizes(location: str, unionid: str) -> str:
    """What WeChat does with the authorize URL for this user: back to our /oa URL with a code."""
    async with aiohttp.ClientSession() as http, http.get(
            URL(location.split("#", 1)[0]).update_query(sim_unionid=unionid), allow_redirects=False) as resp:
        assert resp.status == 302, await resp.text()
        return resp.headers["Location"]


async def _clicks(client: TestClient) -> list[LinkClick]:
    await client.app[keys.CLICK_WRITER].flush()
    async with client.app[keys.SESSIONMAKER]() as session:
        return list((await session.scalars(select(LinkClick).order_by(LinkClick.id))).all())


async def test_a_wechat_opener_is_named_by_unionid_once_per_browser(
    oa_client: TestClient, settings: Settings, clock: Any, brand: Brand
) -> None:
    code = await _code(oa_client, settings, clock)
    first = await oa_client.get(f"/s/{code}", headers={"User-Agent": WECHAT_UA}, allow_redirects=False)
    assert first.status == 302
    location = first.headers["Location"]
    assert location.startswith(settings.public_base_url) is False and "scope=snsapi_base" in location
    assert location.endswith("#wechat_redirect") and f"appid={OA_APPID}" in location
    assert await _clicks(oa_client) == []  # counted once, on the way back

    back = URL(await _wechat_authorizes(location, "o-union-wangfang"))
    assert back.path == f"/s/{code}/oa" and back.query["code"]
    landed = await oa_client.get(back.path_qs, headers={"User-Agent": WECHAT_UA}, allow_redirects=False)
    assert landed.status == 302 and landed.headers["Location"] == f"{TARGET}?scrm_share={code}"

    again = await oa_client.get(f"/s/{code}", headers={"User-Agent": WECHAT_UA}, allow_redirects=False)
    assert again.headers["Location"] == f"{TARGET}?scrm_share={code}"  # never bounced twice
    clicks = await _clicks(oa_client)
    async with oa_client.app[keys.SESSIONMAKER]() as session:
        wangfang = await sync.find_customer_by_identity(session, IdentityKind.EXTERNAL_USERID, brand.wangfang)
        visitor = await session.get(Visitor, clicks[0].visitor_id)
    assert wangfang is not None and [c.customer_id for c in clicks] == [wangfang.id, None]
    assert visitor is not None and visitor.customer_id == wangfang.id  # her later clicks are known too
    assert {c.visitor_id for c in clicks} == {visitor.visitor_id}


async def test_strangers_bad_codes_and_other_browsers_still_land_at_once(
    oa_client: TestClient, settings: Settings, clock: Any
) -> None:
    code = await _code(oa_client, settings, clock)
    direct = await oa_client.get(f"/s/{code}", headers={"User-Agent": WECOM_UA}, allow_redirects=False)
    assert direct.headers["Location"] == f"{TARGET}?scrm_share={code}"  # WeCom's browser: no official account
    oa_client.session.cookie_jar.clear()
    bounce = await oa_client.get(f"/s/{code}", headers={"User-Agent": WECHAT_UA}, allow_redirects=False)
    back = URL(await _wechat_authorizes(bounce.headers["Location"], "-"))  # someone the brand does not know
    stranger = await oa_client.get(back.path_qs, headers={"User-Agent": WECHAT_UA}, allow_redirects=False)
    replayed = await oa_client.get(back.path_qs, headers={"User-Agent": WECHAT_UA}, allow_redirects=False)
    forged = await oa_client.get(f"/s/{code}/oa?code=forged", allow_redirects=False)
    for resp in (stranger, replayed, forged):
        assert resp.status == 302 and resp.headers["Location"] == f"{TARGET}?scrm_share={code}"
    assert [c.customer_id for c in await _clicks(oa_client)] == [None, None, None, None]
    assert (await oa_client.get("/s/zzzzzzz/oa?code=x", allow_redirects=False)).status == 404


async def test_without_an_official_account_wechat_opens_go_straight_through(
    client: TestClient, settings: Settings, clock: Any, brand: Brand
) -> None:
    code = await _code(client, settings, clock)
    resp = await client.get(f"/s/{code}", headers={"User-Agent": WECHAT_UA}, allow_redirects=False)
    assert resp.headers["Location"] == f"{TARGET}?scrm_share={code}"
