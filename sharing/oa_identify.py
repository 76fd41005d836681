"""Who opened a share link in WeChat, through the brand's official account (公众号) OAuth, when configured.

A link opened in WeChat by a browser we have not asked before is sent once through the official
account's silent OAuth (``snsapi_base``: no prompt, WeChat answers at once) and comes back to
``/s/<code>/oa`` with a code; that code gives the opener's openid, and their unionid when the account
is bound to the brand's WeChat Open Platform. A unionid we know (mini-program orders, WeCom contacts)
names the customer: the click is theirs, and so is the visitor cookie from then on. Whatever fails
(no unionid, an unknown one, WeChat unreachable) the visitor still lands on the target at once.
"""

from __future__ import annotations

import logging
from typing import Final
from urllib.parse import urlencode

import aiohttp
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import Customer, CustomerIdentity, IdentityKind
from scrm.settings import Settings

_LOGGER = logging.getLogger(__name__)

#: Set once a browser has been through the OAuth (or declined it): it is never bounced again.
OA_COOKIE: Final = "scrm_oa"
OA_SUFFIX: Final = "/oa"
_TIMEOUT: Final = aiohttp.ClientTimeout(total=3)  # the visitor is waiting on this round trip


def authorize_url(settings: Settings, code: str, visitor_id: str) -> str:
    """The official account's silent OAuth URL that comes back to ``/s/<code>/oa``."""
    back = f"{settings.public_base_url}/s/{code}{OA_SUFFIX}"
    query = urlencode({"appid": settings.oa_appid, "redirect_uri": back, "response_type": "code",
                       "scope": "snsapi_base", "state": visitor_id})
    return f"{settings.oa_authorize_url}?{query}#wechat_redirect"


async def unionid_for(settings: Settings, oauth_code: str) -> str | None:
    """The opener's unionid for an OAuth code (None: no unionid, a refused code, or WeChat unreachable)."""
    url = settings.oa_api_base.rstrip("/") + "/sns/oauth2/access_token"
    params = {"appid": settings.oa_appid, "secret": settings.oa_secret, "code": oauth_code,
              "grant_type": "authorization_code"}
    try:
        async with aiohttp.ClientSession(timeout=_TIMEOUT) as http, http.get(url, params=params) as resp:
            body = await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        _LOGGER.warning("official account OAuth unreachable: %s", exc)
        return None
    if not isinstance(body, dict) or body.get("errcode"):
        _LOGGER.warning("official account OAuth refused the code: %s", body)
        return None
    unionid = body.get("unionid")
    return unionid if isinstance(unionid, str) and unionid else None


async def customer_by_unionid(maker: async_sessionmaker[AsyncSession], unionid: str) -> int | None:
    """The (surviving) customer known by ``unionid``, if any."""
    async with maker() as session:
        row = (await session.execute(
            select(Customer.id, Customer.merged_into_id)
            .join(CustomerIdentity, CustomerIdentity.customer_id == Customer.id)
            .where(CustomerIdentity.kind == IdentityKind.UNIONID, CustomerIdentity.value == unionid).limit(1))).first()
    if row is None:
        return None
    return int(row[1] or row[0])
