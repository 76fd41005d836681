"""Order webhooks: ``POST /channels/{channel}/orders``, HMAC-signed by the brand's integration.

The body is one record, or a JSON array of records, in that channel's map format. The signature is
``X-SCRM-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + raw body)>`` with the unix
``X-SCRM-Timestamp`` it covers, so a captured request cannot be replayed after the allowed skew.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Any, Final

from aiohttp import web

from customers.mapping import RejectedRecord, field_map, group_records, normalise_with
from customers.orders import ingest_orders
from scrm import keys

_LOGGER = logging.getLogger(__name__)

SIGNATURE_HEADER: Final = "X-SCRM-Signature"
TIMESTAMP_HEADER: Final = "X-SCRM-Timestamp"
MAX_SKEW: Final = 300  # seconds

routes = web.RouteTableDef()


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The ``X-SCRM-Signature`` value for ``body`` sent at ``timestamp`` (unix seconds)."""
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


def _authenticate(request: web.Request, secret: str, body: bytes) -> web.Response | None:
    """None if the request is signed with ``secret`` and fresh; else the 401 to answer."""
    raw_ts = request.headers.get(TIMESTAMP_HEADER, "").strip()
    if not raw_ts.isdigit():
        return _error(401, "bad_timestamp", f"{TIMESTAMP_HEADER} must be the unix time in seconds")
    now = request.config_dict[keys.CLOCK]().timestamp()
    if abs(now - int(raw_ts)) > MAX_SKEW:
        return _error(401, "stale_timestamp",
                      f"{TIMESTAMP_HEADER} is more than {MAX_SKEW} s from our clock: check the sender's clock (NTP)")
    given = request.headers.get(SIGNATURE_HEADER, "").strip()
    if not hmac.compare_digest(given.encode(), sign(secret, raw_ts, body).encode()):
        return _error(401, "bad_signature",
                      f"{SIGNATURE_HEADER} does not match: expected sha256=HMAC-SHA256(secret, timestamp + '.' + body) "
                      "over the raw body with this channel's secret")
    return None


@routes.post("/channels/{channel}/orders")
async def receive_orders(request: web.Request) -> web.Response:
    """Ingest one record or an array of records; bad records are listed, not fatal."""
    channel = request.match_info["channel"]
    settings = request.config_dict[keys.SETTINGS]
    try:
        fmap = field_map(channel)
    except KeyError:
        return _error(404, "unknown_channel", f"unknown channel {channel!r}: no map customers/channels/{channel}.json")
    secret = settings.channel_secrets.get(channel, "")
    if not secret:
        return _error(404, "channel_not_enabled",
                      f"channel {channel!r} has no webhook secret: set SCRM_CHANNEL_SECRET_{channel.upper()}")
    body = await request.read()
    if (denied := _authenticate(request, secret, body)) is not None:
        _LOGGER.warning("order webhook for %s refused from %s: %s", channel, request.remote, denied.text)
        return denied
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return _error(400, "malformed_json", f"body is not JSON: {exc}")
    if isinstance(payload, dict):
        payload = [payload]
    if not isinstance(payload, list):
        return _error(400, "malformed_json", "body must be one JSON object or an array of them")

    rejected: list[dict[str, Any]] = []
    orders = []
    for ref, record in group_records(fmap, ((f"#{i}", r) for i, r in enumerate(payload))):
        try:
            orders.append(normalise_with(fmap, record, timezone=settings.timezone, ref=ref))
        except RejectedRecord as exc:
            rejected.append({"ref": ref, "order_id": exc.order_id, "reason": exc.reason})
    ids = {o.ref: o.channel_order_id for o in orders}
    report = await ingest_orders(request.config_dict[keys.SESSIONMAKER], orders, now=request.config_dict[keys.CLOCK]())
    rejected += [{"ref": ref, "order_id": ids.get(ref, ""), "reason": reason} for ref, reason in report.rejected]
    if report.created or report.updated:
        # Attribution and commission follow the orders (sharing/ listens; customers/ does not import it).
        earliest = min(o.ordered_at for o in orders)
        for listener in request.config_dict[keys.ORDER_LISTENERS]:
            listener(earliest)
    return web.json_response({
        "created": report.created,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "rejected": rejected,
        "warnings": [{"ref": ref, "message": message} for ref, message in report.warnings],
    })
