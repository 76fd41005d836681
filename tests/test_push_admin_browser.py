"""The admin page of scheduled group pushes (/admin/pushes) in headless Chromium on a laptop-size viewport.

The service (SQLite, or PostgreSQL with DATABASE_URL) and the WeCom simulator run as real servers on
127.0.0.1; the page creates a push, dry-runs it, sends it now (the bar follows the WeCom tasks being
created), shows the results once guides confirmed, refuses a bad form with the API's Chinese error, and
cancels one run of a weekly push.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import zoneinfo
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import Customer
from pushes.runner import PUSH_RUNNER
from tests.brand import Brand
from tests.test_pushes import _tag
from tests.test_sidebar_browser import ARTIFACTS, browser_page
from wecom.errors import WeComError
from wecom.gateway import MassMessageResult
from wecom.simulator.state import SimulatorState

LAPTOP: Final = (1280, 800)
TRICKY: Final = "<b>x</b> 周三第二杯半价"
REFUSED_SENDER: Final = "gzguide"  # WeCom refuses this guide's task (60011): a failure with its error code


class HeldGateway:
    """The app's gateway, but each add_msg_template waits for the test to let it through (one per permit)."""

    def __init__(self, gateway: Any) -> None:
        self._gateway = gateway
        self._permits = asyncio.Semaphore(0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._gateway, name)

    def release(self, calls: int) -> None:
        """Let ``calls`` more task creations through."""
        for _ in range(calls):
            self._permits.release()

    async def add_msg_template(self, body: Mapping[str, Any]) -> MassMessageResult:
        """Wait for a permit; then refuse the refused sender's task, or create it in the simulator."""
        await self._permits.acquire()
        if body.get("sender") == REFUSED_SENDER:
            raise WeComError(60011, "no privilege to access/modify contact/party/agent", "add_msg_template")
        return await self._gateway.add_msg_template(body)


def laptop_page(base: str, timezone: str) -> contextlib.AbstractAsyncContextManager[Any]:
    """A laptop-sized Chromium page in the brand's time zone that reaches only ``base``."""
    return browser_page(base, viewport=LAPTOP, phone=False, timezone=timezone)


@pytest.fixture
async def admin_page(client: TestClient, settings: Any) -> AsyncIterator[Any]:
    """The pushes page, signed in with the admin token, loaded."""
    base = str(client.make_url("")).rstrip("/")
    async with laptop_page(base, settings.timezone) as page:
        await page.goto(f"{base}/admin/login?token={settings.admin_token}")
        await page.goto(f"{base}/admin/pushes")
        await page.wait_for_function("document.body.dataset.state === 'ready'")
        yield page


async def _all_customers(maker: async_sessionmaker[AsyncSession]) -> list[int]:
    async with maker() as session:
        return list((await session.scalars(select(Customer.id))).all())


async def _attr(locator: Any, name: str) -> str:
    return str(await locator.get_attribute(name))


async def _stat(section: Any, key: str) -> str:
    return str(await section.locator(f'.stat[data-stat="{key}"] .stat-value').inner_text())


async def test_the_pushes_page_creates_dry_runs_sends_and_cancels(
        app: web.Application, admin_page: Any, brand: Brand, sim_state: SimulatorState,
        maker: async_sessionmaker[AsyncSession], clock: Any, settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    page = admin_page
    tz = zoneinfo.ZoneInfo(settings.timezone)
    tag_id = await _tag(maker, clock, await _all_customers(maker))
    held = HeldGateway(app[PUSH_RUNNER].gateway)
    monkeypatch.setattr(app[PUSH_RUNNER], "gateway", held)
    assert await page.locator("#push-list .empty").inner_text() == "没有计划中的群发：用右侧表单新建一个"

    # Create a once push an hour ahead, to everyone with the tag, with a link card.
    at = (clock() + dt.timedelta(hours=1)).astimezone(tz).replace(second=0)
    await page.fill("#f-name", TRICKY)
    await page.select_option("#f-aud-kind", "tags")  # reads the pickers again: the tag made above is there
    chip = page.locator(".picks[data-pick=tags] button", has_text="运营-活跃 · 活跃")
    await chip.click()
    assert await page.input_value("#f-tag-ids") == str(tag_id)
    assert await chip.get_attribute("aria-pressed") == "true"
    text = "我是{guide_name}，{store_name}本周三第二杯半价！"
    await page.fill("#f-text", text)
    assert await page.locator("#f-text-bytes").inner_text() == str(len(text.encode()))
    await page.fill("#f-link-title", "第二杯半价")
    await page.fill("#f-link-url", "https://shop.example.com/p/88")
    await page.fill("#f-at", at.strftime("%Y-%m-%dT%H:%M"))
    await page.fill("#f-cap", "")
    await page.click("#f-submit")
    await page.locator("#form-ok").wait_for()
    card = page.locator("#push-list article.push").filter(has_text="周三第二杯半价")
    await card.wait_for()
    # Data is text, never markup: the name shows literally and no element came from it.
    assert await card.locator(".push-name").inner_text() == TRICKY
    assert await card.locator(".push-name b").count() == 0
    assert await card.locator(".badge").first.inner_text() == "启用中"
    assert "一次" in await card.locator(".meta").inner_text() and "1 个附件" in await card.inner_text()
    (upcoming,) = await card.locator("ul.upcoming li").all()
    assert dt.datetime.fromisoformat(await _attr(upcoming, "data-at")) == at
    assert at.strftime("%Y-%m-%d") in await upcoming.inner_text() and at.strftime("%H:%M") in await upcoming.inner_text()

    # 试算: who it would reach, through which guides; nothing is sent.
    await card.locator("button.dry-run").click()
    dry = card.locator(".dry")
    await dry.locator("table.split tbody tr").first.wait_for()
    assert (await _stat(dry, "audience"), await _stat(dry, "targeted"), await _stat(dry, "no_guide")) == ("6", "4", "2")
    names = await dry.locator("table.split .guide-name").all_inner_texts()
    assert sorted(names) == sorted(["张三", "李四", "赵六", "黄小明"])
    assert "每天 1 次" in await dry.locator(".quota").inner_text()
    assert not sim_state.mass_messages

    # 立即发送: the run shows in 发送中 with a bar that follows the WeCom tasks being created.
    sim_state.ev_customer_deletes_member("lisi", brand.lilei)  # 李雷 removed 李四 meanwhile: not a friend
    await card.locator("button.run-now").click()
    run = page.locator("#running-list article.run").first
    await run.wait_for()
    run_id = int(await _attr(run, "data-run-id"))
    bar = run.locator('[role="progressbar"]')
    await page.wait_for_function(
        "() => document.querySelector('#running-list [role=progressbar]')?.getAttribute('aria-valuemax') === '4'")
    assert await _attr(bar, "aria-valuenow") == "0"
    assert await _attr(run, "data-status") == "creating"
    held.release(2)  # gzguide's task is refused, lisi's is created
    await page.wait_for_function(
        "() => document.querySelector('#running-list [role=progressbar]')?.getAttribute('aria-valuenow') === '2'")
    assert "2 / 4" in await run.locator(".phase").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "admin-pushes-creating.png"))
    held.release(2)
    waiting = page.locator(f'#running-list article.run[data-run-id="{run_id}"][data-status="polling"]')
    await waiting.wait_for()
    assert "等待导购确认" in await waiting.inner_text()
    assert await waiting.locator(".confirmed").inner_text() == "已确认 0 / 3 个任务"
    assert len(sim_state.mass_messages) == 3

    # Guides confirm in WeCom; the service polls the results; a refresh shows the numbers.
    for message in sim_state.mass_messages.values():
        for userid in message.tasks:
            sim_state.confirm_mass_task(message.msgid, userid)
    assert await app[PUSH_RUNNER].poll(run_id)
    await page.click("#refresh")
    row = page.locator(f'#finished-list tr[data-run-id="{run_id}"][data-status="finished"]')
    await row.wait_for()
    assert await page.locator("#running-list article.run").count() == 0
    assert (await row.locator("td.targeted").inner_text(), await row.locator("td.sent").inner_text()) == ("4", "2")
    assert await row.locator(".open-run").inner_text() == TRICKY
    await row.locator(".open-run").click()
    detail = page.locator(f'#run-detail[data-run-id="{run_id}"]')
    await detail.wait_for()
    assert [await _stat(detail, k) for k in ("targeted", "created", "confirmed", "sent", "failed")] == \
        ["4", "3 / 4", "3", "2", "2"]
    segments = {await _attr(r, "data-outcome"): await _attr(r, "data-value")
                for r in await detail.locator(".outcome-bar:not(.compact) svg rect").all()}
    assert segments == {"sent": "2", "not_friend": "1", "failed": "1", "skipped": "2"}
    reasons = await detail.locator("ul.reasons").inner_text()
    assert "非好友" in reasons and "无导购可发送" in reasons
    assert "错误码 60011" in await detail.locator('ul.reasons li.failure[data-error-code="60011"]').inner_text()
    guides = {await _attr(r, "data-userid"): await r.inner_text() for r in await detail.locator("table.per-guide tbody tr").all()}
    assert set(guides) == {"gzguide", "lisi", "zhangsan", "zhaoliu"}
    assert "黄小明" in guides["gzguide"] and "失败 60011" in guides["gzguide"] and "已确认" in guides["zhangsan"]
    await page.screenshot(path=str(ARTIFACTS / "admin-pushes.png"))
    await page.screenshot(path=str(ARTIFACTS / "admin-pushes-full.png"), full_page=True)

    # A customer variable is refused by the API; the form shows its Chinese error on the 内容 field.
    await page.fill("#f-name", "坏的群发")
    await page.fill("#f-tag-ids", str(tag_id))
    await page.fill("#f-text", "亲爱的{customer_name}，周末见")
    await page.fill("#f-at", at.strftime("%Y-%m-%dT%H:%M"))
    await page.click("#f-submit")
    error = page.locator("#form-error")
    await error.wait_for()
    assert await _attr(error, "data-field") == "content.text"
    message = await error.inner_text()
    assert message.startswith("内容：") and "不能使用客户变量 {customer_name}" in message
    assert "invalid" in (await _attr(page.locator('label[data-field="content.text"]'), "class"))
    await page.screenshot(path=str(ARTIFACTS / "admin-pushes-error.png"))

    # A weekly push (Wednesdays 10:00); cancel its second upcoming run only.
    await page.fill("#f-name", "每周三会员日")
    await page.fill("#f-text", "{store_name}会员日，到店有礼")
    await page.select_option("#f-sched-kind", "weekly")
    await page.check('input[name="weekday"][value="3"]')
    await page.fill("#f-time", "10:00")
    await page.click("#f-submit")
    await page.locator("#form-ok").wait_for()
    assert await error.is_hidden()
    weekly = page.locator("#push-list article.push").filter(has_text="每周三会员日")
    await weekly.wait_for()
    assert "每周三 10:00" in await weekly.locator(".meta").inner_text()
    runs = weekly.locator("ul.upcoming li")
    assert await runs.count() == 5
    second = await _attr(runs.nth(1), "data-at")
    await runs.nth(1).locator("button.cancel-run").click()
    cancelled = weekly.locator(f'ul.upcoming li[data-at="{second}"][data-cancelled="1"]')
    await cancelled.wait_for()
    assert await cancelled.locator(".badge").inner_text() == "已取消"
    assert await weekly.locator('ul.upcoming li[data-cancelled="1"]').count() == 1
    assert await weekly.locator("button.cancel-run").count() == 4
    await page.locator('#finished-list tr[data-status="cancelled"]').filter(has_text="每周三会员日").wait_for()
    await page.evaluate("window.scrollTo(0, 0)")
    await page.screenshot(path=str(ARTIFACTS / "admin-pushes-list.png"))

    assert await page.evaluate("window.__htmlWrites") == []
    assert page.errors == []
