"""The simulator's callback sender: encrypts, signs and delivers pushes exactly as WeCom does (§2, §8.3-8.4)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

import aiohttp
from yarl import URL

from wecom.crypto import CallbackCrypto

_LOGGER = logging.getLogger(__name__)


@dataclass
class Attempt:
    """One HTTP attempt of a delivery."""

    status: int | None  # None: timeout or connection error
    body: str
    elapsed: float
    error: str = ""


@dataclass
class DeliveryReport:
    """What happened to one push, attempt by attempt."""

    plaintext: str
    attempts: list[Attempt] = field(default_factory=list)
    reply_plaintext: str | None = None

    @property
    def acknowledged(self) -> bool:
        """The last attempt got an HTTP 200."""
        return bool(self.attempts) and self.attempts[-1].status == 200


@dataclass
class CallbackSender:
    """Pushes plaintext events to a callback URL the way WeCom does."""

    crypto: CallbackCrypto
    agent_id: int
    url: str
    timeout: float = 5.0
    retries: int = 3
    retry_on_non_200: bool = True
    retry_interval: float = 0.0
    clock: Callable[[], float] = time.time
    session: aiohttp.ClientSession | None = None
    history: list[DeliveryReport] = field(default_factory=list)

    def envelope(self, plaintext: str, timestamp: str | None = None, nonce: str | None = None) -> tuple[dict[str, str], str]:
        """The signed query and XML body for one push."""
        timestamp = timestamp or str(int(self.clock()))
        nonce = nonce or str(secrets.randbelow(10**10))
        encrypt = self.crypto.encrypt(plaintext)
        query = {"msg_signature": self.crypto.sign(timestamp, nonce, encrypt), "timestamp": timestamp, "nonce": nonce}
        body = (
            f"<xml><ToUserName><![CDATA[{self.crypto.receive_id}]]></ToUserName>"
            f"<AgentID><![CDATA[{self.agent_id}]]></AgentID>"
            f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        )
        return query, body

    async def _session(self) -> aiohttp.ClientSession:
        if self.session is None or self.session.closed:
            self.session = aiohttp.ClientSession()
        return self.session

    async def close(self) -> None:
        """Close the HTTP session."""
        if self.session is not None:
            await self.session.close()

    async def post(self, query: dict[str, str], body: str) -> Attempt:
        """One POST attempt with WeCom's 5-second deadline."""
        session = await self._session()
        started = time.monotonic()
        try:
            async with session.post(
                self.url, params=query, data=body.encode(), timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={"Content-Type": "text/xml"},
            ) as resp:
                text = await resp.text()
                return Attempt(resp.status, text, time.monotonic() - started)
        except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
            return Attempt(None, "", time.monotonic() - started, error=f"{type(exc).__name__}: {exc}")

    async def send(self, plaintext: str) -> DeliveryReport:
        """Deliver one push: the first try plus up to ``retries`` re-sends of the same request."""
        query, body = self.envelope(plaintext)
        report = DeliveryReport(plaintext)
        for n in range(self.retries + 1):
            attempt = await self.post(query, body)
            report.attempts.append(attempt)
            if attempt.status == 200:
                report.reply_plaintext = self._decrypt_reply(attempt.body)
                break
            if attempt.status is not None and not self.retry_on_non_200:
                break
            if n < self.retries and self.retry_interval:
                await asyncio.sleep(self.retry_interval)
        self.history.append(report)
        if not report.acknowledged:
            _LOGGER.warning("push not acknowledged after %d attempts", len(report.attempts))
        return report

    async def send_twice(self, plaintext: str) -> tuple[Attempt, Attempt]:
        """The same request twice, byte for byte (a retry after a lost acknowledgement)."""
        query, body = self.envelope(plaintext)
        return await self.post(query, body), await self.post(query, body)

    def _decrypt_reply(self, body: str) -> str | None:
        # An empty 200 is the normal acknowledgement; a non-empty one should be an encrypted reply.
        if not body.strip():
            return None
        from bot.xmlparse import flat_fields, parse_xml

        fields = flat_fields(parse_xml(body))
        self.crypto.check_signature(fields["MsgSignature"], fields["TimeStamp"], fields["Nonce"], fields["Encrypt"])
        return self.crypto.decrypt(fields["Encrypt"])

    async def verify_url(self, challenge: str | None = None) -> tuple[bool, str]:
        """Run the console's URL check: a GET with a percent-encoded echostr, answered within 1 s."""
        challenge = challenge or str(secrets.randbelow(10**19))
        timestamp, nonce = str(int(self.clock())), str(secrets.randbelow(10**10))
        echostr = self.crypto.encrypt(challenge)
        sig = self.crypto.sign(timestamp, nonce, echostr)
        # Build the query by hand: WeCom percent-encodes echostr, and '+' must not become a space.
        url = f"{self.url}?msg_signature={sig}&timestamp={timestamp}&nonce={nonce}&echostr={quote(echostr, safe='')}"
        session = await self._session()
        try:
            async with session.get(URL(url, encoded=True), timeout=aiohttp.ClientTimeout(total=1.0)) as resp:
                text = await resp.text()
                if resp.status != 200:
                    return False, f"HTTP {resp.status}: {text.strip()[:300]}"
                if text != challenge:
                    return False, f"answered {text[:60]!r}, expected the decrypted echostr exactly"
                return True, "ok"
        except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
            return False, f"{type(exc).__name__}: {exc}"
