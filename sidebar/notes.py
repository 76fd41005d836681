"""Guide notes on a customer (跟进记录): read with the profile, added and withdrawn from the sidebar.

Every member who may see the customer sees the notes on them (a colleague's note is exactly what a
guide covering for another needs); only the author may withdraw a note, and a withdrawn note is kept,
marked deleted, so nothing written is lost.
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import BotContext
from models import CustomerNote, Staff
from sidebar.errors import AccessDenied, InvalidRequest, NotFound
from sidebar.permissions import Viewer, audit, customer_in_scope, load_viewer

NOTE_MAX: Final = 1000
NOTES_SHOWN: Final = 30


def parse_note(body: Any) -> str:
    """The note text from ``{"body": "..."}``: trimmed, 1 to NOTE_MAX characters."""
    if not isinstance(body, dict) or not isinstance(body.get("body"), str):
        raise InvalidRequest('请求体须为 JSON 对象，例如 {"body": "客户想要 3 段奶粉，周末到店"}。')
    text = body["body"].strip()
    if not text:
        raise InvalidRequest("备注内容不能为空。")
    if len(text) > NOTE_MAX:
        raise InvalidRequest(f"备注最多 {NOTE_MAX} 字，当前 {len(text)} 字。")
    return text


# Built once: read on every profile open.
_NOTES: Final = (
    select(CustomerNote.id, CustomerNote.body, CustomerNote.created_at, CustomerNote.staff_id, Staff.userid,
           Staff.name)
    .join(Staff, Staff.id == CustomerNote.staff_id)
    .where(CustomerNote.customer_id == bindparam("cid"), CustomerNote.deleted_at.is_(None))
    .order_by(CustomerNote.created_at.desc(), CustomerNote.id.desc()).limit(NOTES_SHOWN)
)


async def list_notes(session: AsyncSession, customer_id: int, viewer: Viewer) -> list[dict[str, Any]]:
    """The latest live notes on the customer, newest first, with author and whether the viewer wrote it."""
    rows = (await session.execute(_NOTES, {"cid": customer_id})).all()
    return [{"id": note_id, "body": body, "author": name, "author_userid": userid,
             "created_at": created_at.isoformat(), "mine": staff_id == viewer.staff_id}
            for note_id, body, created_at, staff_id, userid, name in rows]


async def add_note(ctx: BotContext, userid: str, external_userid: str, text: str) -> dict[str, Any]:
    """Store a note by the viewer on a customer they may see; returns the notes as now shown."""
    async with ctx.maker.begin() as session:
        viewer = await load_viewer(session, userid)
        customer_id = await customer_in_scope(session, viewer, external_userid)
        note = CustomerNote(customer_id=customer_id, staff_id=viewer.staff_id, body=text, created_at=ctx.clock())
        session.add(note)
        await session.flush()
        session.add(audit(userid, "customer_note_added", "customer", str(customer_id), ctx.clock(),
                          external_userid=external_userid, note_id=note.id))
        notes = await list_notes(session, customer_id, viewer)
    return {"customer_id": customer_id, "note_id": note.id, "notes": notes}


async def delete_note(ctx: BotContext, userid: str, external_userid: str, note_id: int) -> dict[str, Any]:
    """Withdraw the viewer's own note (kept, marked deleted); returns the notes as now shown."""
    async with ctx.maker.begin() as session:
        viewer = await load_viewer(session, userid)
        customer_id = await customer_in_scope(session, viewer, external_userid)
        note = await session.get(CustomerNote, note_id)
        if note is None or note.customer_id != customer_id or note.deleted_at is not None:
            raise NotFound("备注不存在或已删除。")
        if note.staff_id != viewer.staff_id:
            raise AccessDenied("只能删除自己写的备注。")
        note.deleted_at = ctx.clock()
        session.add(audit(userid, "customer_note_deleted", "customer", str(customer_id), ctx.clock(),
                          external_userid=external_userid, note_id=note_id))
        await session.flush()
        notes = await list_notes(session, customer_id, viewer)
    return {"customer_id": customer_id, "notes": notes}
