"""「加我」 posters: each guide's own 「联系我」 code per content item, so a customer who scans it and adds the
guide counts as a new contact of that guide and of that item (sharing/performance.py).

The code's ``state`` (WeCom echoes it as ``State`` on ``add_external_contact``; at most 30 characters)
names guide and item::

    am.<staff id in base 36>.<content item id in base 36>        staff 47, item 1000  ->  am.1b.rs

Lower-case base 36 keeps even the largest ids (2**63 - 1 is 13 digits) within 3 + 13 + 1 + 13 = 30
characters, and the ``am.`` prefix keeps these states apart from channel codes and hand-made ones.
``add_me_state`` writes it and ``parse_add_me_state`` reads it back. The contact way is created once
(bot/contact_ways.py) with ``content_id`` set, and reused; the add event finds it by state
(bot/topics/add_external_contact.py) and records it on the follow relation.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, Final

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import BotContext
from bot.contact_ways import ContactWayError, create_contact_way
from media.assets import InvalidMedia, MediaUnavailable, asset_for_url
from models import ContactWay, ContentItem, MediaAsset, Staff, Store
from sharing.links import ContentNotFound
from sharing.poster_cache import PosterCache, PosterKey
from sharing.poster_service import Poster, PosterFormat, font_path, load_template
from sharing.posters import CONTENT_TYPES, parse_template, render_poster_async

_LOGGER = logging.getLogger(__name__)

STATE_PREFIX: Final = "am."
STATE_MAX: Final = 30  # WeCom's limit on a contact way's state
CAMPAIGN_MAX: Final = 128  # ContactWay.campaign
REMARK_MAX: Final = 30  # WeCom's limit on a contact way's remark
MAX_ID: Final = 2**63 - 1  # the largest BIGINT id: 13 base-36 digits
POSTER_KIND: Final = "addme"
_DIGITS: Final = "0123456789abcdefghijklmnopqrstuvwxyz"
_STATE_RE: Final = re.compile(r"am\.([0-9a-z]{1,13})\.([0-9a-z]{1,13})")

# Contact ways being created in this process, by state: a second request for the same guide and item
# waits for the first instead of asking WeCom for a second code.
_CREATING: dict[str, asyncio.Future[ContactWay]] = {}


class AddMeUnavailable(RuntimeError):
    """The guide's 「加我」 code cannot be had right now; ``message_zh`` says why, for the guide."""

    def __init__(self, message_zh: str) -> None:
        super().__init__(message_zh)
        self.message_zh = message_zh


def _base36(number: int) -> str:
    digits = ""
    while True:
        number, rest = divmod(number, 36)
        digits = _DIGITS[rest] + digits
        if number == 0:
            return digits


def add_me_state(staff_id: int, content_id: int) -> str:
    """The contact-way state naming a guide and a content item: ``am.<staff base36>.<item base36>``."""
    for value in (staff_id, content_id):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
            raise ValueError(f"ids must be integers in 0..2**63-1 (a BIGINT), got {value!r}")
    state = f"{STATE_PREFIX}{_base36(staff_id)}.{_base36(content_id)}"
    # Cannot happen within MAX_ID (13 + 13 digits); kept so a format change cannot slip past WeCom's limit.
    if len(state) > STATE_MAX:
        raise ValueError(f"state {state!r} is longer than WeCom's {STATE_MAX} characters")
    return state


def parse_add_me_state(state: str | None) -> tuple[int, int] | None:
    """(staff id, content id) from an add-me state, or None for any other state."""
    match = _STATE_RE.fullmatch(state or "")
    if match is None:
        return None
    staff_id, content_id = int(match[1], 36), int(match[2], 36)
    # Only the canonical spelling (no leading zeros) is ours: one guide and item, one state.
    return (staff_id, content_id) if add_me_state(staff_id, content_id) == state else None


async def _find(ctx: BotContext, state: str, content_id: int) -> ContactWay | None:
    async with ctx.maker() as session:
        way = await session.scalar(select(ContactWay).where(ContactWay.state == state))
    if way is not None and way.content_id is None:
        # Created, but the process stopped before the item was recorded (see _create): finish the job.
        await _set_content(ctx, way, content_id)
    return way


async def _set_content(ctx: BotContext, way: ContactWay, content_id: int) -> None:
    async with ctx.maker.begin() as session:
        await session.execute(update(ContactWay).where(ContactWay.id == way.id).values(content_id=content_id))
    way.content_id = content_id


async def _create(ctx: BotContext, staff: Staff, item: ContentItem, state: str) -> ContactWay:
    try:
        way = await create_contact_way(ctx, staff.userid, state, campaign=item.title[:CAMPAIGN_MAX],
                                       remark=f"加我海报 {item.title}"[:REMARK_MAX])
    except (ContactWayError, IntegrityError):
        # Another process created it between our look and our insert (the state is unique): use theirs.
        # On IntegrityError the code WeCom just gave us is left unused; it carries the same state, so it
        # would credit the same guide and item if anyone ever scanned it.
        way = await _find(ctx, state, item.id)
        if way is None:
            raise
        _LOGGER.info("contact way %s was created concurrently elsewhere; reusing %s", state, way.config_id)
        return way
    # create_contact_way has no content_id parameter: record it in a second short transaction.
    await _set_content(ctx, way, item.id)
    return way


async def guide_contact_way(ctx: BotContext, staff: Staff, item: ContentItem) -> ContactWay:
    """The guide's own contact way for the item: created in WeCom on first ask, the same one every time after."""
    state = add_me_state(staff.id, item.id)
    way = await _find(ctx, state, item.id)
    if way is not None:
        return way
    loop = asyncio.get_running_loop()
    pending = _CREATING.get(state)
    if pending is None or pending.get_loop() is not loop:
        pending = loop.create_task(_create(ctx, staff, item, state))
        _CREATING[state] = pending

        def forget(done: asyncio.Future[ContactWay]) -> None:
            if _CREATING.get(state) is done:
                del _CREATING[state]

        pending.add_done_callback(forget)
    # Shielded: one guide closing the sidebar must not cancel a creation another request waits for.
    return await asyncio.shield(pending)


async def add_me_poster(ctx: BotContext, cache: PosterCache, *, staff_id: int, content_id: int,
                        template_id: int | None = None, fmt: PosterFormat = "PNG") -> Poster:
    """The guide's 「加我」 poster for the item: its QR code is the guide's contact-way code for the item.

    ``Poster.url`` is the contact way's QR image URL. ContentNotFound for an unknown or retired item,
    AddMeUnavailable when WeCom's QR image cannot be fetched; WeCom errors from creating the code pass through.
    """
    async with ctx.maker() as session:
        item = await session.get(ContentItem, content_id)
        if item is None or not item.enabled:
            raise ContentNotFound(content_id)
        found = (await session.execute(select(Staff, Store.name).outerjoin(Store, Store.id == Staff.store_id)
                                       .where(Staff.id == staff_id))).first()
        if found is None:
            raise LookupError(f"staff {staff_id} does not exist")
        staff, store_name = found
        spec, version, background = await load_template(session, template_id)
    way = await guide_contact_way(ctx, staff, item)  # may call WeCom: outside any transaction
    key = PosterKey(guide=way.id, item=f"{item.id}:{item.updated_at.isoformat()}", template_version=version,
                    fmt=fmt, kind=POSTER_KIND)
    hit = cache.get(key)
    if hit is not None:
        return Poster(hit, CONTENT_TYPES[fmt], way.qr_code, True)
    qr = await _qr_picture(ctx, way)
    data = await render_poster_async(parse_template(spec), qr_image=qr, guide_name=staff.name or "导购",
                                     title=item.title, subtitle=store_name or "", background=background, fmt=fmt,
                                     font_path=await font_path(ctx.settings))
    cache.put(key, data)
    return Poster(data, CONTENT_TYPES[fmt], way.qr_code, False)


async def _qr_picture(ctx: BotContext, way: ContactWay) -> bytes:
    """The contact way's QR image from WeCom, fetched once and kept in the media library."""
    if not way.qr_code:
        raise AddMeUnavailable("企业微信没有返回这个「联系我」二维码的图片地址，请联系管理员。")
    try:
        asset_id = await asset_for_url(ctx.maker, way.qr_code, now=ctx.clock())
    except (MediaUnavailable, InvalidMedia) as exc:
        raise AddMeUnavailable(f"暂时无法获取您的「联系我」二维码图片：{exc.message}") from None
    async with ctx.maker() as session:
        data = await session.scalar(select(MediaAsset.data).where(MediaAsset.id == asset_id))
    assert data is not None
    return data


async def list_add_me_codes(session: AsyncSession, *, staff_id: int | None = None,
                            content_id: int | None = None) -> list[dict[str, Any]]:
    """Guides' 「加我」 codes (newest first), for one guide and/or one item when given."""
    query = (select(ContactWay, Staff.userid, Staff.name, ContentItem.title)
             .join(ContentItem, ContentItem.id == ContactWay.content_id)
             .outerjoin(Staff, Staff.id == ContactWay.staff_id)
             .where(ContactWay.state.startswith(STATE_PREFIX, autoescape=True))
             .order_by(ContactWay.id.desc()))
    if staff_id is not None:
        query = query.where(ContactWay.staff_id == staff_id)
    if content_id is not None:
        query = query.where(ContactWay.content_id == content_id)
    return [{"config_id": way.config_id, "state": way.state, "qr_code": way.qr_code,
             "staff": {"userid": userid, "name": name}, "content": {"id": way.content_id, "title": title},
             "created_at": way.created_at.isoformat() if way.created_at else None}
            for way, userid, name, title in (await session.execute(query)).all()]
