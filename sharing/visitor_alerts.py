"""Known-visitor alerts: a guide hears through the app when a customer of theirs opens their link, and
the customer is tagged with the item's interest tags.

The click writer (sharing/clicks.py) hands each batch here right after its transaction commits;
``submit`` only queues the clicks, so neither the redirect nor the flush loop waits on anything here.
One worker task then, per pass, finds in one transaction the clicks whose visitor is known (a
``visitors`` row, or ``link_clicks.customer_id``) on a link whose guide actively follows that customer,
skips those alerted within ``SCRM_VISITOR_ALERT_MINUTES`` (per guide × customer × link, read from the
audit trail, so the throttle survives restarts and is shared by every process reading the same
database), and claims the rest by writing their audit rows in that same transaction. Each claimed alert
is then delivered outside any transaction, a few at a time: the app message (message/send), then
``mark_tag`` on the guide's relation for the interest tags the customer lacks, then those tags locally.

A failed WeCom call is logged and audited (``visitor_alert_failed``, ``interest_tags_failed``) and not
retried within the window: the claim stands, so a failing guide is not called again on every click.
Alerts are best effort: clicks still queued at shutdown are not alerted (they are stored all the same).

Visitors become known by the clicks that name them: a link sent into the customer's chat carries their
signed token (sharing/recipients.py), and with an official account configured, a WeChat opener's
unionid names them (sharing/oa_identify.py); either way the click writer files the cookie as theirs.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import sync
from bot.context import BotContext
from customers.identity import surviving
from models import (
    AuditEntry,
    ContentItem,
    CustomerTag,
    FollowRelation,
    FollowStatus,
    ShareChannel,
    ShareLink,
    Staff,
    Tag,
    TagGroup,
    TagSource,
    Visitor,
)
from sharing.clicks import ClickRow
from sharing.links import CHANNEL_NAMES
from wecom.errors import WeComError, WeComUnavailable

_LOGGER = logging.getLogger(__name__)

#: The audit action that both records an alert and throttles the next one.
ALERT_ACTION: Final = "visitor_alert"
ALERT_SUBJECT: Final = "visitor_alert"
CONCURRENCY: Final = 4  # alerts being delivered at once (each is one or two WeCom calls)
MAX_IN_FLIGHT: Final = 200  # alerts claimed but not delivered yet; beyond, the worker waits
MAX_PENDING: Final = 50_000  # clicks queued for a look; beyond, the oldest are dropped (they are stored)
PASS_SIZE: Final = 5_000  # clicks looked at per transaction
LOOKUP_CHUNK: Final = 500  # ids per IN (...) query
CLOSE_TIMEOUT: Final = 10.0  # seconds shutdown waits for alerts being delivered
DROP_LOG_EVERY: Final = 10.0
# A click older than this when its pass runs (a backlog after an outage) is not "刚刚" any more: no alert.
STALE_AFTER: Final = dt.timedelta(minutes=15)
# PostgreSQL: one transaction-scoped advisory lock around check-and-claim, so two processes seeing the
# same customer at once cannot both alert (there is no unique key to lean on in the audit table).
_CLAIM_LOCK: Final = 0x5343524D5641  # "SCRMVA"

# (link_id, visitor_id, customer_id or None, clicked at): all a pass needs of a click.
ClickOpen = tuple[int, str, int | None, dt.datetime]


@dataclass(frozen=True)
class InterestTag:
    """A tag to put on the customer: ours, and WeCom's id when it is a corp tag."""

    tag_id: int
    name: str
    wecom_tag_id: str | None


@dataclass(frozen=True)
class Alert:
    """One claimed alert: who to tell, about whom, which link, and the tags to add."""

    staff_id: int
    userid: str
    customer_id: int
    external_userid: str
    customer_label: str
    link_id: int
    title: str
    channel: ShareChannel
    visitor_id: str
    tags: tuple[InterestTag, ...]

    @property
    def subject_id(self) -> str:
        """The throttle key in the audit trail: guide × customer × link."""
        return throttle_key(self.staff_id, self.customer_id, self.link_id)


def throttle_key(staff_id: int, customer_id: int, link_id: int) -> str:
    """The audit ``subject_id`` of an alert."""
    return f"{staff_id}:{customer_id}:{link_id}"


def alert_text(customer_label: str, title: str, channel: ShareChannel) -> str:
    """The app message a guide gets."""
    where = f"（{CHANNEL_NAMES[channel]}）" if channel is not ShareChannel.NONE else ""
    return f"客户 {customer_label} 刚刚打开了你分享的《{title}》{where}，可以趁热跟进。"


def _chunks(values: Iterable[Any]) -> Iterable[list[Any]]:
    items = list(values)
    for start in range(0, len(items), LOOKUP_CHUNK):
        yield items[start : start + LOOKUP_CHUNK]


async def find_alerts(session: AsyncSession, opens: Sequence[ClickOpen], *, now: dt.datetime,
                      window: dt.timedelta) -> list[Alert]:
    """The alerts these clicks call for, claimed (audit rows added to ``session``); the caller commits."""
    opens = [o for o in opens if now - o[3] <= STALE_AFTER]
    by_visitor: dict[str, int] = {}
    for chunk in _chunks({vid for _, vid, cid, _ in opens if cid is None}):
        by_visitor.update((await session.execute(
            select(Visitor.visitor_id, Visitor.customer_id).where(Visitor.visitor_id.in_(chunk)))).all())
    known: dict[tuple[int, int], str] = {}  # (link, customer) -> visitor id of the last click
    for link_id, vid, cid, _ in opens:
        customer_id = cid if cid is not None else by_visitor.get(vid)
        if customer_id is not None:
            known[(link_id, customer_id)] = vid
    if not known:
        return []
    # A visitor row may still name a customer merged away since; the survivor holds the relations.
    customers = {cid: await surviving(session, cid) for cid in {c for _, c in known}}
    links = {row[0]: row for row in (await session.execute(
        select(ShareLink.id, ShareLink.staff_id, ShareLink.channel, Staff.userid, ContentItem.title,
               ContentItem.interest_tag_ids)
        .join(Staff, Staff.id == ShareLink.staff_id).join(ContentItem, ContentItem.id == ShareLink.content_id)
        .where(ShareLink.id.in_(sorted({link for link, _ in known}))))).all()}
    survivor_ids = {c.id for c in customers.values()}
    relations = {(s, c): (ext, remark) for s, c, ext, remark in (await session.execute(
        select(FollowRelation.staff_id, FollowRelation.customer_id, FollowRelation.external_userid,
               FollowRelation.remark)
        .where(FollowRelation.customer_id.in_(sorted(survivor_ids)),
               FollowRelation.staff_id.in_(sorted({row[1] for row in links.values()})),
               FollowRelation.status == FollowStatus.ACTIVE))).all()}

    candidates: dict[str, tuple[int, int, str]] = {}  # throttle key -> (link, customer, visitor)
    for (link_id, customer_id), vid in known.items():
        link = links.get(link_id)
        survivor = customers[customer_id].id
        if link is not None and (link[1], survivor) in relations:
            candidates[throttle_key(link[1], survivor, link_id)] = (link_id, survivor, vid)
    if not candidates:
        return []
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(select(func.pg_advisory_xact_lock(_CLAIM_LOCK)))
    recent: set[str] = set()
    for chunk in _chunks(candidates):
        recent.update((await session.scalars(select(AuditEntry.subject_id).where(
            AuditEntry.action == ALERT_ACTION, AuditEntry.subject_type == ALERT_SUBJECT,
            AuditEntry.subject_id.in_(chunk), AuditEntry.at > now - window))).all())
    due = {key: value for key, value in candidates.items() if key not in recent}
    if not due:
        return []

    wanted = {int(t) for link_id, _, _ in due.values() for t in links[link_id][5] or ()}
    live_tags: dict[int, Tag] = {}
    has: set[tuple[int, int]] = set()  # (customer, tag) already there, whatever the source
    if wanted:
        live_tags = {t.id: t for t in (await session.scalars(
            select(Tag).join(TagGroup, TagGroup.id == Tag.group_id)
            .where(Tag.id.in_(sorted(wanted)), Tag.deleted.is_(False), TagGroup.deleted.is_(False)))).all()}
    if live_tags:
        has = {(c, t) for c, t in (await session.execute(select(CustomerTag.customer_id, CustomerTag.tag_id).where(
            CustomerTag.customer_id.in_(sorted({c for _, c, _ in due.values()})),
            CustomerTag.tag_id.in_(sorted(live_tags))))).all()}
    by_id = {c.id: c for c in customers.values()}
    alerts: list[Alert] = []
    for key, (link_id, customer_id, vid) in sorted(due.items()):
        _, staff_id, channel, userid, title, tag_ids = links[link_id]
        external_userid, remark = relations[(staff_id, customer_id)]
        tags = []
        for tag_id in dict.fromkeys(int(t) for t in tag_ids or ()):
            tag = live_tags.get(tag_id)
            if tag is not None and (customer_id, tag_id) not in has:
                tags.append(InterestTag(tag.id, tag.name, tag.wecom_tag_id))
                has.add((customer_id, tag_id))  # one alert of this pass tags the customer, not each
        label = remark or by_id[customer_id].name or "（未命名）"
        alert = Alert(staff_id, userid, customer_id, external_userid, label, link_id, title, channel, vid,
                      tuple(tags))
        alerts.append(alert)
        session.add(AuditEntry(at=now, actor="bot", action=ALERT_ACTION, subject_type=ALERT_SUBJECT,
                               subject_id=key, detail={"guide": userid, "customer_id": customer_id,
                                                       "link_id": link_id, "title": title, "visitor_id": vid,
                                                       "tags": [t.name for t in tags]}))
    return alerts


class VisitorAlerts:
    """Queues stored clicks, finds the known visitors among them and delivers the alerts, off the flush loop."""

    def __init__(self, ctx: BotContext, *, window: dt.timedelta, concurrency: int = CONCURRENCY,
                 max_in_flight: int = MAX_IN_FLIGHT, max_pending: int = MAX_PENDING) -> None:
        self._ctx = ctx
        self.window = window
        self._semaphore = asyncio.Semaphore(concurrency)
        self._max_in_flight = max_in_flight
        self._max_pending = max_pending
        self._pending: collections.deque[ClickOpen] = collections.deque()
        self._deliveries: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._last_drop_log = -DROP_LOG_EVERY
        self.sent = 0
        self.failed = 0
        self.dropped = 0

    # -- the click writer's side -------------------------------------------------------------------

    def submit(self, rows: Sequence[ClickRow]) -> None:
        """Queue stored clicks for a look; never blocks (the click writer calls it after each commit)."""
        if self._closed:
            return
        pending = self._pending
        for link_id, at, visitor_id, _ua, customer_id in rows:
            pending.append((link_id, visitor_id, customer_id, at))
        overflow = len(pending) - self._max_pending
        if overflow > 0:
            for _ in range(overflow):
                pending.popleft()
            self.dropped += overflow
            now = time.monotonic()
            if now - self._last_drop_log >= DROP_LOG_EVERY:
                self._last_drop_log = now
                _LOGGER.warning("visitor alerts are behind: %d clicks not looked at (%d so far); they are stored",
                                overflow, self.dropped)
        self._idle.clear()
        self._wake.set()

    # -- life cycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker task."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="visitor-alerts")

    async def drain(self) -> None:
        """Wait until every click queued so far was looked at and its alerts delivered (tests, tools)."""
        while True:
            if self._task is None:
                await self._pass_all()
            else:
                await self._idle.wait()
            if not self._deliveries:
                if not self._pending:
                    return
                continue
            await asyncio.gather(*list(self._deliveries), return_exceptions=True)

    async def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Stop looking at clicks, and give deliveries under way ``timeout`` seconds to finish."""
        self._closed = True
        if self._pending:
            _LOGGER.info("shutting down: %d clicks not looked at for visitor alerts", len(self._pending))
            self._pending.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._deliveries:
            _, late = await asyncio.wait(list(self._deliveries), timeout=timeout)
            for task in late:
                task.cancel()
            if late:
                _LOGGER.warning("shutting down: %d visitor alerts cut short", len(late))
        self._idle.set()

    # -- the worker ------------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._pass_all()

    async def _pass_all(self) -> None:
        while self._pending:
            batch = [self._pending.popleft() for _ in range(min(len(self._pending), PASS_SIZE))]
            try:
                async with self._ctx.maker.begin() as session:
                    alerts = await find_alerts(session, batch, now=self._ctx.clock(), window=self.window)
            except Exception:  # the database failed: these alerts are lost, the clicks are stored
                _LOGGER.exception("could not look for known visitors among %d clicks", len(batch))
                continue
            for alert in alerts:
                while len(self._deliveries) >= self._max_in_flight:
                    await asyncio.wait(list(self._deliveries), return_when=asyncio.FIRST_COMPLETED)
                task = asyncio.create_task(self._deliver(alert), name="visitor-alert")
                self._deliveries.add(task)
                task.add_done_callback(self._deliveries.discard)
        self._idle.set()

    async def _deliver(self, alert: Alert) -> None:
        async with self._semaphore:
            try:
                await self._send(alert)
                if alert.tags:
                    await self._tag(alert)
            except Exception:  # a bug here must not end the worker, nor go unnoticed
                _LOGGER.exception("visitor alert %s failed", alert.subject_id)

    async def _send(self, alert: Alert) -> None:
        try:
            await self._ctx.gateway.send_app_text(alert.userid, alert_text(alert.customer_label, alert.title,
                                                                           alert.channel))
        except (WeComError, WeComUnavailable) as exc:
            self.failed += 1
            _LOGGER.warning("visitor alert to %s about customer %d failed: %s", alert.userid, alert.customer_id, exc)
            await self._audit("visitor_alert_failed", ALERT_SUBJECT, alert.subject_id, error=str(exc)[:300],
                              errcode=getattr(exc, "errcode", None), guide=alert.userid)
        else:
            self.sent += 1

    async def _tag(self, alert: Alert) -> None:
        wecom_ids = [t.wecom_tag_id for t in alert.tags if t.wecom_tag_id]
        marked = True
        if wecom_ids:
            try:
                await self._ctx.gateway.mark_tag(alert.userid, alert.external_userid, add=wecom_ids)
            except (WeComError, WeComUnavailable) as exc:
                marked = False
                _LOGGER.warning("interest tags for customer %d via %s failed: %s", alert.customer_id, alert.userid, exc)
                await self._audit("interest_tags_failed", "customer", str(alert.customer_id), error=str(exc)[:300],
                                  errcode=getattr(exc, "errcode", None), guide=alert.userid, link_id=alert.link_id,
                                  tags=[t.name for t in alert.tags if t.wecom_tag_id])
        # A corp tag is recorded only once WeCom has it, so the two never disagree; tags of our own always.
        local = [t for t in alert.tags if marked or not t.wecom_tag_id]
        if not local:
            return
        async with self._ctx.maker.begin() as session:
            for wanted in local:
                tag = await session.get(Tag, wanted.tag_id)
                if tag is not None:
                    await sync.add_customer_tag(self._ctx, session, alert.customer_id, tag, TagSource.BOT)
            session.add(self._ctx.audit("interest_tags_added", "customer", str(alert.customer_id), guide=alert.userid,
                                        link_id=alert.link_id, tags=[t.name for t in local],
                                        in_wecom=[t.name for t in local if t.wecom_tag_id]))

    async def _audit(self, action: str, subject_type: str, subject_id: str, **detail: Any) -> None:
        try:
            async with self._ctx.maker.begin() as session:
                session.add(self._ctx.audit(action, subject_type, subject_id, **detail))
        except Exception:  # the log line above already says what happened
            _LOGGER.exception("could not audit %s for %s", action, subject_id)


VISITOR_ALERTS: Final = web.AppKey("visitor_alerts", VisitorAlerts)


async def visitor_alerts_ctx(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context (after the gateway and the click writer): alerts hooked to the writer's stored batches."""
    # Imported here, not at the top: scrm.keys imports sharing.clicks, which this module imports.
    from scrm import keys

    settings = app[keys.SETTINGS]
    ctx = BotContext(maker=app[keys.SESSIONMAKER], gateway=app[keys.GATEWAY], settings=settings,
                     clock=app[keys.CLOCK])
    alerts = VisitorAlerts(ctx, window=dt.timedelta(minutes=settings.visitor_alert_minutes))
    app[VISITOR_ALERTS] = alerts
    writer = app[keys.CLICK_WRITER]
    writer.on_stored = alerts.submit
    alerts.start()
    yield
    # Torn down before the gateway closes: what the writer stores on shutdown is not alerted.
    writer.on_stored = None
    await alerts.close()
