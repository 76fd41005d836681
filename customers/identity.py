"""Identity mapping: identities point at one person; records proven to be one person are merged.

A merge never deletes: every row that references the merged customer (orders, tags, follow
relations, group memberships, and whatever later capabilities add: clicks, notes) moves to the
survivor, found generically through the schema's foreign keys; the merged record stays, pointing at
the survivor, and the merge is recorded with what moved.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy import Table, and_, delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import Base, Customer, CustomerIdentity, CustomerMerge, IdentityKind
from models.base import utcnow

_LOGGER = logging.getLogger(__name__)

# A person has at most one of these: two records carrying different values are two people, and
# are never merged on the strength of some other shared identity.
SINGLE_VALUED: Final = frozenset({IdentityKind.UNIONID})
# Tables whose rows describe the merge itself or the identity graph: not moved generically.
_NOT_MOVED: Final = frozenset({"customers", "customer_merges"})


class IdentityError(ValueError):
    """No usable identity in a record (e.g. only an invalid phone number)."""


@dataclass
class Resolution:
    """The customer a record belongs to, and what resolving it did."""

    customer: Customer
    created: bool = False
    merges: list[CustomerMerge] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


def normalise_phone(raw: str) -> str | None:
    """Mainland mobile numbers as E.164 (+8613800000001); None if it is not one."""
    import re

    digits = re.sub(r"[\s\-()]", "", str(raw))
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("0086"):
        digits = digits[4:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    return f"+86{digits}" if re.fullmatch(r"1[3-9]\d{9}", digits) else None


def normalise_identities(identities: Sequence[tuple[IdentityKind, str]]) -> list[tuple[IdentityKind, str]]:
    """Clean, de-duplicated identities; phones in E.164, invalid phones dropped."""
    out: list[tuple[IdentityKind, str]] = []
    for kind, raw in identities:
        kind = IdentityKind(kind)
        value = str(raw or "").strip()
        if kind is IdentityKind.PHONE:
            value = normalise_phone(value) or ""
        if value and (kind, value[:128]) not in out:
            out.append((kind, value[:128]))
    return out


async def surviving(session: AsyncSession, customer_id: int) -> Customer:
    """Follow merged_into links to the surviving record."""
    customer = await session.get(Customer, customer_id)
    assert customer is not None, f"customer {customer_id} does not exist"
    seen = {customer.id}
    while customer.merged_into_id is not None:
        customer = await session.get(Customer, customer.merged_into_id)
        assert customer is not None and customer.id not in seen, "merge chain is broken or cyclic"
        seen.add(customer.id)
    return customer


async def _owners(
    session: AsyncSession, identities: list[tuple[IdentityKind, str]]
) -> dict[tuple[IdentityKind, str], Customer]:
    if not identities:
        return {}
    conds = [and_(CustomerIdentity.kind == k, CustomerIdentity.value == v) for k, v in identities]
    from sqlalchemy import or_

    rows = (await session.execute(select(CustomerIdentity.kind, CustomerIdentity.value, CustomerIdentity.customer_id)
                                  .where(or_(*conds)))).all()
    return {(IdentityKind(k), v): await surviving(session, cid) for k, v, cid in rows}


async def _single_valued(session: AsyncSession, customer_id: int) -> dict[IdentityKind, set[str]]:
    rows = (
        await session.execute(
            select(CustomerIdentity.kind, CustomerIdentity.value).where(
                CustomerIdentity.customer_id == customer_id, CustomerIdentity.kind.in_(SINGLE_VALUED)
            )
        )
    ).all()
    found: dict[IdentityKind, set[str]] = {}
    for kind, value in rows:
        found.setdefault(IdentityKind(kind), set()).add(value)
    return found


async def _compatible(session: AsyncSession, a: Customer, b: Customer) -> str | None:
    """None if a and b may be one person; else why not."""
    sa, sb = await _single_valued(session, a.id), await _single_valued(session, b.id)
    for kind in SINGLE_VALUED:
        if sa.get(kind) and sb.get(kind) and sa[kind] != sb[kind]:
            return f"customers {a.id} and {b.id} carry different {kind.value}s"
    return None


async def resolve_customer(
    session: AsyncSession,
    identities: Sequence[tuple[IdentityKind, str]],
    *,
    name: str = "",
    now: dt.datetime | None = None,
    actor: str = "import",
) -> Resolution:
    """The one customer these identities belong to: found, created, or made one by merging."""
    now = now or utcnow()
    clean = normalise_identities(identities)
    if not clean:
        raise IdentityError("没有可用的买家身份（订单号以外至少需要一个有效的买家ID、手机号或 unionid）")
    owners = await _owners(session, clean)
    candidates: dict[int, Customer] = {c.id: c for c in owners.values()}
    resolution: Resolution
    if not candidates:
        customer = Customer(name=name[:128], updated_at=now)
        session.add(customer)
        await session.flush()
        resolution = Resolution(customer, created=True)
    else:
        # The oldest record survives: it is the one other systems have most likely referenced.
        ordered = sorted(candidates.values(), key=lambda c: c.id)
        survivor = ordered[0]
        resolution = Resolution(survivor)
        for other in ordered[1:]:
            reason = next((kv for kv, c in owners.items() if c.id == other.id), None)
            why_not = await _compatible(session, survivor, other)
            if why_not:
                resolution.conflicts.append(why_not)
                _LOGGER.warning("not merging: %s", why_not)
                continue
            assert reason is not None
            resolution.merges.append(await merge_customers(session, survivor.id, other.id, reason, now=now, actor=actor))
        if name and not survivor.name:
            survivor.name = name[:128]
    customer = resolution.customer
    held = await _single_valued(session, customer.id)
    for kind, value in clean:
        if (kind, value) in owners:
            continue
        if kind in SINGLE_VALUED and held.get(kind) and value not in held[kind]:
            resolution.conflicts.append(f"customer {customer.id} already has another {kind.value}; {value} not attached")
            continue
        session.add(CustomerIdentity(customer_id=customer.id, kind=kind, value=value))
    await session.flush()
    return resolution


def _referencing_columns() -> list[tuple[Table, str]]:
    """Every (table, column) with a foreign key to customers.id, from the live schema."""
    found = []
    for table in Base.metadata.sorted_tables:
        if table.name in _NOT_MOVED:
            continue
        for fk in table.foreign_keys:
            if fk.column.table.name == "customers" and fk.column.name == "id":
                found.append((table, fk.parent.name))
    return found


def _unique_partners(table: Table, column: str) -> list[list[str]]:
    """For each unique key (or PK) containing ``column``: its other columns."""
    keys = []
    if column in table.primary_key.columns:
        keys.append([c.name for c in table.primary_key.columns if c.name != column])
    for constraint in table.constraints:
        cols = [c.name for c in getattr(constraint, "columns", [])]
        if constraint.__class__.__name__ == "UniqueConstraint" and column in cols:
            keys.append([c for c in cols if c != column])
    for index in table.indexes:
        cols = [c.name for c in index.columns]
        if index.unique and column in cols:
            keys.append([c for c in cols if c != column])
    return keys


async def merge_customers(
    session: AsyncSession,
    survivor_id: int,
    merged_id: int,
    reason: tuple[IdentityKind, str],
    *,
    now: dt.datetime | None = None,
    actor: str = "import",
) -> CustomerMerge:
    """Fold ``merged_id`` into ``survivor_id``: move every referencing row, record the merge. Idempotent."""
    now = now or utcnow()
    survivor = await surviving(session, survivor_id)
    merged = await session.get(Customer, merged_id)
    assert merged is not None
    if merged.merged_into_id is not None or merged.id == survivor.id:
        existing = await session.scalar(select(CustomerMerge).where(CustomerMerge.merged_id == merged_id))
        if existing is not None:
            return existing
        raise ValueError(f"customer {merged_id} cannot be merged into {survivor_id}")
    moved: dict[str, int] = {}
    for table, column in _referencing_columns():
        col = table.c[column]
        # Rows the survivor already has under a unique key (same tag, same guide, ...) are dropped
        # from the merged side: the survivor's row is the one the rest of the system knows.
        dropped = 0
        for partners in _unique_partners(table, column):
            if not partners:  # one row per customer (stats, membership): keep the survivor's if any
                if await session.scalar(select(exists().where(col == survivor.id))):
                    dropped += (await session.execute(delete(table).where(col == merged.id))).rowcount or 0
                continue
            twin = table.alias("twin")
            same = and_(twin.c[column] == survivor.id, *[twin.c[p] == table.c[p] for p in partners])
            dropped += (await session.execute(delete(table).where(col == merged.id, exists().where(same)))).rowcount or 0
        count = (await session.execute(update(table).where(col == merged.id).values({column: survivor.id}))).rowcount or 0
        if count or dropped:
            moved[table.name] = count
            if dropped:
                moved[f"{table.name} (already on survivor)"] = dropped
    # Earlier merges into the merged record now point straight at the survivor.
    await session.execute(update(Customer).where(Customer.merged_into_id == merged.id).values(merged_into_id=survivor.id))
    await session.execute(
        update(CustomerMerge).where(CustomerMerge.survivor_id == merged.id).values(survivor_id=survivor.id)
    )
    merged.merged_into_id = survivor.id
    survivor.name = survivor.name or merged.name
    survivor.avatar = survivor.avatar or merged.avatar
    survivor.updated_at = now
    record = CustomerMerge(survivor_id=survivor.id, merged_id=merged.id, reason_kind=reason[0].value,
                           reason_value=reason[1], at=now, moved={**moved, "actor": actor})
    session.add(record)
    await session.flush()
    _LOGGER.info("merged customer %s into %s (%s=%s): %s", merged.id, survivor.id, reason[0].value, reason[1], moved)
    return record


async def merge_history(session: AsyncSession, customer_id: int) -> list[CustomerMerge]:
    """Every merge that folded a record into this customer, oldest first (for inspection)."""
    survivor = await surviving(session, customer_id)
    return list(
        (await session.scalars(select(CustomerMerge).where(CustomerMerge.survivor_id == survivor.id)
                               .order_by(CustomerMerge.id))).all()
    )
