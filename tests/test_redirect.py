"""The short-link redirect and click recording: the 302 and its Location, the visitor cookie, user-agent
classes, friendly pages for unknown and disabled codes, the link cache's TTL, batched click storage,
retries after database failures and the flush on graceful shutdown."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import ContentItem, LinkClick, ShareChannel, ShareLink, Staff
from scrm import keys
from scrm.app import create_app
from scrm.settings import Settings
from sharing.clicks import ClickRow, ClickWriter, store_clicks
from sharing.links import create_content, share_link_for
from sharing.recipients import customer_of, recipient_token
from sharing.redirect import (
    VISITOR_COOKIE,
    CachedLink,
    LinkCache,
    link_cache,
    set_link_cache,
    ua_class,
    with_share_code,
)
from tests.conftest import FakeClock

Maker = async_sessionmaker[AsyncSession]

WECOM_UA = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            "Mobile/15E148 wxwork/4.1.22 MicroMessenger/7.0.1 Language/zh ColorScheme/Light")
WECHAT_UA = ("Mozilla/5.0 (Linux; Android 14; V2307A Build/UP1A.231005.007; wv) AppleWebKit/537.36 (KHTML, like "
             "Gecko) Version/4.0 Chrome/116.0.0.0 Mobile Safari/537.36 XWEB/1160117 MMWEBSDK/20240404 "
             "MMWEBID/1234 MicroMessenger/8.0.49.2600(0x2800313D) WeChat/arm64 Weixin NetType/WIFI Language/zh_CN")
SAFARI_UA = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
             "Version/17.4 Mobile/15E148 Safari/604.1")


class Monotonic:
    """A monotonic clock the link-cache tests move by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


async def add_guide(maker: Maker, userid: str = "zhangsan") -> int:
    async with maker.begin() as session:
        staff = Staff(userid=userid, name="张三")
        session.add(staff)
        await session.flush()
        return staff.id


async def add_link(maker: Maker, settings: Settings, clock: FakeClock, guide_id: int,
                   target: str = "https://shop.example.com/p/88?sku=SKU-88&utm_source=guide#detail",
                   channel: ShareChannel = ShareChannel.NONE) -> ShareLink:
    async with maker.begin() as session:
        item = await create_content(session, {"kind": "product", "title": "有机纯牛奶 250ml×24", "target_url": target},
                                    now=clock())
        return await share_link_for(session, guide_id, item.id, channel, secret=settings.share_key, now=clock())


async def clicks(maker: Maker) -> list[LinkClick]:
    async with maker() as session:
        return list((await session.scalars(select(LinkClick).order_by(LinkClick.id))).all())


async def click_count(maker: Maker) -> int:
    async with maker() as session:
        return int(await session.scalar(select(func.count()).select_from(LinkClick)) or 0)


async def follow(client: TestClient, code: str, **kwargs: Any) -> tuple[int, dict[str, str], str]:
    async with client.get(f"/s/{code}", allow_redirects=False, **kwargs) as resp:
        return resp.status, dict(resp.headers), await resp.text()


# -- the Location -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "location"),
    [
        ("https://shop.example.com/p/1", "https://shop.example.com/p/1?scrm_share=Ab3dE9x"),
        ("https://shop.example.com/p?a=1&b=x%20y+z#top", "https://shop.example.com/p?a=1&b=x%20y+z&scrm_share=Ab3dE9x#top"),
        ("https://shop.example.com/p?scrm_share=OLD&a=1", "https://shop.example.com/p?a=1&scrm_share=Ab3dE9x"),
        ("https://shop.example.com/p?a=1&scrm%5Fshare=OLD&", "https://shop.example.com/p?a=1&scrm_share=Ab3dE9x"),
        ("https://shop.example.com/p?flag", "https://shop.example.com/p?flag&scrm_share=Ab3dE9x"),
        ("https://m.example.com/#/goods?id=9", "https://m.example.com/?scrm_share=Ab3dE9x#/goods?id=9"),
        ("https://shop.example.com/商品/牛奶?规格=大",
         "https://shop.example.com/%E5%95%86%E5%93%81/%E7%89%9B%E5%A5%B6?%E8%A7%84%E6%A0%BC=%E5%A4%A7&scrm_share=Ab3dE9x"),
        ("https://商城.example.com/p", "https://xn--czru2d.example.com/p?scrm_share=Ab3dE9x"),
    ],
)
def test_share_code_is_added_to_the_target(target: str, location: str) -> None:
    assert with_share_code(target, "Ab3dE9x") == location


@pytest.mark.parametrize(
    ("user_agent", "expected"),
    [(WECOM_UA, "wecom"), (WECHAT_UA, "wechat"), (SAFARI_UA, "other"), ("", "other")],
)
def test_user_agent_classes(user_agent: str, expected: str) -> None:
    assert ua_class(user_agent) == expected


async def test_redirect_keeps_query_and_fragment_and_appends_the_share_code(
    client: TestClient, maker: Maker, settings: Settings, clock: FakeClock
) -> None:
    guide = await add_guide(maker)
    link = await add_link(maker, settings, clock, guide,
                          "https://shop.example.com/p/88?sku=SKU-88&scrm_share=stale&utm_source=guide#detail")

    status, headers, _ = await follow(client, str(link.code))

    assert status == 302
    assert headers["Location"] == f"https://shop.example.com/p/88?sku=SKU-88&utm_source=guide&scrm_share={link.code}#detail"
    assert headers["Cache-Control"] == "no-store"


# -- the visitor cookie -----------------------------------------------------------------------------


async def test_visitor_cookie_is_minted_then_reused(
    client: TestClient, app: web.Application, maker: Maker, settings: Settings, clock: FakeClock
) -> None:
    guide = await add_guide(maker)
    first = await add_link(maker, settings, clock, guide, "https://shop.example.com/p/1")
    second = await add_link(maker, settings, clock, guide, "https://shop.example.com/p/2")

    async with client.get(f"/s/{first.code}", allow_redirects=False) as resp:
        cookie = resp.cookies[VISITOR_COOKIE]
    assert len(cookie.value) == 16
    assert cookie["max-age"] == str(365 * 24 * 3600)
    assert cookie["path"] == "/"
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert not cookie["secure"]  # public_base_url is http in the tests

    # The test client keeps cookies like a browser: the second click sends the first one's id.
    async with client.get(f"/s/{second.code}", allow_redirects=False) as resp:
        assert resp.cookies[VISITOR_COOKIE].value == cookie.value  # renewed for another year

    await app[keys.CLICK_WRITER].flush()
    rows = await clicks(maker)
    assert [(r.link_id, r.visitor_id) for r in rows] == [(first.id, cookie.value), (second.id, cookie.value)]


async def test_malformed_visitor_cookie_is_replaced(
    client: TestClient, app: web.Application, maker: Maker, settings: Settings, clock: FakeClock
) -> None:
    guide = await add_guide(maker)
    link = await add_link(maker, settings, clock, guide)
    client.session.cookie_jar.update_cookies({VISITOR_COOKIE: "x;<script>"})

    async with client.get(f"/s/{link.code}", allow_redirects=False) as resp:
        minted = resp.cookies[VISITOR_COOKIE].value

    assert minted != "x;<script>" and len(minted) == 16
    await app[keys.CLICK_WRITER].flush()
    assert [r.visitor_id for r in await clicks(maker)] == [minted]


async def test_visitor_cookie_is_found_among_other_cookies(
    client: TestClient, app: web.Application, maker: Maker, settings: Settings, clock: FakeClock
) -> None:
    guide = await add_guide(maker)
    link = await add_link(maker, settings, clock, guide)
    visitor = "Vv_-0123456789ab"
    decoy = "Dd_-0123456789ab"

    status, headers, _ = await follow(client, str(link.code), headers={
        "Cookie": f"x{VISITOR_COOKIE}={decoy}; session=abc; {VISITOR_COOKIE}={visitor}; theme=dark"})

    assert status == 302
    assert headers["Set-Cookie"].startswith(f"{VISITOR_COOKIE}={visitor};")
    await app[keys.CLICK_WRITER].flush()
    assert [r.visitor_id for r in await clicks(maker)] == [visitor]


async def test_visitor_cookie_is_secure_behind_https(
    settings: Settings, clock: FakeClock, maker: Maker, aiohttp_client: Any
) -> None:
    client = await aiohttp_client(create_app(settings.with_(public_base_url="https://scrm.example.com"),
                                             clock=clock, run_worker=False))
    guide = await add_guide(maker)
    link = await add_link(maker, settings, clock, guide)

    async with client.get(f"/s/{link.code}", allow_redirects=False) as resp:
        assert resp.status == 302
        assert resp.cookies[VISITOR_COOKIE]["secure"] is True


# -- recording ----------------------------------------------------------------------------------


async def test_clicks_are_stored_with_time_link_visitor_and_user_agent_class(
    client: TestClient, app: web.Application, maker: Maker, settings: Settings, clock: FakeClock
) -> None:
    guide = await add_guide(maker)
    link = await add_link(maker, settings, clock, guide)

    for user_agent in (WECOM_UA, WECHAT_UA, SAFARI_UA):
        client.session.cookie_jar.clear()
        status, _, _ = await follow(client, str(link.code), headers={"User-Agent": user_agent})
        assert status == 302
        clock.advance(60)

    await app[keys.CLICK_WRITER].flush()
    rows = await clicks(maker)
    assert [r.ua_class for r in rows] == ["wecom", "wechat", "other"]
    assert {r.link_id for r in rows} == {link.id}
    assert [r.at for r in rows] == [clock.now - dt.timedelta(seconds=s) for s in (180, 120, 60)]
    assert len({r.visitor_id for r in rows}) == 3  # cookies cleared: three visitors
    assert all(r.customer_id is None for r in rows)


async def test_head_redirects_without_counting_a_click(
    client: TestClient, app: web.Application, maker: Maker, settings: Settings, clock: FakeClock
) -> None:
    guide = await add_guide(maker)
    link = await add_link(maker, settings, clock, guide)

    async with client.head(f"/s/{link.code}", allow_redirects=False) as resp:
        assert resp.status == 302

    await app[keys.CLICK_WRITER].flush()
    assert await click_count(maker) == 0


# -- unknown, malformed and disabled codes --------------------------------------------------------


@pytest.mark.parametrize("path", ["/s/Zz9Zz9Z", "/s/", "/s/%3Cscript%3Ealert(1)%3C%2Fscript%3E", "/s/ab/cd",
                                  "/s/" + "a" * 40, "/s/Ab3dE9x%00"])
async def test_unknown_or_malformed_code_shows_a_friendly_page(client: TestClient, path: str) -> None:
    async with client.get(path, allow_redirects=False) as resp:
        body = await resp.text()
        assert resp.status == 404
        assert resp.content_type == "text/html"
        assert resp.headers["Cache-Control"] == "no-store"
    assert "链接已失效" in body and "导购" in body
    assert "<script>" not in body and "alert" not in body


async def test_disabled_link_or_item_shows_a_friendly_page_and_records_nothing(
    client: TestClient, app: web.Application, maker: Maker, settings: Settings, clock: FakeClock
) -> None:
    guide = await add_guide(maker)
    off_link = await add_link(maker, settings, clock, guide, "https://shop.example.com/p/1")
    off_item = await add_link(maker, settings, clock, guide, "https://shop.example.com/p/2")
    async with maker.begin() as session:
        await session.execute(update(ShareLink).where(ShareLink.id == off_link.id).values(enabled=False))
        await session.execute(update(ContentItem).where(ContentItem.id == off_item.content_id).values(enabled=False))

    for link in (off_link, off_item):
        status, headers, body = await follow(client, str(link.code))
        assert status == 410
        assert "Location" not in headers
        assert "链接已失效" in body and "导购" in body

    await app[keys.CLICK_WRITER].flush()
    assert await click_count(maker) == 0


async def test_disabling_takes_effect_once_the_cache_entry_expires(
    client: TestClient, app: web.Application, maker: Maker, settings: Settings, clock: FakeClock
) -> None:
    mono = Monotonic()
    set_link_cache(app, LinkCache(ttl=30, negative_ttl=5, clock=mono))
    guide = await add_guide(maker)
    link = await add_link(maker, settings, clock, guide)
    assert (await follow(client, str(link.code)))[0] == 302

    async with maker.begin() as session:  # an admin, in another process, disables the link
        await session.execute(update(ShareLink).where(ShareLink.id == link.id).values(enabled=False))

    mono.t += 29
    assert (await follow(client, str(link.code)))[0] == 302  # still cached
    mono.t += 2
    assert (await follow(client, str(link.code)))[0] == 410


async def test_a_new_link_resolves_once_its_negative_entry_expires(
    client: TestClient, app: web.Application, maker: Maker, settings: Settings, clock: FakeClock
) -> None:
    mono = Monotonic()
    set_link_cache(app, LinkCache(ttl=30, negative_ttl=5, clock=mono))
    guide = await add_guide(maker)
    link = await add_link(maker, settings, clock, guide)
    async with maker.begin() as session:  # the code is unknown for a moment
        await session.execute(update(ShareLink).where(ShareLink.id == link.id).values(code="Kk7Kk7K"))
    assert (await follow(client, str(link.code)))[0] == 404
    async with maker.begin() as session:
        await session.execute(update(ShareLink).where(ShareLink.id == link.id).values(code=link.code))

    assert (await follow(client, str(link.code)))[0] == 404  # remembered as unknown
    mono.t += 6
    assert (await follow(client, str(link.code)))[0] == 302


# -- the link cache ---------------------------------------------------------------------------------


def _link(link_id: int, code: str) -> CachedLink:
    return CachedLink(link_id, "https://x.example.com/", True, "https://x.example.com/?scrm_share=" + code)


async def test_link_cache_reads_concurrent_misses_in_one_query_and_stays_bounded() -> None:
    reads: list[list[str]] = []

    async def load(_maker: Any, codes: Sequence[str]) -> dict[str, CachedLink]:
        reads.append(list(codes))
        await asyncio.sleep(0.01)
        return {c: _link(len(reads), c) for c in codes if c != "Unknown"}

    cache = LinkCache(max_size=3, load=load)
    maker: Any = None
    same = await asyncio.gather(*(cache.lookup("Aaaaaaa", maker) for _ in range(20)))
    assert reads == [["Aaaaaaa"]] and {r.link_id for r in same if r} == {1}

    many = await asyncio.gather(*(cache.lookup(c, maker) for c in ("Bbbbbbb", "Ccccccc", "Unknown", "Bbbbbbb")))
    assert reads[1] == ["Bbbbbbb", "Ccccccc", "Unknown"]  # one query for every code missed meanwhile
    assert [r.link_id if r else None for r in many] == [2, 2, None, 2]
    assert len(cache) == 3  # bounded: "Aaaaaaa" (the oldest) made room
    await cache.lookup("Aaaaaaa", maker)
    assert reads[-1] == ["Aaaaaaa"] and len(reads) == 3
    await cache.lookup("Unknown", maker)  # negative entries are cached too
    assert len(reads) == 3


async def test_link_cache_keeps_redirecting_on_a_cached_link_while_the_database_fails() -> None:
    mono = Monotonic()
    failing = False

    async def load(_maker: Any, codes: Sequence[str]) -> dict[str, CachedLink]:
        if failing:
            raise OperationalError("SELECT", {}, Exception("connection refused"))
        return {c: _link(7, c) for c in codes}

    cache = LinkCache(ttl=30, clock=mono, load=load)
    maker: Any = None
    assert (await cache.lookup("Aaaaaaa", maker)) == _link(7, "Aaaaaaa")
    failing = True
    mono.t += 31
    assert (await cache.lookup("Aaaaaaa", maker)) == _link(7, "Aaaaaaa")
    with pytest.raises(OperationalError):
        await cache.lookup("Bbbbbbb", maker)


async def test_database_failure_on_a_miss_shows_a_try_again_page(
    client: TestClient, app: web.Application
) -> None:
    async def load(_maker: Any, codes: Sequence[str]) -> dict[str, CachedLink]:
        raise OperationalError("SELECT", {}, Exception("connection refused"))

    set_link_cache(app, LinkCache(load=load))
    status, _, body = await follow(client, "Ab3dE9x")
    assert status == 503
    assert "稍后再试" in body


# -- the writer -------------------------------------------------------------------------------------


async def test_clicks_are_written_in_batches_without_waiting_for_the_interval(maker: Maker, settings: Settings,
                                                                              clock: FakeClock) -> None:
    guide = await add_guide(maker)
    link = await add_link(maker, settings, clock, guide)
    batches: list[int] = []

    async def write(rows: Sequence[ClickRow]) -> None:
        batches.append(len(rows))
        await store_clicks(maker, rows)

    writer = ClickWriter(write=write, interval=3600, flush_at=100)
    writer.start()
    await asyncio.sleep(0)
    for i in range(250):
        writer.record(link.id, clock(), f"visitor{i:011d}", "other")
    for _ in range(50):  # the two full batches go without waiting an hour
        if writer.stored >= 200:
            break
        await asyncio.sleep(0.01)
    assert writer.stored >= 200
    await writer.close()
    assert sum(batches) == 250 and await click_count(maker) == 250


async def test_writer_keeps_the_batch_and_retries_after_a_database_error(
    maker: Maker, settings: Settings, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    guide = await add_guide(maker)
    link = await add_link(maker, settings, clock, guide)
    calls = 0

    async def flaky(rows: Sequence[ClickRow]) -> None:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise OperationalError("INSERT INTO link_clicks", {}, Exception("database is locked"))
        await store_clicks(maker, rows)

    writer = ClickWriter(write=flaky, interval=0.01, retry_min=0.01)
    writer.start()
    for i in range(40):
        writer.record(link.id, clock(), f"visitor{i:011d}", "wechat")
    with caplog.at_level(logging.WARNING, logger="sharing.clicks"):
        await asyncio.wait_for(writer.flush(), 5)
    await writer.close()

    assert calls == 3 and writer.failures == 2
    assert writer.stored == 40 and writer.dropped == 0
    assert sorted(r.visitor_id for r in await clicks(maker)) == [f"visitor{i:011d}" for i in range(40)]
    assert "could not store 40 clicks" in caplog.text


async def test_clicks_survive_a_real_database_error_in_the_service(
    client: TestClient, app: web.Application, maker: Maker, settings: Settings, clock: FakeClock
) -> None:
    guide = await add_guide(maker)
    link = await add_link(maker, settings, clock, guide)
    writer = app[keys.CLICK_WRITER]
    async with maker.begin() as session:  # the table is gone: every insert fails
        await session.execute(text("ALTER TABLE link_clicks RENAME TO link_clicks_away"))
    try:
        for _ in range(20):
            assert (await follow(client, str(link.code)))[0] == 302  # redirects go on meanwhile
        for _ in range(200):
            if writer.failures:
                break
            await asyncio.sleep(0.02)
        assert writer.failures >= 1 and writer.pending == 20
    finally:
        async with maker.begin() as session:
            await session.execute(text("ALTER TABLE link_clicks_away RENAME TO link_clicks"))

    await asyncio.wait_for(writer.flush(), 10)
    assert await click_count(maker) == 20 and writer.dropped == 0


async def test_graceful_shutdown_stores_every_buffered_click(
    client: TestClient, app: web.Application, maker: Maker, settings: Settings, clock: FakeClock
) -> None:
    guide = await add_guide(maker)
    links = [await add_link(maker, settings, clock, guide, f"https://shop.example.com/p/{n}") for n in range(3)]
    writer = app[keys.CLICK_WRITER]
    writer.interval, writer.flush_at = 3600, 1_000_000  # nothing is written until shutdown
    await asyncio.sleep(0.3)  # let the writer's current 0.25 s wait run out

    async def one(i: int) -> int:
        return (await follow(client, str(links[i % 3].code)))[0]

    statuses = await asyncio.gather(*(one(i) for i in range(300)))
    assert statuses == [302] * 300
    assert writer.pending == 300 and await click_count(maker) == 0

    await client.close()  # runs the app's cleanup contexts, as SIGTERM does for run_app

    assert await click_count(maker) == 300
    async with maker() as session:
        per_link = dict((await session.execute(select(LinkClick.link_id, func.count()).group_by(LinkClick.link_id))).all())
    assert per_link == {link.id: 100 for link in links}


async def test_close_gives_up_loudly_when_the_database_never_comes_back(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    async def down(rows: Sequence[ClickRow]) -> None:
        raise OperationalError("INSERT INTO link_clicks", {}, Exception("connection refused"))

    writer = ClickWriter(write=down, retry_min=0.01)
    writer.start()
    for i in range(5):
        writer.record(1, clock(), f"visitor{i:011d}", "other")
    with caplog.at_level(logging.ERROR, logger="sharing.clicks"):
        await asyncio.wait_for(writer.close(timeout=0.2), 5)
    assert writer.stored == 0 and writer.dropped == 5
    assert "5 clicks not stored" in caplog.text


async def test_full_buffer_drops_the_oldest_clicks_loudly(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    stored: list[ClickRow] = []

    async def write(rows: Sequence[ClickRow]) -> None:
        stored.extend(rows)

    writer = ClickWriter(write=write, max_buffer=10)  # not started: nothing drains the buffer
    with caplog.at_level(logging.ERROR, logger="sharing.clicks"):
        for i in range(15):
            writer.record(i, clock(), f"visitor{i:011d}", "other")
    assert writer.dropped == 5 and writer.pending == 10
    assert "dropping clicks" in caplog.text

    await writer.close()
    assert [row[0] for row in stored] == list(range(5, 15))


def test_recipient_tokens_name_one_customer_and_cannot_be_forged() -> None:
    token = recipient_token("k" * 32, 123456789)
    assert customer_of("k" * 32, token) == 123456789 and len(token) <= 16
    assert customer_of("other-key" * 4, token) is None
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert customer_of("k" * 32, tampered) is None
    assert customer_of("k" * 32, "") is None and customer_of("k" * 32, "!!!") is None


async def test_a_link_in_use_is_re_read_in_the_background_and_never_expires_into_a_miss() -> None:
    mono = Monotonic()
    reads: list[list[str]] = []
    target = "https://x.example.com/"

    async def load(_maker: Any, codes: Sequence[str]) -> dict[str, CachedLink]:
        reads.append(list(codes))
        return {c: CachedLink(1, target, live, target + "?scrm_share=" + c) for c in codes}

    live = True
    cache = LinkCache(ttl=30, clock=mono, load=load)
    maker: Any = None
    await cache.lookup("Aaaaaaa", maker)
    mono.t += 10
    await cache.lookup("Aaaaaaa", maker)  # fresh: no read
    assert len(reads) == 1
    live = False  # disabled meanwhile, in another process
    mono.t += 10  # 20 s old: served from memory at once, and re-read behind the click
    assert (await cache.lookup("Aaaaaaa", maker)).live
    await asyncio.sleep(0)
    assert reads == [["Aaaaaaa"], ["Aaaaaaa"]] and cache.refreshes == 1
    mono.t += 25  # past the first read's TTL: the refreshed entry answers, and knows of the disable
    assert not (await cache.lookup("Aaaaaaa", maker)).live and cache.misses == 1


async def test_a_starting_service_has_the_newest_links_in_memory(
    maker: Maker, settings: Settings, clock: FakeClock, aiohttp_client: Any
) -> None:
    guide = await add_guide(maker)
    link = await add_link(maker, settings, clock, guide)
    app = create_app(settings, clock=clock, run_worker=False)
    client = await aiohttp_client(app)
    cache = link_cache(app)
    for _ in range(100):  # the preload runs in the background as the service starts
        if len(cache):
            break
        await asyncio.sleep(0.01)
    assert (await follow(client, str(link.code)))[0] == 302
    assert cache.misses == 0 and cache.hits == 1
