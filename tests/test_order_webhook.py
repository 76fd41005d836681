"""POST /channels/{channel}/orders: HMAC-signed, fresh, per-record rejects, updates by order id."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from customers import webhook
from customers.webhook import sign
from models import Order, OrderStatus
from scrm.app import create_app
from scrm.settings import Settings
from tests.test_channel_mappings import JD, MINIAPP, pos_rows

SECRET = "jd-webhook-secret-0123456789"
PATH = "/channels/{}/orders"


@pytest.fixture
async def hook(settings: Settings, clock: Any, maker: Any, aiohttp_client: Any) -> TestClient:
    app = create_app(settings.with_(channel_secrets={"jd": SECRET, "pos": SECRET, "miniapp": SECRET}), clock=clock,
                     run_worker=False)
    return await aiohttp_client(app)


async def post(client: TestClient, clock: Any, channel: str, payload: Any, *, secret: str = SECRET,
               skew: int = 0, raw: bytes | None = None) -> Any:
    body = raw if raw is not None else json.dumps(payload, ensure_ascii=False).encode()
    ts = int(clock.timestamp()) + skew
    return await client.post(PATH.format(channel), data=body, headers={
        "Content-Type": "application/json", "X-SCRM-Timestamp": str(ts), "X-SCRM-Signature": sign(secret, ts, body)})


async def stored(maker: async_sessionmaker[AsyncSession]) -> dict[str, Order]:
    async with maker() as session:
        return {o.channel_order_id: o for o in (await session.scalars(select(Order))).all()}


def test_sign_matches_the_documented_recipe() -> None:
    import hashlib
    import hmac

    expected = hmac.new(b"k" * 16, b"1714530000.{}", hashlib.sha256).hexdigest()
    assert sign("k" * 16, 1714530000, b"{}") == f"sha256={expected}"


async def test_a_signed_record_is_ingested_and_a_resend_updates_it(hook: TestClient, clock: Any, maker: Any) -> None:
    resp = await post(hook, clock, "jd", JD)
    assert resp.status == 200
    assert await resp.json() == {"created": 1, "updated": 0, "unchanged": 0, "rejected": [], "warnings": []}
    refund = {**JD, "orderState": "TRADE_CANCELED", "refundAmount": "1298.00", "refundTime": "2024-05-07 09:30:00",
              "modified": "2024-05-07 09:30:00"}
    body = await (await post(hook, clock, "jd", refund)).json()
    assert (body["created"], body["updated"]) == (0, 1)
    late = await (await post(hook, clock, "jd", JD)).json()  # the older record, delivered late
    assert late["unchanged"] == 1
    order = (await stored(maker))["289374651201"]
    assert order.status is OrderStatus.REFUNDED and order.refunded_cents == 129800


async def test_array_with_one_bad_record(hook: TestClient, clock: Any, maker: Any) -> None:
    second = {**JD, "orderId": "289374651299", "orderPayment": "-1.00"}
    third = {**MINIAPP, "out_trade_no": "ignored"}  # wrong channel's shape: no order id for jd
    resp = await post(hook, clock, "jd", [JD, second, third])
    body = await resp.json()
    assert resp.status == 200 and body["created"] == 1
    assert body["rejected"] == [
        {"ref": "#1", "order_id": "289374651299", "reason": "金额为负 negative amount orderPayment='-1.00'"},
        {"ref": "#2", "order_id": "", "reason": "缺少订单号 missing order id (orderId)"},
    ]
    assert list(await stored(maker)) == ["289374651201"]


async def test_rows_channel_and_membership_via_webhook(hook: TestClient, clock: Any, maker: Any) -> None:
    body = await (await post(hook, clock, "pos", pos_rows())).json()
    assert body["created"] == 1 and body["warnings"][0]["message"].startswith("未知门店编码")
    body = await (await post(hook, clock, "miniapp", MINIAPP)).json()
    assert body["created"] == 1
    orders = await stored(maker)
    assert len(orders["BJ001-20240505-0007"].source["record"]) == 2  # both item rows, one order


@pytest.mark.parametrize(
    ("channel", "kwargs", "status", "code"),
    [
        ("jd", {"secret": "another-secret-000000"}, 401, "bad_signature"),
        ("jd", {"skew": -301}, 401, "stale_timestamp"),
        ("jd", {"skew": 400}, 401, "stale_timestamp"),
        ("weibo", {}, 404, "unknown_channel"),
        ("tmall", {}, 404, "channel_not_enabled"),
        ("jd", {"raw": b'{"orderId": '}, 400, "malformed_json"),
        ("jd", {"raw": b'"just a string"'}, 400, "malformed_json"),
    ],
)
async def test_refusals(hook: TestClient, clock: Any, maker: Any, channel: str, kwargs: dict[str, Any], status: int,
                        code: str) -> None:
    resp = await post(hook, clock, channel, JD, **kwargs)
    assert resp.status == status
    body = await resp.json()
    assert body["error"] == code and body["message"]
    assert await stored(maker) == {}


async def test_missing_or_tampered_headers(hook: TestClient, clock: Any, maker: Any) -> None:
    body = json.dumps(JD).encode()
    ts = str(int(clock.timestamp()))
    resp = await hook.post(PATH.format("jd"), data=body, headers={"X-SCRM-Signature": sign(SECRET, ts, body)})
    assert resp.status == 401 and (await resp.json())["error"] == "bad_timestamp"
    # The signature covers the timestamp: moving it invalidates the request.
    resp = await hook.post(PATH.format("jd"), data=body, headers={
        "X-SCRM-Timestamp": str(int(ts) + 1), "X-SCRM-Signature": sign(SECRET, ts, body)})
    assert resp.status == 401 and (await resp.json())["error"] == "bad_signature"
    assert await stored(maker) == {}


def test_routes_table_has_the_endpoint() -> None:
    app = web.Application()
    app.add_routes(webhook.routes)
    assert [r.resource.canonical for r in app.router.routes() if r.method == "POST"] == ["/channels/{channel}/orders"]
