"""Shared lookups for the relation-ending topics."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import sync
from models import Customer, FollowRelation, IdentityKind, Staff


async def find_relation(
    session: AsyncSession, userid: str, external_userid: str
) -> tuple[Staff | None, Customer | None, FollowRelation | None]:
    """The staff, customer and relation an event names (any may be unknown to us)."""
    staff = await sync.find_staff(session, userid)
    customer = await sync.find_customer_by_identity(session, IdentityKind.EXTERNAL_USERID, external_userid)
    relation = None
    if staff is not None and customer is not None:
        relation = await session.scalar(
            select(FollowRelation).where(FollowRelation.staff_id == staff.id, FollowRelation.customer_id == customer.id)
        )
    return staff, customer, relation


async def managers_of(session: AsyncSession, staff: Staff) -> list[Staff]:
    """Who hears about a guide's churn: the store manager, else the region's, else HQ."""
    from models import StaffRole, Store

    region_id = staff.region_id
    if staff.store_id is not None:
        found = (
            await session.scalars(
                select(Staff).where(Staff.store_id == staff.store_id, Staff.role == StaffRole.STORE_MANAGER,
                                    Staff.id != staff.id)
            )
        ).all()
        if found:
            return list(found)
        store = await session.get(Store, staff.store_id)
        region_id = region_id or (store.region_id if store else None)
    if region_id is not None:
        found = (
            await session.scalars(
                select(Staff).where(Staff.region_id == region_id, Staff.role == StaffRole.REGION_MANAGER,
                                    Staff.id != staff.id)
            )
        ).all()
        if found:
            return list(found)
    return list((await session.scalars(select(Staff).where(Staff.role == StaffRole.HQ, Staff.id != staff.id))).all())
