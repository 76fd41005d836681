"""The short-link redirect: ``GET /s/{code}`` answers a 302 at once and records the click off the path.

The shop gets the share code as ``scrm_share=<code>`` in the target's query, to carry into the order
for attribution. Codes resolve through an in-process ``LinkCache`` (misses read in batches, one query
each; TTL 30 s, so a link or item an admin disables in another process stops redirecting within the
TTL; unknown codes are cached too, for 5 s). A link clicked in the second half of its TTL is re-read
in the background (the click is served from memory), so links in use never expire into a miss; and a
starting process loads the newest links at once, so a deploy does not turn every click into a miss. The click (time, link, visitor cookie, user-agent class) goes to the
``ClickWriter`` buffer: the request never waits for the database except on a cache miss.

Unknown, malformed or disabled codes get a small Chinese page asking the visitor to get a new link
from their guide (404, or 410 for a disabled link); a database failure on a miss gets a "try again"
page (503). Nothing the visitor sent is echoed back.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote, unquote_plus, urlsplit, urlunsplit

from aiohttp import web
from multidict import CIMultiDict
from sqlalchemy import String, any_, bindparam, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import ContentItem, ShareLink
from scrm import keys
from scrm.settings import Settings
from scrm.tasks import cancel_and_wait
from sharing.codes import looks_like_code
from sharing.links import SHORT_PATH
from sharing.oa_identify import OA_COOKIE, OA_SUFFIX, authorize_url, customer_by_unionid, unionid_for
from sharing.recipients import RECIPIENT_PARAM, customer_of

_LOGGER = logging.getLogger(__name__)

SHARE_PARAM: Final = "scrm_share"
VISITOR_COOKIE: Final = "scrm_vid"
VISITOR_MAX_AGE: Final = 365 * 24 * 3600  # one year, renewed on every click
CACHE_TTL: Final = 30.0  # seconds a resolved code is trusted (admins' disables take effect within it)
NEGATIVE_TTL: Final = 5.0  # seconds an unknown code is remembered as unknown
ERROR_TTL: Final = 5.0  # seconds a stale entry is served again while the database fails
CACHE_SIZE: Final = 100_000  # codes kept at most (oldest inserted evicted first)
LOAD_BATCH: Final = 500  # codes read with one query at most
MAX_READERS: Final = 2  # batch reads in flight at once (well under the engine's pool size)
PRELOAD: Final = 20_000  # newest links read into the cache when the process starts

# The visitor cookie in a Cookie header, if well-formed: what secrets.token_urlsafe(12) mints (16
# characters), with a little slack for ids minted elsewhere. One search instead of parsing every cookie.
_VISITOR_IN_COOKIES: Final = re.compile(rf"(?:^|;)\s*{VISITOR_COOKIE}=([A-Za-z0-9_-]{{16,32}})\s*(?:;|$)")
# Everything a URL may carry unescaped; the rest (non-ASCII, spaces, controls) is percent-encoded so
# the Location header is always valid ASCII and cannot be split.
_URL_SAFE: Final = "!#$%&'()*+,/:;=?@[]~"


@dataclass(frozen=True, slots=True)
class CachedLink:
    """What the redirect needs to know about a code."""

    link_id: int
    target_url: str
    live: bool  # the link and its content item are both enabled
    location: str  # target_url with the share code added (computed once per cache fill)


def with_share_code(target_url: str, code: str) -> str:
    """``target_url`` with ``scrm_share=<code>`` in its query; other parameters and the #fragment kept."""
    url, hash_mark, fragment = target_url.partition("#")
    base, _, query = url.partition("?")
    params = [p for p in query.split("&") if unquote_plus(p.partition("=")[0]) != SHARE_PARAM]
    while params and not params[-1]:
        params.pop()
    params.append(f"{SHARE_PARAM}={quote(code, safe='')}")
    return _header_safe(base + "?" + "&".join(params) + hash_mark + fragment)


def _header_safe(url: str) -> str:
    if url.isascii() and url.isprintable() and " " not in url:
        return url
    parts = urlsplit(url)
    if not parts.netloc.isascii():
        userinfo, at, hostport = parts.netloc.rpartition("@")
        host, colon, port = hostport.partition(":")
        with_idna = userinfo + at + host.encode("idna").decode("ascii") + colon + port
        url = urlunsplit(parts._replace(netloc=with_idna))
    return quote(url, safe=_URL_SAFE)


def ua_class(user_agent: str) -> str:
    """'wecom' for WeCom's browser, 'wechat' for WeChat's, else 'other'."""
    if "wxwork" in user_agent:  # WeCom's user agent also says MicroMessenger: test it first
        return "wecom"
    if "MicroMessenger" in user_agent:
        return "wechat"
    return "other"


def _cached_link(code: str, link_id: int, target_url: str, link_enabled: bool, item_enabled: bool) -> CachedLink:
    live = bool(link_enabled and item_enabled)
    try:
        location = with_share_code(target_url, code)
    except (ValueError, UnicodeError):
        _LOGGER.error("share link %d: target %r cannot be redirected to; treating it as disabled", link_id, target_url)
        live, location = False, ""
    return CachedLink(link_id, target_url, live, location)


_LINKS: Final = select(ShareLink.code, ShareLink.id, ContentItem.target_url, ShareLink.enabled,
                       ContentItem.enabled).join(ContentItem, ContentItem.id == ShareLink.content_id)
# Built once: constructing a statement and its cache key per read costs more than the read on PostgreSQL.
# There "= ANY(array)" is one prepared statement whatever the batch size (IN (...) is one per size).
_LINKS_BY_CODE_ARRAY: Final = _LINKS.where(ShareLink.code == any_(bindparam("codes", type_=postgresql.ARRAY(String))))
_LINKS_BY_CODES: Final = _LINKS.where(ShareLink.code.in_(bindparam("codes", expanding=True)))
_NEWEST_LINKS: Final = _LINKS.where(ShareLink.enabled.is_(True), ContentItem.enabled.is_(True)).order_by(
    ShareLink.id.desc()).limit(bindparam("limit"))


async def load_links(maker: async_sessionmaker[AsyncSession], codes: Sequence[str]) -> dict[str, CachedLink]:
    """The links behind ``codes`` from the database, in one query; unknown codes are absent."""
    async with maker() as session:
        if session.get_bind().dialect.name == "postgresql":
            # One round trip: a single-statement read needs no BEGIN and ROLLBACK around it.
            conn = await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            rows = (await conn.execute(_LINKS_BY_CODE_ARRAY, {"codes": list(codes)})).all()
        else:
            conn = await session.connection()
            rows = (await conn.execute(_LINKS_BY_CODES, {"codes": list(codes)})).all()
    return {
        str(code): _cached_link(str(code), link_id, target_url, link_enabled, item_enabled)
        for code, link_id, target_url, link_enabled, item_enabled in rows
    }


LoadLinks = Callable[[async_sessionmaker[AsyncSession], Sequence[str]], Awaitable[dict[str, CachedLink]]]


class LinkCache:
    """Code -> CachedLink (or None for unknown) with a TTL and a size bound; misses are read in batches.

    Misses queue up; a reader task takes the whole queue and fetches it with one ``IN (...)`` query
    (the group-commit idea of bot.inbox, for reads). Up to ``max_readers`` reads run at once, so a
    miss does not wait behind a read already on its way. Under load a cold cache costs one round
    trip per batch, not per request, and a code is never read twice at once.
    """

    def __init__(
        self,
        *,
        ttl: float = CACHE_TTL,
        negative_ttl: float = NEGATIVE_TTL,
        max_size: int = CACHE_SIZE,
        max_batch: int = LOAD_BATCH,
        max_readers: int = MAX_READERS,
        clock: Callable[[], float] = time.monotonic,
        load: LoadLinks = load_links,
    ) -> None:
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.max_size = max_size
        self.max_batch = max_batch
        self.max_readers = max_readers
        self._clock = clock
        self._load = load
        self._entries: dict[str, tuple[float, CachedLink | None]] = {}
        # Codes queued or being read, with a future per waiting request (its own, so a cancelled
        # request cancels nobody else's answer; and no shield, whose extra hop adds a loop turn).
        self._pending: dict[str, list[asyncio.Future[CachedLink | None]]] = {}
        self._queue: list[str] = []  # codes waiting for the next read
        self._readers = 0  # reader tasks alive
        self._starting = False  # one of them has not taken the queue yet
        self.hits = 0
        self.misses = 0
        self.reads = 0
        self.refreshes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every code (the next request for each reads the database)."""
        self._entries.clear()

    async def lookup(self, code: str, maker: async_sessionmaker[AsyncSession]) -> CachedLink | None:
        """The link for ``code``: from memory while fresh, else from the database (raises if it fails)."""
        entry = self._entries.get(code)
        if entry is not None:
            left = entry[0] - self._clock()
            if left > 0:
                self.hits += 1
                if left < self.ttl / 2 and entry[1] is not None and code not in self._pending:
                    self._refresh(code, maker)  # in use: re-read before it expires, nobody waits for it
                return entry[1]
        self.misses += 1
        future: asyncio.Future[CachedLink | None] = asyncio.get_running_loop().create_future()
        waiters = self._pending.get(code)
        if waiters is not None:
            waiters.append(future)
        else:
            self._pending[code] = [future]
            self._queue.append(code)
            self._start_reader(maker)
        return await future

    def _refresh(self, code: str, maker: async_sessionmaker[AsyncSession]) -> None:
        self.refreshes += 1
        self._pending[code] = []
        self._queue.append(code)
        self._start_reader(maker)

    def _start_reader(self, maker: async_sessionmaker[AsyncSession]) -> None:
        if not self._starting and self._readers < self.max_readers:
            # A task of its own, so a cancelled request does not cancel the read.
            self._starting = True
            self._readers += 1
            asyncio.create_task(self._read(maker), name="link-cache-reader")

    async def preload(self, maker: async_sessionmaker[AsyncSession], limit: int = PRELOAD) -> int:
        """Read the newest ``limit`` live links into the cache (a starting process); how many."""
        async with maker() as session:
            rows = (await (await session.connection()).execute(_NEWEST_LINKS, {"limit": limit})).all()
        for code, link_id, target_url, link_enabled, item_enabled in rows:
            if str(code) not in self._entries:
                self._store(str(code), _cached_link(str(code), link_id, target_url, link_enabled, item_enabled),
                            self.ttl)
        return len(rows)

    async def _read(self, maker: async_sessionmaker[AsyncSession]) -> None:
        codes: list[str] = []
        try:
            self._starting = False
            # Go on while codes wait and no fresher reader is about to take them.
            while self._queue and not self._starting:
                codes, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                self.reads += 1
                try:
                    links = await self._load(maker, codes)
                except Exception as exc:  # whatever the database raised goes to these requests
                    self._failed(codes, exc)
                else:
                    for code in codes:
                        link = links.get(code)
                        self._store(code, link, self.ttl if link is not None else self.negative_ttl)
                        self._answer(code, link)
                codes = []
        finally:
            self._readers -= 1
            # Only when cancelled (the loop shutting down): nobody else will answer these.
            left = codes + (self._queue if not self._readers else [])
            for code in left:
                self._answer(code, None, asyncio.CancelledError())
            if not self._readers:
                self._queue, self._starting = [], False

    def _failed(self, codes: list[str], exc: Exception) -> None:
        stale_served = 0
        for code in codes:
            entry = self._entries.get(code)
            if entry is not None and entry[1] is not None:
                # The database is failing, but this code was valid moments ago: keep redirecting (a failed
                # refresh-ahead keeps what its entry had left).
                self._store(code, entry[1], max(ERROR_TTL, entry[0] - self._clock()))
                self._answer(code, entry[1])
                stale_served += 1
            else:
                self._answer(code, None, exc)
        _LOGGER.warning("reading %d share codes failed (%d answered from stale cache entries for %.0f s more)",
                        len(codes), stale_served, ERROR_TTL, exc_info=exc)

    def _answer(self, code: str, link: CachedLink | None, exc: BaseException | None = None) -> None:
        for future in self._pending.pop(code, ()):
            if future.done():
                continue
            if exc is None:
                future.set_result(link)
            else:
                future.set_exception(exc)

    def _store(self, code: str, link: CachedLink | None, ttl: float) -> None:
        entries = self._entries
        if entries.pop(code, None) is None:
            while len(entries) >= self.max_size:
                del entries[next(iter(entries))]  # the oldest insertion
        entries[code] = (self._clock() + ttl, link)


# One cache per application, kept beside it (not under an AppKey): it needs no start-up or clean-up,
# may be swapped by tests after the app is frozen, and goes away with the app.
_CACHES: Final = weakref.WeakKeyDictionary[web.Application, LinkCache]()


def link_cache(app: web.Application) -> LinkCache:
    """The application's link cache (created on first use)."""
    cache = _CACHES.get(app)
    if cache is None:
        cache = _CACHES[app] = LinkCache()
    return cache


async def link_preload_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx (after the database): the newest links are read into the cache while the process starts."""
    async def preload() -> None:
        try:
            count = await link_cache(app).preload(app[keys.SESSIONMAKER])
        except Exception:  # only a warm-up: clicks read their links on demand anyway
            _LOGGER.exception("preloading share links failed")
        else:
            _LOGGER.info("share links preloaded: %d", count)

    task = asyncio.create_task(preload(), name="link-preload")
    yield
    await cancel_and_wait(task)


def set_link_cache(app: web.Application, cache: LinkCache) -> None:
    """Give the application its own link cache (tests: a short TTL or a fake clock)."""
    _CACHES[app] = cache


# -- pages ------------------------------------------------------------------------------------------

_PAGE: Final = """<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover">
<title>{title}</title>
<style>
body {{ margin: 0; font-family: -apple-system, "PingFang SC", "Microsoft YaHei", sans-serif;
       background: #f5f6f7; color: #333; }}
main {{ max-width: 30em; margin: 22vh auto 0; padding: 0 24px; text-align: center; }}
.icon {{ font-size: 48px; line-height: 1; color: #b2b2b2; }}
h1 {{ font-size: 20px; font-weight: 500; margin: 16px 0 12px; }}
p {{ font-size: 15px; line-height: 1.6; color: #888; margin: 0; }}
</style>
</head>
<body>
<main>
<div class="icon" aria-hidden="true">&#9432;</div>
<h1>{title}</h1>
<p>{message}</p>
</main>
</body>
</html>
"""


def _page(title: str, message: str) -> bytes:
    return _PAGE.format(title=title, message=message).encode()


UNKNOWN_PAGE: Final = _page("链接已失效", "这个链接不存在或已失效。请联系为您服务的导购，获取新的链接。")
DISABLED_PAGE: Final = _page("链接已失效", "这个链接已停用，或内容已下架。请联系为您服务的导购，获取新的链接。")
UNAVAILABLE_PAGE: Final = _page("页面暂时打不开", "服务繁忙，请稍后再试。")
_PAGE_HEADERS: Final = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
}


def _friendly(status: int, body: bytes) -> web.Response:
    return web.Response(status=status, body=body, content_type="text/html", charset="utf-8",
                        headers=_PAGE_HEADERS)


# -- the handler ------------------------------------------------------------------------------------

routes = web.RouteTableDef()


async def _live_link(app: web.Application, code: str) -> CachedLink | web.Response:
    """The live link for ``code``, or the friendly page to answer instead."""
    if not looks_like_code(code):
        return _friendly(404, UNKNOWN_PAGE)
    try:
        link = await link_cache(app).lookup(code, app[keys.SESSIONMAKER])
    except Exception:  # the database failed on a miss: a page, not a 500
        _LOGGER.exception("could not look up share code")
        return _friendly(503, UNAVAILABLE_PAGE)
    if link is None:
        return _friendly(404, UNKNOWN_PAGE)
    if not link.live:
        return _friendly(410, DISABLED_PAGE)
    return link


def _visitor(app: web.Application, cookies: str | None) -> tuple[str, str]:
    """The visitor id (from the cookie, else a new one) and the Set-Cookie value that keeps it."""
    found = _VISITOR_IN_COOKIES.search(cookies) if cookies else None
    visitor_id = found.group(1) if found else secrets.token_urlsafe(12)
    # Built by hand: the id is URL-safe by construction (or by the check above), and SimpleCookie
    # costs more than the rest of this handler.
    cookie = f"{VISITOR_COOKIE}={visitor_id}; Max-Age={VISITOR_MAX_AGE}; Path=/; HttpOnly; SameSite=Lax"
    if app[keys.SETTINGS].public_base_url.startswith("https:"):
        cookie += "; Secure"
    return visitor_id, cookie


def _redirect(location: str, *cookies: str) -> web.Response:
    headers = CIMultiDict({"Location": location, "Cache-Control": "no-store"})
    for cookie in cookies:
        headers.add("Set-Cookie", cookie)
    return web.Response(status=302, headers=headers)


@routes.get(SHORT_PATH + "{code}" + OA_SUFFIX)
async def back_from_oa(request: web.Request) -> web.Response:
    """Back from the official account's OAuth: name the opener by unionid if we can, then on to the target."""
    app = request.app
    link = await _live_link(app, request.match_info["code"])
    if isinstance(link, web.Response):
        return link
    settings = app[keys.SETTINGS]
    visitor_id, cookie = _visitor(app, request.headers.get("Cookie"))
    customer_id = None
    oauth_code = request.query.get("code", "")
    if oauth_code and settings.oa_configured:
        unionid = await unionid_for(settings, oauth_code)
        if unionid:
            try:
                customer_id = await customer_by_unionid(app[keys.SESSIONMAKER], unionid)
            except Exception:  # the visitor goes on to the target whatever the database says
                _LOGGER.exception("could not look up the opener's unionid")
    app[keys.CLICK_WRITER].record(link.link_id, app[keys.CLOCK](), visitor_id,
                                  ua_class(request.headers.get("User-Agent", "")), customer_id)
    return _redirect(link.location, cookie, _oa_cookie(settings))


def _oa_cookie(settings: Settings) -> str:
    secure = "; Secure" if settings.public_base_url.startswith("https:") else ""
    return f"{OA_COOKIE}=1; Max-Age={VISITOR_MAX_AGE}; Path=/; HttpOnly; SameSite=Lax{secure}"


@routes.get(SHORT_PATH + "{code:.*}")
async def follow_link(request: web.Request) -> web.Response:
    """302 to the item's target with the share code; the click is recorded without waiting."""
    app = request.app
    code = request.match_info["code"]
    link = await _live_link(app, code)
    if isinstance(link, web.Response):
        return link
    cookies = request.headers.get("Cookie")
    visitor_id, cookie = _visitor(app, cookies)
    if request.method == "GET":  # HEAD is a link preview probing, not a visitor opening it
        settings = app[keys.SETTINGS]
        # A link the guide sent into a customer's chat names that customer (sharing/recipients.py).
        # The hot path parses no query string unless it may hold a token.
        token = request.query.get(RECIPIENT_PARAM) if RECIPIENT_PARAM + "=" in request.query_string else None
        customer_id = customer_of(settings.share_key, token) if token else None
        ua = ua_class(request.headers.get("User-Agent", ""))
        if (customer_id is None and ua == "wechat" and settings.oa_configured
                and not (cookies and OA_COOKIE + "=" in cookies)):
            # Once per browser: the official account's silent OAuth says who this is (sharing/oa_identify.py).
            return _redirect(authorize_url(settings, code, visitor_id), cookie, _oa_cookie(settings))
        app[keys.CLICK_WRITER].record(link.link_id, app[keys.CLOCK](), visitor_id, ua, customer_id)
    return _redirect(link.location, cookie)
