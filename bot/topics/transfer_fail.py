"""A customer transfer to another guide failed (transfer_fail)."""

from __future__ import annotations

from typing import Final

from bot import sync
from bot.context import BotContext
from bot.events import ExternalContactEvent
from bot.router import Router
from models import IdentityKind

REASONS: Final = {"customer_refused": "客户拒绝了接替", "customer_limit_exceed": "接替成员的客户数已达上限"}


async def on_transfer_fail(ctx: BotContext, event: ExternalContactEvent) -> None:
    """Record the failure and tell the member who was to take the customer over."""
    async with ctx.maker.begin() as session:
        customer = await sync.find_customer_by_identity(session, IdentityKind.EXTERNAL_USERID, event.external_user_id)
        session.add(ctx.audit("transfer_failed", "customer", str(customer.id) if customer else event.external_user_id,
                              takeover=event.user_id, reason=event.fail_reason))
        label = customer.name if customer and customer.name else event.external_user_id
    reason = REASONS.get(event.fail_reason, event.fail_reason or "原因未知")
    await ctx.gateway.send_app_text(event.user_id, f"【客户转接失败】顾客「{label}」未能转接给您：{reason}。原导购会继续跟进。")


def register(router: Router) -> None:
    """Wire this topic."""
    router.register("change_external_contact", "transfer_fail")(on_transfer_fail)
