"""The pure commission core: rule parsing, HQ limits, the GMV split, statements and months, table-driven."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from sharing.commission import (
    AttributedOrder,
    CommissionRules,
    InvalidMonth,
    InvalidRules,
    OrderBonus,
    OutsideLimits,
    RateOverride,
    Tier,
    apply_override,
    check_override,
    commission_of,
    compute_statement,
    format_rate,
    format_yuan,
    month_bounds,
    month_of,
    parse_limits,
    parse_month,
    parse_override,
    parse_rate,
    parse_rules,
    split_gmv,
)

UTC = dt.UTC
FULL: dict[str, Any] = {"base_rate": "3%", "category_rates": {"奶粉": "2%", "玩具": 500},
                        "tiers": [{"min_gmv": 100000, "rate": "5%"}, {"min_gmv": 50000, "rate": "4%"}],
                        "order_bonus": {"above_orders": 50, "amount": 500}, "cap": 20000}
LIMITS: dict[str, Any] = {"min_base_rate": "2%", "max_base_rate": "5%", "max_category_rate": "8%"}


# -- values ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "bp"), [
    (300, 300), (0, 0), (10000, 10000), ("3%", 300), ("2.5%", 250), ("0.05%", 5), (" 4 % ", 400), ("100%", 10000),
    ("12.34%", 1234),
])
def test_rates_in_basis_points_or_percent(raw: Any, bp: int) -> None:
    assert parse_rate(raw, "base_rate") == bp


@pytest.mark.parametrize(("raw", "message"), [
    (-1, "不能为负数"), (10001, "不能超过 100%"), ("101%", "不能超过 100%"), ("3", "基点整数"), ("3.333%", "基点整数"),
    ("abc", "基点整数"), (0.03, "基点整数"), (True, "基点整数"), (None, "基点整数"), ("-1%", "基点整数"),
])
def test_bad_rates_are_refused_with_a_hint(raw: Any, message: str) -> None:
    with pytest.raises(InvalidRules) as exc:
        parse_rate(raw, "base_rate")
    assert message in exc.value.message and exc.value.field == "base_rate"


@pytest.mark.parametrize(("bp", "text"), [(300, "3%"), (250, "2.5%"), (5, "0.05%"), (0, "0%"), (10000, "100%"),
                                          (1234, "12.34%")])
def test_rates_format_back(bp: int, text: str) -> None:
    assert format_rate(bp) == text and parse_rate(text, "x") == bp


@pytest.mark.parametrize(("cents", "text"), [(0, "0.00"), (5, "0.05"), (12345, "123.45"), (-150, "-1.50")])
def test_yuan_format(cents: int, text: str) -> None:
    assert format_yuan(cents) == text


@pytest.mark.parametrize(("gmv", "bp", "fen"), [
    (10000, 300, 300),  # ¥100 at 3% = ¥3
    (50, 300, 2),  # 1.5 fen rounds half up
    (49, 300, 1),  # 1.47
    (16, 300, 0),  # 0.48
    (20, 250, 1),  # 0.5 rounds up
    (1, 250, 0),
    (99999, 1, 10),  # 9.9999 -> 10
    (0, 300, 0),
])
def test_line_commission_rounds_half_up_to_the_fen(gmv: int, bp: int, fen: int) -> None:
    assert commission_of(gmv, bp) == fen


# -- rules -------------------------------------------------------------------------------------


def test_full_rules_parse_sort_tiers_and_round_trip() -> None:
    rules = parse_rules(FULL)
    assert rules == CommissionRules(300, {"奶粉": 200, "玩具": 500},
                                    (Tier(5_000_000, 400), Tier(10_000_000, 500)), OrderBonus(50, 50_000), 2_000_000)
    assert parse_rules(rules.to_json()) == rules
    assert rules.to_json()["tiers"] == [{"min_gmv": 50000, "rate": "4%"}, {"min_gmv": 100000, "rate": "5%"}]


@pytest.mark.parametrize(("raw", "expected"), [
    ({"base_rate": 300}, CommissionRules(300)),
    ({"base_rate": "3%", "category_rates": None, "tiers": None, "order_bonus": None, "cap": None},
     CommissionRules(300)),
    ({"base_rate": "3%", "cap": "199.90"}, CommissionRules(300, cap_cents=19990)),
    ({"base_rate": "3%", "cap": 199.9}, CommissionRules(300, cap_cents=19990)),
    ({"base_rate": "3%", "order_bonus": {"above_orders": 0, "amount": 1}},
     CommissionRules(300, order_bonus=OrderBonus(0, 100))),
])
def test_minimal_and_optional_rules(raw: dict[str, Any], expected: CommissionRules) -> None:
    assert parse_rules(raw) == expected


@pytest.mark.parametrize(("raw", "field", "message"), [
    ({}, "base_rate", "基础费率）不能为空"),
    ([], "", "须为 JSON 对象"),
    ({"base_rate": "3%", "bonus": 1}, "bonus", "未知字段 bonus"),
    ({"base_rate": "3 percent"}, "base_rate", "百分比字符串"),
    ({"base_rate": "3%", "category_rates": ["奶粉"]}, "category_rates", "须为 JSON 对象"),
    ({"base_rate": "3%", "category_rates": {" ": "2%"}}, "category_rates", "分类名称不能为空"),
    ({"base_rate": "3%", "category_rates": {"奶粉": "-2%"}}, "category_rates.奶粉", "基点整数"),
    ({"base_rate": "3%", "category_rates": {"长" * 65: "2%"}}, "category_rates." + "长" * 65, "最多 64"),
    ({"base_rate": "3%", "tiers": {"min_gmv": 1}}, "tiers", "须为列表"),
    ({"base_rate": "3%", "tiers": [{"rate": "4%"}]}, "tiers[0].min_gmv", "不能为空"),
    ({"base_rate": "3%", "tiers": [{"min_gmv": 0, "rate": "4%"}]}, "tiers[0].min_gmv", "须大于 0"),
    ({"base_rate": "3%", "tiers": [{"min_gmv": "1.001", "rate": "4%"}]}, "tiers[0].min_gmv", "最多两位小数"),
    ({"base_rate": "3%", "tiers": [{"min_gmv": 10, "rate": "4%", "x": 1}]}, "tiers[0].x", "未知字段"),
    ({"base_rate": "3%", "tiers": [{"min_gmv": 10, "rate": "4%"}, {"min_gmv": 10, "rate": "5%"}]}, "tiers", "门槛相同"),
    ({"base_rate": "3%", "tiers": [{"min_gmv": 10, "rate": "x"}]}, "tiers[0].rate", "百分比字符串"),
    ({"base_rate": "3%", "order_bonus": {"above_orders": -1, "amount": 5}}, "order_bonus.above_orders", "不小于 0 的整数"),
    ({"base_rate": "3%", "order_bonus": {"above_orders": 5.5, "amount": 5}}, "order_bonus.above_orders", "整数"),
    ({"base_rate": "3%", "order_bonus": {"above_orders": 5}}, "order_bonus.amount", "不能为空"),
    ({"base_rate": "3%", "order_bonus": {"above_orders": 5, "amount": "abc"}}, "order_bonus.amount", "以元为单位"),
    ({"base_rate": "3%", "order_bonus": 500}, "order_bonus", "须为 JSON 对象"),
    ({"base_rate": "3%", "cap": 0}, "cap", "须大于 0"),
    ({"base_rate": "3%", "cap": -5}, "cap", "须大于 0"),
    ({"base_rate": "3%", "cap": "NaN"}, "cap", "以元为单位"),
    ({"base_rate": "3%", "cap": 10**10}, "cap", "不能超过"),
    ({"base_rate": "3%", "cap": True}, "cap", "以元为单位"),
])
def test_bad_rules_name_the_field(raw: Any, field: str, message: str) -> None:
    with pytest.raises(InvalidRules) as exc:
        parse_rules(raw)
    assert exc.value.field == field
    assert message in exc.value.message, exc.value.message


# -- overrides and limits ----------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), [
    ({}, RateOverride()),
    ({"base_rate": "4%"}, RateOverride(base_rate_bp=400)),
    ({"category_rates": {"奶粉": "1%"}}, RateOverride(category_rates_bp={"奶粉": 100})),
    ({"tiers": []}, RateOverride(tiers=())),
    ({"tiers": [{"min_gmv": 1000, "rate": "4.5%"}]}, RateOverride(tiers=(Tier(100_000, 450),))),
])
def test_overrides_hold_rates_only(raw: dict[str, Any], expected: RateOverride) -> None:
    assert parse_override(raw) == expected
    assert parse_override(expected.to_json()) == expected


@pytest.mark.parametrize(("raw", "field", "message"), [
    ({"cap": 100}, "cap", "由总部设定"),
    ({"order_bonus": {"above_orders": 1, "amount": 1}}, "order_bonus", "由总部设定"),
    ({"rate": "4%"}, "rate", "未知字段"),
    ({"base_rate": "200%"}, "base_rate", "不能超过 100%"),
    ("4%", "", "须为 JSON 对象"),
])
def test_bad_overrides(raw: Any, field: str, message: str) -> None:
    with pytest.raises(InvalidRules) as exc:
        parse_override(raw)
    assert (exc.value.field, message in exc.value.message) == (field, True), exc.value.message


def test_override_laid_over_hq_rules() -> None:
    hq = parse_rules(FULL)
    assert apply_override(hq, None) is hq and apply_override(hq, RateOverride()) is hq
    mixed = apply_override(hq, parse_override({"base_rate": "4%", "category_rates": {"奶粉": "1%", "图书": "6%"}}))
    assert mixed.base_rate_bp == 400
    assert mixed.category_rates_bp == {"奶粉": 100, "玩具": 500, "图书": 600}  # merged over HQ's
    assert (mixed.tiers, mixed.order_bonus, mixed.cap_cents) == (hq.tiers, hq.order_bonus, hq.cap_cents)
    assert apply_override(hq, parse_override({"tiers": []})).tiers == ()  # tiers replace HQ's


@pytest.mark.parametrize(("raw", "expected"), [
    (LIMITS, (200, 500, 800, 0, 500)),
    ({**LIMITS, "min_category_rate": "1%", "max_tier_rate": "6%"}, (200, 500, 800, 100, 600)),
    ({"min_base_rate": 300, "max_base_rate": 300, "max_category_rate": 0}, (300, 300, 0, 0, 300)),
])
def test_limits(raw: dict[str, Any], expected: tuple[int, ...]) -> None:
    limits = parse_limits(raw)
    assert (limits.min_base_rate_bp, limits.max_base_rate_bp, limits.max_category_rate_bp,
            limits.min_category_rate_bp, limits.tier_ceiling_bp) == expected
    assert parse_limits(limits.to_json()) == parse_limits({**limits.to_json()})


@pytest.mark.parametrize(("raw", "field", "message"), [
    ({**LIMITS, "min_base_rate": None}, "min_base_rate", "不能为空"),
    ({"min_base_rate": "2%", "max_base_rate": "5%"}, "max_category_rate", "不能为空"),
    ({**LIMITS, "min_base_rate": "6%"}, "min_base_rate", "不能大于 max_base_rate"),
    ({**LIMITS, "min_category_rate": "9%"}, "min_category_rate", "不能大于 max_category_rate"),
    ({**LIMITS, "max_tier_rate": "1%"}, "max_tier_rate", "不能小于 min_base_rate"),
    ({**LIMITS, "max_rate": "1%"}, "max_rate", "未知字段"),
    ({**LIMITS, "max_base_rate": "500%"}, "max_base_rate", "不能超过 100%"),
    ({**LIMITS, "max_category_rate": "high"}, "max_category_rate", "基点整数"),
])
def test_bad_limits(raw: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(InvalidRules) as exc:
        parse_limits(raw)
    assert exc.value.field == field and message in exc.value.message, exc.value.message


@pytest.mark.parametrize(("override", "field", "message"), [
    ({"base_rate": "2%"}, None, ""),
    ({"base_rate": "5%"}, None, ""),
    ({"base_rate": "3.5%", "category_rates": {"奶粉": "8%", "玩具": "0%"}, "tiers": [{"min_gmv": 1, "rate": "5%"}]},
     None, ""),
    ({"base_rate": "5.01%"}, "base_rate", "基础费率 5.01% 超出总部限额：须在 2%–5% 之间"),
    ({"base_rate": "1.99%"}, "base_rate", "须在 2%–5% 之间"),
    ({"category_rates": {"奶粉": "9%"}}, "category_rates.奶粉", "分类「奶粉」的费率 9% 超过总部上限 8%"),
    ({"tiers": [{"min_gmv": 100, "rate": "4%"}, {"min_gmv": 50000, "rate": "6%"}]}, "tiers[1].rate",
     "阶梯第 2 档（50000.00 元起）的费率 6% 超出总部限额：须在 2%–5% 之间"),
    ({"tiers": [{"min_gmv": 100, "rate": "1%"}]}, "tiers[0].rate", "超出总部限额"),
])
def test_check_override_against_hq_limits(override: dict[str, Any], field: str | None, message: str) -> None:
    rates = parse_override(override)
    if field is None:
        check_override(parse_limits(LIMITS), rates)
        return
    with pytest.raises(OutsideLimits) as exc:
        check_override(parse_limits(LIMITS), rates)
    assert exc.value.field == field and message in exc.value.message, exc.value.message


def test_limit_options_widen_and_narrow() -> None:
    wide = parse_limits({**LIMITS, "max_tier_rate": "7%", "min_category_rate": "1%"})
    check_override(wide, parse_override({"tiers": [{"min_gmv": 1, "rate": "7%"}]}))
    with pytest.raises(OutsideLimits, match="低于总部下限 1%"):
        check_override(wide, parse_override({"category_rates": {"奶粉": "0.5%"}}))


# -- the GMV split -------------------------------------------------------------------------------


@pytest.mark.parametrize(("gmv", "items", "expected"), [
    (10000, [("奶粉", 6000), ("玩具", 4000)], {"奶粉": 6000, "玩具": 4000}),
    (9000, [("奶粉", 6000), ("玩具", 4000)], {"奶粉": 5400, "玩具": 3600}),  # paid less than the goods: scaled
    (100, [("a", 1), ("b", 1), ("c", 1)], {"a": 34, "b": 33, "c": 33}),  # left-over fen to a (name order on ties)
    (101, [("c", 1), ("b", 1), ("a", 1)], {"a": 34, "b": 34, "c": 33}),
    (5000, [("奶粉", 100), ("奶粉", 300), ("", 100)], {"": 1000, "奶粉": 4000}),  # same category summed
    (5000, [], {"": 5000}),  # no items
    (5000, [("奶粉", 0)], {"": 5000}),  # items worth nothing
    (1, [("a", 1), ("b", 1)], {"a": 1}),  # a share of 0 fen is left out
    (0, [("a", 1)], {}),
    (7, [("a", 2), ("b", -5), ("c", 1)], {"a": 5, "c": 2}),  # negative amounts count as 0
])
def test_split_gmv(gmv: int, items: list[tuple[str, int]], expected: dict[str, int]) -> None:
    split = split_gmv(gmv, items)
    assert split == expected
    assert sum(split.values()) == max(gmv, 0)


# -- statements --------------------------------------------------------------------------------


def _order(order_id: int, gmv: int, day: int = 1, **categories: int) -> AttributedOrder:
    return AttributedOrder(order_id, dt.datetime(2026, 11, day, 12, tzinfo=UTC), gmv, categories)


BASE = {"base_rate": "3%"}
TIERED = {"base_rate": "3%", "tiers": [{"min_gmv": 500, "rate": "4%"}, {"min_gmv": 1000, "rate": "5%"}]}


@pytest.mark.parametrize(("rules", "orders", "amounts", "bonus", "capped", "total", "tier_bp"), [
    # name: base rate on one order
    (BASE, [_order(1, 10000)], [300], 0, 0, 300, None),
    (BASE, [], [], 0, 0, 0, None),
    # rounding is per line, half up
    (BASE, [_order(1, 50), _order(2, 49), _order(3, 16)], [2, 1, 0], 0, 0, 3, None),
    # a category rate on its part of the order, the base rate on the rest
    ({**BASE, "category_rates": {"奶粉": "2%"}}, [_order(1, 10000, 奶粉=6000, 玩具=4000)], [120, 120], 0, 0, 240, None),
    # whole-month tier: ¥300 + ¥200 reaches ¥500, so both lines are at 4%
    (TIERED, [_order(1, 30000), _order(2, 20000)], [1200, 800], 0, 0, 2000, 400),
    # one fen short of the tier: base rate
    (TIERED, [_order(1, 30000), _order(2, 19999)], [900, 600], 0, 0, 1500, None),
    # the highest tier reached wins
    (TIERED, [_order(1, 100000)], [5000], 0, 0, 5000, 500),
    # a category rate is not lifted by the tier
    ({**TIERED, "category_rates": {"奶粉": "1%"}}, [_order(1, 60000, 奶粉=20000, 玩具=40000)], [200, 1600], 0, 0, 1800, 400),
    # bonus: strictly more than above_orders
    ({**BASE, "order_bonus": {"above_orders": 2, "amount": 50}}, [_order(1, 100), _order(2, 100)], [3, 3],
     0, 0, 6, None),
    ({**BASE, "order_bonus": {"above_orders": 2, "amount": 50}}, [_order(i, 100) for i in (1, 2, 3)], [3, 3, 3],
     5000, 0, 5009, None),
    # a refunded order (no GMV left) does not count, not even for the bonus
    ({**BASE, "order_bonus": {"above_orders": 2, "amount": 50}}, [_order(1, 100), _order(2, 100), _order(3, 0)], [3, 3],
     0, 0, 6, None),
    # cap on lines + bonus
    ({**BASE, "cap": 10}, [_order(1, 40000)], [1200], 0, 200, 1000, None),
    ({**BASE, "cap": 10, "order_bonus": {"above_orders": 0, "amount": 5}}, [_order(1, 20000)], [600],
     500, 100, 1000, None),
    ({**BASE, "cap": 12}, [_order(1, 40000)], [1200], 0, 0, 1200, None),  # exactly at the cap
])
def test_statements(rules: dict[str, Any], orders: list[AttributedOrder], amounts: list[int], bonus: int, capped: int,
                    total: int, tier_bp: int | None) -> None:
    statement = compute_statement(parse_rules(rules), orders)
    assert [line.amount_cents for line in statement.lines] == amounts
    assert (statement.bonus_cents, statement.capped_cents, statement.total_cents) == (bonus, capped, total)
    assert (statement.tier.rate_bp if statement.tier else None) == tier_bp
    assert statement.lines_cents + statement.bonus_cents - statement.capped_cents == statement.total_cents
    assert statement.gmv_cents == sum(line.gmv_cents for line in statement.lines)


def test_statement_lines_are_ordered_and_say_where_the_rate_came_from() -> None:
    rules = parse_rules({**TIERED, "category_rates": {"奶粉": "1%"}})
    statement = compute_statement(rules, [_order(2, 60000, day=3, 玩具=40000, 奶粉=20000), _order(1, 100, day=2)])
    assert [(line.order_id, line.category, line.rate_bp, line.rate_source) for line in statement.lines] == [
        (1, "", 400, "tier"), (2, "奶粉", 100, "category"), (2, "玩具", 400, "tier")]
    assert statement.order_count == 2 and statement.gmv_cents == 60100
    assert compute_statement(parse_rules(BASE), [_order(1, 100)]).lines[0].rate_source == "base"


@pytest.mark.parametrize("orders", [
    [_order(1, 100), _order(1, 200)],  # the same order twice
    [_order(1, 100, a=50)],  # split does not add up
])
def test_inconsistent_orders_are_refused(orders: list[AttributedOrder]) -> None:
    with pytest.raises(ValueError):
        compute_statement(parse_rules(BASE), orders)


# -- months ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), [
    ("2026-11", "2026-11"), (" 2026-01 ", "2026-01"), ("2026-1", None), ("2026-13", None), ("2026-00", None),
    ("1999-12", None), ("2026/11", None), ("", None), (None, None), (202611, None),
])
def test_parse_month(raw: Any, expected: str | None) -> None:
    if expected is not None:
        assert parse_month(raw) == expected
    else:
        with pytest.raises(InvalidMonth, match="YYYY-MM"):
            parse_month(raw)


@pytest.mark.parametrize(("month", "tz", "start", "end"), [
    ("2026-11", "Asia/Shanghai", dt.datetime(2026, 10, 31, 16, tzinfo=UTC), dt.datetime(2026, 11, 30, 16, tzinfo=UTC)),
    ("2026-12", "Asia/Shanghai", dt.datetime(2026, 11, 30, 16, tzinfo=UTC), dt.datetime(2026, 12, 31, 16, tzinfo=UTC)),
    ("2026-03", "Europe/Berlin", dt.datetime(2026, 2, 28, 23, tzinfo=UTC), dt.datetime(2026, 3, 31, 22, tzinfo=UTC)),
    ("2026-01", "UTC", dt.datetime(2026, 1, 1, tzinfo=UTC), dt.datetime(2026, 2, 1, tzinfo=UTC)),
])
def test_month_bounds_in_the_brand_time_zone(month: str, tz: str, start: dt.datetime, end: dt.datetime) -> None:
    assert month_bounds(month, tz) == (start, end)
    assert month_of(start, tz) == month and month_of(end - dt.timedelta(microseconds=1), tz) == month
    assert month_of(end, tz) != month
