"""The fake WeCom behaves like the real one for a client: envelopes, tokens, customer-contact APIs, events."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from wecom.simulator.api import SIMULATOR_STATE, create_simulator_app
from wecom.simulator.demo_data import DEMO_CORP, MEMBERS, STORES, seed_simulator
from wecom.simulator.state import SimulatorState, jsapi_signature

VECTORS = json.loads((Path(__file__).resolve().parents[2] / "shared/wecom/vectors.json").read_text())
CORP_ID = "ww0000000000000001"
SECRET = "test-secret"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


class Clock:
    """A settable clock for the simulator."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(clock: Clock) -> SimulatorState:
    sim = SimulatorState(CORP_ID, 1000002, SECRET, clock=clock, seed=1)
    sim.add_member("zhangsan", "张三", department=(2,), position="导购")
    sim.add_member("lisi", "李四", department=(2,))
    sim.add_member("hidden", "王五", visible=False)
    sim.add_tag_group("客户等级", ["普通会员", "金卡会员"], order=2)
    return sim


@pytest.fixture
async def client(aiohttp_client: Any, state: SimulatorState) -> Any:
    return await aiohttp_client(create_simulator_app(state))


async def _token(client: Any) -> str:
    resp = await client.get("/cgi-bin/gettoken", params={"corpid": CORP_ID, "corpsecret": SECRET})
    data = await resp.json()
    assert data["errcode"] == 0
    return str(data["access_token"])


async def _get(client: Any, path: str, token: str, **params: Any) -> dict[str, Any]:
    resp = await client.get(f"/cgi-bin/{path}", params={"access_token": token, **params})
    assert resp.status == 200
    return dict(await resp.json())


async def _post(client: Any, path: str, token: str, body: Any) -> dict[str, Any]:
    resp = await client.post(f"/cgi-bin/{path}", params={"access_token": token},
                             data=json.dumps(body, ensure_ascii=False).encode())
    assert resp.status == 200
    return dict(await resp.json())


def _xml(text: str) -> dict[str, str]:
    root = ET.fromstring(text)
    return {child.tag: (child.text or "") for child in root}


# ---------------------------------------------------------------- tokens and envelope


async def test_gettoken_same_token_until_expiry_and_bad_credentials(client: Any, clock: Clock) -> None:
    first = await client.get("/cgi-bin/gettoken", params={"corpid": CORP_ID, "corpsecret": SECRET})
    data = await first.json()
    assert data["errcode"] == 0 and data["expires_in"] == 7200 and len(data["access_token"]) >= 64
    assert await _token(client) == data["access_token"]
    clock.now += 7201
    assert await _token(client) != data["access_token"]

    bad_secret = await (await client.get("/cgi-bin/gettoken", params={"corpid": CORP_ID, "corpsecret": "x"})).json()
    assert bad_secret["errcode"] == 40001 and "hint: [fake]" in bad_secret["errmsg"]
    bad_corp = await (await client.get("/cgi-bin/gettoken", params={"corpid": "wwx", "corpsecret": SECRET})).json()
    assert bad_corp["errcode"] == 40013


async def test_token_errors(client: Any, state: SimulatorState, clock: Clock) -> None:
    assert (await (await client.get("/cgi-bin/externalcontact/get_follow_user_list")).json())["errcode"] == 41001
    assert (await _get(client, "externalcontact/get_follow_user_list", "nope"))["errcode"] == 40014
    token = await _token(client)
    ok = await _get(client, "externalcontact/get_follow_user_list", token)
    assert ok == {"errcode": 0, "errmsg": "ok", "follow_user": ["zhangsan", "lisi"]}

    state.expire_tokens()
    assert (await _get(client, "externalcontact/get_follow_user_list", token))["errcode"] == 42001
    fresh = await _token(client)
    assert fresh != token and (await _get(client, "user/get", fresh, userid="lisi"))["errcode"] == 0

    resp = await client.post("/_sim/faults", json={"revoke_tokens": True})
    assert (await resp.json()) == {"ok": True}
    assert (await _get(client, "user/get", fresh, userid="lisi"))["errcode"] == 40014

    newest = await _token(client)
    clock.now += 7200
    assert (await _get(client, "user/get", newest, userid="lisi"))["errcode"] == 42001
    assert state.calls["user/get"] == 3


async def test_method_json_and_injected_faults(client: Any, state: SimulatorState) -> None:
    token = await _token(client)
    wrong_method = await _get(client, "externalcontact/get_corp_tag_list", token)
    assert wrong_method["errcode"] == 40035
    resp = await client.post("/cgi-bin/externalcontact/get_corp_tag_list", params={"access_token": token},
                             data=b"{not json")
    assert (await resp.json())["errcode"] == 47001
    # Lenient decoding: raw control characters inside strings are tolerated.
    resp = await client.post("/cgi-bin/externalcontact/add_corp_tag", params={"access_token": token},
                             data='{"group_name": "兴趣", "tag": [{"name": "奶\t粉"}]}'.encode())
    body = await resp.text()
    assert "奶\\t粉" in body and "\\u" not in body  # UTF-8 JSON, not \\u escapes

    await client.post("/_sim/faults", json={"api": "externalcontact/get_follow_user_list", "errcode": 45009,
                                            "times": 2})
    codes = [(await _get(client, "externalcontact/get_follow_user_list", token))["errcode"] for _ in range(3)]
    assert codes == [45009, 45009, 0]
    state.inject_error("externalcontact/get_follow_user_list", -1)
    assert (await _get(client, "externalcontact/get_follow_user_list", token))["errcode"] == -1


# ---------------------------------------------------------------- customers, welcome codes, tags


async def test_customer_add_event_and_get(client: Any, state: SimulatorState) -> None:
    external_userid, xml = state.ev_customer_adds_member("zhangsan", name="林晓", state="store_SH01")
    fields = _xml(xml)
    assert fields["ToUserName"] == CORP_ID and fields["FromUserName"] == "sys"
    assert fields["MsgType"] == "event" and fields["Event"] == "change_external_contact"
    assert fields["ChangeType"] == "add_external_contact" and fields["UserID"] == "zhangsan"
    assert fields["ExternalUserID"] == external_userid and fields["State"] == "store_SH01"
    assert fields["WelcomeCode"] and int(fields["CreateTime"]) == 1_700_000_000 and "AgentID" not in fields
    assert external_userid.startswith("wm") and len(external_userid) == 32

    token = await _token(client)
    data = await _get(client, "externalcontact/get", token, external_userid=external_userid)
    assert data["errcode"] == 0 and data["external_contact"]["name"] == "林晓"
    (follow,) = data["follow_user"]
    assert follow["userid"] == "zhangsan" and follow["state"] == "store_SH01"
    assert follow["oper_userid"] == external_userid and follow["createtime"] == 1_700_000_000
    assert (await _get(client, "externalcontact/list", token, userid="zhangsan"))["external_userid"] == [external_userid]
    assert (await _get(client, "externalcontact/get", token, external_userid="wmunknown"))["errcode"] == 40096

    batch = await _post(client, "externalcontact/batch/get_by_user", token, {"userid": "zhangsan", "limit": 500})
    assert batch["external_contact_list"][0]["follow_info"]["state"] == "store_SH01"
    assert batch["next_cursor"] == ""


async def test_half_added_and_deletions(client: Any, state: SimulatorState) -> None:
    token = await _token(client)
    half_id, xml = state.ev_customer_adds_member("lisi", half=True)
    assert _xml(xml)["ChangeType"] == "add_half_external_contact"
    assert (await _get(client, "externalcontact/get", token, external_userid=half_id))["errcode"] == 84061

    external_userid, _ = state.ev_customer_adds_member("zhangsan")
    gone = _xml(state.ev_customer_deletes_member("zhangsan", external_userid))
    assert gone["ChangeType"] == "del_follow_user"
    # One-way relation: the member still has the customer.
    assert (await _get(client, "externalcontact/get", token, external_userid=external_userid))["errcode"] == 0

    deleted = _xml(state.ev_member_deletes_customer("zhangsan", external_userid, by_transfer=True))
    assert deleted["ChangeType"] == "del_external_contact" and deleted["Source"] == "DELETE_BY_TRANSFER"
    assert (await _get(client, "externalcontact/get", token, external_userid=external_userid))["errcode"] == 84061
    fail = _xml(state.ev_transfer_fail("lisi", external_userid, "customer_limit_exceed"))
    assert fail["FailReason"] == "customer_limit_exceed" and fail["UserID"] == "lisi"


async def test_welcome_code_single_use_and_expiry(client: Any, state: SimulatorState, clock: Clock) -> None:
    token = await _token(client)
    _, xml = state.ev_customer_adds_member("zhangsan")
    code = _xml(xml)["WelcomeCode"]
    body = {"welcome_code": code, "text": {"content": "您好，我是导购张三"}}
    assert (await _post(client, "externalcontact/send_welcome_msg", token, body))["errcode"] == 0
    assert (await _post(client, "externalcontact/send_welcome_msg", token, body))["errcode"] == 41051
    assert state.welcome_messages[0]["text"] == {"content": "您好，我是导购张三"}

    _, xml = state.ev_customer_adds_member("zhangsan")
    late = {"welcome_code": _xml(xml)["WelcomeCode"], "text": {"content": "迟到的欢迎语"}}
    clock.now += 21
    assert (await _post(client, "externalcontact/send_welcome_msg", token, late))["errcode"] == 41050
    assert (await _post(client, "externalcontact/send_welcome_msg", token, {"text": {"content": "x"}}))["errcode"] == 41049

    _, xml = state.ev_customer_adds_member("zhangsan")
    code = _xml(xml)["WelcomeCode"]
    too_many = {"welcome_code": code,
                "attachments": [{"msgtype": "link", "link": {"title": "t", "url": "https://e.com"}}] * 10}
    assert (await _post(client, "externalcontact/send_welcome_msg", token, too_many))["errcode"] == 41064
    bad_type = {"welcome_code": code, "attachments": [{"msgtype": "music", "music": {}}]}
    assert (await _post(client, "externalcontact/send_welcome_msg", token, bad_type))["errcode"] == 41065
    assert len(state.welcome_messages) == 1


async def test_mark_tag_is_silent_and_validated(client: Any, state: SimulatorState) -> None:
    token = await _token(client)
    external_userid, _ = state.ev_customer_adds_member("zhangsan")
    gold = state.tag_id("客户等级", "金卡会员")
    events_before = len(state.events)
    body = {"userid": "zhangsan", "external_userid": external_userid, "add_tag": [gold]}
    assert (await _post(client, "externalcontact/mark_tag", token, body))["errcode"] == 0
    assert len(state.events) == events_before  # API-made changes never call back

    data = await _get(client, "externalcontact/get", token, external_userid=external_userid)
    assert data["follow_user"][0]["tags"] == [{"group_name": "客户等级", "tag_name": "金卡会员", "tag_id": gold,
                                               "type": 1}]
    no_relation = {"userid": "lisi", "external_userid": external_userid, "add_tag": [gold]}
    assert (await _post(client, "externalcontact/mark_tag", token, no_relation))["errcode"] == 84061
    bad_tag = {**body, "add_tag": ["etNope"]}
    assert (await _post(client, "externalcontact/mark_tag", token, bad_tag))["errcode"] == 40068
    empty = {**body, "add_tag": [], "remove_tag": []}
    assert (await _post(client, "externalcontact/mark_tag", token, empty))["errcode"] == 40063


async def test_corp_tags_and_tag_events(client: Any, state: SimulatorState) -> None:
    token = await _token(client)
    added = await _post(client, "externalcontact/add_corp_tag", token,
                        {"group_name": "兴趣偏好", "tag": [{"name": "奶粉"}, {"name": "奶粉"}, {"name": "玩具"}]})
    group = added["tag_group"]
    assert group["group_id"].startswith("et") and [t["name"] for t in group["tag"]] == ["奶粉", "玩具"]
    assert not state.events  # add_corp_tag via API: no change_external_tag
    milk, toy = (t["id"] for t in group["tag"])
    assert (await _post(client, "externalcontact/edit_corp_tag", token, {"id": toy, "name": "奶粉"}))["errcode"] == 40071
    assert (await _post(client, "externalcontact/del_corp_tag", token, {"tag_id": [toy]}))["errcode"] == 0

    full = await _post(client, "externalcontact/get_corp_tag_list", token, {})
    assert [g["group_name"] for g in full["tag_group"]] == ["客户等级", "兴趣偏好"]  # larger order first
    assert "deleted" not in full["tag_group"][1] and [t["name"] for t in full["tag_group"][1]["tag"]] == ["奶粉"]
    by_id = await _post(client, "externalcontact/get_corp_tag_list", token, {"tag_id": [toy]})
    assert by_id["tag_group"][0]["tag"] == [{"id": toy, "name": "玩具", "create_time": 1_700_000_000, "order": 0,
                                             "deleted": True}]

    tag_id, xml = state.ev_tag_created("客户状态", "已流失")
    assert _xml(xml).items() >= {"Event": "change_external_tag", "Id": tag_id, "TagType": "tag", "ChangeType": "create"}.items()
    group_deleted = _xml(state.ev_tag_deleted(group["group_id"]))
    assert group_deleted["TagType"] == "tag_group" and group_deleted["ChangeType"] == "delete"
    shuffled = _xml(state.ev_tags_shuffled())
    assert shuffled["ChangeType"] == "shuffle" and shuffled["Id"] == ""
    ids = await _post(client, "externalcontact/get_corp_tag_list", token, {"tag_id": [milk]})
    assert ids["tag_group"][0]["deleted"] is True and ids["tag_group"][0]["tag"][0]["deleted"] is True


# ---------------------------------------------------------------- groups and mass messages


async def test_groups_versions_and_dismiss(client: Any, state: SimulatorState) -> None:
    token = await _token(client)
    customer = state.add_customer("陈静")
    chat_id, xml = state.ev_group_created("zhangsan", ["lisi"], "徐汇宝妈群")
    assert _xml(xml).items() >= {"Event": "change_external_chat", "ChatId": chat_id, "ChangeType": "create"}.items()
    before = (await _post(client, "externalcontact/groupchat/get", token, {"chat_id": chat_id, "need_name": 1}))
    version = before["group_chat"]["member_version"]
    assert len(version) == 32 and before["group_chat"]["member_list"][1]["name"] == "李四"

    root = ET.fromstring(state.ev_group_members_join(chat_id, [customer], join_scene=3))
    assert root.findtext("UpdateDetail") == "add_member" and root.findtext("JoinScene") == "3"
    assert root.findtext("MemChangeCnt") == "1" and [i.text for i in root.find("MemChangeList")] == [customer]
    assert root.findtext("LastMemVer") == version
    after = await _post(client, "externalcontact/groupchat/get", token, {"chat_id": chat_id})
    assert after["group_chat"]["member_version"] == root.findtext("CurMemVer") != version
    joined = after["group_chat"]["member_list"][-1]
    assert joined["type"] == 2 and joined["join_scene"] == 3 and "name" not in joined

    left = ET.fromstring(state.ev_group_members_leave(chat_id, [customer], quit_scene=1))
    assert left.findtext("QuitScene") == "1" and left.findtext("LastMemVer") == root.findtext("CurMemVer")
    assert _xml(state.ev_group_renamed(chat_id, "新群名"))["UpdateDetail"] == "change_name"

    listed = await _post(client, "externalcontact/groupchat/list", token, {"limit": 10})
    assert listed["group_chat_list"] == [{"chat_id": chat_id, "status": 0}] and listed["next_cursor"] == ""
    assert (await _post(client, "externalcontact/groupchat/list", token, {}))["errcode"] == 40063

    assert _xml(state.ev_group_dismissed(chat_id))["ChangeType"] == "dismiss"
    assert (await _post(client, "externalcontact/groupchat/get", token, {"chat_id": chat_id}))["errcode"] == 40050


async def test_mass_message_fail_list_and_results(client: Any, state: SimulatorState) -> None:
    token = await _token(client)
    friend, _ = state.ev_customer_adds_member("zhangsan")
    over_quota, _ = state.ev_customer_adds_member("zhangsan")
    left, _ = state.ev_customer_adds_member("zhangsan")
    state.ev_customer_deletes_member("zhangsan", left)
    # over_quota already received a mass message today.
    earlier = await _post(client, "externalcontact/add_msg_template", token,
                          {"external_userid": [over_quota], "text": {"content": "早上好"}})
    state.confirm_mass_task(earlier["msgid"], "zhangsan")

    created = await _post(client, "externalcontact/add_msg_template", token, {
        "chat_type": "single", "external_userid": [friend, over_quota, left, "wmUnknown"],
        "text": {"content": "双十一活动开始啦"},
    })
    assert created["errcode"] == 0 and created["fail_list"] == ["wmUnknown"] and created["msgid"].startswith("msg")
    msgid = created["msgid"]
    tasks = await _post(client, "externalcontact/get_groupmsg_task", token, {"msgid": msgid})
    assert tasks["task_list"] == [{"userid": "zhangsan", "status": 0}]

    resp = await client.post("/_sim/mass/confirm", json={"msgid": msgid, "userid": "zhangsan"})
    assert resp.status == 200
    tasks = await _post(client, "externalcontact/get_groupmsg_task", token, {"msgid": msgid})
    assert tasks["task_list"][0]["status"] == 2 and tasks["task_list"][0]["send_time"] == 1_700_000_000
    results = await _post(client, "externalcontact/get_groupmsg_send_result", token,
                          {"msgid": msgid, "userid": "zhangsan"})
    assert {r["external_userid"]: r["status"] for r in results["send_list"]} == {friend: 1, over_quota: 3, left: 2}

    listed = await _post(client, "externalcontact/get_groupmsg_list_v2", token,
                         {"chat_type": "single", "start_time": 1_699_999_000, "end_time": 1_700_001_000})
    assert [m["msgid"] for m in listed["group_msg_list"]] == [earlier["msgid"], msgid]
    assert listed["group_msg_list"][1]["create_time"] == "1700000000"

    nobody = await _post(client, "externalcontact/add_msg_template", token,
                         {"external_userid": ["wmUnknown"], "text": {"content": "x"}})
    assert nobody["errcode"] == 41048
    too_many = await _post(client, "externalcontact/add_msg_template", token,
                           {"external_userid": [f"wm{i}" for i in range(10_001)], "text": {"content": "x"}})
    assert too_many["errcode"] == 40035
    no_sender = await _post(client, "externalcontact/add_msg_template", token,
                            {"chat_type": "group", "text": {"content": "x"}})
    assert no_sender["errcode"] != 0

    state.mass_dispatch_delay = 5
    again = await _post(client, "externalcontact/add_msg_template", token,
                        {"sender": "zhangsan", "text": {"content": "新品到店"}})
    assert (await _post(client, "externalcontact/get_groupmsg_task", token, {"msgid": again["msgid"]}))["errcode"] == 41063


# ---------------------------------------------------------------- contact ways, members, OAuth, media, JS-SDK


async def test_contact_way_crud(client: Any) -> None:
    token = await _token(client)
    bad_state = {"type": 1, "scene": 2, "user": ["zhangsan"], "state": "x" * 31}
    assert (await _post(client, "externalcontact/add_contact_way", token, bad_state))["errcode"] == 40058
    two_users = {"type": 1, "scene": 2, "user": ["zhangsan", "lisi"]}
    assert (await _post(client, "externalcontact/add_contact_way", token, two_users))["errcode"] == 41041
    unknown = {"type": 1, "scene": 2, "user": ["ghost"]}
    assert (await _post(client, "externalcontact/add_contact_way", token, unknown))["errcode"] == 40003

    created = await _post(client, "externalcontact/add_contact_way", token,
                          {"type": 1, "scene": 2, "user": ["zhangsan"], "state": "store_SH01", "remark": "门店海报"})
    assert created["errcode"] == 0 and len(created["config_id"]) == 32
    config_id = created["config_id"]
    # WeCom's qr_code is an image URL; the simulator serves its own, so it can be fetched and scanned.
    qr = await client.get("/_sim/" + created["qr_code"].split("/_sim/", 1)[1])
    assert qr.status == 200 and qr.content_type == "image/png"
    got = await _post(client, "externalcontact/get_contact_way", token, {"config_id": config_id})
    assert got["contact_way"]["state"] == "store_SH01" and got["contact_way"]["user"] == ["zhangsan"]
    updated = await _post(client, "externalcontact/update_contact_way", token, {"config_id": config_id, "state": "s2"})
    assert updated["errcode"] == 0
    got = await _post(client, "externalcontact/get_contact_way", token, {"config_id": config_id})
    assert got["contact_way"]["state"] == "s2" and got["contact_way"]["remark"] == "门店海报"
    assert (await _post(client, "externalcontact/del_contact_way", token, {"config_id": config_id}))["errcode"] == 0
    assert (await _post(client, "externalcontact/get_contact_way", token, {"config_id": config_id}))["errcode"] == 41044


async def test_user_get_and_message_send(client: Any, state: SimulatorState) -> None:
    token = await _token(client)
    user = await _get(client, "user/get", token, userid="zhangsan")
    assert user["name"] == "张三" and user["department"] == [2] and user["position"] == "导购"
    assert not {"mobile", "avatar", "email", "gender"} & set(user)
    assert (await _get(client, "user/get", token, userid="ghost"))["errcode"] == 60111
    assert (await _get(client, "user/get", token, userid="hidden"))["errcode"] == 60011

    sent = await _post(client, "message/send", token, {"touser": "zhangsan|ghost", "msgtype": "text",
                                                       "agentid": 1000002, "text": {"content": "今日待跟进 3 位"}})
    assert sent["errcode"] == 0 and sent["invaliduser"] == "ghost"
    assert state.app_messages[0]["touser"] == ["zhangsan"] and state.app_messages[0]["content"] == "今日待跟进 3 位"
    wrong_agent = await _post(client, "message/send", token, {"touser": "zhangsan", "msgtype": "text", "agentid": 1,
                                                              "text": {"content": "x"}})
    assert wrong_agent["errcode"] == 40056
    summary = await (await client.get("/_sim/state")).json()
    assert summary["counts"]["members"] == 3 and summary["app_messages"][0]["msgtype"] == "text"


async def test_oauth_authorize_and_single_use_code(client: Any) -> None:
    params = {"appid": CORP_ID, "redirect_uri": "https://scrm.example.com/sidebar/auth?next=%2F",
              "response_type": "code", "scope": "snsapi_base", "state": "abc123", "agentid": "1000002"}
    page = await client.get("/connect/oauth2/authorize", params=params)
    text = await page.text()
    assert page.status == 200 and "张三" in text and "sim_userid=zhangsan" in text

    resp = await client.get("/connect/oauth2/authorize", params={**params, "sim_userid": "zhangsan"},
                            allow_redirects=False)
    assert resp.status == 302
    location = URL(resp.headers["Location"])
    assert location.host == "scrm.example.com" and location.query["state"] == "abc123"
    assert location.query["next"] == "/"
    code = location.query["code"]

    token = await _token(client)
    assert (await _get(client, "auth/getuserinfo", token, code=code)) == {"errcode": 0, "errmsg": "ok",
                                                                           "userid": "zhangsan"}
    assert (await _get(client, "auth/getuserinfo", token, code=code))["errcode"] == 40029
    client_state: SimulatorState = client.app[SIMULATOR_STATE]
    legacy = await _get(client, "user/getuserinfo", token, code=client_state.create_oauth_code("lisi"))
    assert legacy["UserId"] == "lisi"


async def test_media_upload_multipart(client: Any, state: SimulatorState) -> None:
    token = await _token(client)
    form = aiohttp.FormData()
    form.add_field("media", PNG, filename="poster.png", content_type="image/png")
    resp = await client.post("/cgi-bin/media/upload", params={"access_token": token, "type": "image"}, data=form)
    data = await resp.json()
    assert data["errcode"] == 0 and data["type"] == "image" and data["created_at"] == "1700000000"
    assert state.media[data["media_id"]].size == len(PNG)

    form = aiohttp.FormData()
    form.add_field("media", b"not an image at all", filename="x.png", content_type="image/png")
    resp = await client.post("/cgi-bin/media/upload", params={"access_token": token, "type": "image"}, data=form)
    assert (await resp.json())["errcode"] == 40123
    form = aiohttp.FormData()
    form.add_field("media", PNG, filename="x.png")
    resp = await client.post("/cgi-bin/media/upload", params={"access_token": token, "type": "gif"}, data=form)
    assert (await resp.json())["errcode"] == 40005


async def test_jsapi_tickets_and_signature_vector(client: Any, state: SimulatorState) -> None:
    token = await _token(client)
    corp = await _get(client, "get_jsapi_ticket", token)
    agent = await _get(client, "ticket/get", token, type="agent_config")
    assert corp["ticket"] != agent["ticket"] and corp["expires_in"] == agent["expires_in"] == 7200

    vector = VECTORS["jsapi_signature"]
    state.corp_jsapi_ticket = vector["jsapi_ticket"]
    assert jsapi_signature(vector["jsapi_ticket"], vector["noncestr"], vector["timestamp"], vector["url"]) \
        == vector["signature"]
    assert state.verify_jsapi_signature("corp", vector["noncestr"], vector["timestamp"], vector["url"],
                                        vector["signature"])
    assert not state.verify_jsapi_signature("agent", vector["noncestr"], vector["timestamp"], vector["url"],
                                            vector["signature"])
    body = {"kind": "corp", "noncestr": vector["noncestr"], "timestamp": vector["timestamp"],
            "url": vector["url"] + "#section", "signature": vector["signature"]}
    assert (await (await client.post("/_sim/jsapi/verify", json=body)).json()) == {"ok": True}
    assert (await (await client.post("/_sim/jsapi/verify", json={**body, "timestamp": "1"})).json()) == {"ok": False}


async def test_member_text_and_enter_agent_events(state: SimulatorState) -> None:
    first = _xml(state.ev_member_text("zhangsan", "查询客户 wmAbCd"))
    second = _xml(state.ev_member_text("zhangsan", "帮助"))
    assert first["MsgType"] == "text" and first["FromUserName"] == "zhangsan" and first["Content"] == "查询客户 wmAbCd"
    assert first["AgentID"] == "1000002" and int(first["MsgId"]) != int(second["MsgId"]) and int(first["MsgId"]) < 2**64
    enter = _xml(state.ev_enter_agent("lisi"))
    assert enter["Event"] == "enter_agent" and enter["EventKey"] == "" and enter["AgentID"] == "1000002"
    edit = _xml(state.ev_member_edits_customer("zhangsan", state.ev_customer_adds_member("zhangsan")[0], remark="VIP"))
    assert edit["ChangeType"] == "edit_external_contact"


def test_demo_data_is_deterministic() -> None:
    def build() -> SimulatorState:
        sim = SimulatorState(DEMO_CORP["corp_id"], DEMO_CORP["agent_id"], DEMO_CORP["agent_secret"],
                             clock=lambda: 1_700_000_000.0, seed=3)
        seed_simulator(sim, customers=50)
        return sim

    one, two = build(), build()
    assert list(one.customers) == list(two.customers) and len(one.customers) == 50
    assert len(MEMBERS) == 12 and len(STORES) == 4 and len(DEMO_CORP["encoding_aes_key"]) == 43
    roles = [m.role for m in MEMBERS]
    assert roles.count("store_manager") == 4 and roles.count("region_manager") == 2 and roles.count("hq") == 1
    guides = {m.userid for m in MEMBERS if m.role == "guide"}
    assert {f.userid for f in one.follows.values()} <= guides
    assert all(1 <= sum(1 for f in one.follows.values() if f.external_userid == e) <= 2 for e in one.customers)
    assert len(one.group_chats) == 3
