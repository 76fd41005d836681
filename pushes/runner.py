"""Carrying out a run: plan it, create one WeCom task per guide and chunk, remind guides, poll results.

Every step is in the database before and after its WeCom call, and no transaction is open while we
wait on WeCom:

1. claim: the (push, scheduled_for) row is inserted once (pushes/claims.py);
2. plan: audience, quota, cap and per-guide chunks are written in one transaction (recipients with
   their delivery, deliveries ``pending``);
3. per delivery: ``calling`` is committed, add_msg_template is called, then ``created`` with the
   msgid (or ``failed`` with WeCom's errcode) is committed. A delivery found ``calling`` on resume
   may or may not exist in WeCom: we look for it in get_groupmsg_list_v2 (same text, same sender,
   same recipients) before calling again, so a crash neither loses a task nor creates it twice;
4. guides are reminded through the app to confirm; then results are polled until every task is final.

Rate limits (45009/45033 after the gateway's own retries, -1 system busy) back off and resume;
other WeCom errors fail that delivery only, visibly. WeCom being unreachable mid-call leaves the
delivery ``calling``: the run is picked up again by ``poll_due`` and reconciled.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import zoneinfo
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Final

from aiohttp import web
from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from media.attachments import asset_ids, to_wecom
from media.assets import media_id_for
from models import (
    DeliveryStatus, Outcome, Push, PushDelivery, PushRecipient, PushRun, PushStatus, RunStatus, Staff, Store,
)
from pushes import audience
from pushes.claims import claim_run, record_skipped
from pushes.plan import Plan, Quota, make_plan, received_counts
from pushes.spec import fill
from scrm.leader import holder_name
from scrm.settings import Settings
from scrm.tasks import cancel_and_wait
from wecom.errors import RATE_LIMIT_ERRCODES, WeComError, WeComUnavailable
from wecom.gateway import WeComGateway

_LOGGER = logging.getLogger(__name__)

#: Errors after which the same call is tried again later (the gateway already retried briefly).
_RETRY_LATER: Final = RATE_LIMIT_ERRCODES | {-1, 6000}
BACKOFF_FIRST: Final = 2.0
#: Short enough that a waiting run's heartbeat never looks stale.
BACKOFF_MAX: Final = 60.0
#: A run whose worker showed no progress for this long is taken over by ``resume`` (a crashed process).
STALE_AFTER: Final = dt.timedelta(minutes=3)
#: How far before a delivery's call we look for its message when reconciling (clock skew, slow calls).
_RECONCILE_SLACK: Final = 300
#: 41063: results are not readable yet right after creation.
_DISPATCHING: Final = 41063
_WRITE_CHUNK: Final = 5_000
_IN_CHUNK: Final = 500
_STATUS_OUTCOME: Final = {1: Outcome.SENT, 2: Outcome.NOT_FRIEND, 3: Outcome.OVER_QUOTA}

Sleep = Callable[[float], Awaitable[None]]


class SimulatedCrash(BaseException):
    """Raised by a test's crash hook between a WeCom call and its record (BaseException: nothing catches it)."""


class PushRunner:
    """Runs pushes for one process; the scheduler calls ``fire``, ``record_skipped``, ``resume`` and ``poll_due``."""

    def __init__(self, maker: async_sessionmaker[AsyncSession], gateway: WeComGateway, settings: Settings, *,
                 clock: Callable[[], dt.datetime], sleep: Sleep = asyncio.sleep,
                 after_call: Callable[[int], None] | None = None) -> None:
        self.maker = maker
        self.gateway = gateway
        self.settings = settings
        self.clock = clock
        self.sleep = sleep
        # Test hook: called with the delivery id right after add_msg_template answered, before the record.
        self.after_call = after_call
        self.quota = Quota.parse(settings.push_quota)
        self.name = holder_name()
        self._active: dict[int, asyncio.Task[None]] = {}

    # -- entry points --------------------------------------------------------------------------

    async def fire(self, push_id: int, scheduled_for: dt.datetime, trigger: str = "schedule") -> int | None:
        """Claim and carry out one occurrence; its run id, or None if it was already claimed (or the push is off)."""
        run_id = await self.start(push_id, scheduled_for, trigger)
        if run_id is not None:
            await self.wait(run_id)
        return run_id

    async def start(self, push_id: int, scheduled_for: dt.datetime, trigger: str = "schedule") -> int | None:
        """Claim the occurrence and carry it out in the background; the run id (None: claimed before or push off)."""
        now = self.clock()
        async with self.maker() as session:
            push = await session.get(Push, push_id)
            if push is None or push.status != PushStatus.ACTIVE:
                _LOGGER.info("push %s is not active: occurrence %s not run", push_id, scheduled_for)
                return None
        run_id = await claim_run(self.maker, push_id, scheduled_for, trigger=trigger, now=now)
        if run_id is None:
            _LOGGER.info("push %s occurrence %s already has a run", push_id, scheduled_for.isoformat())
            return None
        if push.schedule.get("kind") == "once":  # sent (at its time, or now instead of then): done
            async with self.maker.begin() as session:
                await session.execute(update(Push).where(Push.id == push_id, Push.status == PushStatus.ACTIVE)
                                      .values(status=PushStatus.FINISHED, next_run_at=None, updated_at=now))
        self._spawn(run_id)
        return run_id

    async def wait(self, run_id: int) -> None:
        """Wait for this process's work on a run (creation and first poll scheduling) to end."""
        task = self._active.get(run_id)
        if task is not None:
            await asyncio.shield(task)

    async def record_skipped(self, push_id: int, scheduled_for: dt.datetime) -> None:
        """Report an occurrence missed beyond its grace time."""
        grace = self.settings.push_grace_minutes
        await record_skipped(self.maker, push_id, scheduled_for, now=self.clock(),
                             reason=f"服务停止期间错过了这次群发，且已超过 {grace} 分钟的补发时限")

    async def resume(self) -> None:
        """Continue runs left in ``creating`` by a process that stopped (called when this one starts scheduling)."""
        async with self.maker() as session:
            ids = (await session.scalars(select(PushRun.id).where(PushRun.status == RunStatus.CREATING))).all()
        for run_id in ids:
            if run_id not in self._active:
                _LOGGER.info("resuming push run %s", run_id)
                self._spawn(run_id)

    async def poll_due(self) -> None:
        """Resume stalled runs and poll results of runs whose next poll is due."""
        await self.resume()
        now = self.clock()
        async with self.maker() as session:
            ids = (await session.scalars(select(PushRun.id).where(
                PushRun.status == RunStatus.POLLING, PushRun.next_poll_at <= now))).all()
        for run_id in ids:
            try:
                await self.poll(run_id)
            except (WeComError, WeComUnavailable) as exc:
                _LOGGER.warning("polling push run %s failed, next time: %s", run_id, exc)

    async def close(self) -> None:
        """Stop background work (a run stopped mid-way is resumed later from its records)."""
        for task in list(self._active.values()):
            await cancel_and_wait(task)
        self._active.clear()

    def _spawn(self, run_id: int) -> None:
        task = asyncio.create_task(self._carry_out(run_id), name=f"push-run-{run_id}")
        self._active[run_id] = task
        task.add_done_callback(lambda _: self._active.pop(run_id, None))

    async def _take(self, run_id: int) -> bool:
        """Become the run's worker if it has none, it is ours, or its worker went quiet (crashed)."""
        now = self.clock()
        async with self.maker.begin() as session:
            result = await session.execute(update(PushRun).where(
                PushRun.id == run_id, PushRun.status == RunStatus.CREATING,
                or_(PushRun.worker == "", PushRun.worker == self.name, PushRun.heartbeat_at.is_(None),
                    PushRun.heartbeat_at < now - STALE_AFTER)).values(worker=self.name, heartbeat_at=now))
        return bool(result.rowcount)

    async def _carry_out(self, run_id: int) -> None:
        if not await self._take(run_id):
            _LOGGER.info("push run %s is being created by another process", run_id)
            return
        try:
            if not await self._planned(run_id):
                await self._plan(run_id)
            await self._deliver(run_id)
        except WeComUnavailable as exc:
            _LOGGER.warning("push run %s paused, WeCom unreachable (resumed on the next poll): %s", run_id, exc)
        except Exception as exc:  # a background job: record it on the run, the next poll tries again
            _LOGGER.exception("push run %s stopped", run_id)
            async with self.maker.begin() as session:
                await session.execute(update(PushRun).where(PushRun.id == run_id).values(
                    error=f"{type(exc).__name__}: {exc}"[:1000]))

    # -- planning --------------------------------------------------------------------------------

    async def _planned(self, run_id: int) -> bool:
        # The counts are written in the plan's own transaction: set means recipients and deliveries exist.
        async with self.maker() as session:
            return bool(await session.scalar(select(PushRun.counts).where(PushRun.id == run_id)))

    async def compute_plan(self, session: AsyncSession, push: Push, now: dt.datetime) -> Plan:
        """Resolve the audience now and split it (the dry run uses this too)."""
        recipients = await audience.resolve(session, dict(push.audience), now)
        tz = zoneinfo.ZoneInfo(push.timezone)
        group = push.chat_type == "group"
        received = {} if group else await received_counts(session, self.quota.window_start(now, tz))
        return make_plan(recipients, group=group, cap=push.cap, quota=None if group else self.quota, received=received)

    async def _plan(self, run_id: int) -> None:
        now = self.clock()
        await self._phase(run_id, "resolving")
        async with self.maker() as session:
            run = await session.get(PushRun, run_id)
            assert run is not None
            push = await session.get(Push, run.push_id)
            assert push is not None
            plan = await self.compute_plan(session, push, now)
            content = dict(push.content)
        at = run.scheduled_for
        async with self.maker.begin() as session:
            delivery_ids: list[int] = []
            for task in plan.tasks:
                result = await session.execute(insert(PushDelivery).values(
                    run_id=run_id, sender_userid=task.sender, staff_id=task.staff_id, chunk=task.chunk,
                    targets=len(task.targets), status=DeliveryStatus.PENDING, attempts=0, error="", task_status=0,
                ).returning(PushDelivery.id))
                delivery_ids.append(int(result.scalar_one()))
            rows: list[dict[str, Any]] = []
            for task, delivery_id in zip(plan.tasks, delivery_ids, strict=True):
                rows.extend({"run_id": run_id, "target": r.target, "customer_id": r.customer_id,
                             "delivery_id": delivery_id, "sender_userid": r.sender or "",
                             "outcome": Outcome.PENDING, "at": at} for r in task.targets)
            for outcome, skipped in plan.skipped.items():
                rows.extend({"run_id": run_id, "target": r.target, "customer_id": r.customer_id, "delivery_id": None,
                             "sender_userid": r.sender or "", "outcome": outcome, "at": at} for r in skipped)
            # Core executemany on the session's connection: the ORM bulk-insert path (session.execute) spent
            # about as much CPU again per row preparing parameters (bench/pushes.py, 100,000 recipients).
            conn = await session.connection()
            for start in range(0, len(rows), _WRITE_CHUNK):
                await conn.execute(insert(PushRecipient), rows[start:start + _WRITE_CHUNK])
            await session.execute(update(PushRun).where(PushRun.id == run_id).values(
                content=content, counts=plan.counts(), phase="planned", progress_done=0,
                progress_total=len(plan.tasks)))
        _LOGGER.info("push run %s planned: %s", run_id, plan.counts())

    async def _phase(self, run_id: int, phase: str) -> None:
        async with self.maker.begin() as session:
            await session.execute(update(PushRun).where(PushRun.id == run_id).values(phase=phase))

    # -- delivery --------------------------------------------------------------------------------

    async def _deliver(self, run_id: int) -> None:
        async with self.maker() as session:
            run = await session.get(PushRun, run_id)
            assert run is not None
            push_name, chat_type = (await session.execute(
                select(Push.name, Push.chat_type).where(Push.id == run.push_id))).one()
            deliveries = (await session.scalars(select(PushDelivery).where(
                PushDelivery.run_id == run_id,
                PushDelivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.CALLING]))
                .order_by(PushDelivery.id))).all()
            senders = await self._sender_values(session, {d.sender_userid for d in deliveries})
        await self._phase(run_id, "creating")
        attachments = await self._attachments(run.content.get("attachments") or [])
        text = str(run.content.get("text") or "")
        for delivery in deliveries:
            await self._deliver_one(run_id, delivery, chat_type, fill(text, senders.get(delivery.sender_userid, {}))
                                    if text else "", attachments)
        await self._remind(run_id, push_name)
        await self._to_polling(run_id)

    async def _sender_values(self, session: AsyncSession, userids: set[str]) -> dict[str, dict[str, str]]:
        if not userids:
            return {}
        rows = await session.execute(select(Staff.userid, Staff.name, Store.name).outerjoin(
            Store, Store.id == Staff.store_id).where(Staff.userid.in_(sorted(userids))))
        return {u: {"guide_name": n or "", "store_name": s or ""} for u, n, s in rows}

    async def _attachments(self, items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        now = self.clock()
        media = {i: await media_id_for(self.maker, self.gateway, i, now=now) for i in asset_ids(items)}
        out, problems = to_wecom(items, media)
        if problems:  # an attachment we cannot send: refuse to send the push without it
            raise RuntimeError("；".join(problems))
        return out

    async def _targets(self, delivery_id: int) -> list[str]:
        async with self.maker() as session:
            return list((await session.scalars(select(PushRecipient.target).where(
                PushRecipient.delivery_id == delivery_id).order_by(PushRecipient.target))).all())

    async def _deliver_one(self, run_id: int, delivery: PushDelivery, chat_type: str, text: str,
                           attachments: list[dict[str, Any]]) -> None:
        targets = await self._targets(delivery.id)
        body: dict[str, Any] = {"chat_type": chat_type, "sender": delivery.sender_userid}
        body["external_userid" if chat_type == "single" else "chat_id_list"] = targets
        if text:
            body["text"] = {"content": text}
        if attachments:
            body["attachments"] = attachments
        if delivery.status == DeliveryStatus.CALLING:
            found = await self._find_created(delivery, chat_type, text, targets)
            if found is not None:
                _LOGGER.info("push delivery %s was created before a stop (msgid %s): not created again",
                             delivery.id, found)
                await self._record_created(run_id, delivery.id, found, [])
                return
        backoff = BACKOFF_FIRST
        while True:
            async with self.maker.begin() as session:
                await session.execute(update(PushDelivery).where(PushDelivery.id == delivery.id).values(
                    status=DeliveryStatus.CALLING, call_started_at=self.clock(), attempts=PushDelivery.attempts + 1))
            try:
                result = await self.gateway.add_msg_template(body)
            except WeComError as exc:
                if exc.errcode in _RETRY_LATER:
                    await self._record_retry(run_id, delivery.id, exc, backoff)
                    await self.sleep(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX)
                    continue
                await self._record_failed(run_id, delivery.id, exc)
                return
            if self.after_call is not None:
                self.after_call(delivery.id)
            await self._record_created(run_id, delivery.id, result.msgid, result.fail_list)
            return

    async def _record_retry(self, run_id: int, delivery_id: int, exc: WeComError, backoff: float) -> None:
        # No task was created (WeCom answered with an error): back to pending, with the reason shown.
        async with self.maker.begin() as session:
            await session.execute(update(PushRun).where(PushRun.id == run_id).values(heartbeat_at=self.clock()))
            await session.execute(update(PushDelivery).where(PushDelivery.id == delivery_id).values(
                status=DeliveryStatus.PENDING, error_code=exc.errcode,
                error=f"企业微信限流或繁忙（{exc.errcode}），{backoff:.0f} 秒后重试"[:512]))

    async def _record_failed(self, run_id: int, delivery_id: int, exc: WeComError) -> None:
        async with self.maker.begin() as session:
            await session.execute(update(PushDelivery).where(PushDelivery.id == delivery_id).values(
                status=DeliveryStatus.FAILED, error_code=exc.errcode, error=exc.errmsg[:512]))
            await session.execute(update(PushRecipient).where(PushRecipient.delivery_id == delivery_id).values(
                outcome=Outcome.FAILED))
            await session.execute(update(PushRun).where(PushRun.id == run_id).values(
                progress_done=PushRun.progress_done + 1, heartbeat_at=self.clock()))
        _LOGGER.warning("push delivery %s failed: %s", delivery_id, exc)

    async def _record_created(self, run_id: int, delivery_id: int, msgid: str, fail_list: Sequence[str]) -> None:
        async with self.maker.begin() as session:
            await session.execute(update(PushDelivery).where(PushDelivery.id == delivery_id).values(
                status=DeliveryStatus.CREATED, msgid=msgid, created_at=self.clock(), error_code=None, error=""))
            for start in range(0, len(fail_list), _IN_CHUNK):
                await session.execute(update(PushRecipient).where(
                    PushRecipient.delivery_id == delivery_id,
                    PushRecipient.target.in_(list(fail_list[start:start + _IN_CHUNK]))).values(outcome=Outcome.INVALID))
            await session.execute(update(PushRun).where(PushRun.id == run_id).values(
                progress_done=PushRun.progress_done + 1, heartbeat_at=self.clock()))

    async def _find_created(self, delivery: PushDelivery, chat_type: str, text: str, targets: list[str]) -> str | None:
        """The msgid of this delivery's message if WeCom has it (the call went through before a crash)."""
        started = int((delivery.call_started_at or self.clock()).timestamp()) - _RECONCILE_SLACK
        end = int(self.clock().timestamp()) + _RECONCILE_SLACK
        async with self.maker() as session:
            known = set((await session.scalars(select(PushDelivery.msgid).where(
                PushDelivery.msgid.is_not(None), PushDelivery.call_started_at >= dt.datetime.fromtimestamp(
                    started - 86400, dt.timezone.utc)))).all())
        wanted = set(targets)
        cursor = ""
        while True:
            page, cursor = await self.gateway.list_group_msgs(chat_type, started, end, filter_type=0, cursor=cursor)
            for message in page:
                msgid = str(message.get("msgid") or "")
                if not msgid or msgid in known or str((message.get("text") or {}).get("content") or "") != text:
                    continue
                if await self._task_matches(msgid, delivery.sender_userid, wanted, group=chat_type == "group"):
                    return msgid
            if not cursor:
                return None

    async def _task_matches(self, msgid: str, sender: str, wanted: set[str], *, group: bool) -> bool:
        """Whether message ``msgid`` holds this sender's task for these recipients."""
        backoff = BACKOFF_FIRST
        while True:
            try:
                if (await self._task_status(msgid, sender)) is None:
                    return False  # no task of this sender in that message
                rows, _ = await self.gateway.get_groupmsg_send_result(msgid, sender)
                break
            except WeComError as exc:
                if exc.errcode != _DISPATCHING and exc.errcode not in _RETRY_LATER:
                    return False
                await self.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
        got = {str(r.get("external_userid") or r.get("chat_id") or "") for r in rows}
        # Group results list no unsent rows: an unconfirmed group task of this sender lists nothing yet, and a
        # group push has one task per owner, so the sender's task with our text is ours.
        return bool(got & wanted) or (group and not got)

    async def _remind(self, run_id: int, push_name: str) -> None:
        """Tell each guide with a created task to confirm it in WeCom (message/send); failures are only logged."""
        async with self.maker() as session:
            rows = (await session.execute(select(PushDelivery.sender_userid, func.sum(PushDelivery.targets)).where(
                PushDelivery.run_id == run_id, PushDelivery.status == DeliveryStatus.CREATED,
                PushDelivery.reminded_at.is_(None)).group_by(PushDelivery.sender_userid))).all()
        deadline = (self.clock() + dt.timedelta(hours=self.settings.push_confirm_hours)).astimezone(
            zoneinfo.ZoneInfo(self.settings.timezone))
        for userid, count in rows:
            text = (f"【群发待确认】「{push_name}」：总部为您创建了群发任务，共 {int(count or 0)} 位客户。"
                    f"请在企业微信「工作台 → 客户联系 → 群发助手」中确认发送，{deadline:%m-%d %H:%M} 前有效。")
            try:
                await self.gateway.send_app_text(userid, text)
            except (WeComError, WeComUnavailable) as exc:
                _LOGGER.warning("push run %s: reminding %s failed: %s", run_id, userid, exc)
                continue
            async with self.maker.begin() as session:
                await session.execute(update(PushDelivery).where(
                    PushDelivery.run_id == run_id, PushDelivery.sender_userid == userid,
                    PushDelivery.status == DeliveryStatus.CREATED).values(reminded_at=self.clock()))

    async def _to_polling(self, run_id: int) -> None:
        now = self.clock()
        async with self.maker.begin() as session:
            open_tasks = await session.scalar(select(func.count()).select_from(PushDelivery).where(
                PushDelivery.run_id == run_id, PushDelivery.status.in_(
                    [DeliveryStatus.PENDING, DeliveryStatus.CALLING, DeliveryStatus.CREATED])))
            values: dict[str, Any] = {"phase": "", "created_at": now}
            if open_tasks:
                values |= {"status": RunStatus.POLLING, "deadline_at": now + dt.timedelta(
                    hours=self.settings.push_confirm_hours), "next_poll_at": now + dt.timedelta(
                    seconds=self.settings.push_poll_seconds)}
            else:
                values |= {"status": RunStatus.FINISHED, "finished_at": now}
            await session.execute(update(PushRun).where(PushRun.id == run_id, PushRun.status == RunStatus.CREATING)
                                  .values(**values))

    # -- results ---------------------------------------------------------------------------------

    async def poll(self, run_id: int) -> bool:
        """Read every open task's state and results; finish the run when all are final. True when finished."""
        now = self.clock()
        async with self.maker() as session:
            run = await session.get(PushRun, run_id)
            assert run is not None
            deliveries = (await session.scalars(select(PushDelivery).where(
                PushDelivery.run_id == run_id, PushDelivery.status == DeliveryStatus.CREATED))).all()
        overdue = run.deadline_at is not None and now >= run.deadline_at
        for delivery in deliveries:
            await self._poll_delivery(delivery, overdue)
        async with self.maker.begin() as session:
            still_open = await session.scalar(select(func.count()).select_from(PushDelivery).where(
                PushDelivery.run_id == run_id, PushDelivery.status == DeliveryStatus.CREATED))
            values: dict[str, Any] = {"next_poll_at": now + dt.timedelta(seconds=self.settings.push_poll_seconds)}
            if not still_open:
                values = {"status": RunStatus.FINISHED, "finished_at": now, "next_poll_at": None}
            await session.execute(update(PushRun).where(PushRun.id == run_id).values(**values))
        return not still_open

    async def _poll_delivery(self, delivery: PushDelivery, overdue: bool) -> None:
        assert delivery.msgid is not None
        try:
            status, send_time = await self._task_status(delivery.msgid, delivery.sender_userid) or (0, 0)
            results = await self._send_results(delivery.msgid, delivery.sender_userid) if status else {}
        except WeComError as exc:
            if exc.errcode == _DISPATCHING:
                return  # still being dispatched: next poll
            raise
        waiting = {t for t, s in results.items() if s == 0}
        final = bool(status) and not waiting
        async with self.maker.begin() as session:
            by_outcome: dict[Outcome, list[str]] = {}
            for target, code in results.items():
                if code in _STATUS_OUTCOME:
                    by_outcome.setdefault(_STATUS_OUTCOME[code], []).append(target)
            for outcome, targets in by_outcome.items():
                for start in range(0, len(targets), _IN_CHUNK):
                    await session.execute(update(PushRecipient).where(
                        PushRecipient.delivery_id == delivery.id, PushRecipient.outcome == Outcome.PENDING,
                        PushRecipient.target.in_(targets[start:start + _IN_CHUNK])).values(outcome=outcome))
            values: dict[str, Any] = {"task_status": status}
            if status and send_time:
                values["sent_at"] = dt.datetime.fromtimestamp(send_time, dt.timezone.utc)
            if final or overdue:
                values["status"] = DeliveryStatus.FINAL
                # Past the deadline, whoever is still waiting was not confirmed in time.
                await session.execute(update(PushRecipient).where(
                    PushRecipient.delivery_id == delivery.id, PushRecipient.outcome == Outcome.PENDING)
                    .values(outcome=Outcome.UNCONFIRMED))
            await session.execute(update(PushDelivery).where(PushDelivery.id == delivery.id).values(**values))

    async def _task_status(self, msgid: str, sender: str) -> tuple[int, int] | None:
        """(status, send_time) of the sender's task in the message; None if the sender has none there."""
        cursor = ""
        while True:
            tasks, cursor = await self.gateway.get_groupmsg_task(msgid, cursor)
            for task in tasks:
                if task.get("userid") == sender:
                    return int(task.get("status") or 0), int(task.get("send_time") or 0)
            if not cursor:
                return None

    async def _send_results(self, msgid: str, sender: str) -> dict[str, int]:
        results: dict[str, int] = {}
        cursor = ""
        while True:
            rows, cursor = await self.gateway.get_groupmsg_send_result(msgid, sender, cursor)
            for row in rows:
                target = str(row.get("external_userid") or row.get("chat_id") or "")
                if target:
                    results[target] = int(row.get("status") or 0)
            if not cursor:
                return results


PUSH_RUNNER: Final = web.AppKey("push_runner", PushRunner)


async def push_runner_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx (after the database and the gateway): ``app[PUSH_RUNNER]``; its work stops with the app."""
    from scrm import keys  # here: scrm.keys imports the sharing and bot modules this one must not need at import

    runner = PushRunner(app[keys.SESSIONMAKER], app[keys.GATEWAY], app[keys.SETTINGS], clock=app[keys.CLOCK])
    app[PUSH_RUNNER] = runner
    yield
    await runner.close()
