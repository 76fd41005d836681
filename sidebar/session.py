"""Signed cookies: the guide's session (12 h) and the OAuth anti-forgery state (10 min).

A value is ``base64url(JSON payload) + "." + base64url(HMAC-SHA256(secret, payload part))``. The
payload names its purpose, so a state cookie can never pass as a session and vice versa.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from aiohttp import web

from scrm.settings import Settings
from sidebar.errors import SidebarDisabled

SESSION_COOKIE: Final = "scrm_sidebar"
STATE_COOKIE: Final = "scrm_sidebar_state"
SESSION_TTL: Final = 12 * 3600
# An OAuth code lives 5 minutes (PROTOCOL.md §4.14); the state only has to outlive the round trip.
STATE_TTL: Final = 600
# Tolerate a little clock difference between workers when checking issued-at.
_FUTURE_SKEW: Final = 60
_SESSION: Final = "session"
_STATE: Final = "oauth_state"


@dataclass(frozen=True)
class Session:
    """Who is signed in, and since when (unix seconds)."""

    userid: str
    issued_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, body: str) -> str:
    return _b64(hmac.new(secret.encode(), body.encode("ascii"), hashlib.sha256).digest())


def _sign(secret: str, payload: dict[str, object]) -> str:
    body = _b64(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
    return f"{body}.{_mac(secret, body)}"


def _verify(secret: str, value: str, purpose: str, ttl: int, now: int) -> dict[str, object] | None:
    if not secret or not value or value.count(".") != 1:
        return None
    body, mac = value.split(".")
    if not (body.isascii() and mac.isascii()) or not hmac.compare_digest(mac, _mac(secret, body)):
        return None  # a forged cookie may carry anything; only our own ASCII values can verify
    try:
        payload = json.loads(_unb64(body))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(payload, dict) or payload.get("p") != purpose:
        return None
    issued = payload.get("iat")
    if not isinstance(issued, int) or not issued - _FUTURE_SKEW <= now < issued + ttl:
        return None
    return payload


def sign_session(secret: str, userid: str, issued_at: int) -> str:
    """A session cookie value for ``userid``."""
    return _sign(secret, {"p": _SESSION, "u": userid, "iat": issued_at})


def read_session(secret: str, value: str, now: int) -> Session | None:
    """The session in a cookie value, or None if forged, tampered with or older than 12 h."""
    payload = _verify(secret, value, _SESSION, SESSION_TTL, now)
    if payload is None or not isinstance(payload.get("u"), str) or not payload["u"]:
        return None
    return Session(str(payload["u"]), int(payload["iat"]))  # type: ignore[call-overload]


def new_state() -> str:
    """A random OAuth ``state``: WeCom allows ≤ 128 bytes of [a-zA-Z0-9] (PROTOCOL.md §4.14)."""
    return secrets.token_hex(16)


def sign_state(secret: str, state: str, issued_at: int) -> str:
    """The state cookie value that proves we started this sign-in."""
    return _sign(secret, {"p": _STATE, "s": state, "iat": issued_at})


def state_matches(secret: str, value: str, state: str, now: int) -> bool:
    """Whether the state WeCom sent back is the one in our (fresh, untampered) cookie."""
    payload = _verify(secret, value, _STATE, STATE_TTL, now)
    return payload is not None and bool(state) and hmac.compare_digest(str(payload.get("s", "")), state)


def require_secret(settings: Settings) -> str:
    """The signing secret; without one nobody can sign in."""
    if not settings.session_secret:
        raise SidebarDisabled("侧边栏未启用：管理员需设置环境变量 SCRM_SESSION_SECRET（至少 32 个字符）后重启服务。")
    return settings.session_secret


def _cross_site(settings: Settings) -> bool:
    # Inside WeCom's webview the page may count as third-party: an https deployment needs
    # SameSite=None (which browsers accept only with Secure); plain http (tests, demo) uses Lax.
    return urlsplit(settings.public_base_url).scheme == "https"


def set_cookie(
    response: web.StreamResponse, settings: Settings, name: str, value: str, *, path: str, max_age: int
) -> None:
    """Set one of our cookies: HttpOnly, scoped to the sidebar, SameSite by deployment."""
    cross = _cross_site(settings)
    response.set_cookie(
        name, value, path=path, max_age=max_age, httponly=True, secure=cross, samesite="None" if cross else "Lax"
    )


def clear_cookie(response: web.StreamResponse, settings: Settings, name: str, *, path: str) -> None:
    """Expire one of our cookies."""
    set_cookie(response, settings, name, "", path=path, max_age=0)
