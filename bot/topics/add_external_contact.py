"""A customer added a guide (add_external_contact / add_half_external_contact).

An add whose State belongs to a channel code (渠道活码) gets that code's welcome (text and attachments),
is counted for the code, and gets the code's tags; any other add keeps the contact way's (or the
default) welcome text.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select

from bot import sync
from bot.context import BotContext
from bot.events import ExternalContactEvent
from bot.router import Router
from models import ContactWay, FollowStatus
from sharing import channel_codes
from sharing.channel_codes import AddingCode
from wecom.errors import WeComError
from wecom.types import ExternalContact

_LOGGER = logging.getLogger(__name__)
# WeCom answers these when the customer is only half-added (not yet confirmed by the member).
_NO_RELATION = frozenset({84061})


def render_welcome(template: str, **values: str) -> str:
    """Fill {guide_name}/{customer_name}; unknown placeholders are left as written."""
    return template.format_map(defaultdict(str, values)) if "{" in template else template


async def on_add(ctx: BotContext, event: ExternalContactEvent) -> None:
    """Record the customer and relation, attribute the contact way, send the welcome message."""
    staff = await sync.ensure_staff(ctx, event.user_id)
    async with ctx.maker() as session:
        way = await session.scalar(select(ContactWay).where(ContactWay.state == event.state)) if event.state else None
        code = await channel_codes.code_for_state(session, event.state) if event.state else None
    try:
        contact: ExternalContact | None = await ctx.gateway.get_external_contact(event.external_user_id)
    except WeComError as exc:
        if exc.errcode not in _NO_RELATION:
            raise
        contact = None
    # The welcome_code is good for 20 s and once: send before the slower database work,
    # and never on a retry (the first attempt either used it or it has expired).
    if event.welcome_code and ctx.attempt == 0:
        await _welcome(ctx, event, staff.name, contact.name if contact else "", way, code)
    if contact is not None and await _has_unknown_tags(ctx, contact):
        await sync.sync_tag_library(ctx)
    contact = contact or ExternalContact(external_userid=event.external_user_id, name="")
    follow = next((f for f in contact.follow_users if f.userid == event.user_id), None)
    if code is None and follow is not None and follow.state:
        # A half add confirmed by the guide comes without State; WeCom's relation still has it.
        async with ctx.maker() as session:
            code = await channel_codes.code_for_state(session, follow.state)
    status = FollowStatus.HALF if event.change_type == "add_half_external_contact" else FollowStatus.ACTIVE
    tag_now = False
    async with ctx.maker.begin() as session:
        customer = await sync.upsert_customer(ctx, session, contact)
        previous = await channel_codes.relation_status(session, staff.id, customer.id) if code else None
        relation = await sync.upsert_follow(
            ctx, session, staff, customer, event.external_user_id, follow, status, contact_way=way
        )
        if event.state and not relation.state:
            relation.state = event.state[:64]
        await sync.set_wecom_tags(ctx, session, customer, sync.corp_tag_ids(contact))
        if code is not None and channel_codes.is_new_add(previous):
            await channel_codes.record_add(session, code.id, customer.id, staff.id, event.external_user_id,
                                           sync.from_unix(event.create_time) or ctx.clock())
        # Tag on the add itself, again when a half add is confirmed (only then can WeCom mark it), and on a
        # retry (the first attempt may have stopped after this transaction); marking twice is harmless.
        tag_now = code is not None and (channel_codes.is_new_add(previous) or previous is FollowStatus.HALF
                                        or ctx.attempt > 0)
        customer_id = customer.id
        session.add(
            ctx.audit(
                "customer_added",
                "customer",
                str(customer.id),
                staff=staff.userid,
                external_userid=event.external_user_id,
                state=event.state,
                contact_way=way.config_id if way else None,
                campaign=way.campaign if way else None,
                channel_code=code.id if code else None,
                half=status is FollowStatus.HALF,
            )
        )
    if tag_now and code is not None:
        await channel_codes.apply_code_tags(ctx, code, staff.userid, event.external_user_id, customer_id,
                                            in_wecom=status is FollowStatus.ACTIVE)


async def _has_unknown_tags(ctx: BotContext, contact: ExternalContact) -> bool:
    async with ctx.maker() as session:
        return bool(await sync.unknown_tag_ids(session, sync.corp_tag_ids(contact)))


async def _welcome(
    ctx: BotContext,
    event: ExternalContactEvent,
    guide_name: str,
    customer_name: str,
    way: ContactWay | None,
    code: AddingCode | None = None,
) -> None:
    template = (code.welcome_text if code else "") or (way.welcome_text if way and way.welcome_text else "")
    text = render_welcome(template or ctx.settings.welcome_text, guide_name=guide_name, customer_name=customer_name)
    attachments: list[dict[str, Any]] = []
    problems: list[str] = []
    if code is not None and code.attachments:
        attachments, problems = await channel_codes.welcome_attachments(ctx, code)
    outcome = await _send_welcome(ctx, event, text, attachments, problems)
    async with ctx.maker.begin() as session:
        session.add(ctx.audit("welcome_message", "external_userid", event.external_user_id,
                              staff=event.user_id, outcome=outcome, text=text, attachments=len(attachments),
                              channel_code=code.id if code else None))
        if problems:
            session.add(ctx.audit("welcome_attachment_problem", "external_userid", event.external_user_id,
                                  staff=event.user_id, channel_code=code.id if code else None, problems=problems))


async def _send_welcome(
    ctx: BotContext, event: ExternalContactEvent, text: str, attachments: Sequence[Mapping[str, Any]],
    problems: list[str],
) -> str:
    try:
        await ctx.gateway.send_welcome_msg(event.welcome_code, text, attachments)
        return "sent"
    except WeComError as exc:
        if attachments and text and exc.errcode in channel_codes.ATTACHMENT_ERRCODES:
            # An attachment was refused before the code was used: the text still goes, within the window.
            problems.append(f"附件被企业微信拒绝（错误码 {exc.errcode}：{exc.errmsg[:120]}），只发送了文字")
            return await _send_welcome(ctx, event, text, (), problems)
        # 41050/41051: expired, or another app / a console default welcome got there first.
        # Nothing to retry: the code is single-use.
        _LOGGER.warning("welcome message for %s not sent: %s", event.external_user_id, exc)
        return f"errcode {exc.errcode}"


def register(router: Router) -> None:
    """Wire this topic."""
    router.register("change_external_contact", "add_external_contact", "add_half_external_contact")(on_add)
