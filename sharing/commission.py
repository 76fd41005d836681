"""Commission rules, HQ limits and monthly statements: a pure core (no I/O), table-tested.

Rules are data, written by HQ (and, for rates only, by store managers) as JSON::

    {"base_rate": "3%",                                 # or 300: an integer is basis points (1 bp = 0.01%)
     "category_rates": {"奶粉": "2%", "玩具": 500},      # the rate of a category, instead of base/tier
     "tiers": [{"min_gmv": 50000, "rate": "4%"}],       # yuan of the month's attributed GMV -> rate
     "order_bonus": {"above_orders": 50, "amount": 500},  # yuan, once, for MORE than 50 orders in the month
     "cap": 20000}                                      # yuan, the most a guide earns in one month (optional)

How a month is computed (``compute_statement``):

* Every order is split across its categories (``split_gmv``); each (order, category) is one line.
* A line's rate: the category's own rate if ``category_rates`` names it; otherwise the rate of the
  highest tier whose ``min_gmv`` the guide's whole-month GMV reaches (``>=``); otherwise ``base_rate``.
  Tiers are **whole-month, not marginal** (阶梯全额): reaching a tier re-rates every non-category
  line of the month, so each line shows one rate and the statement reads simply.
* ``order_bonus`` is paid once when the month has strictly more than ``above_orders`` orders.
* ``cap`` limits lines + bonus; ``capped_cents`` is what the cap cut.
* Rounding: integer fen throughout; each line is ``gmv_cents * rate_bp / 10000`` rounded half up to
  the fen (四舍五入到分), so ``total = sum(line amounts) + bonus - capped`` exactly.

HQ limits bound what a store manager may set in a store override (``check_override``)::

    {"min_base_rate": "2%", "max_base_rate": "5%", "max_category_rate": "8%",
     "min_category_rate": "0%", "max_tier_rate": "6%"}   # the last two optional (0%, max_base_rate)

An override may only hold rates (``base_rate``, ``category_rates``, ``tiers``); bonus and cap stay HQ's.
Its ``category_rates`` are merged over HQ's, its ``tiers`` replace HQ's (``apply_override``).
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import re
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Final

_LOGGER = logging.getLogger(__name__)

#: 100% in basis points; no rate may exceed it.
MAX_RATE_BP: Final = 10_000
#: The largest yuan amount accepted anywhere in the rules (one billion yuan).
MAX_YUAN: Final = 1_000_000_000
MAX_TIERS: Final = 20
MAX_CATEGORIES: Final = 500
MAX_CATEGORY_LENGTH: Final = 64  # OrderItem.category

RULE_KEYS: Final = ("base_rate", "category_rates", "tiers", "order_bonus", "cap")
OVERRIDE_KEYS: Final = ("base_rate", "category_rates", "tiers")
LIMIT_KEYS: Final = ("min_base_rate", "max_base_rate", "max_category_rate", "min_category_rate", "max_tier_rate")

SOURCE_BASE: Final = "base"
SOURCE_TIER: Final = "tier"
SOURCE_CATEGORY: Final = "category"

_PERCENT: Final = re.compile(r"^\s*(\d{1,3}(?:\.\d{1,2})?)\s*%\s*$")
_MONTH: Final = re.compile(r"^(\d{4})-(\d{2})$")
_RATE_HINT: Final = '须为基点整数（如 300 表示 3%）或百分比字符串（如 "3%"、"2.5%"）'


class InvalidRules(ValueError):
    """Rules, limits or an override that do not validate; ``field`` names the offending key path."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class OutsideLimits(InvalidRules):
    """A store override whose rates lie outside the limits HQ set."""


class InvalidMonth(ValueError):
    """A month that is not ``YYYY-MM``."""

    def __init__(self, message: str, field: str = "month") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


# -- values ------------------------------------------------------------------------------------


def parse_rate(raw: Any, field: str) -> int:
    """A rate in basis points from an integer (bp) or a percent string ("3%", "2.5%")."""
    if isinstance(raw, bool):
        raise InvalidRules(f"{field} {_RATE_HINT}", field)
    if isinstance(raw, int):
        bp = raw
    elif isinstance(raw, str):
        match = _PERCENT.match(raw)
        if match is None:
            raise InvalidRules(f"{field} {_RATE_HINT}，收到 {raw!r}", field)
        bp = int(Decimal(match.group(1)) * 100)
    else:
        raise InvalidRules(f"{field} {_RATE_HINT}", field)
    if bp < 0:
        raise InvalidRules(f"{field} 不能为负数", field)
    if bp > MAX_RATE_BP:
        raise InvalidRules(f"{field} 不能超过 100%", field)
    return bp


def format_rate(bp: int) -> str:
    """Basis points as a percent string: 300 -> "3%", 250 -> "2.5%", 5 -> "0.05%"."""
    text = f"{Decimal(bp) / 100:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text}%"


def parse_yuan(raw: Any, field: str, *, positive: bool = True) -> int:
    """An amount in yuan (number or numeric string, at most 2 decimals) as fen."""
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise InvalidRules(f"{field} 须为以元为单位的金额（如 500 或 \"499.90\"）", field)
    try:
        value = Decimal(str(raw).strip())
    except InvalidOperation:
        raise InvalidRules(f"{field} 须为以元为单位的金额（如 500 或 \"499.90\"），收到 {raw!r}", field) from None
    if not value.is_finite():
        raise InvalidRules(f"{field} 须为以元为单位的金额（如 500 或 \"499.90\"），收到 {raw!r}", field)
    if value < 0 or (positive and value == 0):
        raise InvalidRules(f"{field} 须{'大于' if positive else '不小于'} 0", field)
    if value > MAX_YUAN:
        raise InvalidRules(f"{field} 不能超过 {MAX_YUAN} 元", field)
    if value != value.quantize(Decimal("0.01")):
        raise InvalidRules(f"{field} 最多两位小数（精确到分）", field)
    return int(value * 100)


def format_yuan(cents: int) -> str:
    """Fen as a yuan string with two decimals: 12345 -> "123.45"."""
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def _yuan_json(cents: int) -> int | float:
    """Fen as a JSON yuan number that parse_yuan reads back exactly (500, 499.9)."""
    return cents // 100 if cents % 100 == 0 else float(format_yuan(cents))


def _object(raw: Any, field: str, allowed: Sequence[str], hint: str = "") -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise InvalidRules(f"{field or '规则'} 须为 JSON 对象{hint}", field)
    for key in raw:
        if key not in allowed:
            path = f"{field}.{key}" if field else str(key)
            raise InvalidRules(f"未知字段 {path}：可用字段为 {'、'.join(allowed)}", path)
    return raw


# -- rules ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tier:
    """From ``min_gmv_cents`` of monthly attributed GMV on, ``rate_bp`` replaces the base rate."""

    min_gmv_cents: int
    rate_bp: int

    def to_json(self) -> dict[str, Any]:
        """As the rules JSON writes it."""
        return {"min_gmv": _yuan_json(self.min_gmv_cents), "rate": format_rate(self.rate_bp)}


@dataclass(frozen=True)
class OrderBonus:
    """``amount_cents`` once a month, for strictly more than ``above_orders`` orders."""

    above_orders: int
    amount_cents: int

    def to_json(self) -> dict[str, Any]:
        """As the rules JSON writes it."""
        return {"above_orders": self.above_orders, "amount": _yuan_json(self.amount_cents)}


@dataclass(frozen=True)
class CommissionRules:
    """Validated commission rules (rates in basis points, money in fen)."""

    base_rate_bp: int
    category_rates_bp: Mapping[str, int] = field(default_factory=dict)
    tiers: tuple[Tier, ...] = ()  # ascending by min_gmv_cents
    order_bonus: OrderBonus | None = None
    cap_cents: int | None = None

    def tier_for(self, gmv_cents: int) -> Tier | None:
        """The highest tier the month's GMV reaches, if any."""
        reached = [t for t in self.tiers if gmv_cents >= t.min_gmv_cents]
        return reached[-1] if reached else None

    def to_json(self) -> dict[str, Any]:
        """Canonical JSON (rates as percent strings, money in yuan); ``parse_rules`` reads it back."""
        return {
            "base_rate": format_rate(self.base_rate_bp),
            "category_rates": {k: format_rate(v) for k, v in sorted(self.category_rates_bp.items())},
            "tiers": [t.to_json() for t in self.tiers],
            "order_bonus": self.order_bonus.to_json() if self.order_bonus else None,
            "cap": _yuan_json(self.cap_cents) if self.cap_cents is not None else None,
        }


def _parse_category_rates(raw: Any, field: str) -> dict[str, int]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise InvalidRules(f'{field} 须为 JSON 对象，例如 {{"奶粉": "2%"}}', field)
    if len(raw) > MAX_CATEGORIES:
        raise InvalidRules(f"{field} 最多 {MAX_CATEGORIES} 个分类", field)
    rates: dict[str, int] = {}
    for name, rate in raw.items():
        category = str(name).strip()
        if not category:
            raise InvalidRules(f"{field} 中的分类名称不能为空", field)
        if len(category) > MAX_CATEGORY_LENGTH:
            raise InvalidRules(f"{field} 中的分类名称最多 {MAX_CATEGORY_LENGTH} 个字符", f"{field}.{category}")
        if category in rates:
            raise InvalidRules(f"{field} 中的分类「{category}」重复", f"{field}.{category}")
        rates[category] = parse_rate(rate, f"{field}.{category}")
    return rates


def _parse_tiers(raw: Any, field: str) -> tuple[Tier, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise InvalidRules(f'{field} 须为列表，例如 [{{"min_gmv": 50000, "rate": "4%"}}]', field)
    if len(raw) > MAX_TIERS:
        raise InvalidRules(f"{field} 最多 {MAX_TIERS} 档", field)
    tiers: list[Tier] = []
    for index, item in enumerate(raw):
        path = f"{field}[{index}]"
        entry = _object(item, path, ("min_gmv", "rate"), '，例如 {"min_gmv": 50000, "rate": "4%"}')
        for key in ("min_gmv", "rate"):
            if key not in entry:
                raise InvalidRules(f"{path}.{key} 不能为空", f"{path}.{key}")
        tiers.append(Tier(parse_yuan(entry["min_gmv"], f"{path}.min_gmv"), parse_rate(entry["rate"], f"{path}.rate")))
    tiers.sort(key=lambda t: t.min_gmv_cents)
    for lower, upper in itertools.pairwise(tiers):
        if lower.min_gmv_cents == upper.min_gmv_cents:
            raise InvalidRules(f"{field} 中有两档门槛相同（{format_yuan(upper.min_gmv_cents)} 元）", field)
    return tuple(tiers)


def _parse_bonus(raw: Any, field: str) -> OrderBonus | None:
    if raw is None:
        return None
    entry = _object(raw, field, ("above_orders", "amount"), '，例如 {"above_orders": 50, "amount": 500}')
    above = entry.get("above_orders")
    if isinstance(above, bool) or not isinstance(above, int) or above < 0:
        raise InvalidRules(f"{field}.above_orders 须为不小于 0 的整数（订单数超过它才发奖金）", f"{field}.above_orders")
    if "amount" not in entry:
        raise InvalidRules(f"{field}.amount 不能为空", f"{field}.amount")
    return OrderBonus(above, parse_yuan(entry["amount"], f"{field}.amount"))


def parse_rules(raw: Mapping[str, Any]) -> CommissionRules:
    """Validate HQ's commission rules; InvalidRules names the first bad field in Chinese."""
    rules = _object(raw, "", RULE_KEYS, '，例如 {"base_rate": "3%"}')
    if rules.get("base_rate") is None:
        raise InvalidRules("base_rate（基础费率）不能为空", "base_rate")
    cap = rules.get("cap")
    return CommissionRules(
        base_rate_bp=parse_rate(rules["base_rate"], "base_rate"),
        category_rates_bp=_parse_category_rates(rules.get("category_rates"), "category_rates"),
        tiers=_parse_tiers(rules.get("tiers"), "tiers"),
        order_bonus=_parse_bonus(rules.get("order_bonus"), "order_bonus"),
        cap_cents=None if cap is None else parse_yuan(cap, "cap"),
    )


# -- store overrides and HQ limits ---------------------------------------------------------------


@dataclass(frozen=True)
class RateOverride:
    """A store's own rates: any of base rate, category rates (merged over HQ's), tiers (replacing HQ's)."""

    base_rate_bp: int | None = None
    category_rates_bp: Mapping[str, int] = field(default_factory=dict)
    tiers: tuple[Tier, ...] | None = None

    @property
    def empty(self) -> bool:
        """True when the override changes nothing (setting it clears the store's override)."""
        return self.base_rate_bp is None and not self.category_rates_bp and self.tiers is None

    def to_json(self) -> dict[str, Any]:
        """Canonical JSON with only the keys the override sets."""
        data: dict[str, Any] = {}
        if self.base_rate_bp is not None:
            data["base_rate"] = format_rate(self.base_rate_bp)
        if self.category_rates_bp:
            data["category_rates"] = {k: format_rate(v) for k, v in sorted(self.category_rates_bp.items())}
        if self.tiers is not None:
            data["tiers"] = [t.to_json() for t in self.tiers]
        return data


def parse_override(raw: Mapping[str, Any]) -> RateOverride:
    """Validate a store override: rates only (base_rate, category_rates, tiers); ``{}`` clears it."""
    if not isinstance(raw, Mapping):
        raise InvalidRules('调整须为 JSON 对象，例如 {"base_rate": "4%"}')
    for key in raw:
        if key in ("order_bonus", "cap"):
            raise InvalidRules("门店只能调整费率（base_rate、category_rates、tiers）；订单奖金（order_bonus）"
                               "与封顶（cap）由总部设定", str(key))
    entry = _object(raw, "", OVERRIDE_KEYS)
    base = entry.get("base_rate")
    return RateOverride(
        base_rate_bp=None if base is None else parse_rate(base, "base_rate"),
        category_rates_bp=_parse_category_rates(entry.get("category_rates"), "category_rates"),
        tiers=None if entry.get("tiers") is None else _parse_tiers(entry["tiers"], "tiers"),
    )


def apply_override(rules: CommissionRules, override: RateOverride | None) -> CommissionRules:
    """HQ's rules with a store's rates laid over them."""
    if override is None or override.empty:
        return rules
    return CommissionRules(
        base_rate_bp=rules.base_rate_bp if override.base_rate_bp is None else override.base_rate_bp,
        category_rates_bp={**rules.category_rates_bp, **override.category_rates_bp},
        tiers=rules.tiers if override.tiers is None else override.tiers,
        order_bonus=rules.order_bonus,
        cap_cents=rules.cap_cents,
    )


@dataclass(frozen=True)
class CommissionLimits:
    """The range of rates HQ lets a store manager set, in basis points."""

    min_base_rate_bp: int
    max_base_rate_bp: int
    max_category_rate_bp: int
    min_category_rate_bp: int = 0
    max_tier_rate_bp: int | None = None  # None: max_base_rate_bp

    @property
    def tier_ceiling_bp(self) -> int:
        """The highest tier rate a manager may set."""
        return self.max_base_rate_bp if self.max_tier_rate_bp is None else self.max_tier_rate_bp

    def to_json(self) -> dict[str, Any]:
        """Canonical JSON; ``parse_limits`` reads it back."""
        return {"min_base_rate": format_rate(self.min_base_rate_bp),
                "max_base_rate": format_rate(self.max_base_rate_bp),
                "max_category_rate": format_rate(self.max_category_rate_bp),
                "min_category_rate": format_rate(self.min_category_rate_bp),
                "max_tier_rate": format_rate(self.tier_ceiling_bp)}


def parse_limits(raw: Mapping[str, Any]) -> CommissionLimits:
    """Validate HQ's limits on store overrides; InvalidRules names the first bad field."""
    entry = _object(raw, "", LIMIT_KEYS,
                    '，例如 {"min_base_rate": "2%", "max_base_rate": "5%", "max_category_rate": "8%"}')
    for key in ("min_base_rate", "max_base_rate", "max_category_rate"):
        if entry.get(key) is None:
            raise InvalidRules(f"{key} 不能为空", key)
    low, high = parse_rate(entry["min_base_rate"], "min_base_rate"), parse_rate(entry["max_base_rate"], "max_base_rate")
    if low > high:
        raise InvalidRules("min_base_rate 不能大于 max_base_rate", "min_base_rate")
    cat_high = parse_rate(entry["max_category_rate"], "max_category_rate")
    raw_low = entry.get("min_category_rate")
    cat_low = 0 if raw_low is None else parse_rate(raw_low, "min_category_rate")
    if cat_low > cat_high:
        raise InvalidRules("min_category_rate 不能大于 max_category_rate", "min_category_rate")
    tier_high = None if entry.get("max_tier_rate") is None else parse_rate(entry["max_tier_rate"], "max_tier_rate")
    if tier_high is not None and tier_high < low:
        raise InvalidRules("max_tier_rate 不能小于 min_base_rate", "max_tier_rate")
    return CommissionLimits(low, high, cat_high, cat_low, tier_high)


def check_override(limits: CommissionLimits, override: RateOverride) -> None:
    """OutsideLimits, naming the rate and HQ's bound, when a store override leaves HQ's limits."""
    low, high = limits.min_base_rate_bp, limits.max_base_rate_bp
    if override.base_rate_bp is not None and not low <= override.base_rate_bp <= high:
        raise OutsideLimits(f"基础费率 {format_rate(override.base_rate_bp)} 超出总部限额："
                            f"须在 {format_rate(low)}–{format_rate(high)} 之间", "base_rate")
    for category, bp in sorted(override.category_rates_bp.items()):
        if bp > limits.max_category_rate_bp:
            raise OutsideLimits(f"分类「{category}」的费率 {format_rate(bp)} 超过总部上限 "
                                f"{format_rate(limits.max_category_rate_bp)}", f"category_rates.{category}")
        if bp < limits.min_category_rate_bp:
            raise OutsideLimits(f"分类「{category}」的费率 {format_rate(bp)} 低于总部下限 "
                                f"{format_rate(limits.min_category_rate_bp)}", f"category_rates.{category}")
    for index, tier in enumerate(override.tiers or ()):
        if not low <= tier.rate_bp <= limits.tier_ceiling_bp:
            raise OutsideLimits(f"阶梯第 {index + 1} 档（{format_yuan(tier.min_gmv_cents)} 元起）的费率 "
                                f"{format_rate(tier.rate_bp)} 超出总部限额：须在 {format_rate(low)}–"
                                f"{format_rate(limits.tier_ceiling_bp)} 之间", f"tiers[{index}].rate")


# -- statements ----------------------------------------------------------------------------------


def split_gmv(gmv_cents: int, item_amounts: Iterable[tuple[str, int]]) -> dict[str, int]:
    """An order's GMV split across its items' categories in proportion to their amounts (fen, exact).

    Largest remainder: each category gets ``floor(gmv * amount / total)`` and the fen left over go one
    each to the largest remainders (ties: category name). No items, or items worth nothing, give
    category ``""``. Categories whose share rounds to 0 fen are left out.
    """
    totals: dict[str, int] = {}
    for category, amount in item_amounts:
        totals[category] = totals.get(category, 0) + max(amount, 0)
    whole = sum(totals.values())
    if gmv_cents <= 0 or whole <= 0:
        return {"": gmv_cents} if gmv_cents > 0 else {}
    shares = {c: gmv_cents * a // whole for c, a in totals.items()}
    left = gmv_cents - sum(shares.values())
    for category in sorted(totals, key=lambda c: (-(gmv_cents * totals[c] % whole), c))[:left]:
        shares[category] += 1
    return {c: v for c, v in sorted(shares.items()) if v > 0}


@dataclass(frozen=True)
class AttributedOrder:
    """An order credited to the guide, with its GMV (fen) split by category (summing to ``gmv_cents``)."""

    order_id: int
    ordered_at: dt.datetime
    gmv_cents: int
    categories: Mapping[str, int] = field(default_factory=dict)  # empty: all of it in category ""

    def parts(self) -> list[tuple[str, int]]:
        """(category, gmv_cents) of each line, by category name; ValueError when they do not add up."""
        parts = sorted(self.categories.items()) if self.categories else [("", self.gmv_cents)]
        if sum(v for _, v in parts) != self.gmv_cents or any(v < 0 for _, v in parts):
            raise ValueError(f"order {self.order_id}: category split {dict(parts)} does not add up to {self.gmv_cents}")
        return [(c, v) for c, v in parts if v > 0]


@dataclass(frozen=True)
class StatementLine:
    """One (order, category) behind a statement, with its rate and commission."""

    order_id: int
    ordered_at: dt.datetime
    category: str
    gmv_cents: int
    rate_bp: int
    rate_source: str  # base | tier | category
    amount_cents: int


@dataclass(frozen=True)
class Statement:
    """A guide's commission for one month: the lines, the bonus, what the cap cut, the total."""

    lines: tuple[StatementLine, ...]
    order_count: int
    gmv_cents: int
    tier: Tier | None
    lines_cents: int
    bonus_cents: int
    capped_cents: int
    total_cents: int


def commission_of(gmv_cents: int, rate_bp: int) -> int:
    """``gmv * rate`` in fen, rounded half up (gmv and rate are never negative)."""
    return (gmv_cents * rate_bp + MAX_RATE_BP // 2) // MAX_RATE_BP


def rate_for(rules: CommissionRules, category: str, tier: Tier | None) -> tuple[int, str]:
    """(rate_bp, source) of a line: the category's rate, else the month's tier, else the base rate."""
    if category in rules.category_rates_bp:
        return rules.category_rates_bp[category], SOURCE_CATEGORY
    if tier is not None:
        return tier.rate_bp, SOURCE_TIER
    return rules.base_rate_bp, SOURCE_BASE


def compute_statement(rules: CommissionRules, orders: Sequence[AttributedOrder]) -> Statement:
    """The month's statement for one guide; orders with no GMV left (refunded) are not counted."""
    counted = sorted((o for o in orders if o.gmv_cents > 0), key=lambda o: (o.ordered_at, o.order_id))
    seen: set[int] = set()
    for order in counted:
        if order.order_id in seen:
            raise ValueError(f"order {order.order_id} listed twice")
        seen.add(order.order_id)
    gmv = sum(o.gmv_cents for o in counted)
    tier = rules.tier_for(gmv)
    lines: list[StatementLine] = []
    for order in counted:
        for category, part in order.parts():
            rate, source = rate_for(rules, category, tier)
            lines.append(StatementLine(order.order_id, order.ordered_at, category, part, rate, source,
                                       commission_of(part, rate)))
    lines_cents = sum(line.amount_cents for line in lines)
    bonus = rules.order_bonus
    bonus_cents = bonus.amount_cents if bonus is not None and len(counted) > bonus.above_orders else 0
    gross = lines_cents + bonus_cents
    capped = gross - rules.cap_cents if rules.cap_cents is not None and gross > rules.cap_cents else 0
    return Statement(tuple(lines), len(counted), gmv, tier, lines_cents, bonus_cents, capped, gross - capped)


# -- months --------------------------------------------------------------------------------------


def parse_month(raw: Any) -> str:
    """A month as ``YYYY-MM`` (2000-01 … 2999-12); InvalidMonth otherwise."""
    match = _MONTH.match(raw.strip()) if isinstance(raw, str) else None
    if match is None or not 2000 <= int(match.group(1)) <= 2999 or not 1 <= int(match.group(2)) <= 12:
        raise InvalidMonth(f"月份须为 YYYY-MM 格式，例如 2026-11（收到 {raw!r}）")
    return match.group(0)


def month_bounds(month: str, tz: str) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of ``month`` in the brand's time zone, as UTC datetimes."""
    year, mon = (int(p) for p in parse_month(month).split("-"))
    zone = zoneinfo.ZoneInfo(tz)
    start = dt.datetime(year, mon, 1, tzinfo=zone)
    end = dt.datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=zone)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def month_of(moment: dt.datetime, tz: str) -> str:
    """The ``YYYY-MM`` a moment falls in, in the brand's time zone."""
    return moment.astimezone(zoneinfo.ZoneInfo(tz)).strftime("%Y-%m")
