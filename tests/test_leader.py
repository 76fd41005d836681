"""One process runs the timed jobs: the scheduler lease, taken, renewed, handed over and released."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import Lease
from scrm import keys
from scrm.leader import Leadership, when_leading

Maker = async_sessionmaker[AsyncSession]


def _two(maker: Maker, clock: Any, ttl: float = 30.0) -> tuple[Leadership, Leadership]:
    return (Leadership(maker, clock=clock, ttl=ttl, holder="host-a:1"),
            Leadership(maker, clock=clock, ttl=ttl, holder="host-b:2"))


async def test_only_one_process_leads_and_a_dead_leader_is_replaced(maker: Maker, clock: Any) -> None:
    a, b = _two(maker, clock)
    assert await a.attempt() and a.is_leader
    assert not await b.attempt() and not b.is_leader
    clock.advance(20)
    assert await a.attempt() and not await b.attempt()  # renewing keeps it
    clock.advance(31)  # a stopped renewing (it died): its lease lapses, b takes over on its next try
    assert await b.attempt() and b.is_leader
    assert not await a.attempt() and not a.is_leader  # and a, back from the dead, does not lead
    async with maker() as session:
        lease = await session.get(Lease, "scheduler")
    assert lease is not None and lease.holder == "host-b:2"


async def test_a_clean_shutdown_hands_the_role_over_at_once(maker: Maker, clock: Any) -> None:
    a, b = _two(maker, clock)
    assert await a.attempt()
    await a.close()
    assert not a.is_leader and await b.attempt()


async def test_scheduled_jobs_run_only_in_the_leader(maker: Maker, clock: Any) -> None:
    a, b = _two(maker, clock)
    await a.attempt()
    await b.attempt()
    ran: list[str] = []

    async def job(where: str) -> str:
        ran.append(where)
        return where

    assert await when_leading(a, job, "test job")("a") == "a"
    assert await when_leading(b, job, "test job")("b") is None
    assert await when_leading(None, job, "test job")("alone") == "alone"  # no leadership wired: always runs
    assert ran == ["a", "alone"]


async def test_the_service_leads_from_its_start_and_lets_go_on_shutdown(
    app: web.Application, client: Any, maker: Maker, clock: Any
) -> None:
    leadership = app[keys.LEADERSHIP]
    assert leadership.is_leader
    async with maker() as session:
        holders = (await session.scalars(select(Lease.holder))).all()
    assert holders == [leadership.holder]
    await client.close()  # runs the cleanup contexts
    async with maker() as session:
        lease = await session.get(Lease, "scheduler")
    assert lease is not None and lease.expires_at <= clock.now + dt.timedelta(seconds=1)
