"""A run's plan: who is targeted, who is skipped and why, and the WeCom tasks per guide and chunk.

Pure once the audience is resolved, so the dry run and the real run split customers the same way.
The brand's receive quota (SCRM_PUSH_QUOTA, "N/day|week|month" in the brand's zone) counts our own
pushes a customer has had in the current natural period; over it, they are skipped and counted.
"""

from __future__ import annotations

import collections
import datetime as dt
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Outcome, PushRecipient
from pushes.audience import Recipient

#: add_msg_template takes at most 10,000 external_userids or 2,000 chat_ids per call (PROTOCOL.md §4.8, §7).
MAX_CUSTOMERS_PER_TASK: Final = 10_000
MAX_GROUPS_PER_TASK: Final = 2_000
#: Outcomes that used up a customer's quota (sent, or still waiting to be).
_COUNTED: Final = (Outcome.PENDING, Outcome.SENT)


@dataclass(frozen=True)
class Quota:
    """At most ``count`` pushes per natural ``unit`` (day, week from Monday, month)."""

    count: int
    unit: str

    @classmethod
    def parse(cls, text: str) -> "Quota":
        """'1/day' -> Quota(1, 'day') (settings already checked the shape)."""
        count, unit = text.split("/")
        return cls(int(count), unit)

    def window_start(self, now: dt.datetime, tz: zoneinfo.ZoneInfo) -> dt.datetime:
        """Start of the current natural period in the brand's zone, as UTC."""
        local = now.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
        if self.unit == "week":
            local -= dt.timedelta(days=local.weekday())
        elif self.unit == "month":
            local = local.replace(day=1)
        # Re-attach the zone: a DST change between the period start and now must not shift it.
        return local.replace(tzinfo=None).replace(tzinfo=tz).astimezone(dt.timezone.utc)

    def describe(self) -> str:
        """每天 1 次 …"""
        return f"每{ {'day': '天', 'week': '周', 'month': '月'}[self.unit] } {self.count} 次"


async def received_counts(session: AsyncSession, since: dt.datetime) -> dict[int, int]:
    """Pushes each customer has received (or has waiting) since ``since``: one aggregate over the period."""
    rows = await session.execute(
        select(PushRecipient.customer_id, func.count()).where(
            PushRecipient.at >= since, PushRecipient.outcome.in_(_COUNTED), PushRecipient.customer_id.is_not(None))
        .group_by(PushRecipient.customer_id))
    return {int(c): int(n) for c, n in rows}


@dataclass
class Task:
    """One planned add_msg_template call."""

    sender: str
    staff_id: int | None
    chunk: int
    targets: list[Recipient]


@dataclass
class Plan:
    """Targeted recipients in tasks, and everyone else with the reason they are left out."""

    tasks: list[Task] = field(default_factory=list)
    skipped: dict[Outcome, list[Recipient]] = field(default_factory=lambda: collections.defaultdict(list))

    @property
    def targeted(self) -> int:
        """Recipients that go to WeCom."""
        return sum(len(t.targets) for t in self.tasks)

    def counts(self) -> dict[str, int]:
        """The numbers a run reports from the start."""
        return {"audience": self.targeted + sum(len(v) for v in self.skipped.values()), "targeted": self.targeted,
                "tasks": len(self.tasks), "guides": len({t.sender for t in self.tasks}),
                **{outcome.value: len(self.skipped.get(outcome, [])) for outcome in
                   (Outcome.NO_GUIDE, Outcome.SKIPPED_QUOTA, Outcome.CAPPED)}}

    def per_guide(self) -> list[dict[str, object]]:
        """Targeted recipients and tasks per guide, most first (the dry run's split)."""
        split: dict[str, dict[str, object]] = {}
        for task in self.tasks:
            row = split.setdefault(task.sender, {"userid": task.sender, "targeted": 0, "tasks": 0})
            row["targeted"] = int(row["targeted"]) + len(task.targets)  # type: ignore[call-overload]
            row["tasks"] = int(row["tasks"]) + 1  # type: ignore[call-overload]
        return sorted(split.values(), key=lambda r: (-int(r["targeted"]), str(r["userid"])))  # type: ignore[call-overload]


def make_plan(recipients: Sequence[Recipient], *, group: bool, cap: int | None, quota: Quota | None,
              received: Mapping[int, int]) -> Plan:
    """Split the audience: no sender -> no_guide; over quota -> skipped_quota; beyond cap -> capped; the rest in tasks."""
    plan = Plan()
    chosen: dict[str, list[Recipient]] = {}
    staff: dict[str, int | None] = {}
    taken = 0
    for r in recipients:
        if r.sender is None:
            plan.skipped[Outcome.NO_GUIDE].append(r)
        elif quota is not None and r.customer_id is not None and received.get(r.customer_id, 0) >= quota.count:
            plan.skipped[Outcome.SKIPPED_QUOTA].append(r)
        elif cap is not None and taken >= cap:
            plan.skipped[Outcome.CAPPED].append(r)
        else:
            taken += 1
            chosen.setdefault(r.sender, []).append(r)
            staff[r.sender] = r.staff_id
    size = MAX_GROUPS_PER_TASK if group else MAX_CUSTOMERS_PER_TASK
    for sender in sorted(chosen):
        targets = chosen[sender]
        for chunk, start in enumerate(range(0, len(targets), size)):
            plan.tasks.append(Task(sender, staff[sender], chunk, targets[start:start + size]))
    return plan
