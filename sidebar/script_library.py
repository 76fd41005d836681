"""The enabled talk scripts and their categories, as the sidebar ranks them: read once, kept per process.

Every sidebar open ranks the same library, so each process keeps it (conditions parsed) instead of
reading it per request. It is read again when this process commits a change to a script or a
category (the services in sidebar/scripts.py call ``library_changed``), and at least every
RELOAD_SECONDS, so that an edit made by another process (a second worker, the CLI) shows within that.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import Engine, event, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from customers.rules import Rule, RuleError, parse
from models import ScriptCategory, TalkScript

_LOGGER = logging.getLogger(__name__)

#: How stale the library may get when another process edits scripts.
RELOAD_SECONDS: Final = 3.0
#: ``session.info`` key: this session changed scripts, so it reads them uncached (it may roll back).
_CHANGED: Final = "talk_scripts_changed"

#: The columns a suggestion needs, category name included; callers add the WHERE.
SCRIPT_COLUMNS: Final = (
    select(TalkScript.id, TalkScript.title, ScriptCategory.name, TalkScript.body, TalkScript.attachment,
           TalkScript.condition, TalkScript.priority)
    .join(ScriptCategory, ScriptCategory.id == TalkScript.category_id)
)
_ENABLED: Final = SCRIPT_COLUMNS.where(TalkScript.enabled.is_(True))
_CATEGORIES: Final = (
    select(ScriptCategory.id, ScriptCategory.name, ScriptCategory.order,
           select(func.count()).where(TalkScript.category_id == ScriptCategory.id, TalkScript.enabled.is_(True))
           .correlate(ScriptCategory).scalar_subquery())
    .order_by(ScriptCategory.order.desc(), ScriptCategory.id)
)


@dataclass(frozen=True)
class LibraryScript:
    """An enabled script as ranking reads it; ``rule`` is its parsed condition (None: none, or unusable)."""

    id: int
    title: str
    category: str
    body: str
    attachment: dict[str, Any] | None
    condition: str | None
    priority: int
    rule: Rule | None


@dataclass(frozen=True)
class Library:
    """The enabled scripts (conditions parsed), and every category with its count of enabled scripts."""

    scripts: tuple[LibraryScript, ...]
    categories: tuple[dict[str, Any], ...]


@functools.lru_cache(maxsize=512)
def parsed(condition: str) -> Rule:
    """``parse``, remembered: the same few conditions are read again on every reload."""
    return parse(condition)


def library_scripts(rows: Iterable[Any]) -> tuple[LibraryScript, ...]:
    """Rows of SCRIPT_COLUMNS as LibraryScripts, conditions parsed (an unusable one logged, matching nobody)."""
    out = []
    for script_id, title, category, body, attachment, condition, priority in rows:
        rule = None
        if condition:
            try:
                rule = parsed(condition)
            except RuleError as exc:  # saved under an older grammar: it matches nobody until fixed
                _LOGGER.warning("script %s has an unusable condition: %s", script_id, exc)
        out.append(LibraryScript(script_id, title, category, body, attachment, condition, priority, rule))
    return tuple(out)


async def load_categories(session: AsyncSession) -> list[dict[str, Any]]:
    """Every category with how many enabled scripts it holds, in display order."""
    return [{"id": i, "name": name, "order": order, "scripts": n}
            for i, name, order, n in (await session.execute(_CATEGORIES)).all()]


async def _load(session: AsyncSession) -> Library:
    scripts = library_scripts((await session.execute(_ENABLED)).all())
    return Library(scripts, tuple(await load_categories(session)))


# -- the per-process copy ------------------------------------------------------------------------

#: Bumped after every committed change in this process; a copy read under an older number is stale.
_generation = 0


def _bump(_session: Session) -> None:
    global _generation
    _generation += 1


def library_changed(session: AsyncSession) -> None:
    """Have every process-local copy read again once this session commits (a rollback changes nothing)."""
    sync = session.sync_session
    if not sync.info.get(_CHANGED):
        sync.info[_CHANGED] = True
        event.listen(sync, "after_commit", _bump)


@dataclass
class _Copy:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    library: Library | None = None
    generation: int = -1
    read_at: float = 0.0

    def fresh(self) -> bool:
        return (self.library is not None and self.generation == _generation
                and time.monotonic() - self.read_at < RELOAD_SECONDS)


#: One copy per engine (per database): tests and tools may hold several in one process.
_COPIES: weakref.WeakKeyDictionary[Engine, _Copy] = weakref.WeakKeyDictionary()


async def script_library(session: AsyncSession) -> Library:
    """The library, from this process's copy when it is current, else read now (once for all waiting requests)."""
    if session.sync_session.info.get(_CHANGED):
        return await _load(session)  # its own uncommitted edits: never cached, never served to others
    engine = session.sync_session.get_bind().engine
    copy = _COPIES.get(engine)
    if copy is None:
        copy = _COPIES.setdefault(engine, _Copy())
    if not copy.fresh():
        async with copy.lock:
            if not copy.fresh():
                # Read the number first: a change committed during the read leaves this copy stale.
                generation, read_at = _generation, time.monotonic()
                copy.library = await _load(session)
                copy.generation, copy.read_at = generation, read_at
    assert copy.library is not None
    return copy.library
