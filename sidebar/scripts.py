"""Talk scripts (话术): validation on save, set-based matching and ranking per customer, sends and stats.

A script is text with ``{variables}``, an optional card (image, link or mini-program) and an optional
condition in the rule language (customers/rules.py). For one customer, every enabled script's
condition is evaluated in one UNION query (``matching_ids`` narrowed to that customer), never by
looping over customers in Python; the enabled scripts themselves are kept per process
(sidebar/script_library.py), so every service here that changes a script or category calls
``library_changed``. Ranking (``score``, higher first):

* matched conditional scripts: ``2_000_000 + priority * 100 + specificity`` (atoms in the condition);
* unconditional scripts: ``1_000_000 + priority * 100``;
* conditional scripts that do not match are only listed when the guide searches or browses a
  category: ``priority * 100``.
"""

from __future__ import annotations

import csv
import functools
import datetime as dt
import io
import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from sqlalchemy import ColumnElement, Select, and_, bindparam, func, literal_column, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from customers.identity import surviving
from customers.profile import yuan
from customers.rules import Between, Bought, Compare, In, Rule, RuleError, validate_rule, walk
from customers.rulesql import counted, customer_probe, probe_params, purchase_time
from models import (
    Customer,
    CustomerGroup,
    MediaAsset,
    Membership,
    Order,
    OrderItem,
    ScriptCategory,
    ScriptSend,
    Staff,
    TalkScript,
)
from models.base import within_days
from sidebar.errors import Conflict, InvalidRequest, NotFound
from sidebar.permissions import Viewer, audit, check_group_access, customer_in_scope, load_viewer
from sidebar.script_library import (
    SCRIPT_COLUMNS,
    LibraryScript,
    library_changed,
    library_scripts,
    load_categories,
    script_library,
)

_LOGGER = logging.getLogger(__name__)

#: Variables a script body may use, with what they mean (shown in errors and to admins).
VARIABLES: Final[dict[str, str]] = {
    "customer_name": "客户称呼",
    "guide_name": "导购姓名",
    "last_product": "最近购买的商品",
    "points": "会员积分",
    "tier": "会员等级",
    "tier_gap": "距下一等级还差的金额（元）",
    "next_tier": "下一会员等级",
    "store_name": "门店名称",
}
#: What a variable becomes when the value is unknown: never a raw ``{…}`` in front of a customer.
FALLBACKS: Final[dict[str, str]] = {
    "customer_name": "亲",
    "guide_name": "您的专属顾问",
    "last_product": "宝贝",
    "points": "0",
    "tier": "会员",
    "tier_gap": "少许",
    "next_tier": "更高等级会员",
    "store_name": "门店",
}
ATTACHMENT_TYPES: Final = ("image", "link", "miniprogram")
TITLE_MAX: Final = 128
BODY_MAX: Final = 4000
CATEGORY_MAX: Final = 64
URL_MAX: Final = 2048
PRIORITY_MAX: Final = 9999
CONVERSION_DAYS: Final = 7
MAX_SUGGESTIONS: Final = 100
MAX_TARGET_ID: Final = 64
#: SQLite allows 500 terms in one compound SELECT; stay well below.
_UNION_CHUNK: Final = 200
_PLACEHOLDER: Final = re.compile(r"\{([^{}]*)\}")
_MATCHED_BASE: Final = 2_000_000
_UNCONDITIONAL_BASE: Final = 1_000_000


class InvalidScript(InvalidRequest):
    """A script (or category, or import) that cannot be saved; ``detail`` names the field and position."""


# -- validation --------------------------------------------------------------------------------


def _known_variables() -> str:
    return "、".join(f"{{{name}}}（{label}）" for name, label in VARIABLES.items())


def check_body(body: str) -> None:
    """Refuse unknown variables and stray braces; positions are 1-based characters."""
    for match in _PLACEHOLDER.finditer(body):
        name = match.group(1).strip()
        if name not in VARIABLES:
            raise InvalidScript(f"第{match.start() + 1}个字符附近：未知变量 {{{match.group(1)}}}，可用变量：{_known_variables()}",
                                field="body", position=match.start() + 1)
    stripped = _PLACEHOLDER.sub(lambda m: " " * len(m.group(0)), body)
    for i, ch in enumerate(stripped):
        if ch in "{}":
            raise InvalidScript(f"第{i + 1}个字符附近：花括号不成对，变量须写成 {{customer_name}} 这样",
                                field="body", position=i + 1)
        if ch in "｛｝":
            raise InvalidScript(f"第{i + 1}个字符附近：变量须用半角花括号，如 {{customer_name}}",
                                field="body", position=i + 1)


def _text(value: Any, field: str, label: str, *, limit: int, required: bool = True) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidScript(f"{label}须为文本", field=field)
    value = value.strip()
    if required and not value:
        raise InvalidScript(f"{label}不能为空", field=field)
    if len(value) > limit:
        raise InvalidScript(f"{label}最多 {limit} 个字符（现有 {len(value)} 个）", field=field)
    return value


def _url(value: Any, field: str, label: str, *, required: bool) -> str | None:
    text = _text(value, field, label, limit=URL_MAX, required=required)
    if not text:
        return None
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidScript(f"{label}须为 http(s) 地址，实际是 {text!r}", field=field)
    return text


def check_attachment(raw: Any) -> dict[str, Any] | None:
    """The card as stored (known keys only), or InvalidScript naming what is missing or wrong."""
    if raw is None or raw == "" or raw == {}:
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise InvalidScript("附件须为 JSON 对象，例如 {\"type\": \"link\", \"url\": \"https://…\", \"title\": \"…\"}",
                                field="attachment") from None
    if not isinstance(raw, dict):
        raise InvalidScript("附件须为 JSON 对象", field="attachment")
    kind = raw.get("type")
    if kind not in ATTACHMENT_TYPES:
        raise InvalidScript(f"附件类型须为 image（图片）、link（链接卡片）或 miniprogram（小程序），实际是 {kind!r}",
                            field="attachment")
    card: dict[str, Any] = {"type": kind}
    if kind == "image":
        asset_id = raw.get("asset_id")
        if asset_id is not None and (not isinstance(asset_id, int) or isinstance(asset_id, bool) or asset_id < 1):
            raise InvalidScript(f"图片 asset_id 须为素材库中的图片编号，实际是 {asset_id!r}", field="attachment")
        media_id = _text(raw.get("media_id"), "attachment", "图片 media_id", limit=256, required=False)
        media_url = _url(raw.get("media_url"), "attachment", "图片地址 media_url", required=False)
        if not asset_id and not media_id and not media_url:
            raise InvalidScript("图片附件需要 asset_id（素材库图片，先上传到 /admin/api/media）、media_url（图片地址）"
                                "或 media_id（临时素材）", field="attachment")
        card |= {k: v for k, v in (("asset_id", asset_id), ("media_id", media_id), ("media_url", media_url)) if v}
    elif kind == "link":
        card["url"] = _url(raw.get("url"), "attachment", "链接卡片的 url", required=True)
        card["title"] = _text(raw.get("title"), "attachment", "链接卡片的标题 title", limit=TITLE_MAX)
        desc = _text(raw.get("desc"), "attachment", "链接卡片的描述 desc", limit=512, required=False)
        image = _url(raw.get("image_url"), "attachment", "链接卡片的封面 image_url", required=False)
        card |= {k: v for k, v in (("desc", desc), ("image_url", image)) if v}
    else:
        card["appid"] = _text(raw.get("appid"), "attachment", "小程序的 appid", limit=64)
        card["title"] = _text(raw.get("title"), "attachment", "小程序卡片的标题 title", limit=TITLE_MAX)
        page = _text(raw.get("page"), "attachment", "小程序页面 page", limit=URL_MAX)
        if not page.split("?", 1)[0].endswith(".html"):
            raise InvalidScript(f"小程序页面 page 须以 .html 结尾（企业微信 sendChatMessage 的要求），"
                                f"如 pages/index/index.html，实际是 {page!r}", field="attachment")
        card["page"] = page
        image = _url(raw.get("image_url"), "attachment", "小程序封面 image_url", required=False)
        if image:
            card["image_url"] = image
    return card


def _priority(value: Any) -> int:
    if value is None or value == "":
        return 0
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= PRIORITY_MAX:
        raise InvalidScript(f"优先级须为 0–{PRIORITY_MAX} 的整数，实际是 {value!r}", field="priority")
    return value


def _enabled(value: Any) -> bool:
    if value is None or value == "":
        return True
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "是", "启用", "y"):
        return True
    if text in ("0", "false", "no", "否", "停用", "n"):
        return False
    raise InvalidScript(f"启用须为 是/否（或 true/false），实际是 {value!r}", field="enabled")


async def check_condition(session: AsyncSession, condition: Any) -> str | None:
    """The condition text (None if blank), or InvalidScript carrying the RuleError's message and position."""
    text = _text(condition, "condition", "条件", limit=2000, required=False)
    if not text:
        return None
    try:
        await validate_rule(session, text)
    except RuleError as exc:
        raise InvalidScript(f"条件有误：{exc}", field="condition", position=exc.position) from None
    return text


@dataclass(frozen=True)
class ScriptDraft:
    """A validated script, ready to store; ``category`` is a category name."""

    category: str
    title: str
    body: str
    condition: str | None
    priority: int
    enabled: bool
    attachment: dict[str, Any] | None


async def check_draft(session: AsyncSession, raw: Mapping[str, Any]) -> ScriptDraft:
    """Validate a script given as {category | category_id, title, body, condition, priority, enabled, attachment}."""
    category = raw.get("category")
    if raw.get("category_id") is not None and not category:
        found = await session.get(ScriptCategory, raw["category_id"]) if isinstance(raw["category_id"], int) else None
        if found is None:
            raise InvalidScript(f"分类 {raw['category_id']} 不存在", field="category_id")
        category = found.name
    body = _text(raw.get("body"), "body", "内容", limit=BODY_MAX)
    check_body(body)
    return ScriptDraft(
        category=_text(category, "category", "分类", limit=CATEGORY_MAX),
        title=_text(raw.get("title"), "title", "标题", limit=TITLE_MAX),
        body=body,
        condition=await check_condition(session, raw.get("condition")),
        priority=_priority(raw.get("priority")),
        enabled=_enabled(raw.get("enabled")),
        attachment=await _known_asset(session, check_attachment(raw.get("attachment"))),
    )


async def _known_asset(session: AsyncSession, card: dict[str, Any] | None) -> dict[str, Any] | None:
    if card and card.get("asset_id") and await session.get(MediaAsset, card["asset_id"]) is None:
        raise InvalidScript(f"素材库中没有编号为 {card['asset_id']} 的图片，请先上传", field="attachment")
    return card


# -- categories --------------------------------------------------------------------------------


async def list_categories(session: AsyncSession) -> list[dict[str, Any]]:
    """Every category with how many enabled scripts it holds, in display order."""
    return await load_categories(session)


async def ensure_category(session: AsyncSession, name: str) -> ScriptCategory:
    """The category called ``name``, created (order 0) if new."""
    category = await session.scalar(select(ScriptCategory).where(ScriptCategory.name == name))
    if category is None:
        category = ScriptCategory(name=name, order=0)
        session.add(category)
        await session.flush()
        library_changed(session)
    return category


async def save_category(session: AsyncSession, name: Any, order: Any = None, *,
                        category_id: int | None = None) -> ScriptCategory:
    """Create a category, or rename / reorder ``category_id``; Conflict if the name is taken."""
    if order is not None and (not isinstance(order, int) or isinstance(order, bool)):
        raise InvalidScript("排序 order 须为整数", field="order")
    category = None
    if category_id is not None:
        category = await session.get(ScriptCategory, category_id)
        if category is None:
            raise NotFound(f"话术分类 {category_id} 不存在。")
    library_changed(session)
    clean = None if name is None and category else _text(name, "name", "分类名称", limit=CATEGORY_MAX)
    if clean is not None:
        taken = await session.scalar(select(ScriptCategory.id).where(ScriptCategory.name == clean))
        if taken is not None and taken != category_id:
            raise Conflict(f"分类「{clean}」已存在。")
    if category is None:
        category = ScriptCategory(name=clean, order=order or 0)
        session.add(category)
    else:
        if clean is not None:
            category.name = clean
        if order is not None:
            category.order = order
    await session.flush()
    return category


async def delete_category(session: AsyncSession, category_id: int) -> None:
    """Delete an empty category; Conflict while scripts are still in it."""
    category = await session.get(ScriptCategory, category_id)
    if category is None:
        raise NotFound(f"话术分类 {category_id} 不存在。")
    used = await session.scalar(select(func.count()).where(TalkScript.category_id == category_id))
    if used:
        raise Conflict(f"分类「{category.name}」下还有 {used} 条话术，请先移走或删除这些话术。")
    library_changed(session)
    await session.delete(category)


# -- scripts -----------------------------------------------------------------------------------


def script_dict(script: TalkScript, category: str) -> dict[str, Any]:
    """A stored script as the admin API shows it."""
    return {"id": script.id, "category_id": script.category_id, "category": category, "title": script.title,
            "body": script.body, "condition": script.condition, "priority": script.priority,
            "enabled": script.enabled, "attachment": script.attachment,
            "created_at": script.created_at.isoformat(), "updated_at": script.updated_at.isoformat()}


def _draft_dict(script: TalkScript, category: str) -> dict[str, Any]:
    return {"category": category, "title": script.title, "body": script.body, "condition": script.condition,
            "priority": script.priority, "enabled": script.enabled, "attachment": script.attachment}


async def store_draft(session: AsyncSession, draft: ScriptDraft, now: dt.datetime,
                      script: TalkScript | None = None) -> TalkScript:
    category = await ensure_category(session, draft.category)
    library_changed(session)
    if script is None:
        script = TalkScript(created_at=now)
        session.add(script)
    script.category_id, script.title, script.body = category.id, draft.title, draft.body
    script.condition, script.priority, script.enabled = draft.condition, draft.priority, draft.enabled
    script.attachment, script.updated_at = draft.attachment, now
    await session.flush()
    return script


async def create_script(session: AsyncSession, raw: Mapping[str, Any], *, now: dt.datetime) -> dict[str, Any]:
    """Validate and store a new script (its category is created if new)."""
    draft = await check_draft(session, raw)
    return script_dict(await store_draft(session, draft, now), draft.category)


async def _script_and_category(session: AsyncSession, script_id: int) -> tuple[TalkScript, str]:
    row = (await session.execute(select(TalkScript, ScriptCategory.name)
                                 .join(ScriptCategory, ScriptCategory.id == TalkScript.category_id)
                                 .where(TalkScript.id == script_id))).first()
    if row is None:
        raise NotFound(f"话术 {script_id} 不存在或已删除。")
    return row[0], row[1]


async def get_script(session: AsyncSession, script_id: int) -> dict[str, Any]:
    """One script as the admin API shows it."""
    return script_dict(*await _script_and_category(session, script_id))


async def update_script(session: AsyncSession, script_id: int, changes: Mapping[str, Any], *,
                        now: dt.datetime) -> dict[str, Any]:
    """Apply the given fields to a script and validate the result as a whole."""
    script, category = await _script_and_category(session, script_id)
    raw = _draft_dict(script, category) | dict(changes)
    if "category_id" in changes and "category" not in changes:
        raw.pop("category")
    draft = await check_draft(session, raw)
    return script_dict(await store_draft(session, draft, now, script), draft.category)


async def delete_script(session: AsyncSession, script_id: int) -> None:
    """Delete a script (its send records go with it)."""
    script, _ = await _script_and_category(session, script_id)
    library_changed(session)
    await session.delete(script)


def _filters(q: str | None, category: str | None) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if q and q.strip():
        term = q.strip()
        conds.append(or_(TalkScript.title.icontains(term, autoescape=True),
                         TalkScript.body.icontains(term, autoescape=True),
                         ScriptCategory.name.icontains(term, autoescape=True)))
    if category and category.strip():
        value = category.strip()
        conds.append(ScriptCategory.id == int(value) if value.isdigit() else ScriptCategory.name == value)
    return conds


async def list_scripts(session: AsyncSession, *, q: str | None = None,
                       category: str | None = None) -> list[dict[str, Any]]:
    """Every script (enabled or not), filtered by search text and category (id or name)."""
    rows = (await session.execute(
        select(TalkScript, ScriptCategory.name).join(ScriptCategory, ScriptCategory.id == TalkScript.category_id)
        .where(*_filters(q, category))
        .order_by(ScriptCategory.order.desc(), ScriptCategory.id, TalkScript.priority.desc(), TalkScript.id))).all()
    return [script_dict(s, c) for s, c in rows]


# -- matching, ranking and filling -------------------------------------------------------------


def specificity(rule: Rule) -> int:
    """How many atoms (comparisons, purchase tests) a condition has: more is more specific."""
    return sum(1 for node in walk(rule.root) if isinstance(node, (Compare, Between, In, Bought)))


@functools.lru_cache(maxsize=64)
def _union_of_probes(rules: tuple[tuple[int, Rule], ...]) -> tuple[Select[Any], frozenset[int]]:
    """``SELECT <script id> WHERE EXISTS (probe)`` for each rule, as one UNION, built once per set of rules."""
    probes = [(script_id, customer_probe(rule)) for script_id, rule in rules]
    parts = [select(literal_column(str(int(script_id))).label("script_id")).where(probe.statement.exists())
             for script_id, probe in probes]
    statement = parts[0] if len(parts) == 1 else union_all(*parts)
    return statement, frozenset().union(*(probe.days for _, probe in probes))  # type: ignore[return-value]


async def matched_script_ids(session: AsyncSession, rules: Sequence[tuple[int, Rule]], customer_id: int,
                             *, now: dt.datetime) -> set[int]:
    """Which of the (script id, condition) pairs match the customer now: one UNION query per 200 scripts."""
    matched: set[int] = set()
    for start in range(0, len(rules), _UNION_CHUNK):
        statement, days = _union_of_probes(tuple(rules[start:start + _UNION_CHUNK]))
        rows = await session.scalars(statement, probe_params(days, customer_id, now))
        matched.update(int(i) for i in rows.all())
    return matched


def fill(body: str, values: Mapping[str, str]) -> str:
    """The body with every {variable} replaced; unknown or empty values become their fallback."""
    def one(match: re.Match[str]) -> str:
        name = match.group(1).strip()
        return values.get(name) or FALLBACKS.get(name, "")
    return _PLACEHOLDER.sub(one, body)


def _plain_yuan(text: str | None) -> str:
    if not text:
        return ""
    return text[:-3] if text.endswith(".00") else text.rstrip("0") if "." in text else text


async def last_product(session: AsyncSession, customer_id: int) -> str:
    """Name of the first item of the customer's latest counted order ('' if none)."""
    name = await session.scalar(
        select(OrderItem.name).join(Order, Order.id == OrderItem.order_id)
        .where(Order.customer_id == customer_id, counted())
        .order_by(purchase_time().desc(), Order.id.desc(), OrderItem.id).limit(1))
    return name or ""


# Only what the variables need (name, membership, last product), in one statement built once: the
# whole profile is the profile endpoint's job, and loading it again here cost a third of a sidebar open.
_LAST_PRODUCT: Final = (
    select(OrderItem.name).join(Order, Order.id == OrderItem.order_id)
    .where(Order.customer_id == Customer.id, counted())
    .order_by(purchase_time().desc(), Order.id.desc(), OrderItem.id).limit(1)
    .correlate(Customer).scalar_subquery()
)
_VARIABLES: Final = (
    select(Customer.merged_into_id, Customer.name, Membership.customer_id, Membership.points, Membership.tier,
           Membership.next_tier, Membership.next_tier_gap_cents, _LAST_PRODUCT)
    .outerjoin(Membership, Membership.customer_id == Customer.id).where(Customer.id == bindparam("cid"))
)


async def variable_values(session: AsyncSession, viewer: Viewer, customer_id: int | None) -> dict[str, str]:
    """The variables' values for this guide and customer; '' where unknown (``fill`` applies fallbacks)."""
    values = {name: "" for name in VARIABLES} | {"guide_name": viewer.name, "store_name": viewer.store_name}
    if customer_id is None:
        return values
    row = (await session.execute(_VARIABLES, {"cid": customer_id})).one()
    if row.merged_into_id is not None:
        row = (await session.execute(_VARIABLES, {"cid": (await surviving(session, customer_id)).id})).one()
    _, name, member, points, tier, next_tier, gap, product = row
    values |= {"customer_name": name.strip(), "last_product": product or ""}
    if member is not None:
        values |= {
            "points": str(points) if points is not None else "",
            "tier": tier,
            "tier_gap": _plain_yuan(yuan(gap) if gap is not None else None),
            "next_tier": next_tier,
        }
    return values


@dataclass(frozen=True)
class Suggestion:
    """A script as a guide gets it: filled in, scored, and whether its condition matched."""

    id: int
    title: str
    category: str
    text: str
    attachment: dict[str, Any] | None
    score: int
    matched: bool

    def as_json(self) -> dict[str, Any]:
        """JSON-ready (not dataclasses.asdict: it deep-copies every card on the sidebar's hot path)."""
        return {"id": self.id, "title": self.title, "category": self.category, "text": self.text,
                "attachment": self.attachment, "score": self.score, "matched": self.matched}


async def suggest_scripts(session: AsyncSession, customer_id: int | None, values: Mapping[str, str], *,
                          now: dt.datetime, q: str | None = None, category: str | None = None) -> list[Suggestion]:
    """Enabled scripts for one customer (or none: a group chat), ranked, with variables filled."""
    browsing = bool((q and q.strip()) or (category and category.strip()))
    candidates: Sequence[LibraryScript]
    if browsing:  # rare, and the database's LIKE decides what a search finds: ask it
        candidates = library_scripts((await session.execute(
            SCRIPT_COLUMNS.where(TalkScript.enabled.is_(True), *_filters(q, category)))).all())
    else:
        candidates = (await script_library(session)).scripts
    rules = [(script.id, script.rule) for script in candidates if script.rule is not None]
    matched = (await matched_script_ids(session, rules, customer_id, now=now)
               if customer_id is not None and rules else set())
    found: list[Suggestion] = []
    for script in candidates:
        if not script.condition:
            score, hit = _UNCONDITIONAL_BASE + script.priority * 100, False
        elif script.rule is not None and script.id in matched:
            score, hit = _MATCHED_BASE + script.priority * 100 + min(specificity(script.rule), 99), True
        elif browsing:
            score, hit = script.priority * 100, False
        else:
            continue
        found.append(Suggestion(script.id, script.title, script.category, fill(script.body, values),
                                _filled_card(script.attachment, values), score, hit))
    found.sort(key=lambda s: (-s.score, s.id))
    return found[:MAX_SUGGESTIONS]


def _filled_card(card: dict[str, Any] | None, values: Mapping[str, str]) -> dict[str, Any] | None:
    if not card:
        return None
    return {k: fill(v, values) if k in ("title", "desc") and isinstance(v, str) else v for k, v in card.items()}


def _check_target_id(value: str, what: str) -> None:
    if not value or len(value) > MAX_TARGET_ID:
        raise NotFound(f"{what}编号无效。")


async def scripts_for_contact(session: AsyncSession, userid: str, external_userid: str | None, *,
                              now: dt.datetime, q: str | None = None, category: str | None = None) -> dict[str, Any]:
    """What the sidebar shows: ranked, filled scripts for the customer (if any) the viewer may see."""
    viewer = await load_viewer(session, userid)
    customer_id = None
    if external_userid is not None:
        _check_target_id(external_userid, "客户")
        customer_id = await customer_in_scope(session, viewer, external_userid)
    values = await variable_values(session, viewer, customer_id)
    suggestions = await suggest_scripts(session, customer_id, values, now=now, q=q, category=category)
    categories = [dict(c) for c in (await script_library(session)).categories]
    return {"scripts": [s.as_json() for s in suggestions], "categories": categories, "variables": VARIABLES}


# -- sends and stats ---------------------------------------------------------------------------


def parse_send_target(body: Any) -> tuple[str, str]:
    """``("external_userid" | "chat_id", value)`` from the request body, or InvalidRequest."""
    if not isinstance(body, dict):
        raise InvalidRequest('请求体须为 JSON 对象，例如 {"external_userid": "wm…"} 或 {"chat_id": "wr…"}。')
    given = [(k, body[k]) for k in ("external_userid", "chat_id") if body.get(k) not in (None, "")]
    if len(given) != 1 or not isinstance(given[0][1], str):
        raise InvalidRequest("请提供 external_userid（单聊客户）或 chat_id（客户群）其中之一。")
    return given[0][0], given[0][1].strip()


async def record_send(session: AsyncSession, userid: str, script_id: int, target: tuple[str, str], *,
                      now: dt.datetime) -> dict[str, Any]:
    """Record (and audit) that the viewer sent a script into a chat they may see."""
    viewer = await load_viewer(session, userid)
    script, _ = await _script_and_category(session, script_id)
    kind, value = target
    customer_id = None
    if kind == "external_userid":
        _check_target_id(value, "客户")
        customer_id = await customer_in_scope(session, viewer, value)
    else:
        _check_target_id(value, "客户群")
        group = await session.scalar(select(CustomerGroup).where(CustomerGroup.chat_id == value))
        if group is None:
            raise NotFound("该客户群尚未同步，请先打开客户群资料。")
        await check_group_access(session, viewer, group)
    send = ScriptSend(script_id=script.id, staff_id=viewer.staff_id, customer_id=customer_id,
                      external_userid=value if kind == "external_userid" else "",
                      chat_id=value if kind == "chat_id" else "", sent_at=now)
    session.add(send)
    session.add(audit(viewer.userid, "script_sent", "script", str(script.id), now, title=script.title,
                      customer_id=customer_id, **{kind: value}))
    await session.flush()
    return {"id": send.id, "script_id": script.id, "customer_id": customer_id, kind: value,
            "sent_at": now.isoformat()}


def _conversions(dialect: str, key: ColumnElement[Any], conds: Iterable[ColumnElement[bool]]) -> Select[Any]:
    """Distinct customers per ``key`` with a counted order within CONVERSION_DAYS after a send."""
    bought = purchase_time()
    return (
        select(key, func.count(ScriptSend.customer_id.distinct()))
        .join(Order, and_(Order.customer_id == ScriptSend.customer_id, counted(), bought > ScriptSend.sent_at,
                          within_days(bought, ScriptSend.sent_at, CONVERSION_DAYS, dialect)))
        .where(*conds)
        .group_by(key)
    )


def _rate(conversions: int, customers_reached: int) -> float:
    return round(conversions / customers_reached, 4) if customers_reached else 0.0


async def script_stats(session: AsyncSession, *, since: dt.datetime | None = None) -> dict[str, Any]:
    """Per script: sends, customers reached, conversions (counted order within 7 days), rate; per guide sends."""
    dialect = session.bind.dialect.name
    conds = [ScriptSend.sent_at >= since] if since is not None else []
    sends = (select(ScriptSend.script_id, func.count(), func.count(ScriptSend.customer_id.distinct()))
             .where(*conds).group_by(ScriptSend.script_id))
    per_script = {sid: (n, c) for sid, n, c in (await session.execute(sends)).all()}
    converted = dict((await session.execute(_conversions(dialect, ScriptSend.script_id, conds))).all())
    scripts = (await session.execute(
        select(TalkScript.id, TalkScript.title, ScriptCategory.name)
        .join(ScriptCategory, ScriptCategory.id == TalkScript.category_id).order_by(TalkScript.id))).all()
    rows = []
    for sid, title, category in scripts:
        n, reached = per_script.get(sid, (0, 0))
        conv = converted.get(sid, 0)
        rows.append({"script_id": sid, "title": title, "category": category, "sends": n, "customers": reached,
                     "conversions": conv, "conversion_rate": _rate(conv, reached)})
    rows.sort(key=lambda r: (-r["sends"], r["script_id"]))
    guide_rows = (await session.execute(
        select(Staff.id, Staff.userid, Staff.name, func.count(), func.count(ScriptSend.customer_id.distinct()))
        .join(ScriptSend, ScriptSend.staff_id == Staff.id).where(*conds)
        .group_by(Staff.id, Staff.userid, Staff.name))).all()
    guide_conv = dict((await session.execute(_conversions(dialect, ScriptSend.staff_id, conds))).all())
    guides = sorted(
        ({"userid": userid, "name": name, "sends": n, "customers": reached,
          "conversions": guide_conv.get(staff_id, 0), "conversion_rate": _rate(guide_conv.get(staff_id, 0), reached)}
         for staff_id, userid, name, n, reached in guide_rows),
        key=lambda g: (-g["sends"], g["userid"]))
    return {"scripts": rows, "guides": guides, "conversion_days": CONVERSION_DAYS,
            "since": since.isoformat() if since else None}


# -- import and export -------------------------------------------------------------------------

#: CSV columns (and JSON keys, which may also be the English names on the right).
COLUMNS: Final[dict[str, str]] = {"分类": "category", "标题": "title", "内容": "body", "条件": "condition",
                                  "优先级": "priority", "启用": "enabled", "附件": "attachment"}
REQUIRED_COLUMNS: Final = ("分类", "标题", "内容")
MAX_IMPORT_ROWS: Final = 2000


def parse_import(text: str) -> list[dict[str, Any]]:
    """Rows of a JSON array or a CSV text (header 分类,标题,内容[,条件,优先级,启用,附件]) as raw script dicts."""
    text = text.lstrip("\ufeff").strip()
    if not text:
        raise InvalidScript("导入内容为空：请提供 JSON 数组，或带表头（分类,标题,内容,条件,优先级）的 CSV。")
    if text.startswith("["):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InvalidScript(f"JSON 格式有误：{exc}") from None
        if not all(isinstance(item, dict) for item in data):
            raise InvalidScript("JSON 数组的每一项须为对象，如 {\"分类\": \"…\", \"标题\": \"…\", \"内容\": \"…\"}")
        rows = [{COLUMNS.get(k, k): v for k, v in item.items()} for item in data]
    else:
        reader = csv.DictReader(io.StringIO(text))
        header = [h.strip() for h in reader.fieldnames or []]
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise InvalidScript(f"CSV 表头缺少列：{'、'.join(missing)}（表头应为 {','.join(COLUMNS)}，后四列可省略）")
        unknown = [h for h in header if h not in COLUMNS]
        if unknown:
            raise InvalidScript(f"CSV 表头有未知列：{'、'.join(unknown)}（可用列：{','.join(COLUMNS)}）")
        reader.fieldnames = header
        rows = [{COLUMNS[k]: v for k, v in record.items() if k in COLUMNS} for record in reader]
    if len(rows) > MAX_IMPORT_ROWS:
        raise InvalidScript(f"一次最多导入 {MAX_IMPORT_ROWS} 条话术（本次 {len(rows)} 条）。")
    return rows


async def import_scripts(session: AsyncSession, rows: Sequence[Mapping[str, Any]], *,
                         now: dt.datetime) -> dict[str, Any]:
    """Validate every row; store the valid ones (same category and title: updated), report the others."""
    created = updated = 0
    errors: list[dict[str, Any]] = []
    for number, raw in enumerate(rows, 1):
        try:
            draft = await check_draft(session, raw)
        except InvalidScript as exc:
            errors.append({"row": number, "title": str(raw.get("title") or ""), "error": f"第{number}条：{exc.message}",
                           **exc.detail})
            continue
        existing = await session.scalar(
            select(TalkScript).join(ScriptCategory, ScriptCategory.id == TalkScript.category_id)
            .where(ScriptCategory.name == draft.category, TalkScript.title == draft.title).limit(1))
        await store_draft(session, draft, now, existing)
        created, updated = (created, updated + 1) if existing else (created + 1, updated)
    return {"total": len(rows), "created": created, "updated": updated, "errors": errors}


async def export_scripts(session: AsyncSession) -> list[dict[str, Any]]:
    """Every script in the import shape (English keys), categories in display order."""
    rows = (await session.execute(
        select(TalkScript, ScriptCategory.name).join(ScriptCategory, ScriptCategory.id == TalkScript.category_id)
        .order_by(ScriptCategory.order.desc(), ScriptCategory.id, TalkScript.priority.desc(), TalkScript.id))).all()
    return [_draft_dict(s, c) for s, c in rows]


def to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """Exported scripts as CSV with Chinese headers (and a BOM, so Excel reads it as UTF-8)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(list(COLUMNS))
    for row in rows:
        writer.writerow([
            row["category"], row["title"], row["body"], row["condition"] or "", row["priority"],
            "是" if row["enabled"] else "否",
            json.dumps(row["attachment"], ensure_ascii=False) if row["attachment"] else "",
        ])
    return "\ufeff" + out.getvalue()


__all__ = [
    "ATTACHMENT_TYPES", "COLUMNS", "CONVERSION_DAYS", "FALLBACKS", "InvalidScript", "ScriptDraft", "Suggestion",
    "VARIABLES", "check_attachment", "check_body", "check_condition", "check_draft", "create_script",
    "delete_category", "delete_script", "ensure_category", "export_scripts", "fill", "get_script", "import_scripts",
    "last_product", "list_categories", "list_scripts", "matched_script_ids", "parse_import", "parse_send_target",
    "record_send", "save_category", "script_dict", "script_stats", "scripts_for_contact",
    "specificity", "suggest_scripts", "to_csv", "update_script", "variable_values",
]
