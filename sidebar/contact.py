"""The customer card: find (or fetch from WeCom) the customer, check the viewer's scope, audit the view."""

from __future__ import annotations

import logging
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot import sync
from bot.context import BotContext
from customers.profile import Profile, load_profile
from models import Customer, FollowRelation, FollowStatus, IdentityKind, Staff
from sidebar.errors import AccessDenied, NotFound, UpstreamError
from sidebar.notes import list_notes
from sidebar.permissions import (
    LIVE_FOLLOW,
    Viewer,
    audit,
    check_customer_access,
    find_customer_in_scope,
    load_viewer,
)
from wecom.errors import WeComError
from wecom.types import ExternalContact, FollowUser

_LOGGER = logging.getLogger(__name__)

#: externalcontact/get for an id WeCom does not know, or a customer outside the app's reach.
_NO_SUCH_CONTACT: Final = frozenset({40096, 84061, 84059, 61017})
MAX_EXTERNAL_USERID: Final = 64


async def view_contact(ctx: BotContext, userid: str, external_userid: str) -> dict[str, Any]:
    """The profile of the customer behind ``external_userid`` as ``userid`` may see it, audited."""
    if not external_userid or len(external_userid) > MAX_EXTERNAL_USERID:
        raise NotFound("客户编号无效。")
    # The usual open: a stored customer the viewer may see, read and audited in one transaction.
    async with ctx.maker.begin() as session:
        viewer = await _viewer_or_audit(ctx, session, userid, external_userid)
        found = await find_customer_in_scope(session, viewer, external_userid)
        if found is not None and found.visible:
            profile, notes = await _profile_and_notes(ctx, session, viewer, found.customer_id, external_userid,
                                                      fetched=False)
            return _answer(profile, notes, viewer, external_userid, fetched=False)
    # Otherwise: not stored yet (read from WeCom), or maybe added by the viewer a moment ago.
    fetched = found is None
    customer_id = found.customer_id if found else await fetch_customer(ctx, external_userid, actor=userid)
    try:
        profile, notes = await _audited_profile(ctx, viewer, customer_id, external_userid, fetched)
    except AccessDenied as exc:
        if fetched or not await _refreshed_as_follower(ctx, viewer, customer_id, external_userid):
            await _audit_denied(ctx, userid, external_userid, str(customer_id), viewer.role.value, exc.message)
            raise
        # The guide added this customer a moment ago and the callback is not processed yet.
        fetched = True
        profile, notes = await _audited_profile(ctx, viewer, customer_id, external_userid, fetched)
    return _answer(profile, notes, viewer, external_userid, fetched=fetched)


def _answer(profile: Profile, notes: list[dict[str, Any]], viewer: Viewer, external_userid: str, *,
            fetched: bool) -> dict[str, Any]:
    return {"profile": profile.as_json(), "notes": notes, "viewer": viewer.as_json(),
            "external_userid": external_userid,
            "fetched_from_wecom": fetched}


async def _audited_profile(ctx: BotContext, viewer: Viewer, customer_id: int, external_userid: str,
                           fetched: bool) -> tuple[Profile, list[dict[str, Any]]]:
    async with ctx.maker.begin() as session:
        await check_customer_access(session, viewer, customer_id)
        return await _profile_and_notes(ctx, session, viewer, customer_id, external_userid, fetched=fetched)


async def _profile_and_notes(ctx: BotContext, session: AsyncSession, viewer: Viewer, customer_id: int,
                             external_userid: str, *, fetched: bool) -> tuple[Profile, list[dict[str, Any]]]:
    """The profile and notes of a customer the viewer may see, with the view audited (in the caller's transaction)."""
    profile = await load_profile(session, customer_id, show_phone=viewer.sees_full_phone)
    notes = await list_notes(session, profile.customer_id, viewer)
    session.add(audit(viewer.userid, "profile_viewed", "customer", str(profile.customer_id), ctx.clock(),
                      external_userid=external_userid, role=viewer.role.value, fetched=fetched))
    return profile, notes


async def _refreshed_as_follower(ctx: BotContext, viewer: Viewer, customer_id: int, external_userid: str) -> bool:
    """Whether WeCom lists the viewer as a follower we have no record of yet; if so the relation is stored."""
    async with ctx.maker() as session:
        known = await session.scalar(select(FollowRelation.id).where(
            FollowRelation.staff_id == viewer.staff_id, FollowRelation.customer_id == customer_id))
    if known is not None:  # our record (lost, deleted, transferred) comes from the callbacks: it stands
        return False
    try:
        contact = await ctx.gateway.get_external_contact(external_userid)
    except WeComError:
        return False
    if not any(f.userid == viewer.userid for f in contact.follow_users):
        return False
    await store_contact(ctx, contact, actor=viewer.userid)
    return True


async def _viewer_or_audit(ctx: BotContext, session: AsyncSession, userid: str, external_userid: str) -> Viewer:
    try:
        return await load_viewer(session, userid)
    except AccessDenied as exc:
        await _audit_denied(ctx, userid, external_userid, "", "", exc.message)
        raise


async def _audit_denied(ctx: BotContext, userid: str, external_userid: str, customer_id: str, role: str,
                        reason: str) -> None:
    # In its own transaction: the refused view's transaction was rolled back.
    async with ctx.maker.begin() as session:
        session.add(audit(userid, "profile_view_denied", "customer", customer_id or external_userid, ctx.clock(),
                          external_userid=external_userid, role=role, reason=reason))


async def fetch_customer(ctx: BotContext, external_userid: str, *, actor: str) -> int:
    """Read a customer the service has not seen from WeCom and store them; returns the customer id."""
    try:
        contact: ExternalContact = await ctx.gateway.get_external_contact(external_userid)
    except WeComError as exc:
        if exc.errcode in _NO_SUCH_CONTACT:
            raise NotFound("企业微信中找不到该客户（可能已删除，或不在本应用的可见范围内）。",
                           errcode=exc.errcode) from None
        raise UpstreamError(f"读取企业微信客户信息失败（错误码 {exc.errcode}），请稍后重试。", errcode=exc.errcode) from None
    return await store_contact(ctx, contact, actor=actor)


async def store_contact(ctx: BotContext, contact: ExternalContact, *, actor: str) -> int:
    """Store a customer read with externalcontact/get, as the add_external_contact topic does."""
    followers: list[tuple[Staff, FollowUser]] = []
    for follow in contact.follow_users:
        try:
            followers.append((await sync.ensure_staff(ctx, follow.userid), follow))  # user/get outside transactions
        except WeComError as exc:
            # A follower outside the app's visibility: the customer is still shown, without that relation.
            _LOGGER.warning("follower %s of %s not readable: %s", follow.userid, contact.external_userid, exc)
    async with ctx.maker() as session:
        unknown_tags = await sync.unknown_tag_ids(session, sync.corp_tag_ids(contact))
    if unknown_tags:
        await sync.sync_tag_library(ctx)
    try:
        async with ctx.maker.begin() as session:
            customer: Customer = await sync.upsert_customer(ctx, session, contact)
            for staff, follow in followers:
                status = await session.scalar(select(FollowRelation.status).where(
                    FollowRelation.staff_id == staff.id, FollowRelation.customer_id == customer.id))
                if status is not None and status not in LIVE_FOLLOW:
                    # WeCom still lists a member whom the customer deleted (del_follow_user); the
                    # callbacks made that relation "lost", and a page view must not revive it.
                    continue
                await sync.upsert_follow(ctx, session, staff, customer, contact.external_userid, follow,
                                         status or FollowStatus.ACTIVE)
            await sync.set_wecom_tags(ctx, session, customer, sync.corp_tag_ids(contact))
            session.add(audit(actor, "customer_fetched", "customer", str(customer.id), ctx.clock(),
                              external_userid=contact.external_userid, followers=[s.userid for s, _ in followers]))
            return customer.id
    except IntegrityError:
        # Another request stored the same customer meanwhile: theirs is as good as ours.
        async with ctx.maker() as session:
            found = await sync.find_customer_by_identity(session, IdentityKind.EXTERNAL_USERID, contact.external_userid)
        if found is None:
            raise
        return found.id
