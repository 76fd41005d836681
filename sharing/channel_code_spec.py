"""A channel code as the admin describes it: parsed, shape-checked and checked against the database.

Every refusal is a ``ChannelCodeError`` whose Chinese message names the field, in the JSON path the
admin sent (``members[1].schedule[0]``, ``welcome.attachments[3].asset_id`` ...).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from media.attachments import InvalidAttachment, parse_attachments
from models import ChannelKind, DutyRole, MediaAsset, Staff, Store, Tag, TagGroup, TagRule
from scrm.errors import FieldError
from sharing.channel_code_duty import DutyMember, InvalidSlot, Slot, parse_clock

MAX_NAME_CHARS: Final = 64
MAX_MEMBERS: Final = 100  # a contact way takes at most 100 users (PROTOCOL.md §4.6)
MAX_SLOTS: Final = 50
MAX_TAGS: Final = 50
WELCOME_TEXT_BYTES: Final = 4000


class ChannelCodeError(FieldError):
    """A request about a channel code that cannot be honoured; ``message`` is Chinese and names ``field``."""


class ChannelCodeNotFound(ChannelCodeError):
    """No channel code with that id."""

    status = 404


class ChannelCodeGone(ChannelCodeError):
    """The code is disabled (or not made yet): it has no working QR code."""

    status = 409


class WeComRefused(ChannelCodeError):
    """WeCom refused or could not be reached; ``message`` carries its errcode and what it means."""

    status = 502


@dataclass(frozen=True)
class MemberSpec:
    """A guide on a code as the admin gave it."""

    userid: str
    role: DutyRole
    slots: tuple[Slot, ...] = ()


@dataclass(frozen=True)
class CodeSpec:
    """A whole code as the admin wants it (shape-checked; references are checked against the database)."""

    name: str
    kind: ChannelKind
    store_id: int | None
    skip_verify: bool
    members: tuple[MemberSpec, ...]
    tags: tuple[int | str, ...] = ()
    welcome_text: str = ""
    attachments: tuple[dict[str, Any], ...] = ()

    def duty_members(self) -> list[DutyMember]:
        """The members as the duty rules see them."""
        return [DutyMember(m.userid, m.role.value, m.slots) for m in self.members]  # type: ignore[arg-type]


def _str(body: Mapping[str, Any], key: str, field: str, *, required: bool = False) -> str:
    value = body.get(key)
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ChannelCodeError(f"{field} 须为字符串", field)
    value = value.strip()
    if required and not value:
        raise ChannelCodeError(f"{field} 不能为空", field)
    return value


def _int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        raise ChannelCodeError(f"{field} 须为整数", field)
    return value


def _bytes_at_most(value: str, limit: int, field: str) -> None:
    if len(value.encode()) > limit:
        raise ChannelCodeError(f"{field} 不能超过 {limit} 字节（企业微信的限制），"
                               f"当前 {len(value.encode())} 字节", field)


def _parse_slots(raw: Any, field: str) -> tuple[Slot, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ChannelCodeError(f'{field} 须为时段列表，例如 '
                               f'[{{"weekday": 0, "start": "09:00", "end": "18:00"}}]', field)
    if len(raw) > MAX_SLOTS:
        raise ChannelCodeError(f"{field} 最多 {MAX_SLOTS} 个时段", field)
    slots: list[Slot] = []
    for i, item in enumerate(raw):
        where = f"{field}[{i}]"
        if isinstance(item, list) and len(item) == 3:
            item = {"weekday": item[0], "start": item[1], "end": item[2]}
        if not isinstance(item, dict):
            raise ChannelCodeError(f'{where} 须为 {{"weekday": 0-6, "start": "HH:MM", "end": "HH:MM"}}', where)
        try:
            weekday = _int(item.get("weekday"), f"{where}.weekday")
            start, end = parse_clock(item.get("start")), parse_clock(item.get("end"))
        except ValueError:
            raise ChannelCodeError(f"{where} 的开始、结束时间须为 HH:MM（00:00–24:00）", where) from None
        try:
            slots.append(Slot(weekday, start, end))
        except InvalidSlot as exc:
            raise ChannelCodeError(f"{where}：{exc.message}", where) from None
    return tuple(dict.fromkeys(slots))


def _parse_members(raw: Any) -> tuple[MemberSpec, ...]:
    if not isinstance(raw, list) or not raw:
        raise ChannelCodeError("members 不能为空：至少需要一位导购", "members")
    if len(raw) > MAX_MEMBERS:
        raise ChannelCodeError(f"members 最多 {MAX_MEMBERS} 位导购（企业微信「联系我」的上限）", "members")
    members: list[MemberSpec] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        where = f"members[{i}]"
        if isinstance(item, str):
            item = {"userid": item}
        if not isinstance(item, dict):
            raise ChannelCodeError(f'{where} 须为 {{"userid": "...", "role": "primary", "schedule": [...]}}', where)
        userid = _str(item, "userid", f"{where}.userid", required=True)
        if userid.lower() in seen:
            raise ChannelCodeError(f"导购「{userid}」重复出现", f"{where}.userid")
        seen.add(userid.lower())
        role_text = item.get("role", "primary")
        try:
            role = DutyRole(role_text)
        except ValueError:
            raise ChannelCodeError(f"{where}.role 须为 primary（主导购）或 backup（备用导购）",
                                   f"{where}.role") from None
        members.append(MemberSpec(userid, role, _parse_slots(item.get("schedule"), f"{where}.schedule")))
    if not any(m.role is DutyRole.PRIMARY for m in members):
        raise ChannelCodeError("至少需要一位主导购（role = primary）", "members")
    return tuple(members)


def _parse_tags(raw: Any) -> tuple[int | str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_TAGS:
        raise ChannelCodeError(f"tag_ids 须为标签编号的列表（最多 {MAX_TAGS} 个）", "tag_ids")
    tags: list[int | str] = []
    for i, item in enumerate(raw):
        if isinstance(item, int) and not isinstance(item, bool):
            tags.append(item)
        elif isinstance(item, str) and item.strip():
            tags.append(int(item) if item.strip().isdigit() else item.strip())
        else:
            raise ChannelCodeError("tag_ids 的每一项须为标签编号", f"tag_ids[{i}]")
    return tuple(dict.fromkeys(tags))


def _parse_welcome(raw: Any, base: CodeSpec | None) -> tuple[str, tuple[dict[str, Any], ...]]:
    text = base.welcome_text if base else ""
    attachments = base.attachments if base else ()
    if raw is None:
        return text, attachments
    if not isinstance(raw, dict):
        raise ChannelCodeError('welcome 须为对象，例如 {"text": "您好", "attachments": []}', "welcome")
    if "text" in raw:
        text = _str(raw, "text", "welcome.text")
        _bytes_at_most(text, WELCOME_TEXT_BYTES, "welcome.text")
    if "attachments" in raw:
        try:
            attachments = parse_attachments(raw["attachments"], "welcome.attachments", "欢迎语")
        except InvalidAttachment as exc:
            raise ChannelCodeError(exc.message, exc.field) from None
    return text, attachments


def parse_spec(body: Any, base: CodeSpec | None = None) -> CodeSpec:
    """The admin's JSON as a CodeSpec; with ``base`` (an update) the keys given replace base's."""
    if not isinstance(body, dict):
        raise ChannelCodeError("请求体须为 JSON 对象")
    if base is None or "name" in body:
        name = _str(body, "name", "name", required=True)
        if len(name) > MAX_NAME_CHARS:
            raise ChannelCodeError(f"name 最多 {MAX_NAME_CHARS} 个字", "name")
    else:
        name = base.name
    kind = base.kind if base else ChannelKind.CAMPAIGN
    if "kind" in body:
        try:
            kind = ChannelKind(body["kind"])
        except ValueError:
            raise ChannelCodeError("kind 须为 campaign（活动）或 store（门店）", "kind") from None
    store_id = base.store_id if base else None
    if "store_id" in body:
        store_id = None if body["store_id"] in (None, "") else _int(body["store_id"], "store_id")
    if kind is ChannelKind.STORE and store_id is None:
        raise ChannelCodeError("门店渠道码须指定 store_id", "store_id")
    skip_verify = base.skip_verify if base else True
    if "skip_verify" in body:
        if not isinstance(body["skip_verify"], bool):
            raise ChannelCodeError("skip_verify 须为 true 或 false", "skip_verify")
        skip_verify = body["skip_verify"]
    members = _parse_members(body["members"]) if base is None or "members" in body else base.members
    tags = _parse_tags(body["tag_ids"]) if "tag_ids" in body else (base.tags if base else ())
    text, attachments = _parse_welcome(body.get("welcome"), base)
    return CodeSpec(name, kind, store_id, skip_verify, members, tags, text, attachments)


@dataclass(frozen=True)
class Resolved:
    """A spec's references found in the database."""

    staff_ids: dict[str, int]  # userid -> staff.id
    tag_ids: tuple[int, ...]


async def resolve_spec(session: AsyncSession, spec: CodeSpec) -> Resolved:
    """Check the guides, store, tags and media assets a spec names; ChannelCodeError naming the field otherwise."""
    userids = [m.userid for m in spec.members]
    rows = (await session.execute(select(Staff.userid, Staff.id, Staff.wecom_status)
                                  .where(func.lower(Staff.userid).in_([u.lower() for u in userids])))).all()
    found = {u.lower(): (sid, status) for u, sid, status in rows}
    staff_ids: dict[str, int] = {}
    for i, userid in enumerate(userids):
        if userid.lower() not in found:
            raise ChannelCodeError(f"导购「{userid}」不存在（请先同步企业微信成员）", f"members[{i}].userid")
        sid, status = found[userid.lower()]
        if status in (2, 5):
            raise ChannelCodeError(f"导购「{userid}」已{'停用' if status == 2 else '离职'}", f"members[{i}].userid")
        staff_ids[userid] = sid
    if spec.store_id is not None and await session.get(Store, spec.store_id) is None:
        raise ChannelCodeError(f"门店 {spec.store_id} 不存在", "store_id")
    tag_ids = await _resolve_tags(session, spec.tags)
    for i, item in enumerate(spec.attachments):
        key = "asset_id" if item["type"] == "image" else "pic_asset_id" if item["type"] == "miniprogram" else None
        if key and await session.scalar(select(MediaAsset.id).where(MediaAsset.id == item[key])) is None:
            raise ChannelCodeError(f"素材 {item[key]} 不存在：请先在 /admin/api/media 上传图片",
                                   f"welcome.attachments[{i}].{key}")
    return Resolved(staff_ids, tag_ids)


async def _resolve_tags(session: AsyncSession, wanted: Sequence[int | str]) -> tuple[int, ...]:
    if not wanted:
        return ()
    ids = [t for t in wanted if isinstance(t, int)]
    wecom_ids = [t for t in wanted if isinstance(t, str)]
    rows = (await session.execute(
        select(Tag, TagGroup.deleted).join(TagGroup, TagGroup.id == Tag.group_id)
        .where(or_(Tag.id.in_(ids), Tag.wecom_tag_id.in_(wecom_ids))))).all()
    by_key: dict[int | str, Tag] = {}
    for tag, group_deleted in rows:
        if not tag.deleted and not group_deleted:
            by_key[tag.id] = tag
            if tag.wecom_tag_id:
                by_key[tag.wecom_tag_id] = tag
    resolved: list[int] = []
    for i, key in enumerate(wanted):
        found = by_key.get(key)
        if found is None:
            raise ChannelCodeError(f"标签 {key} 不存在或已删除：请刷新标签列表后重试", f"tag_ids[{i}]")
        resolved.append(found.id)
    ruled = set((await session.scalars(select(TagRule.tag_id).where(
        TagRule.enabled.is_(True), TagRule.tag_id.in_(resolved)))).all())
    if ruled:
        index = next(i for i, t in enumerate(resolved) if t in ruled)
        raise ChannelCodeError("该标签由规则自动维护，不能由渠道码添加", f"tag_ids[{index}]")
    return tuple(dict.fromkeys(resolved))
