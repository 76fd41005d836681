"""Who a link was sent to: a short signed token naming the customer of the chat it was sent into.

When a guide sends a link into a one-to-one chat from the sidebar, the URL carries ``?r=<token>``.
Whoever opens it is, with all likelihood, that customer: the redirect records the click as theirs and
remembers the visitor cookie as theirs (``visitors``), so later clicks from the same browser are known
too. That is what makes last-click attribution and "your customer just opened your link" possible.
The token is the customer id and an HMAC of it (keyed by the share secret), so it cannot be forged or
walked; it says nothing readable about the customer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Final

RECIPIENT_PARAM: Final = "r"
_MAC_BYTES: Final = 6
_MAX_ID_BYTES: Final = 8


def _mac(key: str, raw_id: bytes) -> bytes:
    return hmac.new(key.encode(), b"recipient:" + raw_id, hashlib.sha256).digest()[:_MAC_BYTES]


def recipient_token(key: str, customer_id: int) -> str:
    """The token for ``customer_id`` (URL-safe, about 12 characters)."""
    if customer_id < 0:
        raise ValueError("customer ids are positive")
    raw_id = customer_id.to_bytes(max(1, (customer_id.bit_length() + 7) // 8), "big")
    return base64.urlsafe_b64encode(raw_id + _mac(key, raw_id)).rstrip(b"=").decode()


def customer_of(key: str, token: str) -> int | None:
    """The customer id a token names, or None when it is malformed or not signed with ``key``."""
    if not token or len(token) > 24:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except ValueError:
        return None
    raw_id, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
    if not 1 <= len(raw_id) <= _MAX_ID_BYTES or not hmac.compare_digest(mac, _mac(key, raw_id)):
        return None
    return int.from_bytes(raw_id, "big")
