"""Who is on duty on a channel code: primaries in their slots, else backups in theirs, else all backups."""

from __future__ import annotations

import datetime as dt

import pytest

from sharing.channel_code_duty import DutyMember, InvalidSlot, Slot, clock_text, on_duty, parse_clock

MON, TUE, SAT, SUN = 0, 1, 5, 6
DAY = Slot(MON, 9 * 60, 18 * 60)  # Monday 09:00-18:00
EVENING = Slot(MON, 18 * 60, 22 * 60)
WEEKEND = (Slot(SAT, 10 * 60, 20 * 60), Slot(SUN, 10 * 60, 20 * 60))

A = DutyMember("a", "primary", (DAY,))
B = DutyMember("b", "primary", (EVENING,))
C = DutyMember("c", "primary", WEEKEND)
ALWAYS = DutyMember("always", "primary")
X = DutyMember("x", "backup", (EVENING,))
Y = DutyMember("y", "backup")  # no slots: always available as a backup
Z = DutyMember("z", "backup", (Slot(TUE, 0, 1440),))


def at(weekday: int, hhmm: str) -> dt.datetime:
    """A local time on the given weekday of the week of 2026-11-23 (a Monday)."""
    hours, minutes = map(int, hhmm.split(":"))
    return dt.datetime(2026, 11, 23 + weekday, hours, minutes)


@pytest.mark.parametrize(("members", "when", "expected"), [
    # primaries whose slot covers now
    ([A, B, X], at(MON, "09:00"), ("a",)),
    ([A, B, X], at(MON, "17:59"), ("a",)),
    ([A, B, X], at(MON, "18:00"), ("b",)),  # end is exclusive, the next slot's start inclusive
    ([A, C], at(SAT, "12:00"), ("c",)),
    ([A, ALWAYS], at(MON, "10:00"), ("a", "always")),  # member order is kept
    ([ALWAYS, A], at(SUN, "03:00"), ("always",)),
    # no primary on duty: the backups on duty
    ([A, B, X, Y], at(MON, "21:00"), ("b",)),
    ([A, X, Y], at(MON, "21:00"), ("x", "y")),
    ([A, X, Z], at(TUE, "08:00"), ("z",)),
    ([A, X, Y], at(TUE, "08:00"), ("y",)),
    # no backup on duty either: all backups
    ([A, X, Z], at(SAT, "08:00"), ("x", "z")),
    ([A, B, X], at(SUN, "23:59"), ("x",)),
    # no backups at all: all primaries, never empty
    ([A, B], at(SUN, "12:00"), ("a", "b")),
    ([C], at(MON, "12:00"), ("c",)),
    ([], at(MON, "12:00"), ()),
])
def test_on_duty(members: list[DutyMember], when: dt.datetime, expected: tuple[str, ...]) -> None:
    assert on_duty(members, when) == expected


def test_a_local_time_with_a_zone_uses_its_own_wall_clock() -> None:
    shanghai = dt.timezone(dt.timedelta(hours=8))
    # 01:30 UTC on Monday is 09:30 in Shanghai: A's slot.
    assert on_duty([A, Y], dt.datetime(2026, 11, 23, 1, 30, tzinfo=dt.timezone.utc).astimezone(shanghai)) == ("a",)


@pytest.mark.parametrize(("weekday", "start", "end"), [(7, 0, 60), (-1, 0, 60), (MON, 60, 60), (MON, 120, 60),
                                                        (MON, 0, 1441), (MON, -5, 60)])
def test_bad_slots_are_refused_in_chinese(weekday: int, start: int, end: int) -> None:
    with pytest.raises(InvalidSlot) as info:
        Slot(weekday, start, end)
    assert any("\u4e00" <= ch <= "\u9fff" for ch in info.value.message)


@pytest.mark.parametrize(("text", "minutes"), [("09:00", 540), ("9:05", 545), ("00:00", 0), ("24:00", 1440), (90, 90)])
def test_clock_texts(text: str | int, minutes: int) -> None:
    assert parse_clock(text) == minutes
    assert parse_clock(clock_text(minutes)) == minutes


@pytest.mark.parametrize("bad", ["9", "09:60", "ab:cd", "09:5", None, True, 1.5])
def test_bad_clock_texts(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_clock(bad)
