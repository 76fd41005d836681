"""The rule language: parsing, Chinese aliases, and every refusal with the position it points at."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from customers.rules import (
    And,
    Between,
    Bought,
    Compare,
    FieldRef,
    In,
    Not,
    Or,
    Purchase,
    RuleError,
    Value,
    parse,
    tokenize,
    validate_rule,
)
from models import Region, Store
from tests.test_rule_eval import add_customer, add_order, add_tag


def test_examples_parse_to_the_expected_tree() -> None:
    assert parse("orders >= 4 AND aov >= 300").root == And((
        Compare(FieldRef("orders", 1), ">=", Value(4, 11)),
        Compare(FieldRef("aov", 17), ">=", Value(30000, 24)),  # yuan in, fen out
    ))
    rule = parse("days_since_bought(category='奶粉') BETWEEN 25 AND 40")
    assert rule.root == Between(Purchase("days_since_bought", None, "奶粉", None, 1, 28), Value(25, 42), Value(40, 49))
    rule = parse("channel = 'tmall' OR (store = 'SH01' AND NOT tag = '已流失')")
    assert isinstance(rule.root, Or)
    inner = rule.root.items[1]
    assert isinstance(inner, And) and isinstance(inner.items[1], Not)
    assert inner.items[1].item == Compare(FieldRef("tag", 46), "=", Value("已流失", 52))


def test_precedence_and_keywords_are_case_insensitive() -> None:
    # AND binds tighter than OR; NOT tighter than AND.
    root = parse("orders = 1 or orders = 2 And not orders = 3").root
    assert isinstance(root, Or) and isinstance(root.items[1], And) and isinstance(root.items[1].items[1], Not)
    assert parse("ORDERS >= 1").root == Compare(FieldRef("orders", 1), ">=", Value(1, 11))


def test_chinese_aliases_keywords_and_punctuation() -> None:
    english = parse("orders >= 4 AND aov >= 300 OR NOT recency_days < 90")
    chinese = parse("订单数>=4且客单价>=300或非距上次购买天数<90")
    assert _shape(english.root) == _shape(chinese.root)
    assert parse("阶段 = '活跃'").root == Compare(FieldRef("stage", 1), "=", Value("active", 6))
    assert parse("stage IN ('新客', \"silent\", '流失')").root == In(
        FieldRef("stage", 1), (Value("new", 11), Value("silent", 17), Value("lost", 27))
    )
    # Full-width brackets, commas, quotes and operators from a Chinese IME.
    root = parse("渠道 属于 （‘天猫’，“京东”） 并且 消费金额 ≥ 99.5").root
    assert root == And((
        In(FieldRef("channel", 1), (Value("tmall", 8), Value("jd", 13))),
        Compare(FieldRef("spend", 22), ">=", Value(9950, 29)),
    ))
    assert parse("买过(品类='奶粉', 天内=30)").root == Bought(Purchase("bought", None, "奶粉", 30, 1, 7))
    assert parse("标签 = '客户等级/VIP' 或者 积分 > 100 且 会员等级 != '金卡'").root.items[0] == Compare(  # type: ignore[union-attr]
        FieldRef("tag", 1), "=", Value("客户等级/VIP", 6)
    )


def _shape(node: object) -> object:
    """The tree without positions."""
    if isinstance(node, (And, Or)):
        return (type(node).__name__, tuple(_shape(i) for i in node.items))
    if isinstance(node, Not):
        return ("Not", _shape(node.item))
    if isinstance(node, Compare):
        return (node.left.name if isinstance(node.left, FieldRef) else node.left.function, node.op, node.value.value)
    return node


def test_all_operators_and_forms() -> None:
    for op in (">=", "<=", ">", "<", "=", "!="):
        assert parse(f"points {op} 10").root.op == op  # type: ignore[union-attr]
    assert parse("points <> 10").root.op == "!="  # type: ignore[union-attr]
    assert parse("points == 10").root.op == "="  # type: ignore[union-attr]
    assert parse("r_score NOT IN (1, 2)").root == In(FieldRef("r_score", 1), (Value(1, 17), Value(2, 20)), negated=True)
    assert parse("spend NOT BETWEEN 1 AND 2").root.negated  # type: ignore[union-attr]
    assert parse("bought(sku=\"A-1\")").root == Bought(Purchase("bought", "A-1", None, None, 1, 0))
    assert parse("((tier = 'x'))").root == Compare(FieldRef("tier", 3), "=", Value("x", 10))


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("spnd > 3", 1, "未知字段 spnd（是不是 spend？），可用字段：spend, orders"),
        ("orders >= 4 AND spnd >= 1", 17, "未知字段 spnd"),
        ("orders >= 4 aov >= 300", 13, "多余的“aov”（条件之间要用 AND 或 OR 连接）"),
        ("orders >=", 10, "此处应为orders的取值，实际是规则结尾"),
        ("orders >= 'many'", 11, "orders 是数值，不能与文本 'many' 比较"),
        ("orders = 1.5", 10, "orders 须为整数"),
        ("spend >= 1.005", 10, "spend 最多两位小数"),
        ("r_score = 6", 11, "r_score 取值 0–5"),
        ("stage = 'dormant'", 9, "未知阶段 'dormant'"),
        ("stage > 'new'", 7, "stage 只能用 =、!= 或 IN 比较，不能用 >"),
        ("tag BETWEEN 'a' AND 'b'", 5, "tag 只能用 =、!= 或 IN 比较，不能用 BETWEEN"),
        ("channel = tmall", 11, "文本值须加引号，如 'tmall'"),
        ("tier = 3", 8, "tier 的值是文本，须加引号"),
        ("tag = '已流失", 7, "文本缺少结束引号"),
        ("(orders > 1", 12, "此处应为右括号 )"),
        ("orders > 1)", 11, "多余的“)”"),
        ("orders", 7, "字段 orders 后面需要比较运算符"),
        ("AND orders > 1", 1, "此处应为字段或条件"),
        ("orders > 1 AND", 15, "规则不完整"),
        ("orders > 1 # x", 12, "无法识别的字符 '#'"),
        ("foo(sku='x')", 1, "未知函数 foo"),
        ("bought", 1, "bought 是函数，需要括号"),
        ("bought()", 8, "此处应为参数名"),
        ("bought(color='red')", 8, "bought() 没有参数 color"),
        ("bought(within=30)", 1, "bought() 需要 sku='…' 或 category='…'"),
        ("bought(sku=X1)", 12, "sku 的值须加引号"),
        ("bought(sku='a', sku='b')", 17, "参数 sku 重复"),
        ("bought(sku='a', within=0)", 24, "within 须至少为 1 天"),
        ("bought(sku='a', within='7')", 24, "within 须为天数"),
        ("days_since_bought(category='奶粉')", 33, "days_since_bought(...) 需要比较"),
        ("days_since_bought(category='奶粉') >= 1.5", 37, "须为整数"),
        ("orders BETWEEN 5 AND 1", 16, "BETWEEN 的下限大于上限"),
        ("orders BETWEEN 1 OR 5", 18, "此处应为AND"),
        ("orders IN 1", 11, "IN 后面是括号里的取值列表"),
    ],
)
def test_refusals_point_at_the_problem(text: str, position: int, fragment: str) -> None:
    with pytest.raises(RuleError) as caught:
        parse(text)
    assert caught.value.position == position
    assert fragment in caught.value.message
    assert str(caught.value).startswith(f"第{position}个字符附近：")


def test_empty_and_overlong_rules() -> None:
    for text in ("", "   "):
        with pytest.raises(RuleError, match="规则为空") as caught:
            parse(text)
        assert caught.value.position is None
    with pytest.raises(RuleError, match="规则太长"):
        parse("orders > 1 OR " * 200 + "orders > 1")


def test_tokenizer_positions_count_characters_not_bytes() -> None:
    tokens = tokenize("标签='奶粉' 且 orders>1")
    assert [(t.text, t.pos) for t in tokens] == [
        ("标签", 1), ("=", 3), ("奶粉", 4), ("且", 9), ("orders", 11), (">", 17), ("1", 18), ("", 19),
    ]


async def _names_world(maker: async_sessionmaker[AsyncSession]) -> None:
    async with maker.begin() as s:
        region = Region(code="EAST", name="华东")
        s.add(region)
        await s.flush()
        s.add(Store(code="SH01", name="上海一店", region_id=region.id))
        await add_tag(s, "客户状态", "已流失")
        customer = await add_customer(s, "a")
        await add_order(s, customer, channel="wechat_shop", items=[("M1", "奶粉")])


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("tag = '已流X'", 7, "未知标签 '已流X'（可写“标签名”或“标签组/标签名”），可用标签：已流失"),
        ("tag = '错组/已流失'", 7, "未知标签"),
        ("orders > 1 AND tag IN ('已流失', 'VIP')", 31, "未知标签 'VIP'"),
        ("store = 'SH02'", 9, "未知门店 'SH02'（可写编码或名称），可用门店：SH01 上海一店"),
        ("region = '华南'", 10, "未知区域 '华南'"),
        ("channel = 'taobao'", 11, "未知渠道 'taobao'，可用渠道：tmall, jd"),
        ("days_since_bought(category='奶昔') > 3", 28, "订单中没有品类 '奶昔'，已有品类：奶粉"),
        ("bought(category='玩具')", 17, "订单中没有品类 '玩具'"),
    ],
)
async def test_unknown_names_are_refused(
    maker: async_sessionmaker[AsyncSession], text: str, position: int, fragment: str
) -> None:
    await _names_world(maker)
    async with maker() as s:
        with pytest.raises(RuleError) as caught:
            await validate_rule(s, text)
    assert caught.value.position == position
    assert fragment in caught.value.message


async def test_known_names_pass(maker: async_sessionmaker[AsyncSession]) -> None:
    await _names_world(maker)
    async with maker() as s:
        for text in (
            "tag = '已流失'", "tag = '客户状态/已流失'", "store = 'SH01'", "store = '上海一店'", "region = 'EAST'",
            "region = '华东'", "channel = 'tmall'", "channel = '抖音'", "channel = 'wechat_shop'",
            "bought(category='奶粉')", "bought(sku='never-sold-yet')", "tier = 'anything'",
        ):
            await validate_rule(s, text)
