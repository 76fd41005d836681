"""The rule language of the tag factory and of segments: a small text DSL an admin types.

Grammar (keywords are case-insensitive; 且/或/非 also mean AND/OR/NOT)::

    expr       := term (OR term)*
    term       := factor (AND factor)*
    factor     := NOT factor | '(' expr ')' | comparison | predicate
    comparison := operand op value                          op: >= <= > < = !=
                | operand [NOT] BETWEEN value AND value     (both ends included)
                | operand [NOT] IN '(' value (',' value)* ')'
    operand    := field | days_since_bought '(' args ')'
    predicate  := bought '(' args ')'
    args       := name '=' value (',' name '=' value)*      names: sku, category, within

Values are numbers (``300``, ``99.5``) or quoted text (``'tmall'``, ``"奶粉"``; Chinese quotes and
full-width brackets are accepted too, since admins type on a Chinese IME). ``parse`` does everything
that needs no database (syntax, fields, types, value ranges); ``validate_rule`` adds the checks that
do (tag, store, region, channel and category names). Every error is a ``RuleError`` carrying a
1-based character position and a Chinese message an admin can act on.
"""

from __future__ import annotations

import difflib
import enum
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Final, Literal, TypeAlias

from sqlalchemy import exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from models import LifecycleStage, Order, OrderItem, Region, Store, Tag, TagGroup


class RuleError(ValueError):
    """A rule that cannot be used; ``position`` is the 1-based character it points at (or None)."""

    def __init__(self, message: str, position: int | None = None) -> None:
        self.message = message
        self.position = position
        super().__init__(f"第{position}个字符附近：{message}" if position else message)


# -- fields ------------------------------------------------------------------------------------


class Kind(enum.Enum):
    """What a field holds, which decides the operators and values it accepts."""

    MONEY = "money"  # yuan in the rule, fen in the database
    COUNT = "count"  # a whole number
    DAYS = "days"  # whole days since a moment, relative to the evaluation time
    SCORE = "score"  # RFM score 0..5
    STAGE = "stage"  # lifecycle stage
    TEXT = "text"  # free text (member tier)
    SET = "set"  # "the customer has one of these" (channel, store, region, tag)


@dataclass(frozen=True)
class FieldSpec:
    """A field of the language, with its Chinese label and aliases."""

    name: str
    kind: Kind
    label: str
    aliases: tuple[str, ...] = ()


FIELDS: Final[dict[str, FieldSpec]] = {
    f.name: f
    for f in (
        FieldSpec("spend", Kind.MONEY, "消费金额（元）", ("消费金额", "累计消费", "消费")),
        FieldSpec("orders", Kind.COUNT, "订单数", ("订单数", "购买次数")),
        FieldSpec("aov", Kind.MONEY, "客单价（元）", ("客单价",)),
        FieldSpec("recency_days", Kind.DAYS, "距上次购买天数", ("距上次购买天数", "未购天数")),
        FieldSpec("days_since_added", Kind.DAYS, "添加天数", ("添加天数",)),
        FieldSpec("stage", Kind.STAGE, "生命周期阶段", ("阶段", "生命周期")),
        FieldSpec("r_score", Kind.SCORE, "R分", ("r分",)),
        FieldSpec("f_score", Kind.SCORE, "F分", ("f分",)),
        FieldSpec("m_score", Kind.SCORE, "M分", ("m分",)),
        FieldSpec("channel", Kind.SET, "购买渠道", ("渠道",)),
        FieldSpec("store", Kind.SET, "门店", ("门店",)),
        FieldSpec("region", Kind.SET, "区域", ("区域", "大区")),
        FieldSpec("tag", Kind.SET, "标签", ("标签",)),
        FieldSpec("tier", Kind.TEXT, "会员等级", ("会员等级", "等级")),
        FieldSpec("points", Kind.COUNT, "积分", ("积分",)),
    )
}
_FIELD_BY_ALIAS: Final = {alias: f.name for f in FIELDS.values() for alias in (f.name, *f.aliases)}

BOUGHT: Final = "bought"
DAYS_SINCE_BOUGHT: Final = "days_since_bought"
_FUNCTION_BY_ALIAS: Final = {
    BOUGHT: BOUGHT, "买过": BOUGHT, "购买过": BOUGHT,
    DAYS_SINCE_BOUGHT: DAYS_SINCE_BOUGHT, "距上次购买": DAYS_SINCE_BOUGHT,
}
_ARG_BY_ALIAS: Final = {
    "sku": "sku", "商品": "sku", "商品编码": "sku",
    "category": "category", "品类": "category", "类目": "category",
    "within": "within", "天内": "within", "近几天": "within",
}

STAGE_VALUES: Final[dict[str, LifecycleStage]] = {
    **{s.value: s for s in LifecycleStage},
    "新客": LifecycleStage.NEW, "活跃": LifecycleStage.ACTIVE,
    "沉默": LifecycleStage.SILENT, "流失": LifecycleStage.LOST,
}
# Channel codes orders are stored under; an order's channel need not be in this list (a name seen
# in the orders table is accepted too), but these are accepted before the first order arrives.
KNOWN_CHANNELS: Final = ("tmall", "jd", "douyin", "pos", "miniapp")  # customers/channels/*.json
CHANNEL_ALIASES: Final = {"天猫": "tmall", "京东": "jd", "抖音": "douyin", "门店": "pos", "线下": "pos",
                          "小程序": "miniapp"}
MAX_SCORE: Final = 5
MAX_RULE_LENGTH: Final = 2000


# -- the AST -----------------------------------------------------------------------------------

Op: TypeAlias = Literal[">=", "<=", ">", "<", "=", "!="]
Scalar: TypeAlias = int | str  # typed by the field: fen for money, int for counts/days, str for text


@dataclass(frozen=True)
class Value:
    """A literal, already converted to the field's unit (money in fen, stage as its code)."""

    value: Scalar
    pos: int


@dataclass(frozen=True)
class FieldRef:
    """A plain field (``spend``); ``name`` is canonical whatever alias was typed."""

    name: str
    pos: int

    @property
    def kind(self) -> Kind:
        return FIELDS[self.name].kind


@dataclass(frozen=True)
class Purchase:
    """``bought(...)`` or ``days_since_bought(...)``: counted purchases of a SKU and/or a category."""

    function: str
    sku: str | None
    category: str | None
    within_days: int | None
    pos: int
    category_pos: int = 0

    @property
    def kind(self) -> Kind:
        return Kind.DAYS


Operand: TypeAlias = FieldRef | Purchase


@dataclass(frozen=True)
class Compare:
    """``operand op value``."""

    left: Operand
    op: Op
    value: Value


@dataclass(frozen=True)
class Between:
    """``operand [NOT] BETWEEN low AND high`` (inclusive)."""

    left: Operand
    low: Value
    high: Value
    negated: bool = False


@dataclass(frozen=True)
class In:
    """``operand [NOT] IN (v, ...)``."""

    left: Operand
    values: tuple[Value, ...]
    negated: bool = False


@dataclass(frozen=True)
class Bought:
    """The ``bought(...)`` predicate."""

    purchase: Purchase


@dataclass(frozen=True)
class Not:
    item: Node


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


Node: TypeAlias = Compare | Between | In | Bought | Not | And | Or


@dataclass(frozen=True)
class Rule:
    """A parsed, type-checked rule and the text it came from."""

    text: str
    root: Node


def walk(node: Node) -> Iterator[Node]:
    """Every node of the tree, depth first."""
    yield node
    if isinstance(node, Not):
        yield from walk(node.item)
    elif isinstance(node, (And, Or)):
        for item in node.items:
            yield from walk(item)


# -- the tokenizer -----------------------------------------------------------------------------


class T(enum.Enum):
    NUMBER = "数字"
    STRING = "文本"
    IDENT = "名称"
    OP = "比较运算符"
    LPAREN = "("
    RPAREN = ")"
    COMMA = ","
    AND = "AND"
    OR = "OR"
    NOT = "NOT"
    BETWEEN = "BETWEEN"
    IN = "IN"
    END = "规则结尾"


@dataclass(frozen=True)
class Token:
    type: T
    text: str  # the source text (strings without their quotes; operators normalised)
    pos: int  # 1-based


_KEYWORDS: Final = {"and": T.AND, "or": T.OR, "not": T.NOT, "between": T.BETWEEN, "in": T.IN,
                    "且": T.AND, "并且": T.AND, "或": T.OR, "或者": T.OR, "非": T.NOT, "介于": T.BETWEEN,
                    "属于": T.IN}
# 且/或/非 are single-character keywords even inside a run of Chinese ("订单数>=4且客单价>=300");
# no field alias contains them.
_CJK_KEYWORD_CHARS: Final = frozenset("且或非")
_OPERATORS: Final = (
    (">=", ">="), ("<=", "<="), ("!=", "!="), ("<>", "!="), ("==", "="), ("≥", ">="), ("≤", "<="),
    ("≠", "!="), ("＞", ">"), ("＜", "<"), ("＝", "="), (">", ">"), ("<", "<"), ("=", "="),
)
_QUOTES: Final = {"'": "'", '"': '"', "‘": "’", "“": "”", "「": "」"}
_SINGLE: Final = {"(": T.LPAREN, "（": T.LPAREN, ")": T.RPAREN, "）": T.RPAREN, ",": T.COMMA, "，": T.COMMA}


def _ident_char(ch: str) -> bool:
    return (ch.isalnum() or ch == "_") and ch not in _CJK_KEYWORD_CHARS


def tokenize(text: str) -> list[Token]:
    """Split a rule into tokens; positions are 1-based characters."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        pos = i + 1
        if ch in _SINGLE:
            tokens.append(Token(_SINGLE[ch], ch, pos))
            i += 1
            continue
        op = next(((src, norm) for src, norm in _OPERATORS if text.startswith(src, i)), None)
        if op:
            tokens.append(Token(T.OP, op[1], pos))
            i += len(op[0])
            continue
        if ch in _QUOTES:
            end = text.find(_QUOTES[ch], i + 1)
            if end < 0:
                raise RuleError(f"文本缺少结束引号 {_QUOTES[ch]}", pos)
            tokens.append(Token(T.STRING, text[i + 1 : end], pos))
            i = end + 1
            continue
        if ch.isdigit() and ch.isascii():
            j = i
            while j < n and text[j].isascii() and (text[j].isdigit() or text[j] == "."):
                j += 1
            tokens.append(Token(T.NUMBER, text[i:j], pos))
            i = j
            continue
        if ch in _CJK_KEYWORD_CHARS:
            # 并且/或者 are two characters; 且/或/非 one.
            for word in ("或者",):
                if text.startswith(word, i):
                    tokens.append(Token(T.OR, word, pos))
                    i += len(word)
                    break
            else:
                tokens.append(Token(_KEYWORDS[ch], ch, pos))
                i += 1
            continue
        if _ident_char(ch) and not ch.isdigit():
            j = i
            while j < n and _ident_char(text[j]):
                j += 1
            word = text[i:j]
            if word == "并" and text.startswith("且", j):  # 并且
                tokens.append(Token(T.AND, "并且", pos))
                i = j + 1
                continue
            keyword = _KEYWORDS.get(word.lower())
            tokens.append(Token(keyword or T.IDENT, word, pos))
            i = j
            continue
        raise RuleError(f"无法识别的字符 {ch!r}", pos)
    tokens.append(Token(T.END, "", n + 1))
    return tokens


# -- the parser --------------------------------------------------------------------------------


def _field_list() -> str:
    return ", ".join(FIELDS)


def _describe(token: Token) -> str:
    if token.type is T.END:
        return "规则结尾"
    if token.type is T.STRING:
        return f"文本 '{token.text}'"
    return f"“{token.text}”"


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def expect(self, kind: T, what: str) -> Token:
        if self.tok.type is not kind:
            raise RuleError(f"此处应为{what}，实际是{_describe(self.tok)}", self.tok.pos)
        return self.take()

    # expr := term (OR term)*
    def expr(self) -> Node:
        items = [self.term()]
        while self.tok.type is T.OR:
            self.take()
            items.append(self.term())
        return items[0] if len(items) == 1 else Or(tuple(items))

    # term := factor (AND factor)*
    def term(self) -> Node:
        items = [self.factor()]
        while self.tok.type is T.AND:
            self.take()
            items.append(self.factor())
        return items[0] if len(items) == 1 else And(tuple(items))

    # factor := NOT factor | '(' expr ')' | comparison | predicate
    def factor(self) -> Node:
        token = self.tok
        if token.type is T.NOT:
            self.take()
            return Not(self.factor())
        if token.type is T.LPAREN:
            self.take()
            node = self.expr()
            self.expect(T.RPAREN, "右括号 )")
            return node
        if token.type is T.IDENT:
            return self.comparison()
        if token.type is T.END:
            raise RuleError("规则不完整：此处缺少条件", token.pos)
        raise RuleError(f"此处应为字段或条件（如 spend >= 100），实际是{_describe(token)}", token.pos)

    def operand(self) -> Operand:
        token = self.take()
        name = token.text.lower()
        if self.tok.type is T.LPAREN:
            function = _FUNCTION_BY_ALIAS.get(name)
            if function is None:
                raise RuleError(f"未知函数 {token.text}，可用函数：bought(...), days_since_bought(...)", token.pos)
            return self.purchase(function, token.pos)
        field = _FIELD_BY_ALIAS.get(name)
        if field is None:
            if name in _FUNCTION_BY_ALIAS:
                raise RuleError(f"{token.text} 是函数，需要括号，如 {_FUNCTION_BY_ALIAS[name]}(category='奶粉')",
                                token.pos)
            guess = difflib.get_close_matches(name, list(_FIELD_BY_ALIAS), n=1)
            hint = f"（是不是 {_FIELD_BY_ALIAS[guess[0]]}？）" if guess else ""
            raise RuleError(f"未知字段 {token.text}{hint}，可用字段：{_field_list()}", token.pos)
        return FieldRef(field, token.pos)

    def purchase(self, function: str, pos: int) -> Purchase:
        self.expect(T.LPAREN, "(")
        args: dict[str, tuple[Token, int]] = {}
        while True:
            name_tok = self.expect(T.IDENT, "参数名（sku、category 或 within）")
            arg = _ARG_BY_ALIAS.get(name_tok.text.lower())
            if arg is None:
                raise RuleError(f"{function}() 没有参数 {name_tok.text}，可用参数：sku, category, within", name_tok.pos)
            if arg in args:
                raise RuleError(f"参数 {arg} 重复", name_tok.pos)
            op = self.expect(T.OP, "=")
            if op.text != "=":
                raise RuleError(f"参数要用 = 赋值，如 {arg}='…'", op.pos)
            value_tok = self.take()
            if arg == "within":
                if value_tok.type is not T.NUMBER or not value_tok.text.isdigit():
                    raise RuleError("within 须为天数（正整数），如 within=30", value_tok.pos)
                if int(value_tok.text) < 1:
                    raise RuleError("within 须至少为 1 天", value_tok.pos)
                args[arg] = (value_tok, int(value_tok.text))
            else:
                if value_tok.type is not T.STRING:
                    raise RuleError(f"{arg} 的值须加引号，如 {arg}='{value_tok.text or '…'}'", value_tok.pos)
                if not value_tok.text.strip():
                    raise RuleError(f"{arg} 不能为空", value_tok.pos)
                args[arg] = (value_tok, 0)
            if self.tok.type is T.COMMA:
                self.take()
                continue
            self.expect(T.RPAREN, "右括号 ) 或逗号")
            break
        if "sku" not in args and "category" not in args:
            raise RuleError(f"{function}() 需要 sku='…' 或 category='…'", pos)
        sku = args["sku"][0].text.strip() if "sku" in args else None
        category = args["category"][0].text.strip() if "category" in args else None
        within = args["within"][1] if "within" in args else None
        category_pos = args["category"][0].pos if "category" in args else 0
        return Purchase(function, sku, category, within, pos, category_pos)

    def comparison(self) -> Node:
        left = self.operand()
        if isinstance(left, Purchase) and left.function == BOUGHT:
            return Bought(left)
        negated = False
        if self.tok.type is T.NOT and self.tokens[self.i + 1].type in (T.IN, T.BETWEEN):
            self.take()
            negated = True
        token = self.tok
        label = _label(left)
        if token.type is T.BETWEEN:
            self.take()
            _check_ops(left, "BETWEEN", token.pos)
            low = self.value(left)
            self.expect(T.AND, "AND（BETWEEN a AND b）")
            high = self.value(left)
            if isinstance(low.value, int) and isinstance(high.value, int) and low.value > high.value:
                raise RuleError(f"BETWEEN 的下限大于上限（{label}）", low.pos)
            return Between(left, low, high, negated)
        if token.type is T.IN:
            self.take()
            self.expect(T.LPAREN, "(（IN 后面是括号里的取值列表）")
            values = [self.value(left)]
            while self.tok.type is T.COMMA:
                self.take()
                values.append(self.value(left))
            self.expect(T.RPAREN, "右括号 ) 或逗号")
            return In(left, tuple(values), negated)
        if token.type is T.OP:
            self.take()
            _check_ops(left, token.text, token.pos)
            return Compare(left, token.text, self.value(left))  # type: ignore[arg-type]
        if isinstance(left, Purchase):
            raise RuleError(f"{left.function}(...) 需要比较，如 {left.function}(category='奶粉') >= 30", token.pos)
        raise RuleError(f"字段 {left.name} 后面需要比较运算符（>= <= > < = !=）、BETWEEN 或 IN，"
                        f"实际是{_describe(token)}", token.pos)

    def value(self, left: Operand) -> Value:
        token = self.take()
        kind = left.kind
        label = _label(left)
        if token.type is T.IDENT:
            raise RuleError(f"文本值须加引号，如 '{token.text}'", token.pos)
        if token.type not in (T.NUMBER, T.STRING):
            raise RuleError(f"此处应为{label}的取值，实际是{_describe(token)}", token.pos)
        if kind in (Kind.MONEY, Kind.COUNT, Kind.DAYS, Kind.SCORE):
            if token.type is not T.NUMBER:
                raise RuleError(f"{label} 是数值，不能与文本 '{token.text}' 比较", token.pos)
            try:
                number = Decimal(token.text)
            except InvalidOperation:
                raise RuleError(f"无法识别的数字 {token.text}", token.pos) from None
            if kind is Kind.MONEY:
                cents = number * 100
                if cents != cents.to_integral_value():
                    raise RuleError(f"{label} 最多两位小数", token.pos)
                return Value(int(cents), token.pos)
            if number != number.to_integral_value():
                raise RuleError(f"{label} 须为整数，实际是 {token.text}", token.pos)
            if kind is Kind.SCORE and not 0 <= number <= MAX_SCORE:
                raise RuleError(f"{label} 取值 0–{MAX_SCORE}（0 表示从未购买）", token.pos)
            return Value(int(number), token.pos)
        if token.type is not T.STRING:
            raise RuleError(f"{label} 的值是文本，须加引号，如 '{token.text}'", token.pos)
        text = token.text.strip()
        if kind is Kind.STAGE:
            stage = STAGE_VALUES.get(text.lower())
            if stage is None:
                raise RuleError(f"未知阶段 '{text}'，可用：new/新客、active/活跃、silent/沉默、lost/流失", token.pos)
            return Value(stage.value, token.pos)
        if not text:
            raise RuleError(f"{label} 的值不能为空", token.pos)
        if isinstance(left, FieldRef) and left.name == "channel":
            text = CHANNEL_ALIASES.get(text, text.lower())
        return Value(text, token.pos)


def _label(left: Operand) -> str:
    return left.name if isinstance(left, FieldRef) else f"{left.function}(...)"


_ORDERED_KINDS: Final = frozenset({Kind.MONEY, Kind.COUNT, Kind.DAYS, Kind.SCORE})


def _check_ops(left: Operand, op: str, pos: int) -> None:
    if left.kind in _ORDERED_KINDS or op in ("=", "!="):
        return
    raise RuleError(f"{_label(left)} 只能用 =、!= 或 IN 比较，不能用 {op}", pos)


def parse(text: str) -> Rule:
    """Parse and type-check a rule (no database needed); raises RuleError."""
    if not text or not text.strip():
        raise RuleError("规则为空，例如：orders >= 4 AND aov >= 300")
    if len(text) > MAX_RULE_LENGTH:
        raise RuleError(f"规则太长（最多 {MAX_RULE_LENGTH} 个字符）")
    parser = _Parser(text)
    root = parser.expr()
    if parser.tok.type is not T.END:
        token = parser.tok
        hint = "（条件之间要用 AND 或 OR 连接）" if token.type in (T.IDENT, T.NOT) else ""
        raise RuleError(f"多余的{_describe(token)}{hint}", token.pos)
    return Rule(text, root)


# -- name checks (need the database) -----------------------------------------------------------


def _set_values(rule: Rule, field: str) -> Iterator[Value]:
    for node in walk(rule.root):
        if isinstance(node, Compare) and isinstance(node.left, FieldRef) and node.left.name == field:
            yield node.value
        elif isinstance(node, In) and isinstance(node.left, FieldRef) and node.left.name == field:
            yield from node.values


def _purchases(rule: Rule) -> Iterator[Purchase]:
    for node in walk(rule.root):
        if isinstance(node, Bought):
            yield node.purchase
        elif isinstance(node, (Compare, Between, In)) and isinstance(node.left, Purchase):
            yield node.left


def _some(names: list[str], limit: int = 12) -> str:
    shown = "、".join(names[:limit])
    return shown + ("…" if len(names) > limit else "") if names else "（暂无）"


async def _tag_exists(session: AsyncSession, value: str) -> bool:
    live = (Tag.deleted.is_(False), TagGroup.deleted.is_(False))
    clauses = [Tag.name == value]
    group, sep, name = value.partition("/")
    if sep:
        clauses.append((TagGroup.name == group) & (Tag.name == name))
    query = select(Tag.id).join(TagGroup, TagGroup.id == Tag.group_id).where(*live, or_(*clauses)).limit(1)
    return await session.scalar(query) is not None


async def check_names(session: AsyncSession, rule: Rule) -> None:
    """Refuse tags, stores, regions, channels and categories the database does not know."""
    for value in _set_values(rule, "tag"):
        if not await _tag_exists(session, str(value.value)):
            names = (await session.scalars(
                select(Tag.name).where(Tag.deleted.is_(False)).order_by(Tag.group_id, Tag.order, Tag.id).limit(13)
            )).all()
            raise RuleError(f"未知标签 '{value.value}'（可写“标签名”或“标签组/标签名”），可用标签：{_some(list(names))}",
                            value.pos)
    for field, model, what in (("store", Store, "门店"), ("region", Region, "区域")):
        for value in _set_values(rule, field):
            hit = await session.scalar(
                select(model.id).where(or_(model.code == value.value, model.name == value.value)).limit(1)
            )
            if hit is None:
                rows = (await session.execute(select(model.code, model.name).order_by(model.code).limit(13))).all()
                raise RuleError(f"未知{what} '{value.value}'（可写编码或名称），可用{what}："
                                f"{_some([f'{code} {name}' for code, name in rows])}", value.pos)
    for value in _set_values(rule, "channel"):
        if value.value in KNOWN_CHANNELS:
            continue
        if not await session.scalar(select(exists().where(Order.channel == value.value))):
            raise RuleError(f"未知渠道 '{value.value}'，可用渠道：{', '.join(KNOWN_CHANNELS)}"
                            f"（或 天猫、京东、抖音、门店、小程序）", value.pos)
    for purchase in _purchases(rule):
        if purchase.category is None:
            continue
        if not await session.scalar(select(exists().where(OrderItem.category == purchase.category))):
            seen = (await session.scalars(
                select(OrderItem.category).where(OrderItem.category != "").distinct().order_by(OrderItem.category)
                .limit(13)
            )).all()
            raise RuleError(f"订单中没有品类 '{purchase.category}'，已有品类：{_some(list(seen))}",
                            purchase.category_pos or purchase.pos)


async def validate_rule(session: AsyncSession, text: str) -> Rule:
    """Parse a rule and check every name it uses; raises RuleError with a position."""
    rule = parse(text)
    await check_names(session, rule)
    return rule

