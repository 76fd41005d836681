"""The simulator's callback sender behaves like WeCom: 5-second deadline, retries, encrypted replies."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from wecom.crypto import CallbackCrypto
from wecom.simulator.callbacks import CallbackSender

CRYPTO = CallbackCrypto("QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wx5823bf96d3bd56c7")


async def _server(handler: Any) -> TestServer:
    app = web.Application()
    app.router.add_post("/cb", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


async def test_slow_endpoint_times_out_and_is_retried_three_times() -> None:
    seen: list[str] = []

    async def slow(request: web.Request) -> web.Response:
        seen.append(request.query["msg_signature"])
        await asyncio.sleep(1)
        return web.Response(text="")

    server = await _server(slow)
    sender = CallbackSender(CRYPTO, 218, str(server.make_url("/cb")), timeout=0.2, retries=3)
    report = await sender.send("<xml><MsgType>event</MsgType></xml>")
    await sender.close()
    await server.close()
    assert not report.acknowledged
    assert len(report.attempts) == 4 and all(a.status is None for a in report.attempts)
    assert len(set(seen)) == 1  # a retry is the same request


async def test_non_200_retry_switch() -> None:
    calls = 0

    async def failing(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return web.Response(status=500)

    server = await _server(failing)
    strict = CallbackSender(CRYPTO, 218, str(server.make_url("/cb")), retries=3, retry_on_non_200=True)
    lenient = CallbackSender(CRYPTO, 218, str(server.make_url("/cb")), retries=3, retry_on_non_200=False)
    await strict.send("<xml/>")
    assert calls == 4
    await lenient.send("<xml/>")
    assert calls == 5
    await strict.close(); await lenient.close(); await server.close()


async def test_encrypted_passive_reply_is_decrypted_and_checked() -> None:
    async def reply(request: web.Request) -> web.Response:
        return web.Response(text=CRYPTO.encrypted_reply("<xml><Content>收到</Content></xml>", "1700000002", "555"))

    server = await _server(reply)
    sender = CallbackSender(CRYPTO, 218, str(server.make_url("/cb")))
    report = await sender.send("<xml/>")
    await sender.close(); await server.close()
    assert report.acknowledged and report.reply_plaintext == "<xml><Content>收到</Content></xml>"


def test_envelope_is_signed_over_encrypt_and_decrypts_back() -> None:
    sender = CallbackSender(CRYPTO, 218, "http://unused", clock=lambda: 1700000000.0)
    query, body = sender.envelope("<xml><A>你好</A></xml>")
    enc = body.split("<Encrypt><![CDATA[")[1].split("]]>")[0]
    CRYPTO.check_signature(query["msg_signature"], query["timestamp"], query["nonce"], enc)
    assert query["timestamp"] == "1700000000" and CRYPTO.decrypt(enc) == "<xml><A>你好</A></xml>"
    assert "<AgentID><![CDATA[218]]></AgentID>" in body
    # Fresh random prefix per push, as WeCom does.
    assert sender.envelope("<xml/>")[1] != sender.envelope("<xml/>")[1]
