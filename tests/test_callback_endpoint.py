"""The callback endpoint: verification, storage before acknowledgement, dedup, and every bad input."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest
from sqlalchemy import func, select

from models import CallbackEvent, InboxStatus
from scrm.app import create_app
from scrm.settings import Settings
from wecom.simulator.callbacks import CallbackSender
from wecom.crypto import CallbackCrypto


class FixedClock:
    def __init__(self, ts: int) -> None:
        self.now = dt.datetime.fromtimestamp(ts, dt.timezone.utc)

    def __call__(self) -> dt.datetime:
        return self.now


async def _vector_client(aiohttp_client: Any, settings: Settings, v: dict[str, Any], ts: int) -> Any:
    s = settings.with_(token=v["token"], encoding_aes_key=v["encoding_aes_key"], corp_id=v["receive_id"])
    return await aiohttp_client(create_app(s, clock=FixedClock(ts), run_worker=False))


async def _count(maker: Any) -> int:
    async with maker() as session:
        return await session.scalar(select(func.count()).select_from(CallbackEvent))


async def test_console_url_verification_official_vectors(aiohttp_client: Any, settings: Settings, vectors: Any, maker: Any) -> None:
    for v in vectors["crypto"]["official_url_verification"]:
        client = await _vector_client(aiohttp_client, settings, v, int(v["timestamp"]))
        query = f"msg_signature={v['msg_signature']}&timestamp={v['timestamp']}&nonce={v['nonce']}&echostr={v['echostr_url_encoded']}"
        resp = await client.get(f"{settings.callback_path}?{query}")
        assert resp.status == 200
        assert await resp.text() == v["expected_reply_body"]


async def test_url_verification_tolerates_plus_decoded_as_space(aiohttp_client: Any, settings: Settings, vectors: Any, maker: Any) -> None:
    v = vectors["crypto"]["official_url_verification"][0]
    client = await _vector_client(aiohttp_client, settings, v, int(v["timestamp"]))
    # A raw '+' in a query value arrives as a space; the endpoint must still verify.
    query = f"msg_signature={v['msg_signature']}&timestamp={v['timestamp']}&nonce={v['nonce']}&echostr={v['echostr'].replace('/', '%2F').replace('=', '%3D')}"
    resp = await client.get(f"{settings.callback_path}?{query}")
    assert await resp.text() == v["expected_reply_body"]


async def test_official_post_vectors_are_stored_and_acknowledged_empty(aiohttp_client: Any, settings: Settings, vectors: Any, maker: Any) -> None:
    for v in vectors["crypto"]["official_post_decryption"]:
        client = await _vector_client(aiohttp_client, settings, v, int(v["timestamp"]))
        query = {k: v[k] for k in ("msg_signature", "timestamp", "nonce")}
        resp = await client.post(settings.callback_path, params=query, data=v["post_body"].encode())
        assert resp.status == 200
        assert await resp.text() == ""
    async with maker() as session:
        rows = (await session.scalars(select(CallbackEvent).order_by(CallbackEvent.id))).all()
    assert [r.plaintext for r in rows] == [v["expected_plaintext"] for v in vectors["crypto"]["official_post_decryption"]]
    assert rows[0].msg_type == "text" and rows[0].status is InboxStatus.PENDING
    assert rows[0].dedup_key == "msg:1000002:1456453720"


async def test_generated_event_push_and_retry_stored_once(aiohttp_client: Any, settings: Settings, vectors: Any, maker: Any) -> None:
    g = vectors["crypto"]["generated_roundtrip"]
    client = await _vector_client(aiohttp_client, settings, g, 1700000001)
    push = g["event_push"]
    for _ in range(3):
        resp = await client.post(f"{settings.callback_path}?{push['post_query']}", data=push["post_body"].encode())
        assert resp.status == 200 and await resp.text() == ""
    async with maker() as session:
        rows = (await session.scalars(select(CallbackEvent))).all()
    assert len(rows) == 1
    assert rows[0].event == "change_external_contact" and rows[0].change_type == "add_external_contact"
    assert rows[0].duplicates == 2
    assert rows[0].agent_id == "1000002"


async def test_retry_with_new_ciphertext_is_still_one_event(sender: CallbackSender, maker: Any, sim_state: Any) -> None:
    xml = sim_state.ev_member_text("zhangsan", "帮助")
    await sender.send(xml)
    await sender.send(xml)  # freshly encrypted: different ciphertext, same plaintext
    assert await _count(maker) == 1


async def test_same_second_distinct_events_both_stored(sender: CallbackSender, maker: Any, sim_state: Any) -> None:
    # The FromUserName+CreateTime trap: 'sys' + the same second for two different customers.
    _, a = sim_state.ev_customer_adds_member("zhangsan", name="甲")
    _, b = sim_state.ev_customer_adds_member("zhangsan", name="乙")
    assert a != b
    await sender.send(a)
    await sender.send(b)
    assert await _count(maker) == 2


@pytest.mark.parametrize(
    ("mutate", "status", "code", "hint"),
    [
        (lambda q, b, s: ({**q, "msg_signature": "0" * 40}, b), 403, "bad_signature", "WECOM_TOKEN"),
        (lambda q, b, s: (q, "<xml><Encrypt>"), 400, "malformed_xml", "XML"),
        (lambda q, b, s: (q, "<xml><ToUserName>x</ToUserName></xml>"), 400, "malformed_xml", "Encrypt"),
        (lambda q, b, s: (q, '<!DOCTYPE x [<!ENTITY a "b">]><xml><Encrypt>&a;</Encrypt></xml>'), 400, "malformed_xml", "DOCTYPE"),
        (lambda q, b, s: ({k: q[k] for k in ("timestamp", "nonce")}, b), 400, "missing_param", "msg_signature"),
        (lambda q, b, s: ({**q, "timestamp": str(int(q["timestamp"]) - 3600)}, b), 403, "stale_timestamp", "clock"),
    ],
)
async def test_bad_requests_rejected_with_reason_nothing_stored(
    client: Any, sender: CallbackSender, settings: Settings, maker: Any, caplog: Any, sim_state: Any,
    mutate: Any, status: int, code: str, hint: str,
) -> None:
    query, body = sender.envelope(sim_state.ev_enter_agent("zhangsan"))
    query, body = mutate(query, body, sender)
    if code == "stale_timestamp":
        # Re-sign so only the timestamp is wrong.
        enc = body.split("<Encrypt><![CDATA[")[1].split("]]>")[0]
        query["msg_signature"] = sender.crypto.sign(query["timestamp"], query["nonce"], enc)
    with caplog.at_level(logging.WARNING, logger="bot.handlers"):
        resp = await client.post(settings.callback_path, params=query, data=body.encode())
    assert resp.status == status
    text = await resp.text()
    assert code in text and hint in text
    assert any(code in r.getMessage() for r in caplog.records)
    assert await _count(maker) == 0


async def test_wrong_aes_key_and_wrong_corp_are_told_apart(client: Any, settings: Settings, maker: Any, clock: Any, sim_state: Any) -> None:
    url = str(client.make_url(settings.callback_path))
    wrong_key = CallbackSender(CallbackCrypto(settings.token, "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt", settings.corp_id),
                               settings.agent_id, url, clock=clock.timestamp, retries=0)
    wrong_corp = CallbackSender(CallbackCrypto(settings.token, settings.encoding_aes_key, "ww0000000000000099"),
                                settings.agent_id, url, clock=clock.timestamp, retries=0)
    xml = sim_state.ev_enter_agent("zhangsan")
    r1 = await wrong_key.send(xml)
    r2 = await wrong_corp.send(xml)
    await wrong_key.close(); await wrong_corp.close()
    assert r1.attempts[0].status == 400 and "WECOM_ENCODING_AES_KEY" in r1.attempts[0].body
    assert r2.attempts[0].status == 403 and "WECOM_CORP_ID" in r2.attempts[0].body
    assert await _count(maker) == 0


async def test_simulator_url_verification_driver(sender: CallbackSender) -> None:
    ok, detail = await sender.verify_url()
    assert ok, detail


async def test_verification_with_wrong_token_fails_with_reason(client: Any, settings: Settings, clock: Any) -> None:
    bad = CallbackSender(CallbackCrypto("OtherToken", settings.encoding_aes_key, settings.corp_id), settings.agent_id,
                         str(client.make_url(settings.callback_path)), clock=clock.timestamp)
    ok, detail = await bad.verify_url()
    await bad.close()
    assert not ok and "403" in detail and "WECOM_TOKEN" in detail


async def test_healthz(client: Any) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200 and (await resp.json())["status"] == "ok"


async def test_callback_served_at_the_configured_path(aiohttp_client: Any, settings: Settings, clock: Any, maker: Any, sim_state: Any) -> None:
    client = await aiohttp_client(create_app(settings.with_(callback_path="/hooks/wecom"), clock=clock, run_worker=False))
    sender = CallbackSender(CallbackCrypto(settings.token, settings.encoding_aes_key, settings.corp_id),
                            settings.agent_id, str(client.make_url("/hooks/wecom")), clock=clock.timestamp)
    assert (await sender.send(sim_state.ev_enter_agent("zhangsan"))).acknowledged
    await sender.close()
    assert (await client.post("/wecom/callback")).status == 404
    assert await _count(maker) == 1
