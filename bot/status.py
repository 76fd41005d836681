"""What the admin status page shows: connection settings health and recent deliveries."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import CallbackEvent, InboxStatus
from scrm.settings import REAL_API_BASE, Settings
from wecom.crypto import CallbackCrypto, CallbackCryptoError, aes_key_from_encoding_key


@dataclass(frozen=True)
class Check:
    """One configuration check: never carries the secret itself."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class DeliveryRow:
    """A recent delivery as the page lists it."""

    id: int
    received_at: dt.datetime
    kind: str
    status: str
    attempts: int
    duplicates: int
    last_error: str


@dataclass(frozen=True)
class BotStatus:
    """Everything on the status page."""

    callback_url: str
    api_base: str
    uses_simulator: bool
    checks: list[Check]
    counts: dict[str, int]
    recent: list[DeliveryRow]
    parked: list[DeliveryRow]


def config_checks(settings: Settings) -> list[Check]:
    """Whether corp id, token and key are set and usable (values are never shown)."""
    checks = [
        Check("企业ID (WECOM_CORP_ID)", bool(settings.corp_id), f"已设置，长度 {len(settings.corp_id)}"),
        Check("应用 AgentId (WECOM_AGENT_ID)", settings.agent_id > 0, str(settings.agent_id)),
        Check("应用 Secret (WECOM_AGENT_SECRET)", bool(settings.agent_secret), "已设置" if settings.agent_secret else "未设置"),
        Check("Token (WECOM_TOKEN)", bool(settings.token), f"已设置，长度 {len(settings.token)}" if settings.token else "未设置"),
    ]
    try:
        aes_key_from_encoding_key(settings.encoding_aes_key)
        crypto = CallbackCrypto(settings.token, settings.encoding_aes_key, settings.corp_id)
        ok = crypto.decrypt(crypto.encrypt("self-test")) == "self-test"
        checks.append(Check("EncodingAESKey (WECOM_ENCODING_AES_KEY)", ok, "43 位，可正常加解密"))
    except (ValueError, CallbackCryptoError) as exc:
        checks.append(Check("EncodingAESKey (WECOM_ENCODING_AES_KEY)", False, str(exc)))
    return checks


def _row(e: CallbackEvent) -> DeliveryRow:
    kind = "/".join(p for p in (e.event or e.msg_type, e.change_type) if p)
    return DeliveryRow(e.id, e.received_at, kind, e.status.value, e.attempts, e.duplicates, e.last_error)


async def bot_status(maker: async_sessionmaker[AsyncSession], settings: Settings, recent: int = 20) -> BotStatus:
    """Collect the status page's data."""
    async with maker() as session:
        counts = {s.value: 0 for s in InboxStatus}
        for status, n in (await session.execute(select(CallbackEvent.status, func.count()).group_by(CallbackEvent.status))).all():
            counts[status.value] = n
        latest = (await session.scalars(select(CallbackEvent).order_by(CallbackEvent.id.desc()).limit(recent))).all()
        parked = (
            await session.scalars(
                select(CallbackEvent).where(CallbackEvent.status == InboxStatus.PARKED).order_by(CallbackEvent.id.desc()).limit(50)
            )
        ).all()
    return BotStatus(
        callback_url=settings.callback_url,
        api_base=settings.api_base,
        uses_simulator=settings.api_base != REAL_API_BASE,
        checks=config_checks(settings),
        counts=counts,
        recent=[_row(e) for e in latest],
        parked=[_row(e) for e in parked],
    )
