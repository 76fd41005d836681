"""What an event handler gets: sessions, the WeCom gateway, settings, the clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import AuditEntry
from scrm.settings import Settings
from wecom.gateway import WeComGateway


@dataclass(frozen=True)
class BotContext:
    """Per-event context; handlers open their own short transactions from ``maker``."""

    maker: async_sessionmaker[AsyncSession]
    gateway: WeComGateway
    settings: Settings
    clock: Callable[[], dt.datetime]
    event_id: int | None = None
    # 0 on the first try; handlers skip one-shot side effects (welcome message) on retries.
    attempt: int = 0

    def audit(self, action: str, subject_type: str = "", subject_id: str = "", **detail: Any) -> AuditEntry:
        """An audit row for this event (add it to a session)."""
        return AuditEntry(
            at=self.clock(),
            actor="bot",
            action=action,
            subject_type=subject_type,
            subject_id=subject_id[:64],
            event_id=self.event_id,
            detail=detail,
        )
