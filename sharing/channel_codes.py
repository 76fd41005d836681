"""Channel codes (渠道活码): one QR code for a campaign or a store that adds whichever guide is on duty.

* **WeCom side.** A code owns one multi-member 「联系我」 way (``add_contact_way`` type 2, scene 2) whose
  ``state`` is ``cc.<id in base 36>``. WeCom hands the customers who scan it out among the way's users
  (its own rotation; the simulator takes them strictly in turn). We rotate *who is on it*: the duty job
  computes the on-duty guides (``sharing/channel_code_duty.py``) every 5 minutes and right after an
  edit, and calls ``update_contact_way`` only when that set changed.
* **Creation** writes the row first (to get its id, hence its state), calls WeCom outside any
  transaction, then stores config_id and QR. If WeCom refuses, the row is deleted and the admin gets
  WeCom's error in Chinese; a row whose creation died half-way is deleted by the job after 10 minutes.
* **Adds.** ``bot/topics/add_external_contact.py`` asks :func:`code_for_state` about the add's State,
  sends the code's welcome (text + attachments built by :func:`welcome_attachments`), records a
  ``ChannelCodeAdd`` and applies the code's tags (:func:`apply_code_tags`). Image media ids are
  uploaded when a code is saved and refreshed by the job before they are 2.5 days old, so the
  20-second welcome window normally spends no time uploading.
* **Counts** (:func:`code_stats`): adds (in a period and in total), adds at least 7 days old whose
  relation survived 7 days, and orders / GMV of customers after their first add through the code —
  one SQL statement for any number of codes.

The admin's JSON is parsed and checked against the database in ``sharing/channel_code_spec.py``; the
printable QR sheet is drawn by ``sharing/channel_code_qr.py``; the routes are ``channel_code_admin.py``.

Why a ``channel_code_adds`` table rather than ``FollowRelation.contact_way_id``: a relation is one row
per guide and customer, rewritten by every later add (through another code, or the same one after a
deletion) and by syncs, so it cannot say how many adds a code brought or when; the add rows are
facts that nothing rewrites, and merges of customers move them like any other customer reference.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import logging
import zoneinfo
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import and_, case, delete, exists, func, literal, not_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot import sync
from bot.context import BotContext
from media.attachments import asset_ids as attachment_assets, to_wecom
from media.assets import InvalidMedia, MediaUnavailable, asset_for_url, media_id_for
from models import (
    AuditEntry,
    ChannelCode,
    ChannelCodeAdd,
    ChannelCodeMember,
    ContactWay,
    CustomerTag,
    FollowRelation,
    FollowStatus,
    MediaAsset,
    Order,
    OrderStatus,
    Staff,
    Store,
    Tag,
    TagGroup,
    TagSource,
    insert_ignore,
)
from models.base import UTCDateTime, within_days
from scrm import keys
from scrm.leader import Leadership, when_leading
from sharing.channel_code_duty import DutyMember, Slot, clock_text, on_duty
from sharing.channel_code_spec import (
    ChannelCodeError,
    ChannelCodeGone,
    ChannelCodeNotFound,
    CodeSpec,
    MemberSpec,
    Resolved,
    WeComRefused,
    parse_spec,
    resolve_spec,
)
from wecom.errors import WeComError, WeComUnavailable

_LOGGER = logging.getLogger(__name__)

STATE_PREFIX: Final = "cc."
DUTY_INTERVAL: Final = dt.timedelta(minutes=5)
#: A row still without a contact way this long after creation was left by a crash: nothing refers to it.
PENDING_TTL: Final = dt.timedelta(minutes=10)
KEPT_DAYS: Final = 7
#: The most the welcome waits for one image upload, out of WeCom's 20 seconds.
MEDIA_WAIT_S: Final = 8.0
#: send_welcome_msg errors that blame an attachment: the code is still unused, so the text goes alone.
ATTACHMENT_ERRCODES: Final = frozenset({40007, 40058, 41064, 41065, 90206})
#: Relation states after which an add through a code is a new add (not the confirmation of a half add).
_ENDED: Final = frozenset({FollowStatus.LOST, FollowStatus.DELETED, FollowStatus.TRANSFERRED})
_COUNTED_ORDERS: Final = (OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED)

#: WeCom errcodes an admin can act on, in Chinese (PROTOCOL.md §4.6, §6).
WECOM_HINTS: Final[Mapping[int, str]] = {
    40003: "导购的企业微信账号不存在",
    60111: "导购的企业微信账号不存在",
    41054: "导购尚未激活企业微信",
    40098: "导购尚未完成实名认证",
    84074: "导购没有客户联系权限，请在管理后台「客户联系」中为其开通",
    60011: "导购不在本应用的可见范围内，请扩大应用可见范围",
    41041: "成员超过 100 人（企业微信的上限）",
    41045: "「联系我」二维码数量已达企业上限",
    41044: "企业微信中找不到这个二维码（可能已被删除）",
    48002: "本应用无权调用客户联系接口，请在「客户联系 → 可调用接口的应用」中添加",
    40058: "参数不合法",
}


def wecom_message(action: str, exc: Exception) -> str:
    """What to tell an admin about a failed WeCom call, in Chinese."""
    if isinstance(exc, WeComError):
        hint = WECOM_HINTS.get(exc.errcode, "请稍后重试，或检查应用权限")
        return f"企业微信{action}失败（错误码 {exc.errcode}：{hint}）。企业微信返回：{exc.errmsg[:200]}"
    return f"暂时无法连接企业微信，{action}失败，请稍后重试。"


def base36(number: int) -> str:
    """``number`` ≥ 0 in lower-case base 36."""
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if not number:
            return out


def state_for(code_id: int) -> str:
    """The contact-way state of a code: ``cc.<id in base 36>`` (≤ 30 characters for any id we will see)."""
    return f"{STATE_PREFIX}{base36(code_id)}"


# -- reading codes --------------------------------------------------------------------------------


@dataclass
class CodeView:
    """A code with its members, contact way and store, as the API shows it."""

    code: ChannelCode
    members: list[tuple[ChannelCodeMember, Staff]] = field(default_factory=list)
    way: ContactWay | None = None
    store: Store | None = None

    def spec(self) -> CodeSpec:
        """The code as a spec, the base an update starts from."""
        c = self.code
        members = tuple(MemberSpec(s.userid, m.role, tuple(Slot(*slot) for slot in m.schedule))
                        for m, s in self.members)
        return CodeSpec(c.name, c.kind, c.store_id, c.skip_verify, members, tuple(c.tag_ids), c.welcome_text,
                        tuple(c.attachments))

    def duty_members(self) -> list[DutyMember]:
        """The members as the duty rules see them."""
        return self.spec().duty_members()


async def load_codes(session: AsyncSession, ids: Sequence[int] | None = None) -> list[CodeView]:
    """Codes (all, or ``ids``) with members, contact ways and stores: three queries, newest first."""
    query = (select(ChannelCode, ContactWay, Store).outerjoin(ContactWay, ContactWay.id == ChannelCode.contact_way_id)
             .outerjoin(Store, Store.id == ChannelCode.store_id).order_by(ChannelCode.id.desc()))
    if ids is not None:
        query = query.where(ChannelCode.id.in_(list(ids)))
    views = {c.id: CodeView(c, [], w, s) for c, w, s in (await session.execute(query)).all()}
    if views:
        members = await session.execute(
            select(ChannelCodeMember, Staff).join(Staff, Staff.id == ChannelCodeMember.staff_id)
            .where(ChannelCodeMember.code_id.in_(list(views))).order_by(ChannelCodeMember.code_id,
                                                                        ChannelCodeMember.position))
        for member, staff in members.all():
            views[member.code_id].members.append((member, staff))
    return list(views.values())


async def load_code(session: AsyncSession, code_id: int) -> CodeView:
    """One code; ChannelCodeNotFound otherwise."""
    found = await load_codes(session, [code_id])
    if not found:
        raise ChannelCodeNotFound(f"渠道码 {code_id} 不存在")
    return found[0]


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def code_status(code: ChannelCode) -> str:
    """active | creating (WeCom not asked yet) | disabled."""
    if not code.enabled:
        return "disabled"
    return "active" if code.contact_way_id is not None else "creating"


def code_json(view: CodeView, stats: CodeStats | None = None) -> dict[str, Any]:
    """What the admin API answers for a code."""
    code = view.code
    base = f"/admin/api/channel-codes/{code.id}"
    data: dict[str, Any] = {
        "id": code.id, "name": code.name, "kind": code.kind.value, "status": code_status(code),
        "enabled": code.enabled, "store": {"id": view.store.id, "code": view.store.code, "name": view.store.name}
        if view.store else None,
        "state": code.state, "config_id": view.way.config_id if view.way else None,
        "qr_code": view.way.qr_code if view.way else None,
        "qr_png": f"{base}/qr.png", "print_png": f"{base}/qr.png?print=1", "skip_verify": code.skip_verify,
        "tag_ids": list(code.tag_ids),
        "welcome": {"text": code.welcome_text, "attachments": list(code.attachments)},
        "members": [{"userid": s.userid, "name": s.name, "role": m.role.value,
                     "schedule": [{"weekday": w, "start": clock_text(a), "end": clock_text(b)}
                                  for w, a, b in m.schedule]}
                    for m, s in view.members],
        "on_duty": list(code.duty_userids), "duty_synced_at": _iso(code.duty_synced_at),
        "created_at": _iso(code.created_at), "updated_at": _iso(code.updated_at), "disabled_at": _iso(code.disabled_at),
    }
    if stats is not None:
        data["stats"] = stats.as_json()
    return data


def _audit(actor: str, action: str, code_id: int, at: dt.datetime, **detail: Any) -> AuditEntry:
    return AuditEntry(at=at, actor=actor, action=action, subject_type="channel_code", subject_id=str(code_id),
                      detail=detail)


def _members_rows(code_id: int, spec: CodeSpec, resolved: Resolved) -> list[ChannelCodeMember]:
    return [ChannelCodeMember(code_id=code_id, staff_id=resolved.staff_ids[m.userid], role=m.role, position=i,
                              schedule=[[s.weekday, s.start, s.end] for s in m.slots])
            for i, m in enumerate(spec.members)]


# -- the service ----------------------------------------------------------------------------------


class ChannelCodes:
    """Create, edit, disable and keep the duty roster of channel codes; one per app (``app[CHANNEL_CODES]``).

    A lock per code keeps an edit and the duty job from pushing user lists to WeCom side by side.
    """

    def __init__(self, ctx: BotContext) -> None:
        self.ctx = ctx
        self._locks: collections.defaultdict[int, asyncio.Lock] = collections.defaultdict(asyncio.Lock)

    def _local_now(self) -> dt.datetime:
        return self.ctx.clock().astimezone(zoneinfo.ZoneInfo(self.ctx.settings.timezone))

    async def create(self, body: Any, *, actor: str = "admin") -> dict[str, Any]:
        """Validate, make the row, make the WeCom contact way, store its config_id and QR; the code as JSON."""
        spec = parse_spec(body)
        maker, now = self.ctx.maker, self.ctx.clock()
        async with maker.begin() as session:
            resolved = await resolve_spec(session, spec)
            code = ChannelCode(name=spec.name, kind=spec.kind, store_id=spec.store_id, skip_verify=spec.skip_verify,
                               tag_ids=list(resolved.tag_ids), welcome_text=spec.welcome_text,
                               attachments=[dict(a) for a in spec.attachments], enabled=True, duty_userids=[],
                               created_at=now, updated_at=now)
            session.add(code)
            await session.flush()
            code.state = state_for(code.id)
            if await session.scalar(select(ContactWay.id).where(ContactWay.state == code.state)):
                raise ChannelCodeError(f"state「{code.state}」已被其他二维码占用，请联系技术支持", "state")
            session.add_all(_members_rows(code.id, spec, resolved))
            code_id, state = code.id, code.state
        duty = on_duty(spec.duty_members(), self._local_now())
        async with self._locks[code_id]:
            try:
                result = await self.ctx.gateway.add_contact_way(
                    user=list(duty), state=state, remark=spec.name[:30], skip_verify=spec.skip_verify)
            except (WeComError, WeComUnavailable) as exc:
                # Nothing half-made may linger: the row goes, and the admin reads WeCom's reason.
                async with maker.begin() as session:
                    await session.execute(delete(ChannelCode).where(ChannelCode.id == code_id))
                    session.add(_audit(actor, "channel_code_create_failed", code_id, now, name=spec.name,
                                       error=str(exc)[:500]))
                raise WeComRefused(wecom_message("创建渠道活码", exc), "members",
                                   errcode=getattr(exc, "errcode", None)) from None
            try:
                async with maker.begin() as session:
                    way = ContactWay(config_id=result.config_id, state=state, staff_id=None, campaign=spec.name,
                                     remark=spec.name[:30], qr_code=result.qr_code)
                    session.add(way)
                    await session.flush()
                    code = await session.get_one(ChannelCode, code_id)
                    code.contact_way_id, code.duty_userids, code.duty_synced_at = way.id, list(duty), now
                    session.add(_audit(actor, "channel_code_created", code_id, now, name=spec.name,
                                       config_id=result.config_id, on_duty=list(duty)))
            except Exception:
                await self._undo_create(code_id, result.config_id)
                raise
        await self.refresh_media(attachment_assets(spec.attachments), code_id=code_id)
        async with maker() as session:
            return code_json(await load_code(session, code_id))

    async def _undo_create(self, code_id: int, config_id: str) -> None:
        try:
            await self.ctx.gateway.del_contact_way(config_id)
        except (WeComError, WeComUnavailable):
            _LOGGER.exception("channel code %s: could not delete contact way %s after a failed save",
                              code_id, config_id)
        async with self.ctx.maker.begin() as session:
            await session.execute(delete(ChannelCode).where(ChannelCode.id == code_id))

    async def update(self, code_id: int, body: Any, *, actor: str = "admin") -> dict[str, Any]:
        """Change a code (keys given replace the old values; members as a whole); WeCom first when its users change."""
        maker, now = self.ctx.maker, self.ctx.clock()
        async with self._locks[code_id]:
            if not isinstance(body, dict):
                raise ChannelCodeError("请求体须为 JSON 对象")
            if "enabled" in body and not isinstance(body["enabled"], bool):
                raise ChannelCodeError("enabled 须为 true 或 false", "enabled")
            async with maker() as session:
                view = await load_code(session, code_id)
                if not view.code.enabled:
                    raise ChannelCodeGone("渠道码已停用，不能再修改")
                spec = parse_spec(body, view.spec())
                resolved = await resolve_spec(session, spec)
            duty = on_duty(spec.duty_members(), self._local_now())
            way = view.way
            changes: dict[str, Any] = {}
            if way is not None and list(duty) != list(view.code.duty_userids):
                changes["users"] = list(duty)
            if way is not None and spec.skip_verify != view.code.skip_verify:
                changes["skip_verify"] = spec.skip_verify
            if way is not None and spec.name[:30] != way.remark:
                changes["remark"] = spec.name[:30]
            if way is not None and changes and body.get("enabled") is not False:  # disabling deletes it anyway
                try:
                    await self.ctx.gateway.update_contact_way(way.config_id, **changes)
                except (WeComError, WeComUnavailable) as exc:
                    raise WeComRefused(wecom_message("更新渠道活码", exc), "members",
                                       errcode=getattr(exc, "errcode", None)) from None
            async with maker.begin() as session:
                code = await session.get_one(ChannelCode, code_id)
                code.name, code.kind, code.store_id = spec.name, spec.kind, spec.store_id
                code.skip_verify = spec.skip_verify
                code.tag_ids, code.welcome_text = list(resolved.tag_ids), spec.welcome_text
                code.attachments, code.updated_at = [dict(a) for a in spec.attachments], now
                if way is not None:
                    code.duty_userids, code.duty_synced_at = list(duty), now
                    contact_way = await session.get_one(ContactWay, way.id)
                    contact_way.campaign, contact_way.remark = spec.name, spec.name[:30]
                await session.execute(delete(ChannelCodeMember).where(ChannelCodeMember.code_id == code_id))
                session.add_all(_members_rows(code_id, spec, resolved))
                session.add(_audit(actor, "channel_code_updated", code_id, now, fields=sorted(body),
                                   wecom=sorted(changes), on_duty=list(duty)))
        if body.get("enabled") is False:
            return await self.disable(code_id, actor=actor)
        await self.refresh_media(attachment_assets(spec.attachments), code_id=code_id)
        async with maker() as session:
            return code_json(await load_code(session, code_id))

    async def disable(self, code_id: int, *, actor: str = "admin") -> dict[str, Any]:
        """Delete the code's WeCom contact way; the row, its adds and its counts stay. Idempotent."""
        maker, now = self.ctx.maker, self.ctx.clock()
        async with self._locks[code_id]:
            async with maker() as session:
                view = await load_code(session, code_id)
            if view.code.enabled:
                if view.way is not None:
                    try:
                        await self.ctx.gateway.del_contact_way(view.way.config_id)
                    except WeComError as exc:
                        if exc.errcode != 41044:  # already gone in WeCom: what we wanted
                            raise WeComRefused(wecom_message("停用渠道活码", exc), errcode=exc.errcode) from None
                    except WeComUnavailable as exc:
                        raise WeComRefused(wecom_message("停用渠道活码", exc)) from None
                async with maker.begin() as session:
                    code = await session.get_one(ChannelCode, code_id)
                    code.enabled, code.disabled_at, code.updated_at, code.duty_userids = False, now, now, []
                    session.add(_audit(actor, "channel_code_disabled", code_id, now,
                                       config_id=view.way.config_id if view.way else None))
        async with maker() as session:
            return code_json(await load_code(session, code_id))

    async def sync_duty(self, code_ids: Sequence[int] | None = None, *, actor: str = "scheduler") -> int:
        """Push the on-duty guides of enabled codes to WeCom where they changed; returns how many changed."""
        async with self.ctx.maker() as session:
            views = [v for v in await load_codes(session, code_ids) if v.code.enabled and v.way is not None]
        local_now, changed = self._local_now(), 0
        for view in views:
            async with self._locks[view.code.id]:
                async with self.ctx.maker() as session:  # an edit may have run while we waited for the lock
                    fresh = await load_codes(session, [view.code.id])
                view = fresh[0] if fresh else view
                way = view.way
                if not fresh or not view.code.enabled or way is None:
                    continue
                duty = list(on_duty(view.duty_members(), local_now))
                if duty == list(view.code.duty_userids):
                    continue
                now = self.ctx.clock()
                try:
                    await self.ctx.gateway.update_contact_way(way.config_id, users=duty)
                except (WeComError, WeComUnavailable) as exc:
                    _LOGGER.warning("channel code %s: duty roster not pushed: %s", view.code.id, exc)
                    async with self.ctx.maker.begin() as session:
                        session.add(_audit(actor, "channel_code_duty_failed", view.code.id, now, wanted=duty,
                                           error=wecom_message("更新值班导购", exc)))
                    continue
                async with self.ctx.maker.begin() as session:
                    code = await session.get_one(ChannelCode, view.code.id)
                    previous = list(code.duty_userids)
                    code.duty_userids, code.duty_synced_at = duty, now
                    session.add(_audit(actor, "channel_code_duty_changed", code.id, now, previous=previous,
                                       on_duty=duty))
                changed += 1
        return changed

    async def refresh_media(self, asset_ids: Sequence[int] | None = None, *, code_id: int | None = None) -> list[str]:
        """Make sure each image (all enabled codes' when None) has a media id with 2.5 days left; lists problems."""
        if asset_ids is None:
            async with self.ctx.maker() as session:
                rows = (await session.scalars(select(ChannelCode.attachments).where(
                    ChannelCode.enabled.is_(True)))).all()
            asset_ids = attachment_assets(a for attachments in rows for a in attachments)
        problems: list[str] = []
        for asset_id in asset_ids:
            try:
                await media_id_for(self.ctx.maker, self.ctx.gateway, asset_id, now=self.ctx.clock())
            except (WeComError, WeComUnavailable, LookupError) as exc:
                problems.append(f"素材 {asset_id} 未能上传到企业微信：{exc}")
        if problems:
            _LOGGER.warning("channel code media not ready: %s", problems)
            async with self.ctx.maker.begin() as session:
                session.add(_audit("scheduler" if code_id is None else "admin", "channel_code_media_failed",
                                   code_id or 0, self.ctx.clock(), problems=problems))
        return problems

    async def delete_stale_pending(self) -> int:
        """Delete rows whose creation died before WeCom answered (no contact way after PENDING_TTL)."""
        cutoff = self.ctx.clock() - PENDING_TTL
        async with self.ctx.maker.begin() as session:
            result = await session.execute(delete(ChannelCode).where(
                ChannelCode.contact_way_id.is_(None), ChannelCode.enabled.is_(True),
                ChannelCode.created_at < literal(cutoff, UTCDateTime())))
            return int(getattr(result, "rowcount", 0) or 0)

    async def run_job(self) -> None:
        """The periodic job: duty rosters, media freshness, leftovers; never raises."""
        try:
            await self.delete_stale_pending()
            await self.sync_duty()
            await self.refresh_media()
        except Exception:  # a background job: log it, the next run tries again
            _LOGGER.exception("channel code job failed")

    async def qr_png(self, code_id: int) -> tuple[CodeView, bytes]:
        """The code and its QR image as WeCom made it (fetched once and kept as a media asset)."""
        async with self.ctx.maker() as session:
            view = await load_code(session, code_id)
        if not view.code.enabled:
            raise ChannelCodeGone("渠道码已停用，二维码已失效")
        if view.way is None or not view.way.qr_code:
            raise ChannelCodeGone("渠道码尚未在企业微信创建完成，请稍后再试")
        try:
            asset_id = await asset_for_url(self.ctx.maker, view.way.qr_code, now=self.ctx.clock())
        except (MediaUnavailable, InvalidMedia) as exc:
            raise WeComRefused(f"无法获取企业微信的二维码图片：{exc.message}") from None
        async with self.ctx.maker() as session:
            data = await session.scalar(select(MediaAsset.data).where(MediaAsset.id == asset_id))
        assert data is not None
        return view, data


CHANNEL_CODES: Final = web.AppKey("channel_codes", ChannelCodes)


def build_scheduler(service: ChannelCodes, leadership: Leadership | None = None) -> AsyncIOScheduler:
    """An (unstarted) scheduler running the duty job every 5 minutes (in the leading process only)."""
    scheduler = AsyncIOScheduler(timezone=zoneinfo.ZoneInfo(service.ctx.settings.timezone))
    scheduler.add_job(when_leading(leadership, service.run_job, "channel-code duty"), IntervalTrigger(seconds=DUTY_INTERVAL.total_seconds()),
                      id="channel_code_duty", coalesce=True, max_instances=1, misfire_grace_time=60)
    return scheduler


async def channel_code_scheduler_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the app's ChannelCodes service (``app[CHANNEL_CODES]``) and its 5-minute duty job.

    Add it after the database and gateway contexts.
    """
    ctx = BotContext(maker=app[keys.SESSIONMAKER], gateway=app[keys.GATEWAY], settings=app[keys.SETTINGS],
                     clock=app[keys.CLOCK])
    service = ChannelCodes(ctx)
    app[CHANNEL_CODES] = service
    scheduler = build_scheduler(service, app.get(keys.LEADERSHIP))
    scheduler.start()
    yield
    scheduler.shutdown(wait=False)


# -- adds through a code (called by bot/topics/add_external_contact.py) -------------------------------


@dataclass(frozen=True)
class AddingCode:
    """What the add handler needs of a code."""

    id: int
    name: str
    welcome_text: str
    attachments: tuple[dict[str, Any], ...]
    tag_ids: tuple[int, ...]


async def code_for_state(session: AsyncSession, state: str) -> AddingCode | None:
    """The channel code an add's State belongs to (disabled ones too: a late event still counts)."""
    if not state.startswith(STATE_PREFIX):
        return None
    code = await session.scalar(select(ChannelCode).where(ChannelCode.state == state))
    if code is None:
        return None
    return AddingCode(code.id, code.name, code.welcome_text, tuple(code.attachments), tuple(code.tag_ids))


async def _media_id(ctx: BotContext, asset_id: int) -> str | Exception:
    try:
        return await asyncio.wait_for(media_id_for(ctx.maker, ctx.gateway, asset_id, now=ctx.clock()), MEDIA_WAIT_S)
    except (WeComError, WeComUnavailable, LookupError, TimeoutError) as exc:
        return exc


async def welcome_attachments(ctx: BotContext, code: AddingCode) -> tuple[list[dict[str, Any]], list[str]]:
    """send_welcome_msg attachments of the code, and what had to be left out (an image without a media id)."""
    # Side by side: each upload that is needed after all (a stale id) eats into the 20 seconds.
    wanted = attachment_assets(code.attachments)
    media = dict(zip(wanted, await asyncio.gather(*(_media_id(ctx, i) for i in wanted)), strict=True))
    return to_wecom(code.attachments, media)


async def relation_status(session: AsyncSession, staff_id: int, customer_id: int) -> FollowStatus | None:
    """The relation's status before this add (None: never related)."""
    return await session.scalar(select(FollowRelation.status).where(
        FollowRelation.staff_id == staff_id, FollowRelation.customer_id == customer_id))


def is_new_add(previous: FollowStatus | None) -> bool:
    """An add event is a new add unless the relation was already live (a half add being confirmed, a duplicate)."""
    return previous is None or previous in _ENDED


async def record_add(session: AsyncSession, code_id: int, customer_id: int, staff_id: int, external_userid: str,
                     at: dt.datetime) -> bool:
    """Count one add through a code; a retry of the same event inserts nothing. True if counted now."""
    return await insert_ignore(session, ChannelCodeAdd, {
        "code_id": code_id, "customer_id": customer_id, "staff_id": staff_id, "external_userid": external_userid,
        "added_at": at}, ["code_id", "staff_id", "external_userid", "added_at"])


async def apply_code_tags(ctx: BotContext, code: AddingCode, userid: str, external_userid: str, customer_id: int,
                          *, in_wecom: bool) -> None:
    """Put the code's tags on the customer: mark_tag for the guide's relation (when live), then here.

    WeCom-marked tags are recorded with source ``wecom`` (they now live in WeCom, and later syncs mirror
    them); tags WeCom does not know, or could not take, with source ``bot``.
    """
    if not code.tag_ids:
        return
    async with ctx.maker() as session:
        tags = list((await session.scalars(select(Tag).join(TagGroup, TagGroup.id == Tag.group_id).where(
            Tag.id.in_(code.tag_ids), Tag.deleted.is_(False), TagGroup.deleted.is_(False)))).all())
    wecom_ids = [t.wecom_tag_id for t in tags if t.wecom_tag_id]
    marked = False
    problem = ""
    if wecom_ids and in_wecom:
        try:
            await ctx.gateway.mark_tag(userid, external_userid, add=wecom_ids)
            marked = True
        except WeComError as exc:
            # 84061: not (yet) this guide's customer; 40068: a tag deleted in WeCom meanwhile. Retrying will not
            # help: the tags are recorded here (source bot) and the problem audited. WeComUnavailable propagates:
            # the event is retried, and a retry applies the tags again.
            problem = f"errcode {exc.errcode}"
            _LOGGER.warning("channel code %s: mark_tag for %s failed: %s", code.id, external_userid, exc)
    async with ctx.maker.begin() as session:
        for tag in tags:
            source = TagSource.WECOM if marked and tag.wecom_tag_id else TagSource.BOT
            await sync.add_customer_tag(ctx, session, customer_id, tag, source)
            if source is TagSource.WECOM:  # put on locally while the add was half: WeCom has it now
                row = await session.get(CustomerTag, (customer_id, tag.id))
                if row is not None and row.source is TagSource.BOT:
                    row.source = TagSource.WECOM
        session.add(ctx.audit("channel_code_tagged", "customer", str(customer_id), channel_code=code.id,
                              staff=userid, tags=[t.name for t in tags], in_wecom=marked, problem=problem))


# -- counts ------------------------------------------------------------------------------------------


@dataclass
class CodeStats:
    """What a code brought: adds, 7-day survivors, orders and GMV after the add."""

    adds: int = 0
    adds_in_period: int = 0
    eligible_7d: int = 0  # adds at least 7 days old
    kept_7d: int = 0  # of those, still friends 7 days after the add
    orders: int = 0
    buyers: int = 0
    gmv_cents: int = 0
    orders_in_period: int = 0
    gmv_in_period_cents: int = 0

    def as_json(self) -> dict[str, Any]:
        """JSON with money in yuan and the 7-day keep rate (null before any add is 7 days old)."""
        return {"adds": self.adds, "adds_in_period": self.adds_in_period, "eligible_7d": self.eligible_7d,
                "kept_7d": self.kept_7d,
                "kept_rate_7d": round(self.kept_7d / self.eligible_7d, 4) if self.eligible_7d else None,
                "orders": self.orders, "buyers": self.buyers, "gmv_cents": self.gmv_cents,
                "gmv": f"{self.gmv_cents / 100:.2f}", "orders_in_period": self.orders_in_period,
                "gmv_in_period_cents": self.gmv_in_period_cents,
                "gmv_in_period": f"{self.gmv_in_period_cents / 100:.2f}"}


def _ts(value: dt.datetime) -> Any:
    """A timestamp bound with our UTC type, so SQLite compares it in the stored text format."""
    return literal(value, UTCDateTime())


async def code_stats(session: AsyncSession, code_ids: Sequence[int] | None, *, now: dt.datetime,
                     start: dt.datetime, end: dt.datetime) -> dict[int, CodeStats]:
    """Counts per code (all, or ``code_ids``) with the period [start, end): one SQL statement however many codes.

    Kept after 7 days: the add is ≥ 7 days old, the guide's relation was not removed within 7 days of
    it, and the same customer did not add the same guide again within those 7 days (a re-add means the
    friendship broke in between; the relation row only remembers the latest removal). Orders: paid or
    partly refunded orders placed at or after the customer's first add through the code; GMV is paid
    minus refunded.
    """
    dialect = session.get_bind().dialect.name
    add, later, rel = ChannelCodeAdd, aliased(ChannelCodeAdd), FollowRelation
    lo, hi = _ts(start), _ts(end)
    eligible = add.added_at <= _ts(now - dt.timedelta(days=KEPT_DAYS))
    removed_early = and_(rel.removed_at.is_not(None), within_days(rel.removed_at, add.added_at, KEPT_DAYS, dialect))
    readded = exists().where(later.staff_id == add.staff_id, later.customer_id == add.customer_id,
                             later.added_at > add.added_at,
                             within_days(later.added_at, add.added_at, KEPT_DAYS, dialect))
    kept = and_(eligible, rel.id.is_not(None), not_(removed_early), not_(readded))
    one = literal(1)
    adds = (select(add.code_id.label("code_id"), func.count().label("adds"),
                   func.sum(case((and_(add.added_at >= lo, add.added_at < hi), one), else_=0)).label("in_period"),
                   func.sum(case((eligible, one), else_=0)).label("eligible"),
                   func.sum(case((kept, one), else_=0)).label("kept"))
            .select_from(add).outerjoin(rel, and_(rel.staff_id == add.staff_id, rel.customer_id == add.customer_id))
            .group_by(add.code_id).subquery("adds"))
    firsts = (select(add.code_id.label("code_id"), add.customer_id.label("customer_id"),
                     func.min(add.added_at).label("first_at"))
              .group_by(add.code_id, add.customer_id).subquery("firsts"))
    gmv = case((Order.paid_cents > Order.refunded_cents, Order.paid_cents - Order.refunded_cents), else_=0)
    in_period = and_(Order.ordered_at >= lo, Order.ordered_at < hi)
    orders = (select(firsts.c.code_id, func.count(Order.id).label("orders"),
                     func.count(func.distinct(Order.customer_id)).label("buyers"), func.sum(gmv).label("gmv"),
                     func.sum(case((in_period, one), else_=0)).label("orders_in_period"),
                     func.sum(case((in_period, gmv), else_=0)).label("gmv_in_period"))
              .select_from(firsts).join(Order, Order.customer_id == firsts.c.customer_id)
              .where(Order.ordered_at >= firsts.c.first_at, Order.status.in_(_COUNTED_ORDERS))
              .group_by(firsts.c.code_id).subquery("orders"))
    query = (select(ChannelCode.id, adds.c.adds, adds.c.in_period, adds.c.eligible, adds.c.kept, orders.c.orders,
                    orders.c.buyers, orders.c.gmv, orders.c.orders_in_period, orders.c.gmv_in_period)
             .outerjoin(adds, adds.c.code_id == ChannelCode.id).outerjoin(orders, orders.c.code_id == ChannelCode.id))
    if code_ids is not None:
        query = query.where(ChannelCode.id.in_(list(code_ids)))
    stats: dict[int, CodeStats] = {}
    for row in (await session.execute(query)).all():
        stats[row[0]] = CodeStats(*(int(v or 0) for v in row[1:]))
    return stats
