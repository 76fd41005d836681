"""Who may see which customer and group: a guide their own, managers their store or region, HQ all."""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Any, Final, Literal

from sqlalchemy import ColumnElement, Select, bindparam, false, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from customers.identity import surviving
from customers.profile import may_see_phone
from models import (
    AuditEntry,
    Customer,
    CustomerGroup,
    CustomerIdentity,
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


# Built once with bound parameters: the sidebar runs these on every open, and building a statement
# (and its cache key) costs about as much CPU as running it.
_VIEWER: Final = (
    select(Staff.id, Staff.userid, Staff.name, Staff.role, Staff.store_id, Staff.region_id, Staff.wecom_status,
           Store.name, Store.region_id)
    .outerjoin(Store, Store.id == Staff.store_id).where(Staff.userid == bindparam("userid"))
)


async def load_viewer(session: AsyncSession, userid: str) -> Viewer:
    """The viewer for a signed-in userid; AccessDenied if they are not (or no longer) active staff."""
    row = (await session.execute(_VIEWER, {"userid": userid})).first()
    if row is None:
        raise AccessDenied(f"您的企业微信账号（{userid}）尚未登记为本系统员工，请联系管理员。")
    staff_id, staff_userid, name, role, store_id, staff_region_id, wecom_status, store_name, store_region_id = row
    if wecom_status not in _ACTIVE_MEMBER:
        raise AccessDenied("您的企业微信账号已停用或已离职，不能使用侧边栏。")
    region_id = staff_region_id if staff_region_id is not None else store_region_id
    return Viewer(staff_id, staff_userid, name, role, store_id, store_name or "", region_id)


#: What a viewer's role and assignment let them see: everyone, their store's or region's staff, or themselves.
Scope = Literal["all", "store", "region", "own", "none"]


def _scope(viewer: Viewer) -> Scope:
    if viewer.role is StaffRole.HQ:
        return "all"
    if viewer.role is StaffRole.STORE_MANAGER and viewer.store_id is not None:
        return "store"
    if viewer.role is StaffRole.REGION_MANAGER and viewer.region_id is not None:
        return "region"
    if viewer.role in (StaffRole.GUIDE, StaffRole.STORE_MANAGER, StaffRole.REGION_MANAGER):
        return "own"  # a manager not yet assigned to a store / region still sees their own customers
    return "none"


def _scope_condition(scope: Scope, staff_id: Any, store_id: Any, region_id: Any) -> ColumnElement[bool]:
    """The ``staff_in_scope`` condition for a scope, the viewer's ids given as values or bound parameters."""
    own = Staff.id == staff_id
    if scope == "all":
        return true()
    if scope == "store":
        return or_(own, Staff.store_id == store_id)
    if scope == "region":
        return or_(own, func.coalesce(Staff.region_id, Store.region_id) == region_id)
    return own if scope == "own" else false()


def staff_in_scope(viewer: Viewer) -> ColumnElement[bool]:
    """A condition on ``Staff`` (outer-joined to ``Store``): the staff whose customers the viewer sees."""
    return _scope_condition(_scope(viewer), viewer.staff_id, viewer.store_id, viewer.region_id)


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


@dataclass(frozen=True)
class FoundCustomer:
    """The surviving customer behind an external_userid, and whether the viewer may see them."""

    customer_id: int
    visible: bool


@functools.cache
def _found_statement(scope: Scope) -> Select[Any]:
    """identity -> customer, their merge link, and whether staff in ``scope`` follow them (bound: xid and the ids)."""
    in_scope = _scope_condition(scope, bindparam("staff_id"), bindparam("store_id"), bindparam("region_id"))
    followed = (
        select(FollowRelation.id).join(Staff, Staff.id == FollowRelation.staff_id)
        .outerjoin(Store, Store.id == Staff.store_id)
        .where(FollowRelation.customer_id == Customer.id, FollowRelation.status.in_(LIVE_FOLLOW), in_scope)
        .correlate(Customer).exists()
    )
    return (
        select(Customer.id, Customer.merged_into_id, true() if scope == "all" else followed)
        .join_from(CustomerIdentity, Customer, Customer.id == CustomerIdentity.customer_id)
        .where(CustomerIdentity.kind == IdentityKind.EXTERNAL_USERID, CustomerIdentity.value == bindparam("xid"))
    )


async def find_customer_in_scope(session: AsyncSession, viewer: Viewer, external_userid: str) -> FoundCustomer | None:
    """The (synced) customer behind ``external_userid`` and whether the viewer may see them, in one query."""
    params = {"xid": external_userid, "staff_id": viewer.staff_id, "store_id": viewer.store_id,
              "region_id": viewer.region_id}  # a scope that does not use an id ignores it
    row = (await session.execute(_found_statement(_scope(viewer)), params)).first()
    if row is None:
        return None
    customer_id, merged_into_id, visible = row
    if merged_into_id is not None:  # rare: follow the merges, then ask about the survivor
        customer_id = (await surviving(session, customer_id)).id
        visible = viewer.role is StaffRole.HQ or bool(await followers_in_scope(session, viewer, customer_id))
    return FoundCustomer(customer_id, bool(visible))


async def customer_in_scope(session: AsyncSession, viewer: Viewer, external_userid: str) -> int:
    """The (synced) customer behind ``external_userid`` if the viewer may see them: NotFound, else AccessDenied."""
    found = await find_customer_in_scope(session, viewer, external_userid)
    if found is None:
        raise NotFound("该客户尚未同步，请先打开客户资料。")
    if not found.visible:
        raise _denied(viewer, _DENIED)
    return found.customer_id


def audit(actor: str, action: str, subject_type: str, subject_id: str, at: dt.datetime, **detail: Any) -> AuditEntry:
    """An audit row for something a member did or tried in the sidebar."""
    return AuditEntry(at=at, actor=actor[:64], action=action, subject_type=subject_type, subject_id=subject_id[:64],
                      detail=detail)
