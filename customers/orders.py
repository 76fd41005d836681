"""Order ingestion: normalised orders from any channel, upserted onto one unified customer each.

Built for imports of millions of rows: each batch is one transaction with a fixed number of queries
(existing orders, store codes and known identities are prefetched with one IN query each; new orders,
their items and brand-new customers are bulk-inserted); only customers whose identities need real
resolution (a new identity for a known buyer, or a merge) go through ``resolve_customer`` one by one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Final

from sqlalchemy import and_, delete, insert, or_, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from customers.identity import SINGLE_VALUED, IdentityError, normalise_identities, resolve_customer
from customers.mapping import STATUS_RANK, NormalisedOrder
from models import Customer, CustomerIdentity, IdentityKind, Membership, Order, OrderItem, Store

_LOGGER = logging.getLogger(__name__)

DEFAULT_BATCH: Final = 500
_ORDERS: Final = Order.__table__
_ITEMS: Final = OrderItem.__table__
# Order columns a re-sent record may change (id, channel, order id and received_at never change).
_MUTABLE: Final = (
    "customer_id", "store_id", "status", "total_cents", "discount_cents", "paid_cents", "refunded_cents",
    "coupon_code", "share_code", "ordered_at", "paid_at", "refunded_at", "cancelled_at",
)

Identity = tuple[IdentityKind, str]


@dataclass
class IngestReport:
    """What an ingestion did; ``rejected`` and ``warnings`` hold (ref, reason) pairs."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    customers_created: int = 0
    merges: int = 0
    warnings: list[tuple[str, str]] = field(default_factory=list)

    @property
    def landed(self) -> int:
        """Orders now stored as the records said (created, updated or already so)."""
        return self.created + self.updated + self.unchanged

    def add(self, other: IngestReport) -> None:
        """Fold another report (a committed batch) into this one."""
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.rejected.extend(other.rejected)
        self.customers_created += other.customers_created
        self.merges += other.merges
        self.warnings.extend(other.warnings)


def _batches(orders: Iterable[NormalisedOrder], size: int) -> Iterator[list[NormalisedOrder]]:
    it = iter(orders)
    while batch := list(islice(it, size)):
        yield batch


def _ref(order: NormalisedOrder) -> str:
    return order.ref or order.channel_order_id


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.timezone.utc).isoformat()


def _items_digest(order: NormalisedOrder) -> str:
    lines = [[i.sku, i.name, i.category, i.quantity, i.price_cents, i.amount_cents] for i in order.items]
    return hashlib.sha1(json.dumps(lines, ensure_ascii=False).encode()).hexdigest()


def _source(order: NormalisedOrder) -> dict[str, Any]:
    # as_of guards against regressions by late, older records; the digest spares re-reading items.
    return {"record": order.source, "as_of": _iso(order.as_of), "items_digest": _items_digest(order)}


class _UnionFind:
    """Groups a batch's orders that share an identity: one person, however many orders."""

    def __init__(self) -> None:
        self.parent: dict[Identity, Identity] = {}

    def find(self, x: Identity) -> Identity:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, items: list[Identity]) -> None:
        root = self.find(items[0])
        for other in items[1:]:
            self.parent[self.find(other)] = root


class _Batch:
    """One batch inside one transaction: resolve customers, then write orders, items and memberships."""

    def __init__(self, session: AsyncSession, now: dt.datetime, stores: dict[str, int | None]) -> None:
        self.session = session
        self.now = now
        self.stores = stores  # store code -> id (None: unknown), shared across batches
        self.report = IngestReport()
        self.owner: dict[Identity, int] = {}  # identity -> surviving customer id
        self.redirect: dict[int, int] = {}  # merged customer id -> survivor id

    def survivor(self, customer_id: int) -> int:
        while customer_id in self.redirect:
            customer_id = self.redirect[customer_id]
        return customer_id

    async def run(self, orders: list[NormalisedOrder]) -> IngestReport:
        customers = await self.resolve(orders)
        await self.load_stores({o.store_code for o in orders if o.store_code})
        await self.write([(o, self.survivor(customers[i])) for i, o in enumerate(orders) if i in customers])
        return self.report

    # --- customers -------------------------------------------------------------------------------

    async def prefetch_owners(self, identities: set[Identity]) -> None:
        by_kind: dict[IdentityKind, list[str]] = defaultdict(list)
        for kind, value in identities:
            by_kind[kind].append(value)
        if not by_kind:
            return
        # One IN list per kind (not an OR per identity: SQLite caps expression depth at 1000).
        where = or_(*[and_(CustomerIdentity.kind == k, CustomerIdentity.value.in_(v)) for k, v in by_kind.items()])
        rows = (await self.session.execute(
            select(CustomerIdentity.kind, CustomerIdentity.value, CustomerIdentity.customer_id).where(where)
        )).all()
        # Merges move identities to the survivor; should one still point at a merged record, leave
        # it to resolve_customer. (A join here lets PostgreSQL pick a sequential scan on stale stats.)
        owners = {customer_id for _, _, customer_id in rows}
        merged = set((await self.session.scalars(
            select(Customer.id).where(Customer.id.in_(owners), Customer.merged_into_id.is_not(None))
        )).all()) if owners else set()
        for kind, value, customer_id in rows:
            if customer_id not in merged:
                self.owner[(IdentityKind(kind), value)] = customer_id

    async def resolve(self, orders: list[NormalisedOrder]) -> dict[int, int]:
        """Customer id per order index; orders whose identities cannot be used are rejected."""
        # Orders built by hand (not by the mapper) may carry raw phones: match on clean values only.
        idents = [normalise_identities(o.identities) for o in orders]
        await self.prefetch_owners({i for found in idents for i in found})
        groups = _UnionFind()
        for found in idents:
            if found:
                groups.union(found)
        members: dict[Identity, list[int]] = defaultdict(list)
        result: dict[int, int] = {}
        fresh: list[list[int]] = []
        slow: list[int] = []
        for index, found in enumerate(idents):
            if found:
                members[groups.find(found[0])].append(index)
            else:
                slow.append(index)  # resolve_customer says why it is unusable
        for indexes in members.values():
            component = {i for index in indexes for i in idents[index]}
            owners = {self.owner.get(i) for i in component}
            if owners == {None} and self._consistent(component):
                fresh.append(indexes)  # nobody we know: a new customer, created in bulk below
            elif None not in owners and len(owners) == 1:
                cid = owners.pop()
                assert cid is not None
                result.update((index, cid) for index in indexes)  # all known, one person: nothing to do
            else:
                slow.extend(indexes)
        for index in sorted(slow):  # in file order, so merges happen as the records prove them
            order = orders[index]
            try:
                res = await resolve_customer(self.session, order.identities, name=order.buyer_name, now=self.now)
            except IdentityError as exc:
                self.report.rejected.append((_ref(order), str(exc)))
                continue
            self.report.customers_created += res.created
            self.report.merges += len(res.merges)
            for merge in res.merges:
                self.redirect[merge.merged_id] = merge.survivor_id
            for conflict in res.conflicts:
                self.report.warnings.append((_ref(order), f"身份冲突未合并 identity conflict, not merged: {conflict}"))
            for ident in idents[index]:
                self.owner[ident] = res.customer.id
            result[index] = res.customer.id
        if fresh:
            await self.create_customers(orders, idents, fresh, result)
        return result

    @staticmethod
    def _consistent(idents: set[Identity]) -> bool:
        # Two unionids in one group are two people sharing a phone: leave that to resolve_customer.
        return all(sum(1 for k, _ in idents if k == kind) <= 1 for kind in SINGLE_VALUED)

    async def create_customers(self, orders: list[NormalisedOrder], idents: list[list[Identity]],
                               groups: list[list[int]], result: dict[int, int]) -> None:
        names = [next((orders[i].buyer_name for i in g if orders[i].buyer_name), "") for g in groups]
        ids = (await self.session.execute(
            insert(Customer.__table__).returning(Customer.__table__.c.id, sort_by_parameter_order=True),
            [{"name": name, "updated_at": self.now} for name in names],
        )).scalars().all()
        identity_rows = []
        for cid, group in zip(ids, groups):
            seen: set[Identity] = set()
            for index in group:
                result[index] = cid
                for ident in idents[index]:
                    if ident not in seen:
                        seen.add(ident)
                        identity_rows.append({"customer_id": cid, "kind": ident[0], "value": ident[1]})
                        self.owner[ident] = cid
        await self.session.execute(insert(CustomerIdentity.__table__), identity_rows)
        self.report.customers_created += len(ids)

    # --- orders ----------------------------------------------------------------------------------

    async def load_stores(self, codes: set[str]) -> None:
        missing = [c for c in codes if c not in self.stores]
        if not missing:
            return
        found = dict((await self.session.execute(select(Store.code, Store.id).where(Store.code.in_(missing)))).all())
        for code in missing:
            self.stores[code] = found.get(code)

    async def existing(self, orders: list[NormalisedOrder]) -> dict[tuple[str, str], dict[str, Any]]:
        by_channel: dict[str, set[str]] = defaultdict(set)
        for o in orders:
            by_channel[o.channel].add(o.channel_order_id)
        cols = [_ORDERS.c.id, _ORDERS.c.channel, _ORDERS.c.channel_order_id, *(_ORDERS.c[c] for c in _MUTABLE),
                Order.source["as_of"].as_string().label("as_of"),
                Order.source["items_digest"].as_string().label("items_digest")]
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for channel, ids in by_channel.items():
            rows = await self.session.execute(
                select(*cols).where(_ORDERS.c.channel == channel, _ORDERS.c.channel_order_id.in_(ids))
            )
            for row in rows.mappings():
                found[(row["channel"], row["channel_order_id"])] = dict(row)
        return found

    def store_id(self, order: NormalisedOrder) -> int | None:
        if not order.store_code:
            return None
        store_id = self.stores.get(order.store_code)
        if store_id is None:
            self.report.warnings.append(
                (_ref(order), f"未知门店编码 unknown store code {order.store_code!r}: order kept without a store")
            )
        return store_id

    def values(self, order: NormalisedOrder, customer_id: int) -> dict[str, Any]:
        return {
            "customer_id": customer_id,
            "store_id": self.store_id(order),
            "status": order.status,
            "total_cents": order.total_cents,
            "discount_cents": order.discount_cents,
            "paid_cents": order.paid_cents,
            "refunded_cents": order.refunded_cents,
            "coupon_code": order.coupon,
            "share_code": order.share_code,
            "ordered_at": order.ordered_at,
            "paid_at": order.paid_at,
            "refunded_at": order.refunded_at,
            "cancelled_at": order.cancelled_at,
        }

    @staticmethod
    def merged(stored: dict[str, Any], order: NormalisedOrder, new: dict[str, Any]) -> dict[str, Any] | None:
        """The stored order updated by ``order``; None when ``order`` is older than what we hold."""
        stored_as_of = dt.datetime.fromisoformat(stored["as_of"]) if stored.get("as_of") else None
        if stored_as_of is not None:
            if order.as_of < stored_as_of:
                return None
            if order.as_of == stored_as_of and STATUS_RANK[order.status] < STATUS_RANK[stored["status"]]:
                return None  # same moment, less advanced: a re-send of an earlier state
        out = dict(new)
        # A status update may omit what an earlier record said; keep it rather than blank it.
        for key in ("paid_at", "refunded_at", "cancelled_at", "store_id"):
            if out[key] is None:
                out[key] = stored[key]
        for key in ("coupon_code", "share_code"):
            out[key] = out[key] or stored[key]
        return out

    async def write(self, pairs: list[tuple[NormalisedOrder, int]]) -> None:
        existing = await self.existing([o for o, _ in pairs])
        state: dict[tuple[str, str], dict[str, Any]] = {}
        new_keys: list[tuple[str, str]] = []
        changed: set[tuple[str, str]] = set()
        items: dict[tuple[str, str], NormalisedOrder] = {}  # whose items to (re)write
        memberships: dict[int, NormalisedOrder] = {}
        for order, customer_id in pairs:
            key = (order.channel, order.channel_order_id)
            new = self.values(order, customer_id)
            stored = state.get(key) or existing.get(key)
            if order.membership is not None:
                latest = memberships.get(customer_id)
                if latest is None or order.as_of >= latest.as_of:
                    memberships[customer_id] = order
            if stored is None:
                row = {**new, "channel": order.channel, "channel_order_id": order.channel_order_id,
                       "received_at": self.now, "updated_at": self.now, "source": _source(order)}
                state[key] = {**row, "as_of": _iso(order.as_of), "items_digest": _items_digest(order)}
                new_keys.append(key)
                items[key] = order
                self.report.created += 1
                continue
            merged = self.merged(stored, order, new)
            digest = _items_digest(order)
            items_changed = merged is not None and bool(order.items) and digest != stored.get("items_digest")
            if merged is None or (not items_changed and all(merged[c] == stored[c] for c in _MUTABLE)):
                self.report.unchanged += 1
                continue
            source = _source(order)
            if not items_changed:  # the record had no items: the stored ones stand
                source["items_digest"] = stored.get("items_digest")
            state[key] = {**stored, **merged, "source": source, "as_of": source["as_of"],
                          "items_digest": source["items_digest"]}
            if items_changed:
                items[key] = order
            if key in existing:
                changed.add(key)
            self.report.updated += 1

        # Merges earlier in this batch may have folded a customer into another.
        for row in state.values():
            row["customer_id"] = self.survivor(row["customer_id"])
        ids: dict[tuple[str, str], int] = {k: v["id"] for k, v in existing.items()}
        if new_keys:
            fields = ("channel", "channel_order_id", *_MUTABLE, "received_at", "updated_at", "source")
            inserted = (await self.session.execute(
                insert(_ORDERS).returning(_ORDERS.c.id, sort_by_parameter_order=True),
                [{f: state[k][f] for f in fields} for k in new_keys],
            )).scalars().all()
            ids.update(zip(new_keys, inserted))
        if changed:
            await self.session.execute(
                update(Order),
                [{"id": ids[k], **{c: state[k][c] for c in _MUTABLE}, "updated_at": self.now,
                  "source": state[k]["source"]} for k in changed],
            )
            replaced = [ids[k] for k in changed if k in items]
            if replaced:
                await self.session.execute(delete(OrderItem).where(OrderItem.order_id.in_(replaced)))
        item_rows = [
            {"order_id": ids[k], "sku": i.sku, "name": i.name, "category": i.category, "quantity": i.quantity,
             "price_cents": i.price_cents, "amount_cents": i.amount_cents}
            for k, o in items.items() for i in o.items
        ]
        if item_rows:
            await self.session.execute(insert(_ITEMS), item_rows)
        if memberships:
            await self.write_memberships(memberships)

    async def write_memberships(self, latest: dict[int, NormalisedOrder]) -> None:
        by_customer: dict[int, NormalisedOrder] = {}
        for cid, order in latest.items():
            cid = self.survivor(cid)
            if cid not in by_customer or order.as_of >= by_customer[cid].as_of:
                by_customer[cid] = order
        stored = dict((await self.session.execute(
            select(Membership.customer_id, Membership.updated_at).where(Membership.customer_id.in_(by_customer))
        )).all())
        inserts, updates = [], []
        for cid, order in by_customer.items():
            m = order.membership
            assert m is not None
            values: dict[str, Any] = {
                "tier": m.tier, "points": m.points, "next_tier": m.next_tier, "next_tier_gap_cents": m.next_tier_gap_cents,
            }
            if cid not in stored:
                inserts.append({"customer_id": cid, "tier": m.tier or "", "points": m.points or 0,
                                "next_tier": m.next_tier or "", "next_tier_gap_cents": m.next_tier_gap_cents,
                                "updated_at": order.as_of})
            elif order.as_of >= stored[cid]:  # an older export must not roll points back
                updates.append((cid, {k: v for k, v in values.items() if v is not None}, order.as_of))
        if inserts:
            await self.session.execute(insert(Membership.__table__), inserts)
        for cid, values, as_of in updates:  # few per batch: one customer's card, many receipts
            await self.session.execute(
                update(Membership).where(Membership.customer_id == cid).values(**values, updated_at=as_of)
            )


async def _plan_per_batch(session: AsyncSession) -> None:
    # asyncpg prepares each statement once per connection, and after five runs PostgreSQL may settle
    # on a generic plan made while the tables were nearly empty of this import: a sequential scan
    # that made a 50,000-order import 6x slower. Planning each batch's lookups afresh is cheap.
    if session.bind.dialect.name == "postgresql":
        await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


async def _ingest_batch(maker: async_sessionmaker[AsyncSession], batch: list[NormalisedOrder], now: dt.datetime,
                        stores: dict[str, int | None]) -> IngestReport:
    try:
        async with maker.begin() as session:
            await _plan_per_batch(session)
            return await _Batch(session, now, stores).run(batch)
    except (IntegrityError, DBAPIError) as exc:
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            raise
        # A concurrent writer (a webhook during an import) or one odd row: redo the batch order by
        # order, each in a savepoint, so one failure costs one order and not its 499 neighbours.
        _LOGGER.warning("batch of %d failed (%s); retrying order by order", len(batch), str(exc).splitlines()[0])
    report = IngestReport()
    async with maker.begin() as session:
        await _plan_per_batch(session)
        for order in batch:
            try:
                async with session.begin_nested():
                    report.add(await _Batch(session, now, stores).run([order]))
            except (IntegrityError, DBAPIError) as exc:
                report.rejected.append((_ref(order), f"数据库拒绝 database refused the order: {str(exc.orig)[:200]}"))
    return report


async def ingest_orders(
    maker: async_sessionmaker[AsyncSession],
    orders: Iterable[NormalisedOrder],
    *,
    now: dt.datetime,
    batch_size: int = DEFAULT_BATCH,
    progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """Upsert orders by (channel, channel order id) onto their unified customers, one transaction per batch."""
    report = IngestReport()
    stores: dict[str, int | None] = {}
    done = 0
    for batch in _batches(orders, batch_size):
        report.add(await _ingest_batch(maker, batch, now, stores))
        done += len(batch)
        if progress is not None:
            progress(done)
    _LOGGER.info(
        "orders ingested: %d created, %d updated, %d unchanged, %d rejected, %d new customers, %d merges",
        report.created, report.updated, report.unchanged, len(report.rejected), report.customers_created,
        report.merges,
    )
    return report
