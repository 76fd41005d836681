"""A customer deleted their guide (del_follow_user): churn, seen the same day."""

from __future__ import annotations

from typing import Final

from bot import sync
from bot.context import BotContext
from bot.events import ExternalContactEvent
from bot.router import Router
from bot.topics.relations import find_relation, managers_of
from models import FollowStatus, Store, TagSource
from wecom.types import ExternalContact

LOST_TAG_GROUP: Final = "客户状态"
LOST_TAG: Final = "已流失"


async def on_del_follow_user(ctx: BotContext, event: ExternalContactEvent) -> None:
    """Mark the relation lost, tag the customer 已流失, and tell the guide's manager through the app."""
    staff = await sync.ensure_staff(ctx, event.user_id)
    async with ctx.maker.begin() as session:
        _, customer, relation = await find_relation(session, event.user_id, event.external_user_id)
        if customer is None:
            customer = await sync.upsert_customer(ctx, session, ExternalContact(event.external_user_id, name=""))
        if relation is None:
            relation = await sync.upsert_follow(ctx, session, staff, customer, event.external_user_id, None,
                                                FollowStatus.LOST)
        already_lost = relation.status is FollowStatus.LOST and relation.removed_at is not None
        relation.status = FollowStatus.LOST
        relation.removed_at = relation.removed_at if already_lost else ctx.clock()
        relation.updated_at = ctx.clock()
        tag = await sync.local_tag(session, LOST_TAG_GROUP, LOST_TAG)
        await sync.add_customer_tag(ctx, session, customer.id, tag, TagSource.BOT)
        managers = await managers_of(session, staff)
        store = await session.get(Store, staff.store_id) if staff.store_id else None
        customer_label = relation.remark or customer.name or event.external_user_id
        session.add(ctx.audit("customer_lost", "customer", str(customer.id), staff=staff.userid,
                              notified=[m.userid for m in managers]))
    if managers:
        where = f"（{store.name}）" if store else ""
        text = (
            f"【客户流失提醒】顾客「{customer_label}」删除了导购 {staff.name or staff.userid}{where}。"
            "建议今天内了解原因，必要时由其他同事跟进。"
        )
        # Sent after the transaction: a failure retries the event, and the database part is idempotent.
        await ctx.gateway.send_app_text([m.userid for m in managers], text)


def register(router: Router) -> None:
    """Wire this topic."""
    router.register("change_external_contact", "del_follow_user")(on_del_follow_user)
