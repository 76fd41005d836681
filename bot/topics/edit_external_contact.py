"""A guide edited a customer's remark, description or tags in the client."""

from __future__ import annotations

from bot import sync
from bot.context import BotContext
from bot.events import ExternalContactEvent
from bot.router import Router
from models import FollowStatus
from wecom.errors import WeComError

# externalcontact/get for a customer no longer related to any visible member.
_GONE = frozenset({84061, 40096})


async def on_edit(ctx: BotContext, event: ExternalContactEvent) -> None:
    """Re-read the customer (the event says only that something changed) and refresh it."""
    staff = await sync.ensure_staff(ctx, event.user_id)
    try:
        contact = await ctx.gateway.get_external_contact(event.external_user_id)
    except WeComError as exc:
        if exc.errcode not in _GONE:
            raise
        # Deleted since the edit: the delete event carries the news; nothing left to refresh.
        async with ctx.maker.begin() as session:
            session.add(ctx.audit("customer_edit_skipped", "external_userid", event.external_user_id,
                                  errcode=exc.errcode))
        return
    async with ctx.maker() as session:
        unknown = await sync.unknown_tag_ids(session, sync.corp_tag_ids(contact))
    if unknown:
        await sync.sync_tag_library(ctx)
    follow = next((f for f in contact.follow_users if f.userid == event.user_id), None)
    async with ctx.maker.begin() as session:
        customer = await sync.upsert_customer(ctx, session, contact)
        if follow is not None:
            await sync.upsert_follow(ctx, session, staff, customer, event.external_user_id, follow, FollowStatus.ACTIVE)
        await sync.set_wecom_tags(ctx, session, customer, sync.corp_tag_ids(contact))
        session.add(ctx.audit("customer_edited", "customer", str(customer.id), staff=staff.userid,
                              remark=follow.remark if follow else None))


def register(router: Router) -> None:
    """Wire this topic."""
    router.register("change_external_contact", "edit_external_contact")(on_edit)
