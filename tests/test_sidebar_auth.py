"""Sidebar sign-in: the OAuth round trip through the simulator, the signed session cookie, refusals."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from yarl import URL

from models import AuditEntry, Staff
from scrm.app import create_app
from scrm.settings import Settings
from sidebar.session import (
    SESSION_COOKIE,
    STATE_COOKIE,
    read_session,
    sign_session,
    sign_state,
    state_matches,
)
from wecom.simulator.records import OAuthCode

PUBLIC = "http://127.0.0.1:8080"
SECRET = "test-session-secret-0123456789abcdef"


@pytest.fixture
def sb_settings(settings: Settings, sim_server: Any) -> Settings:
    """Guides are sent to the simulator's authorize page, as in the demo."""
    return settings.with_(oauth_authorize_url=str(sim_server.make_url("/connect/oauth2/authorize")))


async def _client(aiohttp_client: Any, settings: Settings, clock: Any) -> TestClient:
    app = create_app(settings, clock=clock, run_worker=False)
    return await aiohttp_client(app)


@pytest.fixture
async def sb(aiohttp_client: Any, sb_settings: Settings, clock: Any, maker: Any) -> TestClient:
    return await _client(aiohttp_client, sb_settings, clock)


def _set_cookie(resp: Any, name: str) -> str:
    headers = [h for h in resp.headers.getall("Set-Cookie", []) if h.startswith(name + "=")]
    assert headers, f"no Set-Cookie for {name}: {resp.headers.getall('Set-Cookie', [])}"
    return headers[-1]


async def _authorize(sb: TestClient, path: str = "/sidebar/?from=toolbar") -> tuple[URL, Any]:
    """Open the toolbar URL without a session: the 302 to the authorize page, parsed."""
    resp = await sb.get(path, allow_redirects=False)
    assert resp.status == 302, await resp.text()
    return URL(resp.headers["Location"]), resp


async def _code_from_simulator(sb: TestClient, authorize: URL, userid: str) -> URL:
    """What the WeCom webview does: open the authorize link; the member is sent back with code and state."""
    page = authorize.with_fragment(None).update_query(sim_userid=userid)
    resp = await sb.session.get(page, allow_redirects=False)
    assert resp.status == 302, await resp.text()
    return URL(resp.headers["Location"])


async def test_full_oauth_round_trip(sb: TestClient, sim_state: Any, maker: Any, sb_settings: Settings) -> None:
    authorize, first = await _authorize(sb)
    raw = first.headers["Location"]
    # §4.14: exactly this link, redirect_uri URL-encoded, #wechat_redirect at the end.
    assert raw.startswith(sb_settings.oauth_authorize_url + "?appid=" + sb_settings.corp_id + "&redirect_uri=")
    assert "redirect_uri=http%3A%2F%2F127.0.0.1%3A8080%2Fsidebar%2F%3Ffrom%3Dtoolbar&" in raw
    assert raw.endswith("#wechat_redirect")
    query = parse_qs(urlsplit(raw).query)
    assert query["response_type"] == ["code"] and query["scope"] == ["snsapi_base"]
    assert query["agentid"] == [str(sb_settings.agent_id)]
    state = query["state"][0]
    assert re.fullmatch(r"[a-zA-Z0-9]{16,128}", state)
    state_cookie = _set_cookie(first, STATE_COOKIE)
    assert "HttpOnly" in state_cookie and "Path=/sidebar" in state_cookie and "SameSite=Lax" in state_cookie

    back = await _code_from_simulator(sb, authorize, "zhangsan")
    assert str(back).startswith(PUBLIC + "/sidebar/?from=toolbar&code=")
    assert back.query["state"] == state

    resp = await sb.get(back.path_qs, allow_redirects=False)
    assert resp.status == 302, await resp.text()
    assert resp.headers["Location"] == "/sidebar/?from=toolbar"  # clean: no code, no state
    session_cookie = _set_cookie(resp, SESSION_COOKIE)
    assert "HttpOnly" in session_cookie and "Path=/sidebar" in session_cookie
    assert "Max-Age=43200" in session_cookie and "SameSite=Lax" in session_cookie
    assert "Secure" not in session_cookie  # http deployment
    assert "Max-Age=0" in _set_cookie(resp, STATE_COOKIE)  # the state is single-use

    page = await sb.get("/sidebar/?from=toolbar", allow_redirects=False)
    assert page.status == 200
    text = await page.text()
    assert "张三" in text and "<html" in text
    api = await sb.get("/sidebar/api/tags")
    assert api.status == 200
    async with maker() as session:
        staff = await session.scalar(select(Staff).where(Staff.userid == "zhangsan"))
        signed_in = (await session.scalars(select(AuditEntry).where(AuditEntry.action == "sidebar_signed_in"))).all()
    assert staff is not None and staff.name == "张三"  # created from user/get on first sight
    assert [(a.actor, a.subject_id) for a in signed_in] == [("zhangsan", "zhangsan")]
    assert sim_state.calls["auth/getuserinfo"] == 1


async def test_reused_code_shows_clear_page(sb: TestClient) -> None:
    authorize, _ = await _authorize(sb)
    back = await _code_from_simulator(sb, authorize, "lisi")
    assert (await sb.get(back.path_qs, allow_redirects=False)).status == 302
    # The member reloads an old link: a fresh sign-in was started, but the code is spent.
    sb.session.cookie_jar.clear()
    authorize2, _ = await _authorize(sb)
    replay = back.update_query(state=authorize2.query["state"])
    resp = await sb.get(replay.path_qs, allow_redirects=False)
    assert resp.status == 400
    text = await resp.text()
    assert "已被使用" in text and "重新打开" in text
    assert SESSION_COOKIE not in resp.cookies


async def test_forged_or_missing_state_is_refused(sb: TestClient) -> None:
    authorize, _ = await _authorize(sb)
    back = await _code_from_simulator(sb, authorize, "zhangsan")
    forged = back.update_query(state="0123456789abcdef0123456789abcdef")
    resp = await sb.get(forged.path_qs, allow_redirects=False)
    assert resp.status == 400 and "登录校验失败" in await resp.text()
    sb.session.cookie_jar.clear()  # e.g. a webview that keeps no cookies, or a link from someone else
    resp = await sb.get(back.path_qs, allow_redirects=False)
    assert resp.status == 400 and "Cookie" in await resp.text()


async def test_non_member_and_quit_member_get_clear_pages(sb: TestClient, sim_state: Any, clock: Any) -> None:
    authorize, _ = await _authorize(sb)
    # auth/getuserinfo answers ok with an openid (no userid) for someone outside the corp.
    sim_state.oauth_codes["outsidercode"] = OAuthCode("outsidercode", "", clock.timestamp())
    resp = await sb.get(f"/sidebar/?code=outsidercode&state={authorize.query['state']}", allow_redirects=False)
    assert resp.status == 403 and "不是本企业的成员" in await resp.text()

    sim_state.add_member("zhouquit", "周离职", position="导购", status=5)
    authorize, _ = await _authorize(sb)
    back = await _code_from_simulator(sb, authorize, "zhouquit")
    resp = await sb.get(back.path_qs, allow_redirects=False)
    assert resp.status == 403 and "已停用或已离职" in await resp.text()


async def test_forged_expired_and_foreign_cookies_are_rejected(sb: TestClient, clock: Any, maker: Any) -> None:
    now = int(clock.timestamp())
    good = sign_session(SECRET, "zhangsan", now)
    async with maker.begin() as session:
        session.add(Staff(userid="zhangsan", name="张三"))

    async def api(cookie: str) -> Any:
        sb.session.cookie_jar.clear()
        return await sb.get("/sidebar/api/tags", headers={"Cookie": f"{SESSION_COOKIE}={cookie}"})

    assert (await api(good)).status == 200
    body, mac = good.split(".")
    tampered = sign_session(SECRET, "wangmgr", now).split(".")[0] + "." + mac  # someone else's payload
    for cookie in (tampered, body + ".AAAA", sign_session("another-secret-0123456789abcdefXYZ", "zhangsan", now),
                   sign_state(SECRET, "zhangsan", now), "garbage", ""):
        resp = await api(cookie)
        assert resp.status == 401, cookie
        data = await resp.json()
        assert data["error"] == "not_signed_in" and data["signin"] == "/sidebar/" and "重新打开" in data["hint"]
    # The page itself starts a new sign-in instead.
    sb.session.cookie_jar.clear()
    resp = await sb.get("/sidebar/", headers={"Cookie": f"{SESSION_COOKIE}={tampered}"}, allow_redirects=False)
    assert resp.status == 302 and "/connect/oauth2/authorize?" in resp.headers["Location"]

    clock.advance(12 * 3600 - 5)
    assert (await api(good)).status == 200
    clock.advance(10)  # 12 h after sign-in
    assert (await api(good)).status == 401


def test_cookie_signing_rules() -> None:
    value = sign_session(SECRET, "zhangsan", 1_700_000_000)
    assert read_session(SECRET, value, 1_700_000_100).userid == "zhangsan"  # type: ignore[union-attr]
    assert read_session(SECRET, value, 1_700_000_000 + 12 * 3600) is None
    assert read_session(SECRET, value, 1_700_000_000 - 3600) is None  # issued in the future
    assert read_session("", value, 1_700_000_100) is None
    state = sign_state(SECRET, "abc123", 1_700_000_000)
    assert state_matches(SECRET, state, "abc123", 1_700_000_300)
    assert not state_matches(SECRET, state, "abc124", 1_700_000_300)
    assert not state_matches(SECRET, state, "abc123", 1_700_000_000 + 600)
    assert not state_matches(SECRET, value, "zhangsan", 1_700_000_100)  # a session is not a state


async def test_missing_session_secret_refuses_sign_in(
    aiohttp_client: Any, sb_settings: Settings, clock: Any, maker: Any, sim_state: Any
) -> None:
    sb = await _client(aiohttp_client, sb_settings.with_(session_secret=""), clock)
    resp = await sb.get("/sidebar/", allow_redirects=False)
    assert resp.status == 503
    assert "SCRM_SESSION_SECRET" in await resp.text()
    resp = await sb.get("/sidebar/?code=abc&state=def", allow_redirects=False)
    assert resp.status == 503
    resp = await sb.get("/sidebar/api/tags", headers={"Cookie": f"{SESSION_COOKIE}=x.y"})
    assert resp.status == 503 and (await resp.json())["error"] == "sidebar_disabled"
    assert sim_state.calls["auth/getuserinfo"] == 0


async def test_https_deployment_uses_samesite_none_secure(
    aiohttp_client: Any, sb_settings: Settings, clock: Any, maker: Any
) -> None:
    sb = await _client(aiohttp_client, sb_settings.with_(public_base_url="https://scrm.example.com"), clock)
    resp = await sb.get("/sidebar/?from=toolbar", allow_redirects=False)
    assert resp.status == 302
    assert "redirect_uri=https%3A%2F%2Fscrm.example.com%2Fsidebar%2F%3Ffrom%3Dtoolbar&" in resp.headers["Location"]
    cookie = _set_cookie(resp, STATE_COOKIE)
    assert "SameSite=None" in cookie and "Secure" in cookie and "HttpOnly" in cookie


def test_forged_non_ascii_cookie_is_just_invalid() -> None:
    from sidebar.session import read_session

    assert read_session("test-session-secret-0123456789abcdef", "体.签名", now=1700000000) is None
