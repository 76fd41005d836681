"""Full resync from WeCom: tag library, every member's customers, customer groups.

Run once when a brand connects (customers added before the service existed) and whenever callbacks
may have been missed; callbacks keep it current in between.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass

from bot import sync
from bot.context import BotContext
from models import FollowStatus
from wecom.types import ExternalContact, FollowUser

_LOGGER = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]


@dataclass
class SyncReport:
    """What a full sync touched."""

    members: int = 0
    relations: int = 0
    customers: int = 0
    groups: int = 0
    tags: int = 0


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


async def full_sync(ctx: BotContext, progress: Progress | None = None) -> SyncReport:
    """Pull everything the app can see from WeCom into our models."""
    report = SyncReport()
    tell = progress or (lambda stage, done, total: None)
    report.tags = (await sync.sync_tag_library(ctx))["tags"]
    members = await ctx.gateway.get_follow_user_list()
    report.members = len(members)
    staff = {}
    for i, userid in enumerate(members, 1):
        staff[userid] = await sync.ensure_staff(ctx, userid)
        tell("members", i, len(members))
    pairs: list[tuple[ExternalContact, FollowUser]] = []
    for chunk in _chunks(members, 100):
        cursor = ""
        while True:
            page, cursor = await ctx.gateway.batch_get_by_user(chunk, cursor=cursor, limit=100)
            pairs.extend(page)
            tell("fetching", len(pairs), len(pairs))
            if not cursor:
                break
    tags_by_customer: dict[str, set[str]] = {}
    for contact, follow in pairs:
        tags_by_customer.setdefault(contact.external_userid, set()).update(
            t.tag_id for t in follow.tags if t.tag_id and t.type in (0, 1)
        )
    for i, (contact, follow) in enumerate(pairs, 1):
        async with ctx.maker.begin() as session:
            # Carry this relation along, so the phones the guide noted (remark_mobiles) attach too.
            customer = await sync.upsert_customer(ctx, session, dataclasses.replace(contact, follow_users=(follow,)))
            member = staff.get(follow.userid) or await sync.find_staff(session, follow.userid)
            if member is not None:
                await sync.upsert_follow(ctx, session, member, customer, contact.external_userid, follow,
                                         FollowStatus.ACTIVE)
            await sync.set_wecom_tags(ctx, session, customer, tags_by_customer.get(contact.external_userid, set()))
        report.relations += 1
        if i % 50 == 0 or i == len(pairs):
            tell("relations", i, len(pairs))
    report.customers = len(tags_by_customer)
    chat_ids: list[str] = []
    for chunk in _chunks(members, 100):
        cursor = ""
        while True:
            ids, cursor = await ctx.gateway.list_group_chats(chunk, cursor=cursor, limit=1000)
            chat_ids.extend(ids)
            if not cursor:
                break
    for i, chat_id in enumerate(chat_ids, 1):
        chat = await ctx.gateway.get_group_chat(chat_id)
        async with ctx.maker.begin() as session:
            await sync.apply_group_chat(ctx, session, chat)
        tell("groups", i, len(chat_ids))
    report.groups = len(chat_ids)
    async with ctx.maker.begin() as session:
        session.add(ctx.audit("full_sync", "corp", ctx.settings.corp_id, **report.__dict__))
    return report
