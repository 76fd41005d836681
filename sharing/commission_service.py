"""Commission service: HQ's plan and store overrides, the monthly recompute, and statements as JSON.

The rules themselves are pure (sharing/commission.py). Here they meet the database:

* ``recompute_month`` reads the month's order attributions (``ordered_at`` in the month in the brand's
  time zone, not reversed, GMV left > 0), splits each order's GMV across its items' categories, applies
  the guide's store override when it is within HQ's current limits (else HQ's plan, and says so), and
  replaces the month's statements in one transaction: delete, then insert. Recomputing twice gives the
  same statements; a refunded order (reversed attribution) drops out; a guide left with no order loses
  the statement. On PostgreSQL an advisory lock serialises two recomputes of the same month.
* The override applies by the guide's store *at recompute time* (a guide who moved store is paid by the
  new store's rates for the whole month); the statement keeps the store and the rules it was computed with.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import (
    CommissionPlan,
    CommissionStatement,
    CommissionStatementLine,
    Order,
    OrderAttribution,
    OrderItem,
    Staff,
    Store,
    insert_ignore,
)
from models.commission import HQ_SCOPE, store_scope
from sharing.commission import (
    AttributedOrder,
    CommissionLimits,
    CommissionRules,
    InvalidMonth,
    InvalidRules,
    OutsideLimits,
    RateOverride,
    Statement,
    apply_override,
    check_override,
    compute_statement,
    format_rate,
    format_yuan,
    month_bounds,
    month_of,
    parse_limits,
    parse_month,
    parse_override,
    parse_rules,
    split_gmv,
)

_LOGGER = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]

STAGE_ORDERS: Final = "orders"
STAGE_GUIDES: Final = "guides"
STAGE_WRITE: Final = "write"
#: Lines inserted per executemany batch.
LINE_BATCH: Final = 1000
#: pg_advisory_xact_lock key space of commission recomputes: namespace + YYYYMM.
_LOCK_NAMESPACE: Final = 0x436F6D6D_00000000  # "Comm"


class CommissionError(Exception):
    """A refusal of the commission service with a message in Chinese; ``status`` is its HTTP status."""

    status: ClassVar[int] = 400

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class PlanNotSet(CommissionError):
    """HQ has not set a commission plan yet."""

    status = 409


class StoreNotFound(CommissionError):
    """No such store."""

    status = 404


class StatementNotFound(CommissionError):
    """No such statement."""

    status = 404


def _noop(stage: str, done: int, total: int) -> None:
    return None


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _money(name: str, cents: int) -> dict[str, Any]:
    """``{name}_cents`` (exact fen) and ``name`` (a yuan string to show)."""
    return {f"{name}_cents": cents, name: format_yuan(cents)}


# -- the plan ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """HQ's commission rules and the limits on store overrides."""

    rules: CommissionRules
    limits: CommissionLimits
    updated_by: str
    updated_at: dt.datetime


async def load_plan(session: AsyncSession) -> Plan | None:
    """HQ's plan, or None when HQ has not set one."""
    row = await session.scalar(select(CommissionPlan).where(CommissionPlan.scope == HQ_SCOPE))
    if row is None:
        return None
    return Plan(parse_rules(row.rules), parse_limits(row.limits), row.updated_by, row.updated_at)


async def _require_plan(session: AsyncSession) -> Plan:
    plan = await load_plan(session)
    if plan is None:
        raise PlanNotSet("总部尚未设置提成方案：请先在管理后台设置（PUT /admin/api/commission/plan）。")
    return plan


def _prefixed(exc: InvalidRules, prefix: str) -> InvalidRules:
    field = f"{prefix}.{exc.field}" if exc.field else prefix
    return type(exc)(exc.message if exc.field else f"{prefix}：{exc.message}", field)


def parse_plan(raw: Any) -> tuple[CommissionRules, CommissionLimits]:
    """``{"rules": {...}, "limits": {...}}`` validated; InvalidRules with ``rules.`` / ``limits.`` fields."""
    if not isinstance(raw, Mapping):
        raise InvalidRules('请求体须为 JSON 对象：{"rules": {…}, "limits": {…}}')
    for key in raw:
        if key not in ("rules", "limits"):
            raise InvalidRules(f"未知字段 {key}：可用字段为 rules、limits", str(key))
    for key in ("rules", "limits"):
        if raw.get(key) is None:
            raise InvalidRules(f"{key} 不能为空（提成方案须同时给出规则 rules 与店长可调范围 limits）", key)
    try:
        rules = parse_rules(raw["rules"])
    except InvalidRules as exc:
        raise _prefixed(exc, "rules") from None
    try:
        limits = parse_limits(raw["limits"])
    except InvalidRules as exc:
        raise _prefixed(exc, "limits") from None
    return rules, limits


async def _upsert(session: AsyncSession, scope: str, store_id: int | None, values: dict[str, Any]) -> None:
    """Insert the plan row of ``scope`` or update it; race-free through the unique scope."""
    if not await insert_ignore(session, CommissionPlan, {"scope": scope, "store_id": store_id, **values}, ["scope"]):
        await session.execute(update(CommissionPlan).where(CommissionPlan.scope == scope).values(**values))


async def save_plan(session: AsyncSession, raw: Any, *, actor: str, now: dt.datetime) -> dict[str, Any]:
    """Replace HQ's plan; answers the plan as now stored, with the overrides the new limits exclude."""
    rules, limits = parse_plan(raw)
    await _upsert(session, HQ_SCOPE, None, {"rules": rules.to_json(), "limits": limits.to_json(),
                                           "updated_by": actor[:64], "updated_at": now})
    _LOGGER.info("commission plan set by %s: base %s", actor, format_rate(rules.base_rate_bp))
    view = await plan_view(session)
    view["overrides_outside_limits"] = [o["store"]["code"] for o in view["overrides"] if not o["within_limits"]]
    return view


@dataclass(frozen=True)
class _Override:
    store_id: int
    rates: RateOverride
    updated_by: str
    updated_at: dt.datetime


async def _overrides(session: AsyncSession) -> dict[int, _Override]:
    rows = (await session.scalars(select(CommissionPlan).where(CommissionPlan.store_id.is_not(None)))).all()
    found: dict[int, _Override] = {}
    for row in rows:
        assert row.store_id is not None
        try:
            rates = parse_override(row.rules)
        except InvalidRules:  # stored by an older version with other rules: ignored, and shown as such
            _LOGGER.warning("commission override of store %s does not parse; ignored", row.store_id)
            rates = RateOverride()
        found[row.store_id] = _Override(row.store_id, rates, row.updated_by, row.updated_at)
    return found


def _limit_problem(limits: CommissionLimits, rates: RateOverride) -> str:
    try:
        check_override(limits, rates)
    except OutsideLimits as exc:
        return exc.message
    return ""


def _store_json(store: Store | None) -> dict[str, Any] | None:
    return {"id": store.id, "code": store.code, "name": store.name} if store else None


def _override_json(plan: Plan, store: Store, override: _Override | None) -> dict[str, Any]:
    problem = _limit_problem(plan.limits, override.rates) if override else ""
    rates = override.rates if override and not problem else None
    return {
        "store": _store_json(store),
        "override": override.rates.to_json() if override else None,
        "within_limits": not problem,
        "problem": problem,
        "effective": apply_override(plan.rules, rates).to_json(),
        "updated_by": override.updated_by if override else None,
        "updated_at": _iso(override.updated_at) if override else None,
    }


async def plan_view(session: AsyncSession) -> dict[str, Any]:
    """HQ's plan and every store override (with whether it is within the current limits)."""
    plan = await load_plan(session)
    if plan is None:
        return {"rules": None, "limits": None, "updated_by": None, "updated_at": None, "overrides": []}
    overrides = await _overrides(session)
    stores = {s.id: s for s in (await session.scalars(select(Store).where(Store.id.in_(list(overrides))))).all()}
    return {
        "rules": plan.rules.to_json(), "limits": plan.limits.to_json(), "updated_by": plan.updated_by,
        "updated_at": _iso(plan.updated_at),
        "overrides": [_override_json(plan, stores[sid], overrides[sid]) for sid in sorted(overrides) if sid in stores],
    }


async def store_view(session: AsyncSession, store_id: int) -> dict[str, Any]:
    """One store's rates: HQ's rules and limits, the store's override and the rules that apply."""
    store = await session.get(Store, store_id)
    if store is None:
        raise StoreNotFound("门店不存在。", "store_id")
    plan = await _require_plan(session)
    override = (await _overrides(session)).get(store_id)
    return {"hq_rules": plan.rules.to_json(), "limits": plan.limits.to_json(), **_override_json(plan, store, override)}


async def set_store_override(session: AsyncSession, store_id: int, raw: Any, *, actor: str,
                             now: dt.datetime) -> dict[str, Any]:
    """Set (``{}``: clear) a store's rate override within HQ's limits; answers its rates and the previous override.

    Raises StoreNotFound, PlanNotSet, InvalidRules, or OutsideLimits (a subclass) naming the bound.
    """
    store = await session.get(Store, store_id)
    if store is None:
        raise StoreNotFound("门店不存在。", "store_id")
    plan = await _require_plan(session)
    rates = parse_override(raw)
    if not rates.empty:
        check_override(plan.limits, rates)
    previous = (await _overrides(session)).get(store_id)
    scope = store_scope(store_id)
    if rates.empty:
        await session.execute(delete(CommissionPlan).where(CommissionPlan.scope == scope))
    else:
        await _upsert(session, scope, store_id, {"rules": rates.to_json(), "limits": {}, "updated_by": actor[:64],
                                                 "updated_at": now})
    _LOGGER.info("commission override of store %s %s by %s", store.code, "cleared" if rates.empty else "set", actor)
    current = None if rates.empty else _Override(store_id, rates, actor[:64], now)
    return {"hq_rules": plan.rules.to_json(), "limits": plan.limits.to_json(),
            **_override_json(plan, store, current),
            "previous": previous.rates.to_json() if previous else None}


# -- the recompute ---------------------------------------------------------------------------------


@dataclass
class RecomputeResult:
    """What a month's recompute wrote, for the admin API, the CLI and the logs."""

    month: str
    computed_at: dt.datetime
    statements: int = 0
    orders: int = 0
    lines: int = 0
    gmv_cents: int = 0
    total_cents: int = 0
    ignored_overrides: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"month": self.month, "computed_at": self.computed_at.isoformat(), "statements": self.statements,
                "orders": self.orders, "lines": self.lines, **_money("gmv", self.gmv_cents),
                **_money("total", self.total_cents), "ignored_overrides": self.ignored_overrides,
                "seconds": round(self.seconds, 3)}

    def summary(self) -> str:
        """A few bilingual lines for the CLI and the logs."""
        lines = [
            f"{self.month} 提成已重算 / commission recomputed for {self.month}",
            f"  导购 guides: {self.statements}，订单 orders: {self.orders}，明细 lines: {self.lines}",
            f"  业绩 GMV: ¥{format_yuan(self.gmv_cents)}，提成合计 commission: ¥{format_yuan(self.total_cents)}",
        ]
        for ignored in self.ignored_overrides:
            lines.append(f"  门店 {ignored['store']} 的费率调整超出总部当前限额，已按总部方案计算 / "
                         f"store {ignored['store']}: override outside HQ limits, HQ plan used（{ignored['reason']}）")
        lines.append(f"  用时 took: {self.seconds:.1f} 秒 s")
        return "\n".join(lines)


async def _lock_month(session: AsyncSession, month: str) -> None:
    """Serialise recomputes of one month (PostgreSQL; SQLite serialises writers by itself)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                              {"key": _LOCK_NAMESPACE + int(month.replace("-", ""))})


async def _effective_rules(session: AsyncSession, plan: Plan, result: RecomputeResult
                           ) -> dict[int, tuple[str, CommissionRules]]:
    """Per store with a usable override: (scope, rules); overrides outside the limits are reported and skipped."""
    overrides = await _overrides(session)
    codes = dict((await session.execute(select(Store.id, Store.code).where(Store.id.in_(list(overrides))))).all())
    rules: dict[int, tuple[str, CommissionRules]] = {}
    for store_id, override in sorted(overrides.items()):
        problem = _limit_problem(plan.limits, override.rates)
        if problem:
            result.ignored_overrides.append({"store_id": store_id, "store": codes.get(store_id, str(store_id)),
                                             "reason": problem})
            _LOGGER.warning("commission %s: override of store %s ignored: %s", result.month, store_id, problem)
        elif not override.rates.empty:
            rules[store_id] = (store_scope(store_id), apply_override(plan.rules, override.rates))
    return rules


async def _attributed_orders(session: AsyncSession, start: dt.datetime, end: dt.datetime
                             ) -> dict[int, tuple[int | None, list[AttributedOrder]]]:
    """Per guide: (their store, the month's credited orders with GMV split by category)."""
    counted = (OrderAttribution.ordered_at >= start, OrderAttribution.ordered_at < end,
               OrderAttribution.reversed.is_(False), OrderAttribution.gmv_cents > 0)
    items: dict[int, list[tuple[str, int]]] = {}
    for order_id, category, amount in (await session.execute(
            select(OrderItem.order_id, OrderItem.category, func.sum(OrderItem.amount_cents))
            .join(OrderAttribution, OrderAttribution.order_id == OrderItem.order_id).where(*counted)
            .group_by(OrderItem.order_id, OrderItem.category))).all():
        items.setdefault(order_id, []).append((category or "", int(amount or 0)))
    guides: dict[int, tuple[int | None, list[AttributedOrder]]] = {}
    for order_id, staff_id, store_id, ordered_at, gmv in (await session.execute(
            select(OrderAttribution.order_id, OrderAttribution.staff_id, Staff.store_id, OrderAttribution.ordered_at,
                   OrderAttribution.gmv_cents)
            .join(Staff, Staff.id == OrderAttribution.staff_id).where(*counted)
            .order_by(OrderAttribution.staff_id, OrderAttribution.ordered_at, OrderAttribution.order_id))).all():
        entry = guides.setdefault(staff_id, (store_id, []))
        entry[1].append(AttributedOrder(order_id, ordered_at, gmv, split_gmv(gmv, items.get(order_id, []))))
    return guides


def _statement_row(staff_id: int, store_id: int | None, month: str, scope: str, rules: CommissionRules,
                   statement: Statement, now: dt.datetime) -> CommissionStatement:
    tier = statement.tier
    return CommissionStatement(
        staff_id=staff_id, month=month, store_id=store_id, plan_scope=scope, rules=rules.to_json(),
        order_count=statement.order_count, gmv_cents=statement.gmv_cents,
        tier_min_gmv_cents=tier.min_gmv_cents if tier else None, tier_rate_bp=tier.rate_bp if tier else None,
        lines_cents=statement.lines_cents, bonus_cents=statement.bonus_cents, capped_cents=statement.capped_cents,
        total_cents=statement.total_cents, computed_at=now)


async def recompute_month(maker: async_sessionmaker[AsyncSession], month: str, *, tz: str, now: dt.datetime,
                          progress: Progress | None = None) -> RecomputeResult:
    """Replace the month's statements from its attributions, in one transaction; idempotent.

    Raises InvalidMonth (malformed, or a month that has not begun) and PlanNotSet.
    """
    month = parse_month(month)
    current = month_of(now, tz)
    if month > current:
        raise InvalidMonth(f"{month} 尚未开始，不能重算（当前为 {current}）。")
    report = progress or _noop
    started = time.monotonic()
    result = RecomputeResult(month=month, computed_at=now)
    start, end = month_bounds(month, tz)
    async with maker.begin() as session:
        # Lock, then delete first: on SQLite the first write takes the database's write lock, so the reads
        # below see what no other writer can change before this transaction commits.
        await _lock_month(session, month)
        old = select(CommissionStatement.id).where(CommissionStatement.month == month)
        await session.execute(delete(CommissionStatementLine).where(CommissionStatementLine.statement_id.in_(old)))
        await session.execute(delete(CommissionStatement).where(CommissionStatement.month == month))
        plan = await _require_plan(session)
        by_store = await _effective_rules(session, plan, result)
        report(STAGE_ORDERS, 0, 1)
        guides = await _attributed_orders(session, start, end)
        report(STAGE_ORDERS, 1, 1)
        computed: list[tuple[CommissionStatement, Statement]] = []
        report(STAGE_GUIDES, 0, len(guides))
        for done, (staff_id, (store_id, orders)) in enumerate(sorted(guides.items()), 1):
            scope, rules = (HQ_SCOPE, plan.rules)
            if store_id is not None:
                scope, rules = by_store.get(store_id, (scope, rules))
            statement = compute_statement(rules, orders)
            computed.append((_statement_row(staff_id, store_id, month, scope, rules, statement, now), statement))
            report(STAGE_GUIDES, done, len(guides))
        session.add_all([row for row, _ in computed])
        await session.flush()
        lines = [{"statement_id": row.id, "order_id": line.order_id, "ordered_at": line.ordered_at,
                  "category": line.category, "gmv_cents": line.gmv_cents, "rate_bp": line.rate_bp,
                  "rate_source": line.rate_source, "amount_cents": line.amount_cents}
                 for row, statement in computed for line in statement.lines]
        report(STAGE_WRITE, 0, len(lines))
        for offset in range(0, len(lines), LINE_BATCH):
            await session.execute(insert(CommissionStatementLine), lines[offset:offset + LINE_BATCH])
            report(STAGE_WRITE, min(offset + LINE_BATCH, len(lines)), len(lines))
    result.statements = len(computed)
    result.orders = sum(s.order_count for _, s in computed)
    result.lines = len(lines)
    result.gmv_cents = sum(s.gmv_cents for _, s in computed)
    result.total_cents = sum(s.total_cents for _, s in computed)
    result.seconds = time.monotonic() - started
    _LOGGER.info("commission %s recomputed in %.1fs: %d statements, %d orders, total %s", month, result.seconds,
                 result.statements, result.orders, format_yuan(result.total_cents))
    return result


# -- statements as JSON ------------------------------------------------------------------------------


def _tier_json(row: CommissionStatement) -> dict[str, Any] | None:
    if row.tier_rate_bp is None or row.tier_min_gmv_cents is None:
        return None
    return {**_money("min_gmv", row.tier_min_gmv_cents), "rate": format_rate(row.tier_rate_bp),
            "rate_bp": row.tier_rate_bp}


def _statement_json(row: CommissionStatement, staff: Staff, store: Store | None) -> dict[str, Any]:
    return {
        "id": row.id, "month": row.month,
        "staff": {"id": staff.id, "userid": staff.userid, "name": staff.name},
        "store": _store_json(store), "plan_scope": row.plan_scope, "order_count": row.order_count,
        **_money("gmv", row.gmv_cents), "tier": _tier_json(row), **_money("lines_amount", row.lines_cents),
        **_money("bonus", row.bonus_cents), **_money("capped", row.capped_cents), **_money("total", row.total_cents),
        "computed_at": _iso(row.computed_at),
    }


async def _lines_json(session: AsyncSession, statement_id: int) -> list[dict[str, Any]]:
    rows = (await session.execute(
        select(CommissionStatementLine, Order.channel, Order.channel_order_id)
        .outerjoin(Order, Order.id == CommissionStatementLine.order_id)
        .where(CommissionStatementLine.statement_id == statement_id)
        .order_by(CommissionStatementLine.ordered_at, CommissionStatementLine.order_id,
                  CommissionStatementLine.category))).all()
    return [{"order_id": line.order_id, "channel": channel or "", "channel_order_id": channel_order_id or "",
             "ordered_at": _iso(line.ordered_at), "category": line.category, **_money("gmv", line.gmv_cents),
             "rate": format_rate(line.rate_bp), "rate_bp": line.rate_bp, "rate_source": line.rate_source,
             **_money("amount", line.amount_cents)} for line, channel, channel_order_id in rows]


async def list_statements(session: AsyncSession, month: str) -> dict[str, Any]:
    """The month's statements, one per guide (largest total first), and their totals."""
    month = parse_month(month)
    rows = (await session.execute(
        select(CommissionStatement, Staff, Store).join(Staff, Staff.id == CommissionStatement.staff_id)
        .outerjoin(Store, Store.id == CommissionStatement.store_id).where(CommissionStatement.month == month)
        .order_by(CommissionStatement.total_cents.desc(), Staff.userid))).all()
    statements = [_statement_json(row, staff, store) for row, staff, store in rows]
    return {"month": month, "statements": statements, "totals": {
        "guides": len(rows), "order_count": sum(r.order_count for r, _, _ in rows),
        **_money("gmv", sum(r.gmv_cents for r, _, _ in rows)),
        **_money("total", sum(r.total_cents for r, _, _ in rows)),
    }}


async def statement_detail(session: AsyncSession, statement_id: int) -> dict[str, Any]:
    """One statement with the rules it was computed with and every line behind it."""
    found = (await session.execute(
        select(CommissionStatement, Staff, Store).join(Staff, Staff.id == CommissionStatement.staff_id)
        .outerjoin(Store, Store.id == CommissionStatement.store_id)
        .where(CommissionStatement.id == statement_id))).first()
    if found is None:
        raise StatementNotFound("提成明细不存在（可能已被重算替换，请重新查询该月列表）。", "id")
    row, staff, store = found
    return {**_statement_json(row, staff, store), "rules": row.rules, "lines": await _lines_json(session, row.id)}


async def staff_statement(session: AsyncSession, staff_id: int, month: str) -> dict[str, Any]:
    """A guide's statement for the month with its lines; an empty one (zeros, no lines) when there is none."""
    month = parse_month(month)
    staff = await session.get(Staff, staff_id)
    if staff is None:
        raise StatementNotFound("员工不存在。", "staff_id")
    row = await session.scalar(select(CommissionStatement).where(
        CommissionStatement.staff_id == staff.id, CommissionStatement.month == month))
    if row is None:
        store = await session.get(Store, staff.store_id) if staff.store_id is not None else None
        return {"id": None, "month": month, "staff": {"id": staff.id, "userid": staff.userid, "name": staff.name},
                "store": _store_json(store), "plan_scope": None, "order_count": 0, **_money("gmv", 0), "tier": None,
                **_money("lines_amount", 0), **_money("bonus", 0), **_money("capped", 0), **_money("total", 0),
                "computed_at": None, "rules": None, "lines": []}
    return await statement_detail(session, row.id)
