"""The WeCom gateway against the simulator over real HTTP: token reuse and refresh, the §6 error
policy, and the typed results of the §4 APIs."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestServer

from wecom.errors import WeComConfigError, WeComError, WeComRateLimited, WeComUnavailable
from wecom.gateway import WeComGateway, clear_token_cache
from wecom.simulator.state import SimulatorState
from wecom.types import ExternalContact, FollowTag, FollowUser

PNG: bytes = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


class RecordingSleep:
    """Stands in for asyncio.sleep: records the back-off delays without waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture(autouse=True)
def fresh_token_cache() -> None:
    # The cache is per process and keyed by the API base; a later test's server may reuse a port.
    clear_token_cache()


@pytest.fixture
def sleeps() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
def api_base(sim_server: TestServer) -> str:
    return str(sim_server.make_url("/cgi-bin/"))


def make_gateway(state: SimulatorState, api_base: str, sleep: RecordingSleep, **kwargs: object) -> WeComGateway:
    return WeComGateway(
        state.corp_id,
        str(kwargs.pop("secret", state.agent_secret)),
        api_base=api_base,
        agent_id=state.agent_id,
        sleep=sleep,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture
async def gateway(sim_state: SimulatorState, api_base: str, sleeps: RecordingSleep) -> AsyncIterator[WeComGateway]:
    gw = make_gateway(sim_state, api_base, sleeps)
    yield gw
    await gw.close()


# -- token -----------------------------------------------------------------------------------------


async def test_token_is_fetched_once_and_shared_by_gateways(
    gateway: WeComGateway, sim_state: SimulatorState, api_base: str, sleeps: RecordingSleep
) -> None:
    await asyncio.gather(*(gateway.get_user("zhangsan") for _ in range(6)))  # single-flight refresh
    assert await gateway.get_follow_user_list() == ["zhangsan", "lisi", "wangmgr"]
    async with make_gateway(sim_state, api_base, sleeps) as other:
        member = await other.get_user("lisi")
        assert await other.get_access_token() == await gateway.get_access_token()
    assert member.name == "李四" and member.position == "导购" and member.department == (1,)
    assert sim_state.calls["gettoken"] == 1
    assert sim_state.calls["user/get"] == 7


@pytest.mark.parametrize("kill", ["expire_tokens", "revoke_tokens"])  # 42001, 40014
async def test_rejected_token_is_refreshed_once_and_the_call_replayed(
    gateway: WeComGateway, sim_state: SimulatorState, kill: str
) -> None:
    first = await gateway.get_access_token()
    getattr(sim_state, kill)()
    member = await gateway.get_user("zhangsan")
    assert member.userid == "zhangsan"
    assert await gateway.get_access_token() != first
    assert sim_state.calls["gettoken"] == 2
    assert sim_state.calls["user/get"] == 2  # rejected once, replayed once
    await gateway.get_user("lisi")
    assert sim_state.calls["gettoken"] == 2


async def test_second_token_error_in_a_row_is_raised(gateway: WeComGateway, sim_state: SimulatorState) -> None:
    sim_state.inject_error("user/get", 42001, times=2)
    with pytest.raises(WeComError) as info:
        await gateway.get_user("zhangsan")
    assert info.value.errcode == 42001
    assert sim_state.calls["gettoken"] == 2
    assert sim_state.calls["user/get"] == 2


async def test_bad_secret_is_a_config_error_without_retries(
    sim_state: SimulatorState, api_base: str, sleeps: RecordingSleep
) -> None:
    async with make_gateway(sim_state, api_base, sleeps, secret="wrong-secret-0123") as gateway:
        with pytest.raises(WeComConfigError) as info:
            await gateway.get_user("zhangsan")
    assert info.value.errcode == 40001
    assert info.value.api == "gettoken"
    assert "secret" in info.value.errmsg  # says what the admin must fix
    assert "wrong-secret-0123" not in str(info.value)
    assert sim_state.calls["gettoken"] == 1
    assert sim_state.calls["user/get"] == 0
    assert sleeps.delays == []


async def test_unauthorized_app_is_a_config_error(gateway: WeComGateway, sim_state: SimulatorState) -> None:
    sim_state.customer_contact_authorized = False
    with pytest.raises(WeComConfigError) as info:
        await gateway.get_follow_user_list()
    assert info.value.errcode == 48002
    assert "客户联系" in info.value.errmsg


# -- back-off --------------------------------------------------------------------------------------


async def test_rate_limit_backs_off_with_jitter_then_succeeds(
    gateway: WeComGateway, sim_state: SimulatorState, sleeps: RecordingSleep
) -> None:
    sim_state.inject_error("externalcontact/get_follow_user_list", 45009, times=2)
    assert await gateway.get_follow_user_list() == ["zhangsan", "lisi", "wangmgr"]
    assert len(sleeps.delays) == 2
    for attempt, delay in enumerate(sleeps.delays):  # backoff_base 0.5 * 2**attempt * [0.5, 1.5]
        assert 0.25 * 2**attempt <= delay <= 0.75 * 2**attempt
    assert sim_state.calls["externalcontact/get_follow_user_list"] == 3


async def test_rate_limit_beyond_the_retries_raises(
    sim_state: SimulatorState, api_base: str, sleeps: RecordingSleep
) -> None:
    sim_state.inject_error("user/get", 45033, times=10)
    async with make_gateway(sim_state, api_base, sleeps, max_rate_limit_retries=3) as gateway:
        with pytest.raises(WeComRateLimited) as info:
            await gateway.get_user("zhangsan")
    assert info.value.errcode == 45033
    assert len(sleeps.delays) == 3
    assert sim_state.calls["user/get"] == 4


async def test_system_busy_is_retried_three_times(
    gateway: WeComGateway, sim_state: SimulatorState, sleeps: RecordingSleep
) -> None:
    sim_state.inject_error("user/get", -1, times=3)
    assert (await gateway.get_user("zhangsan")).name == "张三"
    sim_state.inject_error("user/get", -1, times=4)
    with pytest.raises(WeComError) as info:
        await gateway.get_user("zhangsan")
    assert info.value.errcode == -1
    assert len(sleeps.delays) == 6


async def test_other_errcodes_carry_errcode_errmsg_and_api(gateway: WeComGateway) -> None:
    with pytest.raises(WeComError) as info:
        await gateway.get_user("nobody")
    assert type(info.value) is WeComError
    assert info.value.errcode == 60111
    assert "userid not found" in info.value.errmsg
    assert info.value.api == "user/get"


async def test_unreachable_wecom_is_unavailable(sim_state: SimulatorState, sleeps: RecordingSleep) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with make_gateway(sim_state, f"http://127.0.0.1:{port}/cgi-bin/", sleeps, timeout=2.0) as gateway:
        with pytest.raises(WeComUnavailable) as info:
            await gateway.get_follow_user_list()
    assert sim_state.agent_secret not in str(info.value)


# -- customers -------------------------------------------------------------------------------------


async def test_get_external_contact_parses_follow_users_and_tags(
    gateway: WeComGateway, sim_state: SimulatorState
) -> None:
    sim_state.add_tag_group("客户等级", ["VIP", "普通"])
    vip = sim_state.tag_id("客户等级", "VIP")
    wm = sim_state.add_customer("王五", gender=1, unionid="ozUNION")
    sim_state.add_follow("zhangsan", wm, remark="王总", state="store_01", createtime=1_700_000_000,
                         tag_ids=[vip], personal_tags=["爱打球"], remark_mobiles=["13800000001"])
    sim_state.add_follow("lisi", wm, add_way=3, oper_userid="lisi")

    contact = await gateway.get_external_contact(wm)

    assert isinstance(contact, ExternalContact)
    assert (contact.external_userid, contact.name, contact.gender, contact.unionid) == (wm, "王五", 1, "ozUNION")
    by_user = {f.userid: f for f in contact.follow_users}
    zhang = by_user["zhangsan"]
    assert zhang.remark == "王总" and zhang.state == "store_01" and zhang.createtime == 1_700_000_000
    assert zhang.remark_mobiles == ("13800000001",)
    assert zhang.oper_userid == wm and zhang.add_way == 1
    assert set(zhang.tags) == {FollowTag("客户等级", "VIP", vip, 1), FollowTag("", "爱打球", "", 2)}
    assert by_user["lisi"] == FollowUser(
        userid="lisi", createtime=by_user["lisi"].createtime, oper_userid="lisi", add_way=3
    )


async def test_batch_get_by_user_pages(gateway: WeComGateway, sim_state: SimulatorState) -> None:
    sim_state.add_tag_group("客户等级", ["VIP"])
    vip = sim_state.tag_id("客户等级", "VIP")
    customers = [sim_state.add_customer(f"顾客{i}") for i in range(3)]
    for wm in customers:
        sim_state.add_follow("zhangsan", wm, tag_ids=[vip])
    sim_state.add_follow("lisi", customers[0], state="s1")

    seen: list[tuple[str, str]] = []
    cursor, pages = "", 0
    while True:
        pairs, cursor = await gateway.batch_get_by_user(["zhangsan", "lisi"], cursor=cursor, limit=2)
        pages += 1
        for contact, follow in pairs:
            seen.append((follow.userid, contact.external_userid))
            if follow.userid == "zhangsan":
                assert follow.tags == (FollowTag("", "", vip, 1),)
            else:
                assert follow.state == "s1" and follow.tags == ()
        if not cursor:
            break
    assert pages == 2
    assert sorted(seen) == sorted([("zhangsan", wm) for wm in customers] + [("lisi", customers[0])])


async def test_list_external_contacts(gateway: WeComGateway, sim_state: SimulatorState) -> None:
    wm = sim_state.add_customer("顾客")
    sim_state.add_follow("zhangsan", wm)
    assert await gateway.list_external_contacts("zhangsan") == [wm]
    sim_state.list_empty_as_84061 = True  # what real WeCom reportedly answers for a member without customers
    assert await gateway.list_external_contacts("lisi") == []


async def test_mark_tag(gateway: WeComGateway, sim_state: SimulatorState) -> None:
    sim_state.add_tag_group("客户等级", ["VIP", "普通"])
    vip, normal = sim_state.tag_id("客户等级", "VIP"), sim_state.tag_id("客户等级", "普通")
    wm = sim_state.add_customer("顾客")
    sim_state.add_follow("zhangsan", wm, tag_ids=[normal])

    await gateway.mark_tag("zhangsan", wm, add=[vip], remove=[normal])

    assert sim_state.mark_tag_log[-1]["add_tag"] == [vip]
    contact = await gateway.get_external_contact(wm)
    assert [t.tag_id for t in contact.follow_users[0].tags] == [vip]
    with pytest.raises(WeComError) as info:
        await gateway.mark_tag("zhangsan", wm, add=["etNOPE"])
    assert info.value.errcode == 40068


async def test_contact_way_and_welcome_message(gateway: WeComGateway, sim_state: SimulatorState) -> None:
    way = await gateway.add_contact_way(user="zhangsan", state="store_01", remark="门店")
    assert way.config_id and way.qr_code
    detail = await gateway.get_contact_way(way.config_id)
    assert detail["state"] == "store_01" and detail["user"] == ["zhangsan"]

    wm, _xml = sim_state.ev_customer_adds_member("zhangsan", state="store_01")
    welcome_code = next(reversed(sim_state.welcome_codes))
    media_id = await gateway.upload_media("image", "welcome.png", PNG, "image/png")
    await gateway.send_welcome_msg(welcome_code, "欢迎光临", [{"msgtype": "image", "image": {"media_id": media_id}}])
    sent = sim_state.welcome_messages[-1]
    assert sent["external_userid"] == wm and sent["text"] == {"content": "欢迎光临"}

    await gateway.del_contact_way(way.config_id)
    with pytest.raises(WeComError):
        await gateway.get_contact_way(way.config_id)


# -- tags, groups, members, media, app messages ----------------------------------------------------


async def test_corp_tags_round_trip(gateway: WeComGateway) -> None:
    group = await gateway.add_corp_tags("兴趣", ["跑步", "瑜伽"])
    assert group.group_name == "兴趣" and [t.name for t in group.tags] == ["跑步", "瑜伽"]
    run = group.tags[0].id
    await gateway.edit_corp_tag(run, name="长跑")
    [fetched] = await gateway.get_corp_tags(group_ids=[group.group_id])
    assert {t.name for t in fetched.tags} == {"长跑", "瑜伽"}
    await gateway.del_corp_tags(tag_ids=[run])
    assert [t.name for g in await gateway.get_corp_tags() for t in g.tags] == ["瑜伽"]


async def test_group_chats(gateway: WeComGateway, sim_state: SimulatorState) -> None:
    wm = sim_state.add_customer("顾客")
    chat_id = sim_state.add_group_chat("zhangsan", ["lisi", wm], name="门店福利群")
    chats, cursor = await gateway.list_group_chats(["zhangsan"])
    assert chats == [chat_id] and cursor == ""
    chat = await gateway.get_group_chat(chat_id)
    assert chat.name == "门店福利群" and chat.owner == "zhangsan"
    assert {(m.userid, m.type) for m in chat.members} == {("zhangsan", 1), ("lisi", 1), (wm, 2)}


async def test_oauth_code_tickets_and_callback_ips(gateway: WeComGateway, sim_state: SimulatorState) -> None:
    code = sim_state.create_oauth_code("wangmgr")
    assert await gateway.get_userid_by_code(code) == "wangmgr"
    with pytest.raises(WeComError) as info:
        await gateway.get_userid_by_code(code)  # single use
    assert info.value.errcode == 40029
    corp_ticket, expires_in = await gateway.get_jsapi_ticket()
    agent_ticket, _ = await gateway.get_agent_ticket()
    assert corp_ticket != agent_ticket and 0 < expires_in <= 7200
    assert await gateway.get_callback_ip()


async def test_upload_media(gateway: WeComGateway, sim_state: SimulatorState) -> None:
    media_id = await gateway.upload_media("image", "海报.png", PNG, "image/png")
    media = sim_state.media[media_id]
    assert (media.type, media.filename, media.size) == ("image", "海报.png", len(PNG))
    with pytest.raises(WeComError) as info:
        await gateway.upload_media("image", "not-an-image.png", b"hello world", "image/png")
    assert info.value.errcode == 40123


async def test_send_app_text(gateway: WeComGateway, sim_state: SimulatorState) -> None:
    await gateway.send_app_text(["zhangsan", "lisi"], "今日客户跟进提醒")
    await gateway.send_app_text("wangmgr", "日报")
    first, second = sim_state.app_messages[-2:]
    assert first["touser"] == ["zhangsan", "lisi"] and first["content"] == "今日客户跟进提醒"
    assert first["agentid"] == sim_state.agent_id and first["msgtype"] == "text"
    assert second["touser"] == ["wangmgr"]


async def test_mass_message_and_results(gateway: WeComGateway, sim_state: SimulatorState) -> None:
    wm = sim_state.add_customer("顾客")
    sim_state.add_follow("zhangsan", wm)
    result = await gateway.add_msg_template(
        {"chat_type": "single", "sender": "zhangsan", "external_userid": [wm, "wmUNKNOWN"], "text": {"content": "上新啦"}}
    )
    assert result.msgid.startswith("msg") and result.fail_list == ("wmUNKNOWN",)
    sim_state.confirm_mass_task(result.msgid, "zhangsan")
    tasks, cursor = await gateway.get_groupmsg_task(result.msgid)
    assert [(t["userid"], t["status"]) for t in tasks] == [("zhangsan", 2)] and cursor == ""
    sends, cursor = await gateway.get_groupmsg_send_result(result.msgid, "zhangsan")
    assert [(s["external_userid"], s["status"]) for s in sends] == [(wm, 1)] and cursor == ""


async def test_neither_token_nor_secret_is_logged(
    gateway: WeComGateway, sim_state: SimulatorState, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="urllib3")  # another test may have quietened it
    sim_state.inject_error("user/get", 45009)
    sim_state.inject_error("externalcontact/get_follow_user_list", 40014)
    await gateway.get_user("zhangsan")
    await gateway.get_follow_user_list()
    token = await gateway.get_access_token()
    # Our side only: the simulator's aiohttp access log plays WeCom's own server logs.
    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(("aiohttp.", "wecom.simulator")))
    assert "access_token=***" in ours  # urllib3 logged the URLs, masked
    assert token not in ours
    assert sim_state.agent_secret not in ours
