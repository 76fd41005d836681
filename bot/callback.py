"""Sans-I/O core of the callback endpoint: authenticate, decrypt and key one delivery."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Mapping

from bot.events import Event, parse_event
from bot.xmlparse import MalformedXML, flat_fields, parse_xml
from wecom.crypto import CallbackCrypto, CallbackCryptoError


class CallbackRejected(Exception):
    """A request that must not be stored; ``reason`` is one line telling the admin what to fix."""

    def __init__(self, status: int, code: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Delivery:
    """An authenticated, decrypted push, ready for the inbox."""

    agent_id: str
    plaintext: str
    event: Event
    dedup_key: str


def _query(query: Mapping[str, str], *names: str) -> list[str]:
    missing = [n for n in names if not query.get(n)]
    if missing:
        raise CallbackRejected(400, "missing_param", f"query parameter(s) missing: {', '.join(missing)}")
    return [query[n] for n in names]


def _check_timestamp(timestamp: str, now: float, max_skew: int) -> None:
    if not timestamp.isdigit():
        raise CallbackRejected(400, "bad_timestamp", f"timestamp {timestamp[:20]!r} is not a number")
    skew = abs(now - int(timestamp))
    if skew > max_skew:
        raise CallbackRejected(
            403,
            "stale_timestamp",
            f"timestamp is {int(skew)} s away from this server's clock (limit {max_skew} s): "
            "a replayed request, or this server's clock is wrong (check NTP)",
        )


def _crypto_rejected(exc: CallbackCryptoError) -> CallbackRejected:
    status = 403 if exc.code in ("bad_signature", "bad_receive_id") else 400
    return CallbackRejected(status, exc.code, exc.reason)


def verify_url(crypto: CallbackCrypto, query: Mapping[str, str], now: float, max_skew: int) -> str:
    """Handle the console's URL verification GET; returns the plaintext echo."""
    sig, ts, nonce, echostr = _query(query, "msg_signature", "timestamp", "nonce", "echostr")
    # yarl turns a literal '+' into a space; WeCom percent-encodes, but be lenient.
    echostr = echostr.replace(" ", "+")
    _check_timestamp(ts, now, max_skew)
    try:
        return crypto.verify_url(sig, ts, nonce, echostr)
    except CallbackCryptoError as exc:
        raise _crypto_rejected(exc) from exc


def dedup_key(agent_id: str, plaintext: str, event: Event) -> str:
    """MsgId for member messages; a hash of the whole plaintext for events (§2.7)."""
    msg_id = getattr(event, "msg_id", "")
    if msg_id:
        return f"msg:{agent_id}:{msg_id}"
    digest = hashlib.sha256(f"{agent_id}\n{plaintext}".encode()).hexdigest()
    return f"evt:{digest}"


def open_delivery(
    crypto: CallbackCrypto, query: Mapping[str, str], body: bytes, now: float, max_skew: int
) -> Delivery:
    """Verify and decrypt a POSTed push."""
    sig, ts, nonce = _query(query, "msg_signature", "timestamp", "nonce")
    _check_timestamp(ts, now, max_skew)
    try:
        envelope = flat_fields(parse_xml(body))
    except MalformedXML as exc:
        raise CallbackRejected(400, "malformed_xml", f"request body: {exc}") from exc
    encrypt = envelope.get("Encrypt", "")
    if not encrypt:
        raise CallbackRejected(400, "malformed_xml", "request body has no <Encrypt> element")
    to_user = envelope.get("ToUserName", "")
    try:
        crypto.check_signature(sig, ts, nonce, encrypt)
        plaintext = crypto.decrypt(encrypt)
    except CallbackCryptoError as exc:
        raise _crypto_rejected(exc) from exc
    try:
        event = parse_event(plaintext)
    except MalformedXML as exc:
        raise CallbackRejected(400, "malformed_payload", f"decrypted payload: {exc}") from exc
    if to_user and to_user != crypto.receive_id:
        raise CallbackRejected(
            403, "bad_receive_id", f"envelope ToUserName {to_user[:64]!r} is not WECOM_CORP_ID {crypto.receive_id!r}"
        )
    agent_id = envelope.get("AgentID", "") or getattr(event, "agent_id", "")
    return Delivery(agent_id=agent_id, plaintext=plaintext, event=event, dedup_key=dedup_key(agent_id, plaintext, event))
