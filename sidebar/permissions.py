"""Who may see which customer and group: a guide their own, managers their store or region, HQ all."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import ColumnElement, false, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from bot import sync
from customers.profile import may_see_phone
from models import (
    AuditEntry,
    CustomerGroup,
    FollowRelation,
    FollowStatus,
    GroupMember,
    IdentityKind,
    Staff,
    StaffRole,
    Store,
)
from sidebar.errors import AccessDenied, NotFound

#: Relations that make a customer "followed": half-added ones count, the guide is already talking to them.
LIVE_FOLLOW: Final = (FollowStatus.ACTIVE, FollowStatus.HALF)
#: user/get status 1 active, 4 not activated yet; disabled (2) and quit (5) members lose the sidebar.
_ACTIVE_MEMBER: Final = frozenset({1, 4})

_DENIED: Final = {
    StaffRole.GUIDE: "您只能查看自己添加的客户：该客户不在您的客户列表中。",
    StaffRole.STORE_MANAGER: "您只能查看本门店员工添加的客户：该客户不属于本门店。",
    StaffRole.REGION_MANAGER: "您只能查看本区域员工添加的客户：该客户不属于本区域。",
    StaffRole.HQ: "",
}
_GROUP_DENIED: Final = {
    StaffRole.GUIDE: "您只能查看自己所在或自己创建的客户群。",
    StaffRole.STORE_MANAGER: "您只能查看本门店员工的客户群。",
    StaffRole.REGION_MANAGER: "您只能查看本区域员工的客户群。",
    StaffRole.HQ: "",
}


@dataclass(frozen=True)
class Viewer:
    """The signed-in member, with what their role scopes to."""

    staff_id: int
    userid: str
    name: str
    role: StaffRole
    store_id: int | None
    store_name: str
    region_id: int | None

    @property
    def sees_full_phone(self) -> bool:
        """Whether phone numbers are shown unmasked to this viewer."""
        return may_see_phone(self.role)

    def as_json(self) -> dict[str, Any]:
        """What the page shows about the viewer."""
        return {"userid": self.userid, "name": self.name, "role": self.role.value, "store": self.store_name,
                "sees_full_phone": self.sees_full_phone}


async def load_viewer(session: AsyncSession, userid: str) -> Viewer:
    """The viewer for a signed-in userid; AccessDenied if they are not (or no longer) active staff."""
    row = (await session.execute(
        select(Staff, Store).outerjoin(Store, Store.id == Staff.store_id).where(Staff.userid == userid))).first()
    if row is None:
        raise AccessDenied(f"您的企业微信账号（{userid}）尚未登记为本系统员工，请联系管理员。")
    staff, store = row
    if staff.wecom_status not in _ACTIVE_MEMBER:
        raise AccessDenied("您的企业微信账号已停用或已离职，不能使用侧边栏。")
    region_id = staff.region_id if staff.region_id is not None else (store.region_id if store else None)
    return Viewer(staff.id, staff.userid, staff.name, staff.role, staff.store_id, store.name if store else "",
                  region_id)


def staff_in_scope(viewer: Viewer) -> ColumnElement[bool]:
    """A condition on ``Staff`` (outer-joined to ``Store``): the staff whose customers the viewer sees."""
    own = Staff.id == viewer.staff_id
    if viewer.role is StaffRole.HQ:
        return true()
    if viewer.role is StaffRole.STORE_MANAGER and viewer.store_id is not None:
        return or_(own, Staff.store_id == viewer.store_id)
    if viewer.role is StaffRole.REGION_MANAGER and viewer.region_id is not None:
        return or_(own, func.coalesce(Staff.region_id, Store.region_id) == viewer.region_id)
    if viewer.role in (StaffRole.GUIDE, StaffRole.STORE_MANAGER, StaffRole.REGION_MANAGER):
        return own  # a manager not yet assigned to a store / region still sees their own customers
    return false()


async def followers_in_scope(session: AsyncSession, viewer: Viewer, customer_id: int) -> list[tuple[Staff, FollowRelation]]:
    """Live follow relations of the customer by staff the viewer oversees; the viewer's own first."""
    rows = (await session.execute(
        select(Staff, FollowRelation).join(FollowRelation, FollowRelation.staff_id == Staff.id)
        .outerjoin(Store, Store.id == Staff.store_id)
        .where(FollowRelation.customer_id == customer_id, FollowRelation.status.in_(LIVE_FOLLOW),
               staff_in_scope(viewer))
        .order_by((Staff.id == viewer.staff_id).desc(), FollowRelation.added_at.desc(), FollowRelation.id))).all()
    return [(s, f) for s, f in rows]


def _denied(viewer: Viewer, messages: dict[StaffRole, str]) -> AccessDenied:
    message = messages.get(viewer.role) or "您没有权限查看。"
    if viewer.role is StaffRole.STORE_MANAGER and viewer.store_id is None:
        message += "（您的账号尚未绑定门店，请联系管理员。）"
    if viewer.role is StaffRole.REGION_MANAGER and viewer.region_id is None:
        message += "（您的账号尚未绑定区域，请联系管理员。）"
    return AccessDenied(message)


async def check_customer_access(session: AsyncSession, viewer: Viewer, customer_id: int) -> None:
    """AccessDenied unless the viewer may see this (surviving) customer."""
    if viewer.role is StaffRole.HQ:
        return
    if not await followers_in_scope(session, viewer, customer_id):
        raise _denied(viewer, _DENIED)


async def check_group_access(session: AsyncSession, viewer: Viewer, group: CustomerGroup) -> None:
    """AccessDenied unless the viewer is in the group or oversees its owner."""
    if viewer.role is StaffRole.HQ:
        return
    is_member = await session.scalar(select(GroupMember.member_userid).where(
        GroupMember.group_id == group.id, GroupMember.member_type == 1, GroupMember.member_userid == viewer.userid))
    if is_member is not None:
        return
    owner = await session.scalar(
        select(Staff.id).outerjoin(Store, Store.id == Staff.store_id)
        .where(Staff.userid == group.owner_userid, staff_in_scope(viewer)))
    if owner is None:
        raise _denied(viewer, _GROUP_DENIED)


async def customer_in_scope(session: AsyncSession, viewer: Viewer, external_userid: str) -> int:
    """The (synced) customer behind ``external_userid`` if the viewer may see them: NotFound, else AccessDenied."""
    customer = await sync.find_customer_by_identity(session, IdentityKind.EXTERNAL_USERID, external_userid)
    if customer is None:
        raise NotFound("该客户尚未同步，请先打开客户资料。")
    await check_customer_access(session, viewer, customer.id)
    return customer.id


def audit(actor: str, action: str, subject_type: str, subject_id: str, at: dt.datetime, **detail: Any) -> AuditEntry:
    """An audit row for something a member did or tried in the sidebar."""
    return AuditEntry(at=at, actor=actor[:64], action=action, subject_type=subject_type, subject_id=subject_id[:64],
                      detail=detail)
