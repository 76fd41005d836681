"""Saved segments and tag rules: create, update, delete with validation; live counts and previews.

Both store an expression of the rule language (customers/rules.py). An expression is validated in
full (syntax, fields, types and names) whenever it is saved or counted ad hoc; a stored one is only
parsed when used, so renaming a store later makes it match nothing rather than fail.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from customers.rules import Rule, RuleError, parse, validate_rule
from customers.rulesql import count_matching, matching_ids
from models import Customer, CustomerTag, Segment, Tag, TagGroup, TagRule, TagSource

DEFAULT_RULE_GROUP: Final = "规则标签"
NAME_MAX: Final = 128
DESCRIPTION_MAX: Final = 512
PREVIEW_MAX: Final = 200


class SegmentNotFound(LookupError):
    """No segment with that id."""


class TagRuleNotFound(LookupError):
    """No tag rule with that id."""


class NameTaken(ValueError):
    """The name (or the tag) is already used; the message says by what."""


class InvalidInput(ValueError):
    """A name or description that cannot be saved; the message is for the admin."""


@dataclass(frozen=True)
class PreviewRow:
    """One customer in a segment preview."""

    id: int
    name: str


@dataclass(frozen=True)
class TagRuleView:
    """A tag rule with its tag, as the admin list shows it."""

    id: int
    name: str
    expression: str
    description: str
    enabled: bool
    tag_id: int
    tag: str
    tag_group: str
    wecom: bool
    last_run_at: dt.datetime | None
    last_count: int | None
    updated_at: dt.datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        data = dataclasses.asdict(self)
        data["last_run_at"] = self.last_run_at.isoformat() if self.last_run_at else None
        data["updated_at"] = self.updated_at.isoformat()
        return data


def segment_dict(segment: Segment) -> dict[str, Any]:
    """A segment as JSON."""
    return {
        "id": segment.id,
        "name": segment.name,
        "expression": segment.expression,
        "description": segment.description,
        "created_at": segment.created_at.isoformat(),
        "updated_at": segment.updated_at.isoformat(),
    }


def _clean_name(name: str, what: str) -> str:
    name = (name or "").strip()
    if not name:
        raise InvalidInput(f"{what}不能为空")
    if len(name) > NAME_MAX:
        raise InvalidInput(f"{what}最多 {NAME_MAX} 个字符")
    return name


def _clean_description(description: str) -> str:
    description = (description or "").strip()
    if len(description) > DESCRIPTION_MAX:
        raise InvalidInput(f"说明最多 {DESCRIPTION_MAX} 个字符")
    return description


# -- segments ----------------------------------------------------------------------------------


async def list_segments(maker: async_sessionmaker[AsyncSession]) -> list[Segment]:
    """Every saved segment, by name."""
    async with maker() as session:
        return list((await session.scalars(select(Segment).order_by(Segment.name))).all())


async def get_segment(maker: async_sessionmaker[AsyncSession], segment_id: int) -> Segment:
    """One segment; raises SegmentNotFound."""
    async with maker() as session:
        segment = await session.get(Segment, segment_id)
    if segment is None:
        raise SegmentNotFound(f"分群 {segment_id} 不存在")
    return segment


async def _segment_name_free(session: AsyncSession, name: str, segment_id: int | None = None) -> None:
    other = await session.scalar(select(Segment.id).where(Segment.name == name))
    if other is not None and other != segment_id:
        raise NameTaken(f"已有同名分群「{name}」")


async def create_segment(
    maker: async_sessionmaker[AsyncSession], name: str, expression: str, *, now: dt.datetime, description: str = ""
) -> Segment:
    """Save a new segment after validating its expression; raises RuleError, NameTaken, InvalidInput."""
    name = _clean_name(name, "分群名称")
    description = _clean_description(description)
    try:
        async with maker.begin() as session:
            await validate_rule(session, expression)
            await _segment_name_free(session, name)
            segment = Segment(name=name, expression=expression.strip(), description=description,
                              created_at=now, updated_at=now)
            session.add(segment)
    except IntegrityError:  # a concurrent create with the same name
        raise NameTaken(f"已有同名分群「{name}」") from None
    return segment


async def update_segment(
    maker: async_sessionmaker[AsyncSession],
    segment_id: int,
    *,
    now: dt.datetime,
    name: str | None = None,
    expression: str | None = None,
    description: str | None = None,
) -> Segment:
    """Change a segment's name, expression or description (None keeps a value)."""
    try:
        async with maker.begin() as session:
            segment = await session.get(Segment, segment_id)
            if segment is None:
                raise SegmentNotFound(f"分群 {segment_id} 不存在")
            if name is not None:
                segment.name = _clean_name(name, "分群名称")
                await _segment_name_free(session, segment.name, segment_id)
            if expression is not None:
                await validate_rule(session, expression)
                segment.expression = expression.strip()
            if description is not None:
                segment.description = _clean_description(description)
            segment.updated_at = now
    except IntegrityError:
        raise NameTaken(f"已有同名分群「{name}」") from None
    return segment


async def delete_segment(maker: async_sessionmaker[AsyncSession], segment_id: int) -> None:
    """Delete a segment; raises SegmentNotFound."""
    async with maker.begin() as session:
        result = await session.execute(delete(Segment).where(Segment.id == segment_id))
        if not result.rowcount:
            raise SegmentNotFound(f"分群 {segment_id} 不存在")


async def _rule_of(session: AsyncSession, expression_or_segment: str | Segment) -> Rule:
    if isinstance(expression_or_segment, Segment):
        return parse(expression_or_segment.expression)
    return await validate_rule(session, expression_or_segment)


async def count_segment(
    maker: async_sessionmaker[AsyncSession], expression_or_segment: str | Segment, *, now: dt.datetime
) -> int:
    """How many customers match right now (one COUNT); an ad-hoc expression is validated first."""
    async with maker() as session:
        rule = await _rule_of(session, expression_or_segment)
        return int(await session.scalar(count_matching(rule, now=now)) or 0)


async def preview(
    maker: async_sessionmaker[AsyncSession],
    expression_or_segment: str | Segment,
    *,
    now: dt.datetime,
    limit: int = 20,
) -> list[PreviewRow]:
    """The first ``limit`` matching customers (by id) with their names."""
    limit = max(1, min(limit, PREVIEW_MAX))
    async with maker() as session:
        rule = await _rule_of(session, expression_or_segment)
        ids = matching_ids(rule, now=now).order_by(Customer.__table__.c.id).limit(limit).subquery()
        rows = await session.execute(
            select(Customer.id, Customer.name).join(ids, ids.c.id == Customer.id).order_by(Customer.id)
        )
        return [PreviewRow(id, name) for id, name in rows]


# -- tag rules ---------------------------------------------------------------------------------


def _rule_view(rule: TagRule, tag: Tag, group: TagGroup) -> TagRuleView:
    return TagRuleView(
        id=rule.id, name=rule.name, expression=rule.expression, description=rule.description,
        enabled=rule.enabled, tag_id=tag.id, tag=tag.name, tag_group=group.name,
        wecom=tag.wecom_tag_id is not None, last_run_at=rule.last_run_at, last_count=rule.last_count,
        updated_at=rule.updated_at,
    )


async def list_tag_rules(maker: async_sessionmaker[AsyncSession]) -> list[TagRuleView]:
    """Every tag rule with its tag and group."""
    async with maker() as session:
        rows = await session.execute(
            select(TagRule, Tag, TagGroup)
            .join(Tag, Tag.id == TagRule.tag_id)
            .join(TagGroup, TagGroup.id == Tag.group_id)
            .order_by(TagRule.id)
        )
        return [_rule_view(rule, tag, group) for rule, tag, group in rows]


async def get_tag_rule(maker: async_sessionmaker[AsyncSession], rule_id: int) -> TagRuleView:
    """One tag rule; raises TagRuleNotFound."""
    async with maker() as session:
        row = (await session.execute(
            select(TagRule, Tag, TagGroup)
            .join(Tag, Tag.id == TagRule.tag_id)
            .join(TagGroup, TagGroup.id == Tag.group_id)
            .where(TagRule.id == rule_id)
        )).first()
    if row is None:
        raise TagRuleNotFound(f"标签规则 {rule_id} 不存在")
    return _rule_view(*row)


async def _rule_tag(session: AsyncSession, group_name: str, tag_name: str) -> tuple[Tag, TagGroup]:
    """The tag a rule maintains: an existing live tag of that group (maybe from WeCom), else a new local one."""
    group = await session.scalar(
        select(TagGroup).where(TagGroup.name == group_name, TagGroup.deleted.is_(False)).order_by(TagGroup.id)
    )
    if group is None:
        group = TagGroup(name=group_name)
        session.add(group)
        await session.flush()
    tag = await session.scalar(
        select(Tag).where(Tag.group_id == group.id, Tag.name == tag_name, Tag.deleted.is_(False))
    )
    if tag is None:
        tag = Tag(group_id=group.id, name=tag_name)
        session.add(tag)
        await session.flush()
    return tag, group


async def save_tag_rule(
    maker: async_sessionmaker[AsyncSession],
    name: str,
    expression: str,
    *,
    now: dt.datetime,
    tag_group: str = DEFAULT_RULE_GROUP,
    tag_name: str | None = None,
    description: str = "",
    enabled: bool = True,
) -> TagRuleView:
    """Create a tag rule maintaining tag ``tag_group/tag_name`` (default: the rule's name).

    The tag is created locally when missing; pick a group and tag that exist in WeCom to have the
    rule's changes copied to WeCom. Raises RuleError, NameTaken, InvalidInput.
    """
    name = _clean_name(name, "规则名称")
    tag_group = _clean_name(tag_group, "标签组名称")
    tag_name = _clean_name(tag_name or name, "标签名称")
    description = _clean_description(description)
    try:
        async with maker.begin() as session:
            await validate_rule(session, expression)
            tag, group = await _rule_tag(session, tag_group, tag_name)
            owner = await session.scalar(select(TagRule.name).where(TagRule.tag_id == tag.id))
            if owner is not None:
                raise NameTaken(f"标签「{tag_group}/{tag_name}」已由规则「{owner}」维护")
            rule = TagRule(tag_id=tag.id, name=name, expression=expression.strip(), description=description,
                           enabled=enabled, created_at=now, updated_at=now)
            session.add(rule)
            await session.flush()
            view = _rule_view(rule, tag, group)
    except IntegrityError:  # another rule took the tag meanwhile
        raise NameTaken(f"标签「{tag_group}/{tag_name}」已由其他规则维护") from None
    return view


async def update_tag_rule(
    maker: async_sessionmaker[AsyncSession],
    rule_id: int,
    *,
    now: dt.datetime,
    name: str | None = None,
    expression: str | None = None,
    description: str | None = None,
    enabled: bool | None = None,
) -> TagRuleView:
    """Change a rule (None keeps a value); its tag stays. Takes effect at the next recompute."""
    async with maker.begin() as session:
        rule = await session.get(TagRule, rule_id)
        if rule is None:
            raise TagRuleNotFound(f"标签规则 {rule_id} 不存在")
        if name is not None:
            rule.name = _clean_name(name, "规则名称")
        if expression is not None:
            await validate_rule(session, expression)
            rule.expression = expression.strip()
        if description is not None:
            rule.description = _clean_description(description)
        if enabled is not None:
            rule.enabled = enabled
        rule.updated_at = now
        tag = await session.get(Tag, rule.tag_id)
        group = await session.get(TagGroup, tag.group_id) if tag is not None else None
        assert tag is not None and group is not None  # tag_id is a cascading foreign key
        return _rule_view(rule, tag, group)


async def delete_tag_rule(maker: async_sessionmaker[AsyncSession], rule_id: int) -> int:
    """Delete a rule and take its tag off the customers it tagged (rule-sourced links only).

    Returns how many links were removed. Tags put on by staff or read from WeCom stay, and so do
    the tag itself and its WeCom copies (remove those in WeCom if wanted).
    """
    async with maker.begin() as session:
        rule = await session.get(TagRule, rule_id)
        if rule is None:
            raise TagRuleNotFound(f"标签规则 {rule_id} 不存在")
        removed = await session.execute(
            delete(CustomerTag).where(CustomerTag.tag_id == rule.tag_id, CustomerTag.source == TagSource.RULE)
        )
        await session.delete(rule)
        return int(removed.rowcount or 0)


__all__ = [
    "DEFAULT_RULE_GROUP", "InvalidInput", "NameTaken", "PreviewRow", "RuleError", "SegmentNotFound",
    "TagRuleNotFound", "TagRuleView", "count_segment", "create_segment", "delete_segment", "delete_tag_rule",
    "get_segment", "get_tag_rule", "list_segments", "list_tag_rules", "preview",
    "save_tag_rule", "segment_dict", "update_segment", "update_tag_rule",
]
