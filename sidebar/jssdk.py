"""JS-SDK signatures for the sidebar page (PROTOCOL.md §4.15, §5.2).

The corp ticket signs ``wx.config`` / ``ww.register`` getConfigSignature; the app ticket signs
``wx.agentConfig`` / getAgentConfigSignature. Tickets are rate limited (≤ 100 fetches per app per
hour), so they are cached per process until shortly before they expire, shared by every request and
gateway of the process, and refreshed single-flight. They never leave the server.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from sidebar.errors import InvalidRequest
from wecom.gateway import WeComGateway

_LOGGER = logging.getLogger(__name__)

TicketKind = Literal["corp", "agent"]
#: Refresh a ticket when fewer than this many seconds of its life remain.
TICKET_REFRESH_MARGIN: Final = 300.0
MAX_URL_LENGTH: Final = 2048
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Signature:
    """What ``wx.config`` / ``wx.agentConfig`` take besides the ids."""

    timestamp: int
    nonce_str: str
    signature: str

    def as_json(self) -> dict[str, Any]:
        """The JS-SDK's field names."""
        return {"timestamp": self.timestamp, "nonceStr": self.nonce_str, "signature": self.signature}


def jsapi_signature(ticket: str, noncestr: str, timestamp: int | str, url: str) -> str:
    """sha1("jsapi_ticket=T&noncestr=N&timestamp=S&url=U"), raw values, url without #fragment (§5.2)."""
    string1 = f"jsapi_ticket={ticket}&noncestr={noncestr}&timestamp={timestamp}&url={url.split('#', 1)[0]}"
    return hashlib.sha1(string1.encode("utf-8")).hexdigest()


def sign(ticket: str, url: str, timestamp: int, nonce_str: str | None = None) -> Signature:
    """A fresh signature of ``url`` with ``ticket``."""
    nonce = nonce_str or secrets.token_hex(8)
    return Signature(timestamp, nonce, jsapi_signature(ticket, nonce, timestamp, url))


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or _DEFAULT_PORTS.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


def page_url(url: str, public_base_url: str) -> str:
    """The URL to sign: ``url`` without its #fragment, refused unless it is one of our pages."""
    url = url.strip().split("#", 1)[0]
    if not url or len(url) > MAX_URL_LENGTH:
        raise InvalidRequest("请提供当前页面的完整地址（参数 url）。")
    try:
        parts = urlsplit(url)
        origin = _origin(url)
    except ValueError:
        raise InvalidRequest("页面地址格式不正确。") from None
    base_path = urlsplit(public_base_url).path.rstrip("/")
    if (
        parts.username is not None
        or parts.password is not None
        or origin != _origin(public_base_url)
        or not (parts.path == base_path or parts.path.startswith(base_path + "/"))
    ):
        raise InvalidRequest("只能为本服务的页面签名：页面地址须位于 PUBLIC_BASE_URL 之下。", url=url)
    return url


class _TicketSlot:
    """One ticket of one app; the refresh is single-flight per event loop."""

    def __init__(self) -> None:
        self.ticket = ""
        self.refresh_at = 0.0
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()

    def _lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        return lock

    async def get(self, fetch: Callable[[], Awaitable[tuple[str, int]]], now: Callable[[], float]) -> str:
        if self.ticket and now() < self.refresh_at:
            return self.ticket
        async with self._lock():
            if self.ticket and now() < self.refresh_at:  # another request refreshed it meanwhile
                return self.ticket
            ticket, expires_in = await fetch()
            margin = min(TICKET_REFRESH_MARGIN, expires_in / 2)
            self.ticket, self.refresh_at = ticket, now() + expires_in - margin
            _LOGGER.info("fetched a JS-SDK ticket (expires_in=%s)", expires_in)
            return ticket


_SLOTS: dict[tuple[str, str, int, TicketKind], _TicketSlot] = {}


def clear_ticket_cache() -> None:
    """Forget every cached ticket (tests: simulators on reused ports must not share tickets)."""
    _SLOTS.clear()


async def get_ticket(gateway: WeComGateway, kind: TicketKind, now: Callable[[], float]) -> str:
    """The cached corp (``get_jsapi_ticket``) or app (``ticket/get?type=agent_config``) ticket."""
    slot = _SLOTS.setdefault((gateway.api_base, gateway.corp_id, gateway.agent_id, kind), _TicketSlot())
    fetch = gateway.get_jsapi_ticket if kind == "corp" else gateway.get_agent_ticket
    return await slot.get(fetch, now)


async def jssdk_config(
    gateway: WeComGateway, url: str, public_base_url: str, now: Callable[[], float]
) -> dict[str, Any]:
    """Everything the page needs for ``ww.register`` / ``wx.config`` + ``wx.agentConfig`` on ``url``."""
    target = page_url(url, public_base_url)
    corp_ticket = await get_ticket(gateway, "corp", now)
    agent_ticket = await get_ticket(gateway, "agent", now)
    timestamp = int(now())
    return {
        "corpId": gateway.corp_id,
        "agentId": gateway.agent_id,
        "url": target,
        "config": sign(corp_ticket, target, timestamp).as_json(),
        "agentConfig": sign(agent_ticket, target, timestamp).as_json(),
    }
