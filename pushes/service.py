"""Pushes for the admin: create, edit, cancel, list with upcoming runs, dry run, and each run's numbers."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Sequence
from typing import Any, Final

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import (
    AuditEntry, CustomerGroup, DeliveryStatus, GroupStatus, Outcome, Push, PushDelivery, PushRecipient, PushRun,
    PushStatus, RunStatus, Segment, Staff, Store, Tag, TagGroup,
)
from pushes.claims import claim_run
from pushes.errors import PushConflict, PushError, PushNotFound
from pushes.runner import PushRunner
from pushes.schedule import describe, load_schedule, next_runs, parse_time
from pushes.spec import PushSpec, check_references, parse_spec, spec_of

UPCOMING: Final = 5
RUNS_PAGE: Final = 50
_SAMPLE: Final = 20
OPTIONS_MAX: Final = 1000  # tags or group owners offered at most


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


async def audience_names(session: AsyncSession, pushes: Sequence[Push]) -> dict[str, dict[str, str]]:
    """Names of the segments, tags and stores the pushes' audiences name by id (for people to read)."""
    wanted: dict[str, set[int]] = {"segments": set(), "tags": set(), "stores": set()}
    for push in pushes:
        audience = push.audience
        if audience.get("segment_id"):
            wanted["segments"].add(int(audience["segment_id"]))
        wanted["tags"].update(int(t) for t in audience.get("tag_ids") or ())
        wanted["stores"].update(int(t) for t in audience.get("store_ids") or ())
    names: dict[str, dict[str, str]] = {}
    for key, model in (("segments", Segment), ("tags", Tag), ("stores", Store)):
        ids = sorted(wanted[key])
        rows = (await session.execute(select(model.id, model.name).where(model.id.in_(ids)))).all() if ids else []
        names[key] = {str(i): n for i, n in rows}
    return names


def _named(push: Push, names: dict[str, dict[str, str]] | None) -> dict[str, Any]:
    audience = dict(push.audience)
    if names:
        audience["names"] = {
            "segment": names["segments"].get(str(audience.get("segment_id")), ""),
            "tags": {str(t): names["tags"].get(str(t), "") for t in audience.get("tag_ids") or ()},
            "stores": {str(t): names["stores"].get(str(t), "") for t in audience.get("store_ids") or ()},
        }
    return audience


def push_json(push: Push, *, now: dt.datetime, cancelled: set[dt.datetime] | None = None,
              names: dict[str, dict[str, str]] | None = None) -> dict[str, Any]:
    """What the admin API answers for a push (with its next few runs; audience ids named when ``names``)."""
    tz = zoneinfo.ZoneInfo(push.timezone)
    schedule = load_schedule(push.schedule)
    upcoming = next_runs(schedule, tz, now, UPCOMING + len(cancelled or ())) if push.status == PushStatus.ACTIVE else []
    return {
        "id": push.id, "name": push.name, "chat_type": push.chat_type, "audience": _named(push, names),
        "content": push.content, "schedule": push.schedule, "schedule_text": describe(schedule, tz),
        "timezone": push.timezone, "cap": push.cap, "status": push.status.value, "version": push.version,
        "next_run_at": _iso(push.next_run_at),
        "upcoming": [{"at": t.isoformat(), "cancelled": t in (cancelled or set())} for t in upcoming][:UPCOMING],
        "created_by": push.created_by, "created_at": _iso(push.created_at), "updated_at": _iso(push.updated_at),
    }


def _audit(actor: str, action: str, push_id: int, at: dt.datetime, **detail: Any) -> AuditEntry:
    return AuditEntry(at=at, actor=actor, action=action, subject_type="push", subject_id=str(push_id), detail=detail)


async def _load(session: AsyncSession, push_id: int) -> Push:
    push = await session.get(Push, push_id)
    if push is None:
        raise PushNotFound(f"群发 {push_id} 不存在")
    return push


async def _check_not_empty(runner: PushRunner, session: AsyncSession, spec: PushSpec, now: dt.datetime) -> None:
    probe = Push(name=spec.name, chat_type=spec.chat_type, audience=spec.audience, content=spec.content,
                 schedule=spec.schedule.as_json(), timezone=spec.timezone, cap=spec.cap)
    plan = await runner.compute_plan(session, probe, now)
    if not plan.counts()["audience"]:
        raise PushError("受众为空：按当前条件没有任何客户（或客户群），请调整受众", "audience")


async def create_push(maker: async_sessionmaker[AsyncSession], runner: PushRunner, body: Any, *,
                      now: dt.datetime, actor: str, default_tz: str) -> Push:
    """Validate and store a new push (active: the scheduler picks it up)."""
    spec = parse_spec(body, now=now, default_tz=default_tz)
    async with maker.begin() as session:
        await check_references(session, spec)
        await _check_not_empty(runner, session, spec, now)
        push = Push(name=spec.name, chat_type=spec.chat_type, audience=spec.audience, content=spec.content,
                    schedule=spec.schedule.as_json(), timezone=spec.timezone, cap=spec.cap, status=PushStatus.ACTIVE,
                    version=1, next_run_at=(next_runs(spec.schedule, zoneinfo.ZoneInfo(spec.timezone), now, 1)
                                            or [None])[0], created_by=actor, created_at=now, updated_at=now)
        session.add(push)
        await session.flush()
        session.add(_audit(actor, "push.create", push.id, now, name=spec.name))
    return push


async def update_push(maker: async_sessionmaker[AsyncSession], runner: PushRunner, push_id: int, body: Any, *,
                      now: dt.datetime, actor: str, default_tz: str) -> Push:
    """Edit a push that is still active or paused; the next runs follow the new version."""
    async with maker() as session:
        base = spec_of(await _load(session, push_id))
    spec = parse_spec(body, now=now, default_tz=default_tz, base=base)
    async with maker.begin() as session:
        push = await _load(session, push_id)
        if push.status not in (PushStatus.ACTIVE, PushStatus.PAUSED):
            raise PushConflict(f"群发「{push.name}」已{_STATUS_CN[push.status]}，不能再修改", "status")
        await check_references(session, spec)
        await _check_not_empty(runner, session, spec, now)
        push.name, push.chat_type, push.audience, push.content = spec.name, spec.chat_type, spec.audience, spec.content
        push.schedule, push.timezone, push.cap = spec.schedule.as_json(), spec.timezone, spec.cap
        push.version += 1
        push.updated_at = now
        push.next_run_at = (next_runs(spec.schedule, zoneinfo.ZoneInfo(spec.timezone), now, 1) or [None])[0]
        session.add(_audit(actor, "push.update", push.id, now, version=push.version))
    return push


_STATUS_CN: Final = {PushStatus.ACTIVE: "启用", PushStatus.PAUSED: "暂停", PushStatus.CANCELLED: "取消",
                     PushStatus.FINISHED: "结束"}


async def set_status(maker: async_sessionmaker[AsyncSession], push_id: int, status: PushStatus, *,
                     now: dt.datetime, actor: str) -> Push:
    """Pause, resume or cancel a push (runs already started carry on)."""
    allowed = {PushStatus.PAUSED: (PushStatus.ACTIVE,), PushStatus.ACTIVE: (PushStatus.PAUSED,),
               PushStatus.CANCELLED: (PushStatus.ACTIVE, PushStatus.PAUSED)}
    async with maker.begin() as session:
        push = await _load(session, push_id)
        if push.status not in allowed[status]:
            raise PushConflict(f"群发「{push.name}」当前状态为{_STATUS_CN[push.status]}，不能{_STATUS_CN[status]}",
                               "status")
        push.status, push.updated_at, push.version = status, now, push.version + 1
        if status != PushStatus.ACTIVE:
            push.next_run_at = None
        session.add(_audit(actor, f"push.{status.value}", push.id, now))
    return push


async def cancel_occurrence(maker: async_sessionmaker[AsyncSession], push_id: int, raw_at: Any, *,
                            now: dt.datetime, actor: str) -> dt.datetime:
    """Cancel one upcoming run: its (push, time) row is taken as ``cancelled`` so it can never start."""
    async with maker() as session:
        push = await _load(session, push_id)
    tz = zoneinfo.ZoneInfo(push.timezone)
    at = parse_time(raw_at, tz, "scheduled_for")
    if at <= now:
        raise PushConflict("这次群发的时间已到或已过，无法取消", "scheduled_for")
    if at not in next_runs(load_schedule(push.schedule), tz, now, 1000):
        raise PushError(f"{at.astimezone(tz):%Y-%m-%d %H:%M} 不是这个群发的计划时间", "scheduled_for")
    if await claim_run(maker, push_id, at, trigger="schedule", now=now, status=RunStatus.CANCELLED,
                       error=f"由 {actor} 取消") is None:
        raise PushConflict("这次群发已取消或已开始", "scheduled_for")
    async with maker.begin() as session:
        session.add(_audit(actor, "push.cancel_run", push_id, now, scheduled_for=at.isoformat()))
    return at


async def list_pushes(maker: async_sessionmaker[AsyncSession], *, now: dt.datetime) -> list[dict[str, Any]]:
    """Every push, newest first, with its upcoming runs (cancelled ones marked)."""
    async with maker() as session:
        pushes = (await session.scalars(select(Push).order_by(Push.id.desc()))).all()
        cancelled = await session.execute(select(PushRun.push_id, PushRun.scheduled_for).where(
            PushRun.status == RunStatus.CANCELLED, PushRun.scheduled_for > now))
        by_push: dict[int, set[dt.datetime]] = {}
        for push_id, at in cancelled:
            by_push.setdefault(push_id, set()).add(at)
        names = await audience_names(session, pushes)
    return [push_json(p, now=now, cancelled=by_push.get(p.id), names=names) for p in pushes]


async def get_push(maker: async_sessionmaker[AsyncSession], push_id: int, *, now: dt.datetime) -> dict[str, Any]:
    """One push with upcoming runs and its latest runs."""
    async with maker() as session:
        push = await _load(session, push_id)
        cancelled = set((await session.scalars(select(PushRun.scheduled_for).where(
            PushRun.push_id == push_id, PushRun.status == RunStatus.CANCELLED, PushRun.scheduled_for > now))).all())
        runs = (await session.scalars(select(PushRun).where(PushRun.push_id == push_id)
                                      .order_by(PushRun.scheduled_for.desc()).limit(RUNS_PAGE))).all()
        sent = await _outcomes_by_run(session, [r.id for r in runs])
        names = await audience_names(session, [push])
    data = push_json(push, now=now, cancelled=cancelled, names=names)
    data["runs"] = [run_json(r, push.name, sent.get(r.id, {})) for r in runs]
    return data


async def dry_run(maker: async_sessionmaker[AsyncSession], runner: PushRunner, push_id: int, *,
                  now: dt.datetime) -> dict[str, Any]:
    """The audience and the per-guide split if the push ran now; nothing is written or sent."""
    async with maker() as session:
        push = await _load(session, push_id)
        plan = await runner.compute_plan(session, push, now)
        names = dict((await session.execute(select(Staff.userid, Staff.name).where(
            Staff.userid.in_([t.sender for t in plan.tasks] or [""])))).all())
    guides = [dict(row, name=names.get(str(row["userid"]), "")) for row in plan.per_guide()]
    sample = [{"target": r.target, "customer_id": r.customer_id, "sender": t.sender}
              for t in plan.tasks for r in t.targets][:_SAMPLE]
    skipped = {o.value: [{"target": r.target, "customer_id": r.customer_id} for r in rs[:_SAMPLE]]
               for o, rs in plan.skipped.items()}
    return {"push_id": push_id, "at": now.isoformat(), "counts": plan.counts(), "guides": guides,
            "sample": sample, "skipped_sample": skipped, "quota": runner.quota.describe()}


async def _outcomes_by_run(session: AsyncSession, run_ids: list[int]) -> dict[int, dict[str, int]]:
    if not run_ids:
        return {}
    rows = await session.execute(select(PushRecipient.run_id, PushRecipient.outcome, func.count()).where(
        PushRecipient.run_id.in_(run_ids)).group_by(PushRecipient.run_id, PushRecipient.outcome))
    out: dict[int, dict[str, int]] = {}
    for run_id, outcome, n in rows:
        out.setdefault(run_id, {})[Outcome(outcome).value] = int(n)
    return out


def run_json(run: PushRun, push_name: str, outcomes: dict[str, int]) -> dict[str, Any]:
    """A run's state, progress and per-outcome numbers."""
    return {
        "id": run.id, "push_id": run.push_id, "push_name": push_name, "scheduled_for": _iso(run.scheduled_for),
        "trigger": run.trigger, "status": run.status.value, "phase": run.phase,
        "progress": {"done": run.progress_done, "total": run.progress_total}, "counts": run.counts,
        "outcomes": outcomes, "started_at": _iso(run.started_at), "created_at": _iso(run.created_at),
        "deadline_at": _iso(run.deadline_at), "finished_at": _iso(run.finished_at), "error": run.error,
    }


async def list_runs(maker: async_sessionmaker[AsyncSession], *, status: str | None = None,
                    limit: int = RUNS_PAGE) -> list[dict[str, Any]]:
    """Recent runs of every push (optionally of one status), newest first."""
    query = select(PushRun, Push.name).join(Push, Push.id == PushRun.push_id)
    if status:
        try:
            query = query.where(PushRun.status == RunStatus(status))
        except ValueError:
            raise PushError(f"status 须为 {', '.join(s.value for s in RunStatus)} 之一", "status") from None
    async with maker() as session:
        rows = (await session.execute(query.order_by(PushRun.id.desc()).limit(max(1, min(limit, 500))))).all()
        outcomes = await _outcomes_by_run(session, [r.id for r, _ in rows])
    return [run_json(r, name, outcomes.get(r.id, {})) for r, name in rows]


async def run_detail(maker: async_sessionmaker[AsyncSession], run_id: int) -> dict[str, Any]:
    """One run: progress, numbers (targeted, tasks created, confirmed, sent, failed by reason) and per guide."""
    async with maker() as session:
        found = (await session.execute(select(PushRun, Push.name).join(Push, Push.id == PushRun.push_id)
                                       .where(PushRun.id == run_id))).first()
        if found is None:
            raise PushNotFound(f"群发记录 {run_id} 不存在")
        run, name = found
        outcomes = (await _outcomes_by_run(session, [run_id])).get(run_id, {})
        tasks = (await session.execute(select(
            func.count(), func.sum(case((PushDelivery.msgid.is_not(None), 1), else_=0)),
            func.sum(case((PushDelivery.task_status != 0, 1), else_=0)),
            func.sum(case((PushDelivery.status == DeliveryStatus.FAILED, 1), else_=0)),
        ).where(PushDelivery.run_id == run_id))).one()
        errors = (await session.execute(select(PushDelivery.error_code, PushDelivery.error, func.count()).where(
            PushDelivery.run_id == run_id, PushDelivery.status == DeliveryStatus.FAILED)
            .group_by(PushDelivery.error_code, PushDelivery.error))).all()
        per_guide_rows = (await session.execute(select(PushRecipient.sender_userid, PushRecipient.outcome, func.count())
                                                .where(PushRecipient.run_id == run_id, PushRecipient.sender_userid != "")
                                                .group_by(PushRecipient.sender_userid, PushRecipient.outcome))).all()
        deliveries = (await session.execute(select(PushDelivery).where(PushDelivery.run_id == run_id)
                                            .order_by(PushDelivery.sender_userid, PushDelivery.chunk))).scalars().all()
        names = dict((await session.execute(select(Staff.userid, Staff.name).where(
            Staff.userid.in_({d.sender_userid for d in deliveries} or {""})))).all())
    guides: dict[str, dict[str, Any]] = {}
    for userid, outcome, n in per_guide_rows:
        row = guides.setdefault(userid, {"userid": userid, "name": names.get(userid, ""), "outcomes": {}, "tasks": []})
        row["outcomes"][Outcome(outcome).value] = int(n)
    for d in deliveries:
        row = guides.setdefault(d.sender_userid, {"userid": d.sender_userid, "name": names.get(d.sender_userid, ""),
                                                  "outcomes": {}, "tasks": []})
        row["tasks"].append({"chunk": d.chunk, "targets": d.targets, "status": d.status.value, "msgid": d.msgid,
                             "confirmed": bool(d.task_status), "error_code": d.error_code, "error": d.error,
                             "reminded_at": _iso(d.reminded_at), "sent_at": _iso(d.sent_at)})
    data = run_json(run, name, outcomes)
    total, created, confirmed, failed = (int(x or 0) for x in tasks)
    data["tasks"] = {"planned": total, "created": created, "confirmed": confirmed, "failed": failed}
    data["failures"] = [{"error_code": code, "error": text, "tasks": int(n)} for code, text, n in errors]
    data["guides"] = sorted(guides.values(), key=lambda g: g["userid"])
    return data


async def run_now(maker: async_sessionmaker[AsyncSession], runner: PushRunner, push_id: int, *,
                  now: dt.datetime, actor: str) -> int:
    """Start a run at once (an admin's 立即发送); the run id to follow its progress."""
    async with maker() as session:
        push = await _load(session, push_id)
        if push.status != PushStatus.ACTIVE:
            raise PushConflict(f"群发「{push.name}」当前状态为{_STATUS_CN[push.status]}，不能立即发送", "status")
    run_id = await runner.start(push_id, now.replace(microsecond=0), trigger="manual")
    if run_id is None:
        raise PushConflict("这一秒已经有一次发送，请稍后再试", "")
    async with maker.begin() as session:
        session.add(_audit(actor, "push.run_now", push_id, now, run_id=run_id))
    return run_id


async def push_options(maker: async_sessionmaker[AsyncSession]) -> dict[str, list[dict[str, Any]]]:
    """What an audience can name, with names: segments, live tags (with their group), stores, group owners."""
    async with maker() as session:
        segments = (await session.execute(select(Segment.id, Segment.name).order_by(Segment.name))).all()
        tags = (await session.execute(select(Tag.id, Tag.name, TagGroup.name).join(TagGroup, TagGroup.id == Tag.group_id)
                                      .where(Tag.deleted.is_(False), TagGroup.deleted.is_(False))
                                      .order_by(TagGroup.order.desc(), TagGroup.id, Tag.order.desc(), Tag.id)
                                      .limit(OPTIONS_MAX))).all()
        stores = (await session.execute(select(Store.id, Store.name).order_by(Store.code))).all()
        owners = (await session.execute(select(Staff.userid, Staff.name).where(
            Staff.userid.in_(select(CustomerGroup.owner_userid).where(CustomerGroup.status == GroupStatus.ACTIVE)))
            .order_by(Staff.userid).limit(OPTIONS_MAX))).all()
    return {"segments": [{"id": i, "name": n} for i, n in segments],
            "tags": [{"id": i, "name": n, "group": g} for i, n, g in tags],
            "stores": [{"id": i, "name": n} for i, n in stores],
            "owners": [{"userid": u, "name": n} for u, n in owners]}
