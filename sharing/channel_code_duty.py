"""Who is on duty on a channel code right now: a pure function of the members, their slots and the local time.

Rules, in order (the answer is never empty while the code has members):

1. primaries whose weekly slot covers now; a primary without any slot is always on;
2. else the backups whose slot covers now (a backup without any slot is always available);
3. else every backup;
4. else (no backups at all) every primary, so a code is never left without anyone to add.

A slot is ``(weekday, start, end)``: weekday 0 = Monday … 6 = Sunday, minutes ``[start, end)`` of that
day in the brand's time zone, 0 ≤ start < end ≤ 1440. A shift past midnight is two slots.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

MINUTES_PER_DAY: Final = 24 * 60
Role = Literal["primary", "backup"]


class InvalidSlot(ValueError):
    """A schedule slot outside the week or with its end not after its start; ``message`` is Chinese."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Slot:
    """One weekly slot: minutes [start, end) of ``weekday`` (0 = Monday)."""

    weekday: int
    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.weekday <= 6:
            raise InvalidSlot(f"weekday 须为 0–6（0 = 周一），实际是 {self.weekday}")
        if not 0 <= self.start < self.end <= MINUTES_PER_DAY:
            raise InvalidSlot(f"时段须满足 00:00 ≤ 开始 < 结束 ≤ 24:00，实际是 {clock_text(self.start)}–"
                              f"{clock_text(self.end)}；跨午夜请拆成两段")

    def covers(self, weekday: int, minute: int) -> bool:
        """Whether the slot holds that minute of that weekday."""
        return self.weekday == weekday and self.start <= minute < self.end


@dataclass(frozen=True)
class DutyMember:
    """A guide on a code as the duty rules see them."""

    userid: str
    role: Role
    slots: tuple[Slot, ...] = ()

    def available(self, weekday: int, minute: int) -> bool:
        """On (primary) or available (backup) at that time: no slots means always."""
        return not self.slots or any(s.covers(weekday, minute) for s in self.slots)


def clock_text(minute: int) -> str:
    """Minutes of the day as HH:MM (1440 is 24:00)."""
    return f"{minute // 60:02d}:{minute % 60:02d}"


def parse_clock(value: object) -> int:
    """Minutes of the day from "HH:MM" (00:00–24:00) or an int; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        hours, sep, minutes = value.strip().partition(":")
        if sep and hours.isdigit() and minutes.isdigit() and len(minutes) == 2 and int(minutes) < 60:
            return int(hours) * 60 + int(minutes)
    raise ValueError(value)


def on_duty(members: Sequence[DutyMember], local_now: dt.datetime) -> tuple[str, ...]:
    """The userids to put on the contact way at ``local_now`` (brand-local time), in member order."""
    weekday = local_now.weekday()
    minute = local_now.hour * 60 + local_now.minute
    primaries = [m for m in members if m.role == "primary"]
    backups = [m for m in members if m.role == "backup"]
    for group in (
        [m for m in primaries if m.available(weekday, minute)],
        [m for m in backups if m.available(weekday, minute)],
        backups,
        primaries,
    ):
        if group:
            return tuple(dict.fromkeys(m.userid for m in group))
    return ()
