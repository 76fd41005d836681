"""A push as the admin describes it: parsed and shape-checked, then checked against the database.

Every refusal is a ``PushError`` whose Chinese message names the field in the JSON path the admin
sent (``audience.tag_ids``, ``content.attachments[2].url``, ``schedule.at`` ...).
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from media.attachments import InvalidAttachment, asset_ids, parse_attachments
from models import Customer, MediaAsset, Segment, Staff, Store, Tag
from pushes.errors import PushError
from pushes.schedule import Schedule, load_schedule, parse_schedule

NAME_MAX: Final = 128
TEXT_MAX_BYTES: Final = 4000  # add_msg_template text.content (PROTOCOL.md §4.8)
MAX_EXPLICIT: Final = 100_000
#: One text goes to all of a guide's customers in one WeCom task, so only the guide's variables can
#: be filled; a customer's name cannot differ within one mass message.
VARIABLES: Final[dict[str, str]] = {"guide_name": "导购姓名", "store_name": "门店名称"}
FALLBACKS: Final[dict[str, str]] = {"guide_name": "您的专属顾问", "store_name": "门店"}
_CUSTOMER_VARIABLES: Final = ("customer_name", "last_product", "points", "tier", "tier_gap", "next_tier")
_PLACEHOLDER: Final = re.compile(r"\{([^{}]*)\}")
AUDIENCE_KINDS: Final = ("segment", "tags", "customers", "groups")


@dataclass(frozen=True)
class PushSpec:
    """A whole push as the admin wants it."""

    name: str
    chat_type: str
    audience: dict[str, Any]
    text: str
    attachments: tuple[dict[str, Any], ...]
    schedule: Schedule
    timezone: str
    cap: int | None

    @property
    def content(self) -> dict[str, Any]:
        """How the content is stored on the push."""
        return {"text": self.text, "attachments": [dict(a) for a in self.attachments]}


def _ints(raw: Any, field: str, *, limit: int) -> list[int]:
    if not isinstance(raw, list) or not raw:
        raise PushError(f"{field} 须为非空的编号列表，例如 [1, 2]", field)
    if len(raw) > limit:
        raise PushError(f"{field} 最多 {limit} 个，当前 {len(raw)} 个", field)
    out: list[int] = []
    for i, value in enumerate(raw):
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise PushError(f"{field}[{i}] 须为正整数编号，实际是 {value!r}", f"{field}[{i}]")
        out.append(value)
    return list(dict.fromkeys(out))


def _strs(raw: Any, field: str) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(v, str) and v.strip() for v in raw):
        raise PushError(f"{field} 须为字符串列表", field)
    return list(dict.fromkeys(v.strip() for v in raw))


def parse_audience(raw: Any) -> dict[str, Any]:
    """The audience, normalised; the chat type follows from its kind (groups -> group, else single)."""
    if not isinstance(raw, dict) or raw.get("kind") not in AUDIENCE_KINDS:
        raise PushError('audience.kind 须为 segment（人群）、tags（标签）、customers（指定客户）或 groups（客户群），'
                        '例如 {"kind": "tags", "tag_ids": [3], "match": "any"}', "audience.kind")
    kind = raw["kind"]
    if kind == "segment":
        return {"kind": kind, "segment_id": _ints([raw.get("segment_id")], "audience.segment_id", limit=1)[0]}
    if kind == "tags":
        match = raw.get("match") or "any"
        if match not in ("any", "all"):
            raise PushError("audience.match 须为 any（任一标签）或 all（全部标签）", "audience.match")
        return {"kind": kind, "tag_ids": _ints(raw.get("tag_ids"), "audience.tag_ids", limit=100), "match": match}
    if kind == "customers":
        return {"kind": kind, "customer_ids": _ints(raw.get("customer_ids"), "audience.customer_ids",
                                                    limit=MAX_EXPLICIT)}
    owners = _strs(raw.get("owners"), "audience.owners")
    stores = _ints(raw["store_ids"], "audience.store_ids", limit=1000) if raw.get("store_ids") else []
    name = raw.get("name_contains") or ""
    if not isinstance(name, str):
        raise PushError("audience.name_contains 须为字符串", "audience.name_contains")
    if not (owners or stores or name.strip()):
        raise PushError("客户群受众至少要按群主（owners）、门店（store_ids）或群名（name_contains）之一筛选",
                        "audience")
    return {"kind": kind, "owners": owners, "store_ids": stores, "name_contains": name.strip()}


def check_text(text: str) -> None:
    """Refuse texts over 4000 bytes, customer variables (one text per guide task) and stray braces."""
    size = len(text.encode())
    if size > TEXT_MAX_BYTES:
        raise PushError(f"content.text 不能超过 {TEXT_MAX_BYTES} 字节（企业微信群发的限制），当前 {size} 字节",
                        "content.text", bytes=size)
    known = "、".join(f"{{{k}}}（{v}）" for k, v in VARIABLES.items())
    for m in _PLACEHOLDER.finditer(text):
        name = m.group(1).strip()
        if name in _CUSTOMER_VARIABLES:
            raise PushError(f"第{m.start() + 1}个字符附近：群发时同一条消息发给导购的所有客户，不能使用客户变量 "
                            f"{{{name}}}；可用变量：{known}", "content.text", position=m.start() + 1)
        if name not in VARIABLES:
            raise PushError(f"第{m.start() + 1}个字符附近：未知变量 {{{m.group(1)}}}，可用变量：{known}",
                            "content.text", position=m.start() + 1)
    stripped = _PLACEHOLDER.sub(lambda m: " " * len(m.group(0)), text)
    for i, ch in enumerate(stripped):
        if ch in "{}":
            raise PushError(f"第{i + 1}个字符附近：多余的花括号，变量写作 {{guide_name}}", "content.text",
                            position=i + 1)


def fill(text: str, values: Mapping[str, str]) -> str:
    """The text with the guide's variables filled (fallbacks where unknown)."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1).strip()) or FALLBACKS.get(m.group(1).strip(), ""), text)


def parse_spec(body: Any, *, now: dt.datetime, default_tz: str, base: PushSpec | None = None) -> PushSpec:
    """A create (``base`` None) or an edit (fields left out keep ``base``'s values)."""
    if not isinstance(body, dict):
        raise PushError("请求体须为 JSON 对象", "")
    name = base.name if base else ""
    if "name" in body or base is None:
        raw = body.get("name")
        if not isinstance(raw, str) or not raw.strip():
            raise PushError("name 不能为空：给这次群发起个名字，如「周三第二杯半价」", "name")
        name = raw.strip()
        if len(name) > NAME_MAX:
            raise PushError(f"name 最多 {NAME_MAX} 个字", "name")
    timezone = str(body.get("timezone") or (base.timezone if base else default_tz))
    try:
        tz = zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise PushError(f"timezone {timezone!r} 不是有效的时区（如 Asia/Shanghai）", "timezone") from None
    audience = parse_audience(body["audience"]) if "audience" in body or base is None else base.audience
    content = body.get("content") if "content" in body or base is None else None
    text, attachments = (base.text, base.attachments) if base and content is None else ("", ())
    if content is not None or base is None:
        if not isinstance(content, dict):
            raise PushError('content 须为对象，例如 {"text": "第二杯半价", "attachments": []}', "content")
        raw_text = content.get("text") or ""
        if not isinstance(raw_text, str):
            raise PushError("content.text 须为字符串", "content.text")
        text = raw_text.strip()
        try:
            attachments = parse_attachments(content.get("attachments"), "content.attachments", "群发")
        except InvalidAttachment as exc:
            raise PushError(exc.message, exc.field) from None
        if not text and not attachments:
            raise PushError("content 的文字和附件不能都为空", "content")
        check_text(text)
    if "schedule" in body or base is None:
        schedule = parse_schedule(body.get("schedule"), tz, now)
    else:
        schedule = base.schedule
    cap = base.cap if base and "cap" not in body else body.get("cap")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap <= 0):
        raise PushError(f"cap（每次最多发送的客户数）须为正整数或 null，实际是 {cap!r}", "cap")
    chat_type = "group" if audience["kind"] == "groups" else "single"
    return PushSpec(name, chat_type, audience, text, tuple(attachments), schedule, timezone, cap)


async def check_references(session: AsyncSession, spec: PushSpec) -> None:
    """Refuse ids that do not exist: the segment, tags, customers, owners, stores, media assets."""
    audience = spec.audience
    if audience["kind"] == "segment":
        if await session.get(Segment, audience["segment_id"]) is None:
            raise PushError(f"人群 {audience['segment_id']} 不存在", "audience.segment_id")
    elif audience["kind"] == "tags":
        found = set((await session.scalars(select(Tag.id).where(
            Tag.id.in_(audience["tag_ids"]), Tag.deleted.is_(False)))).all())
        missing = [t for t in audience["tag_ids"] if t not in found]
        if missing:
            raise PushError(f"标签 {missing} 不存在或已删除", "audience.tag_ids")
    elif audience["kind"] == "customers":
        wanted = audience["customer_ids"]
        found_n = 0
        for start in range(0, len(wanted), 500):
            found_n += await session.scalar(select(func.count()).select_from(Customer).where(
                Customer.id.in_(wanted[start:start + 500]))) or 0
        if found_n != len(wanted):
            raise PushError(f"有 {len(wanted) - found_n} 个客户编号不存在", "audience.customer_ids")
    else:
        if audience["owners"]:
            found = set((await session.scalars(select(Staff.userid).where(Staff.userid.in_(audience["owners"])))).all())
            missing_owners = [o for o in audience["owners"] if o not in found]
            if missing_owners:
                raise PushError(f"群主 {missing_owners} 不是本企业的成员", "audience.owners")
        if audience["store_ids"]:
            found = set((await session.scalars(select(Store.id).where(Store.id.in_(audience["store_ids"])))).all())
            missing_stores = [s for s in audience["store_ids"] if s not in found]
            if missing_stores:
                raise PushError(f"门店 {missing_stores} 不存在", "audience.store_ids")
    wanted_assets = asset_ids(spec.attachments)
    if wanted_assets:
        found = set((await session.scalars(select(MediaAsset.id).where(MediaAsset.id.in_(wanted_assets)))).all())
        missing_assets = [a for a in wanted_assets if a not in found]
        if missing_assets:
            raise PushError(f"素材 {missing_assets} 不在素材库中", "content.attachments")


def spec_of(push: Any) -> PushSpec:
    """The spec a stored push was saved from (the base of an edit)."""
    return PushSpec(push.name, push.chat_type, dict(push.audience), str(push.content.get("text") or ""),
                    tuple(push.content.get("attachments") or ()), load_schedule(push.schedule), push.timezone,
                    push.cap)
