"""The sidebar page in headless Chromium: demo server + simulator, OAuth sign-in, the stand-in JS-SDK bridge."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import pytest
from aiohttp import web

from sqlalchemy import select

from models import CustomerIdentity, IdentityKind, Staff, StaffRole
from scrm import keys
from scrm.db import upgrade_database
from scrm.demo import Demo, build_demo_app, seed_demo
from sidebar.session import SESSION_COOKIE, sign_session

CHROMIUM: Final = Path("/usr/bin/chromium")
CHROMIUM_ARGS: Final = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS: Final = Path(__file__).resolve().parents[1] / "artifacts"
PHONE: Final = (390, 844)
GUIDE: Final = "liuyang"  # 刘洋: a guide with customers and a customer group in the demo corp
TRICKY_NAME: Final = "<b>x</b>"
PHONE_NUMBER: Final = "+8613812345678"
TIMEOUT_MS: Final = 8000
SECRET: Final = "test-session-secret-0123456789abcdef"  # conftest settings
#: Counts every write of HTML as markup; the page must never do it.
NO_HTML_SINKS: Final = """
(() => {
  window.__htmlWrites = [];
  for (const [proto, prop] of [[Element.prototype, 'innerHTML'], [Element.prototype, 'outerHTML']]) {
    const d = Object.getOwnPropertyDescriptor(proto, prop);
    Object.defineProperty(proto, prop, { configurable: true, get: d.get,
      set(v) { window.__htmlWrites.push(prop + ':' + String(v).slice(0, 80)); return d.set.call(this, v); } });
  }
  const insert = Element.prototype.insertAdjacentHTML;
  Element.prototype.insertAdjacentHTML = function (p, v) { window.__htmlWrites.push('insertAdjacentHTML'); return insert.call(this, p, v); };
  const write = Document.prototype.write;
  Document.prototype.write = function (...v) { window.__htmlWrites.push('document.write'); return write.apply(this, v); };
})();
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _require_browser() -> Any:
    """Playwright's async API, or a loud failure saying what to install (never a skip)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: the sidebar browser tests need Debian's chromium. Install it with "
                    "`apt-get install chromium fonts-noto-cjk` (bin/_venv.sh does this when run as root).")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.fail("the Python package playwright is missing: `.venv/bin/pip install -e '.[test]'` "
                    "(or `.venv/bin/pip install playwright`); no `playwright install` is needed.")
    return async_playwright


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[tuple[Demo, str, str]]:
    """A small demo brand served on a free port, with a customer whose name looks like markup."""
    port = _free_port()
    demo = build_demo_app(port, "127.0.0.1", tmp_path, customers=60)
    tricky = demo.state.add_customer(TRICKY_NAME, gender=2)
    demo.state.add_follow(GUIDE, tricky, remark="<i>VIP</i>")
    await asyncio.to_thread(upgrade_database, demo.settings.database_url)
    runner = web.AppRunner(demo.app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await seed_demo(demo, marketplace_buyers=50)
    async with demo.app[keys.SESSIONMAKER].begin() as session:  # a member phone, as a store till would report it
        customer_id = await session.scalar(select(CustomerIdentity.customer_id).where(CustomerIdentity.value == tricky))
        session.add(CustomerIdentity(customer_id=customer_id, kind=IdentityKind.PHONE, value=PHONE_NUMBER))
    yield demo, demo.settings.public_base_url, tricky
    await runner.cleanup()


@pytest.fixture
async def page(demo: tuple[Demo, str, str]) -> AsyncIterator[Any]:
    """A phone-sized Chromium page that reaches only the demo server."""
    async with phone_page(demo[1]) as page:
        yield page


@contextlib.asynccontextmanager
async def browser_page(base: str, *, viewport: tuple[int, int] = PHONE, phone: bool = True, clipboard: bool = False,
                       timezone: str | None = None) -> AsyncIterator[Any]:
    """A Chromium page (phone-sized unless told) that reaches only ``base`` (no network in tests).

    Page errors are collected in ``page.errors``; confirm() dialogs are accepted.
    """
    async_playwright = _require_browser()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        options: dict[str, Any] = {"viewport": {"width": viewport[0], "height": viewport[1]}, "locale": "zh-CN"}
        if phone:
            options |= {"device_scale_factor": 2, "is_mobile": True, "has_touch": True}
        if timezone:
            options["timezone_id"] = timezone
        context = await browser.new_context(**options)
        context.set_default_timeout(TIMEOUT_MS)
        if clipboard:
            await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)

        async def offline(route: Any) -> None:
            if route.request.url.startswith(base):
                await route.continue_()
            else:  # avatars on wx.qlogo.cn, covers elsewhere: nothing outside is reached
                await route.abort()

        await context.route("**/*", offline)
        await context.add_init_script(NO_HTML_SINKS)
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("dialog", lambda dialog: dialog.accept())
        page.errors = errors
        try:
            yield page
        finally:
            await browser.close()


def phone_page(base: str, *, clipboard: bool = False) -> contextlib.AbstractAsyncContextManager[Any]:
    """A phone-sized Chromium page that reaches only ``base``."""
    return browser_page(base, clipboard=clipboard)


async def _sign_in(page: Any, base: str, path: str = "/sidebar/") -> None:
    """Open the toolbar URL: the simulator's authorize page, pick the guide, back on the page."""
    await page.goto(base + path)
    await page.get_by_role("link", name=re.compile(GUIDE)).click()
    await page.wait_for_url(re.compile(r"/sidebar/(\?sdk=ww)?$"))


async def _ready(page: Any, state: str = "ready") -> None:
    """Wait until the page script has settled in ``state`` (ready or error)."""
    await page.wait_for_function("s => document.body.dataset.state === s", arg=state)


async def _reload_context(page: Any, action: Any, state: str = "ready") -> None:
    """Change the demo toolbar's chat and wait for the page to render it."""
    await page.evaluate("document.body.dataset.state = 'switching'")
    await action
    await _ready(page, state)


async def _sim_state(page: Any, base: str) -> dict[str, Any]:
    resp = await page.request.get(base + "/_wecom/_sim/state")
    return dict(await resp.json())


async def test_sidebar_profile_tags_group_and_escaping(demo: tuple[Demo, str, str], page: Any) -> None:
    _, base, tricky = demo
    await _sign_in(page, base)
    await _ready(page)
    assert "刘洋" in await page.locator("#guide-name").inner_text()

    # The first customer in the toolbar is the one with the most orders.
    hero = page.locator(".hero-name")
    assert (await hero.inner_text()).strip()
    orders = page.locator("#orders .order")
    assert await orders.count() >= 1
    badges = {(await b.inner_text()).strip() for b in await page.locator("#orders .channel").all()}
    assert badges and badges <= {"天猫", "京东", "抖音", "门店", "小程序"}
    assert await page.locator(".stats .stat-value").count() == 3
    assert await page.locator("#guides .person").count() >= 1
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "sidebar-contact.png"), full_page=True)

    # A name and remark that look like markup are shown literally; the phone is masked.
    await _reload_context(page, page.select_option("#demo-contact", tricky))
    assert await hero.inner_text() == TRICKY_NAME
    assert await page.locator(".hero-remark").inner_text() == "备注：<i>VIP</i>"
    assert await page.locator("main b, main i").count() == 0
    assert re.fullmatch(r"138\*{4}5678", await page.locator(".hero .phone").inner_text())

    # Tags: add one with a tap, then remove it; WeCom (the simulator) is told both times.
    library = await (await page.request.get(base + "/sidebar/api/tags")).json()
    await page.locator("#tags .link-btn").click()
    pick = page.locator("#tags .chip-pick:not(.on):not([disabled])").first
    tag_id = await pick.get_attribute("data-tag-id")
    wecom_id = next(t["wecom_tag_id"] for g in library["groups"] for t in g["tags"] if str(t["id"]) == tag_id)
    chip = page.locator(f'#tags .chip-pick[data-tag-id="{tag_id}"]')
    await chip.click()
    await page.locator(f'#tags .chip-pick.on[data-tag-id="{tag_id}"]').wait_for()
    await page.screenshot(path=str(ARTIFACTS / "sidebar-tags.png"), full_page=True)
    log = (await _sim_state(page, base))["mark_tag_log"]
    assert log[-1]["external_userid"] == tricky and log[-1]["add_tag"] == [wecom_id]
    await chip.click()
    await page.locator(f'#tags .chip-pick:not(.on)[data-tag-id="{tag_id}"]').wait_for()
    log = (await _sim_state(page, base))["mark_tag_log"]
    assert log[-1]["remove_tag"] == [wecom_id]

    # Talk scripts: ranked for this customer, and one tap sends the filled text into the chat.
    scripts = await page.request.get(f"{base}/sidebar/api/contact/{tricky}/scripts?q=")
    assert scripts.status == 200
    listed = (await scripts.json())["scripts"]
    index, first = next((i, s) for i, s in enumerate(listed) if s["attachment"] is None)
    await page.locator("#scripts .script").first.wait_for()
    await page.locator("#scripts .btn-send").nth(index).click()
    await page.get_by_text("已发送到聊天").wait_for()
    sent = await page.evaluate("window.__bridgeCalls.filter(c => c.api === 'sendChatMessage')")
    assert sent[-1]["params"] == {"msgtype": "text", "text": {"content": first["text"]}}
    assert "{" not in first["text"]  # every variable filled

    # An image script: the picture goes out as a temporary media id that WeCom (the simulator) holds.
    image_index = next(i for i, s in enumerate(listed) if (s["attachment"] or {}).get("type") == "image")
    image_send = page.locator("#scripts .btn-send").nth(image_index)
    await image_send.click()
    await page.wait_for_function(  # its text, then the picture
        "n => window.__bridgeCalls.filter(c => c.api === 'sendChatMessage').length >= n + 2", arg=len(sent))
    sent = await page.evaluate("window.__bridgeCalls.filter(c => c.api === 'sendChatMessage')")
    assert sent[-1]["params"]["msgtype"] == "image"
    assert demo[0].state.media[sent[-1]["params"]["image"]["mediaid"]].type == "image"

    # Notes: add one, see it listed as the guide's own, withdraw it.
    await page.locator("#notes .note-input").fill("想要 3 段奶粉 <b>周六</b> 到店")
    await page.locator("#notes .btn-note").click()
    note = page.locator("#notes .note")
    await note.first.wait_for()
    assert await note.locator(".note-body").inner_text() == "想要 3 段奶粉 <b>周六</b> 到店"
    assert "刘洋" in await note.locator(".note-foot").inner_text()
    await page.screenshot(path=str(ARTIFACTS / "sidebar-notes.png"), full_page=True)
    await note.locator(".note-del").click()
    await page.get_by_text("还没有备注").wait_for()

    # The group chat toolbar.
    await _reload_context(page, page.locator("#demo-bar button[data-entry=group_chat_tools]").click())
    group_name = await page.locator("#demo-chat option:checked").inner_text()
    assert await hero.inner_text() == group_name
    assert "群主：刘洋" in await page.locator(".hero-remark").inner_text()
    assert await page.locator("#recent-joins .person").count() >= 1
    labels = [(await s.inner_text()) for s in await page.locator(".stats .stat-label").all()]
    assert labels == ["群成员", "客户", "已识别", "员工"]
    await page.screenshot(path=str(ARTIFACTS / "sidebar-group.png"), full_page=True)

    assert await page.evaluate("window.__htmlWrites") == []
    assert page.errors == []


async def test_sidebar_new_sdk_and_bad_signature(demo: tuple[Demo, str, str], page: Any) -> None:
    _, base, tricky = demo
    await _sign_in(page, base, "/sidebar/?sdk=ww")
    await _ready(page)  # the @wecom/jssdk path (ww.register with signature callbacks)
    assert "JS-SDK：ww" in await page.locator("#demo-bar").inner_text()
    await _reload_context(page, page.select_option("#demo-contact", tricky))
    assert await page.locator(".hero-name").inner_text() == TRICKY_NAME

    async def tamper(route: Any) -> None:
        resp = await route.fetch()
        body = await resp.json()
        body["agentConfig"]["signature"] = "0" * 40
        await route.fulfill(response=resp, json=body)

    # A wrong agentConfig signature is refused by the simulator and shown, for either SDK.
    await page.route("**/sidebar/api/jssdk-config*", tamper)
    for path in ("/sidebar/?sdk=ww", "/sidebar/"):
        await page.goto(base + path)
        await page.wait_for_function("document.body.dataset.state === 'error'")
        assert "签名校验失败" in await page.locator("#status-text").inner_text()

    # An expired session: the API says 401 and the page offers to sign in again.
    await page.unroute("**/sidebar/api/jssdk-config*")
    await page.goto(base + "/sidebar/")
    await _ready(page)
    await page.context.clear_cookies()
    await _reload_context(page, page.evaluate("window.dispatchEvent(new CustomEvent('sidebar:context'))"), "error")
    assert "重新登录" in await page.locator("#status").inner_text()
    assert page.errors == []


async def test_page_outside_the_demo_loads_the_real_sdk_and_escapes(client: Any, maker: Any, clock: Any) -> None:
    """No browser needed: the production page has no bridge, escapes the guide, and its config is inert JSON."""
    async with maker.begin() as session:
        session.add(Staff(userid="zhangsan", name="</script><b>张三</b>", role=StaffRole.GUIDE))
    cookie = {"Cookie": f"{SESSION_COOKIE}={sign_session(SECRET, 'zhangsan', int(clock.timestamp()))}"}
    resp = await client.get("/sidebar/", headers=cookie)
    text = await resp.text()
    assert resp.status == 200 and "&lt;/script&gt;&lt;b&gt;张三&lt;/b&gt;" in text
    assert "bridge.js" not in text and "jweixin-1.2.0.js" in text and "/static/sidebar.js?v=" in text
    config_text = re.search(r'<script type="application/json" id="sidebar-config">(.*?)</script>', text, re.S)
    assert config_text is not None
    config = json.loads(config_text.group(1))
    assert config["demo"] is False and config["simulator"] == ""
    assert config["api"]["contact"] == "/sidebar/api/contact/" and config["agentId"] == 1000002
    for demo_only in ("/sidebar/api/demo/contacts", "/sidebar/demo/bridge.js"):
        assert (await client.get(demo_only, headers=cookie)).status == 404, demo_only
    assert (await client.get("/static/bridge.js")).status == 404
    assert (await client.get("/static/sidebar.js")).status == 200
