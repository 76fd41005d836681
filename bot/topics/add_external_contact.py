"""A customer added a guide (add_external_contact / add_half_external_contact)."""

from __future__ import annotations

import logging
from collections import defaultdict

from sqlalchemy import select

from bot import sync
from bot.context import BotContext
from bot.events import ExternalContactEvent
from bot.router import Router
from models import ContactWay, FollowStatus
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
    try:
        contact: ExternalContact | None = await ctx.gateway.get_external_contact(event.external_user_id)
    except WeComError as exc:
        if exc.errcode not in _NO_RELATION:
            raise
        contact = None
    # The welcome_code is good for 20 s and once: send before the slower database work,
    # and never on a retry (the first attempt either used it or it has expired).
    if event.welcome_code and ctx.attempt == 0:
        await _welcome(ctx, event, staff.name, contact.name if contact else "", way)
    if contact is not None and await _has_unknown_tags(ctx, contact):
        await sync.sync_tag_library(ctx)
    contact = contact or ExternalContact(external_userid=event.external_user_id, name="")
    follow = next((f for f in contact.follow_users if f.userid == event.user_id), None)
    status = FollowStatus.HALF if event.change_type == "add_half_external_contact" else FollowStatus.ACTIVE
    async with ctx.maker.begin() as session:
        customer = await sync.upsert_customer(ctx, session, contact)
        relation = await sync.upsert_follow(
            ctx, session, staff, customer, event.external_user_id, follow, status, contact_way=way
        )
        if event.state and not relation.state:
            relation.state = event.state[:64]
        await sync.set_wecom_tags(ctx, session, customer, sync.corp_tag_ids(contact))
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
                half=status is FollowStatus.HALF,
            )
        )


async def _has_unknown_tags(ctx: BotContext, contact: ExternalContact) -> bool:
    async with ctx.maker() as session:
        return bool(await sync.unknown_tag_ids(session, sync.corp_tag_ids(contact)))


async def _welcome(
    ctx: BotContext, event: ExternalContactEvent, guide_name: str, customer_name: str, way: ContactWay | None
) -> None:
    template = (way.welcome_text if way and way.welcome_text else "") or ctx.settings.welcome_text
    text = render_welcome(template, guide_name=guide_name, customer_name=customer_name)
    outcome = "sent"
    try:
        await ctx.gateway.send_welcome_msg(event.welcome_code, text)
    except WeComError as exc:
        # 41050/41051: expired, or another app / a console default welcome got there first.
        # Nothing to retry: the code is single-use.
        outcome = f"errcode {exc.errcode}"
        _LOGGER.warning("welcome message for %s not sent: %s", event.external_user_id, exc)
    async with ctx.maker.begin() as session:
        session.add(ctx.audit("welcome_message", "external_userid", event.external_user_id,
                              staff=event.user_id, outcome=outcome, text=text))


def register(router: Router) -> None:
    """Wire this topic."""
    router.register("change_external_contact", "add_external_contact", "add_half_external_contact")(on_add)
