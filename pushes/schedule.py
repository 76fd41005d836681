"""When a push runs: once at a time, or cron-like in the brand's time zone with an optional start and end.

Pure functions over a ``Schedule``. Cron expressions use the usual crontab meaning (day of week 0 or
7 = Sunday, 1 = Monday); APScheduler 3 counts Monday as 0, so the day-of-week field is translated to
names before it reaches ``CronTrigger``. Times given without an offset are read in the push's zone.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger

from pushes.errors import PushError

_DOW_NAMES: Final = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_DOW_CN: Final = {"sun": "日", "mon": "一", "tue": "二", "wed": "三", "thu": "四", "fri": "五", "sat": "六"}
_FIELD_CN: Final = ("分钟", "小时", "日期", "月份", "星期")
#: How far ahead a recurring schedule must fire at least once (a cron that never fires is a typo).
_HORIZON: Final = dt.timedelta(days=366 * 2)
_HHMM: Final = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule: ``once`` at ``at``, or ``cron`` between ``start`` and ``end`` (UTC datetimes)."""

    kind: str
    at: dt.datetime | None = None
    cron: str = ""
    start: dt.datetime | None = None
    end: dt.datetime | None = None

    def as_json(self) -> dict[str, Any]:
        """How it is stored on the push."""
        if self.kind == "once":
            assert self.at is not None
            return {"kind": "once", "at": self.at.isoformat()}
        return {"kind": "cron", "cron": self.cron, "start": self.start.isoformat() if self.start else None,
                "end": self.end.isoformat() if self.end else None}


def parse_time(raw: Any, tz: zoneinfo.ZoneInfo, field: str) -> dt.datetime:
    """An ISO date-time (``2026-11-25T10:00``, offset optional: the push's zone) as UTC."""
    if not isinstance(raw, str) or not raw.strip():
        raise PushError(f"{field} 须为时间，例如 2026-11-25T10:00", field)
    try:
        value = dt.datetime.fromisoformat(raw.strip().replace(" ", "T", 1))
    except ValueError:
        raise PushError(f"{field} 须为时间，例如 2026-11-25T10:00，实际是 {raw!r}", field) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value.astimezone(dt.timezone.utc)


def _dow_names(field: str) -> str:
    if field in ("*", "?"):
        return "*"
    names: list[str] = []
    for token in field.lower().split(","):
        if not token:
            raise ValueError("empty day of week")
        if "/" in token:
            raise ValueError("steps are not allowed in the day of week")
        low, _, high = token.partition("-")
        def day(part: str) -> int:
            if part.isdigit() and 0 <= int(part) <= 7:
                return int(part) % 7
            if part[:3] in _DOW_NAMES:
                return _DOW_NAMES.index(part[:3])
            raise ValueError(f"unknown day of week {part!r}")
        first = day(low)
        last = day(high) if high else first
        if high and high.isdigit() and int(high) == 7:
            last = 7  # 5-7 = Friday to Sunday
        if last < first:
            raise ValueError(f"day-of-week range {token!r} runs backwards")
        names.extend(_DOW_NAMES[d % 7] for d in range(first, last + 1))
    return ",".join(dict.fromkeys(names))


def cron_trigger(expr: str, tz: zoneinfo.ZoneInfo, start: dt.datetime | None = None,
                 end: dt.datetime | None = None) -> CronTrigger:
    """An APScheduler trigger for a 5-field crontab expression with crontab's day-of-week numbering."""
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError("a cron expression has 5 fields: minute hour day month weekday")
    minute, hour, day, month, dow = fields
    if day not in ("*", "?") and dow not in ("*", "?"):
        # crontab ORs a restricted day with a restricted weekday, APScheduler ANDs them: refuse the ambiguity.
        raise ValueError("restrict the day of month or the day of week, not both")
    return CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=_dow_names(dow),
                       timezone=tz, start_date=start, end_date=end)


def _friendly_cron(raw: Mapping[str, Any], field: str) -> str:
    """daily / weekly / monthly forms as a cron expression."""
    kind = raw.get("kind")
    match = _HHMM.match(str(raw.get("time") or ""))
    if not match:
        raise PushError(f"{field}.time 须为 HH:MM，例如 10:00", f"{field}.time")
    hour, minute = int(match.group(1)), int(match.group(2))
    if kind == "daily":
        return f"{minute} {hour} * * *"
    if kind == "weekly":
        days = raw.get("weekdays")
        if not isinstance(days, list) or not days or not all(isinstance(d, int) and 0 <= d <= 7 for d in days):
            raise PushError(f"{field}.weekdays 须为星期列表（0 或 7 = 周日，1 = 周一 … 6 = 周六），例如 [3]",
                            f"{field}.weekdays")
        return f"{minute} {hour} * * {','.join(str(d % 7) for d in sorted(set(d % 7 for d in days)))}"
    days = raw.get("days")
    if not isinstance(days, list) or not days or not all(isinstance(d, int) and 1 <= d <= 31 for d in days):
        raise PushError(f"{field}.days 须为每月的日期列表（1–31），例如 [1, 15]", f"{field}.days")
    return f"{minute} {hour} {','.join(str(d) for d in sorted(set(days)))} * *"


def parse_schedule(raw: Any, tz: zoneinfo.ZoneInfo, now: dt.datetime, field: str = "schedule") -> Schedule:
    """The admin's schedule, checked: a time in the past, a cron that never fires, an end before the start."""
    if not isinstance(raw, dict):
        raise PushError(f'{field} 须为对象，例如 {{"kind": "once", "at": "2026-11-25T10:00"}} 或 '
                        f'{{"kind": "weekly", "weekdays": [3], "time": "10:00"}}', field)
    kind = raw.get("kind")
    if kind == "once":
        at = parse_time(raw.get("at"), tz, f"{field}.at")
        if at <= now:
            raise PushError(f"{field}.at 已经过去：{at.astimezone(tz):%Y-%m-%d %H:%M}，请选择将来的时间", f"{field}.at")
        return Schedule("once", at=at)
    if kind in ("daily", "weekly", "monthly"):
        cron = _friendly_cron(raw, field)
    elif kind == "cron":
        cron = " ".join(str(raw.get("cron") or "").split())
    else:
        raise PushError(f"{field}.kind 须为 once（一次）、daily、weekly、monthly 或 cron（周期）", f"{field}.kind")
    start = parse_time(raw["start"], tz, f"{field}.start") if raw.get("start") else None
    end = parse_time(raw["end"], tz, f"{field}.end") if raw.get("end") else None
    if end is not None and end <= now:
        raise PushError(f"{field}.end 已经过去，周期群发的结束时间须在将来", f"{field}.end")
    if start is not None and end is not None and end <= start:
        raise PushError(f"{field}.end 须晚于 {field}.start", f"{field}.end")
    try:
        trigger = cron_trigger(cron, tz, start, end)
    except ValueError as exc:
        raise PushError(f"{field}.cron 无法识别（分 时 日 月 周，如 0 10 * * 3 = 每周三 10:00）：{exc}",
                        f"{field}.cron") from None
    first = trigger.get_next_fire_time(None, max(now, start or now))
    if first is None or first - now > _HORIZON:
        raise PushError(f"{field} 在结束前不会触发任何一次，请检查时间设置", field)
    return Schedule("cron", cron=cron, start=start, end=end)


def load_schedule(stored: Mapping[str, Any]) -> Schedule:
    """A schedule as stored on a push (already checked when saved)."""
    def utc(value: Any) -> dt.datetime | None:
        return dt.datetime.fromisoformat(value).astimezone(dt.timezone.utc) if value else None
    if stored.get("kind") == "once":
        return Schedule("once", at=utc(stored["at"]))
    return Schedule("cron", cron=str(stored["cron"]), start=utc(stored.get("start")), end=utc(stored.get("end")))


def trigger_for(schedule: Schedule, tz: zoneinfo.ZoneInfo) -> BaseTrigger:
    """The APScheduler trigger for a schedule."""
    if schedule.kind == "once":
        return DateTrigger(run_date=schedule.at, timezone=tz)
    return cron_trigger(schedule.cron, tz, schedule.start, schedule.end)


def next_runs(schedule: Schedule, tz: zoneinfo.ZoneInfo, after: dt.datetime, count: int = 5) -> list[dt.datetime]:
    """Up to ``count`` occurrences strictly after ``after``, in UTC."""
    if schedule.kind == "once":
        assert schedule.at is not None
        return [schedule.at] if schedule.at > after else []
    trigger = trigger_for(schedule, tz)
    found: list[dt.datetime] = []
    previous: dt.datetime | None = None
    moment = after + dt.timedelta(microseconds=1)
    while len(found) < count:
        fire = trigger.get_next_fire_time(previous, moment)
        if fire is None:
            break
        fire = fire.astimezone(dt.timezone.utc)
        if fire > after:
            found.append(fire)
        previous, moment = fire, fire + dt.timedelta(seconds=1)
    return found


def latest_due(schedule: Schedule, tz: zoneinfo.ZoneInfo, now: dt.datetime, grace: dt.timedelta
               ) -> dt.datetime | None:
    """The most recent occurrence at or before ``now`` and no older than ``grace`` (None if there is none)."""
    if schedule.kind == "once":
        assert schedule.at is not None
        return schedule.at if now - grace <= schedule.at <= now else None
    trigger = trigger_for(schedule, tz)
    latest: dt.datetime | None = None
    previous: dt.datetime | None = None
    moment = now - grace
    while True:  # walk the occurrences inside the grace window only
        fire = trigger.get_next_fire_time(previous, moment)
        if fire is None or fire.astimezone(dt.timezone.utc) > now:
            return latest
        latest = previous = fire.astimezone(dt.timezone.utc)
        moment = latest + dt.timedelta(seconds=1)


def describe(schedule: Schedule, tz: zoneinfo.ZoneInfo) -> str:
    """The schedule in plain Chinese for the admin page (每周三 10:00, 2026-11-25 10:00 一次 …)."""
    if schedule.kind == "once":
        assert schedule.at is not None
        return f"{schedule.at.astimezone(tz):%Y-%m-%d %H:%M} 一次"
    minute, hour, day, month, dow = schedule.cron.split()
    clock = f"{int(hour):02d}:{int(minute):02d}" if hour.isdigit() and minute.isdigit() else f"{hour} 时 {minute} 分"
    if day == "*" and month == "*" and dow in ("*", "?"):
        text = f"每天 {clock}"
    elif day == "*" and month == "*":
        text = "每周" + "、".join(_DOW_CN[n] for n in _dow_names(dow).split(",")) + f" {clock}"
    elif month == "*" and dow in ("*", "?"):
        text = f"每月 {day} 日 {clock}"
    else:
        text = f"cron {schedule.cron}"
    if schedule.end:
        text += f"，至 {schedule.end.astimezone(tz):%Y-%m-%d %H:%M}"
    return text
