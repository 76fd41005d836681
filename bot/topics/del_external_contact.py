"""A guide deleted a customer (del_external_contact)."""

from __future__ import annotations

from bot.context import BotContext
from bot.events import ExternalContactEvent
from bot.router import Router
from bot.topics.relations import find_relation
from models import FollowStatus


async def on_del_external_contact(ctx: BotContext, event: ExternalContactEvent) -> None:
    """Close the relation; a deletion caused by a transfer (在职继承) is recorded as such."""
    by_transfer = event.source == "DELETE_BY_TRANSFER"
    async with ctx.maker.begin() as session:
        staff, customer, relation = await find_relation(session, event.user_id, event.external_user_id)
        if relation is not None:
            relation.status = FollowStatus.TRANSFERRED if by_transfer else FollowStatus.DELETED
            relation.removed_at = ctx.clock()
            relation.updated_at = ctx.clock()
        session.add(ctx.audit("staff_deleted_customer", "customer", str(customer.id) if customer else event.external_user_id,
                              staff=event.user_id, by_transfer=by_transfer, known=relation is not None))


def register(router: Router) -> None:
    """Wire this topic."""
    router.register("change_external_contact", "del_external_contact")(on_del_external_contact)
