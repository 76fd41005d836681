"""The recompute: stats, RFM and stages at a chosen moment; rule tags added and removed; the WeCom copy."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from customers.cli_tags import tags_recompute
from customers.recompute import recompute_all, recompute_customers, recompute_stats
from customers.scheduler import JOB_ID, RecomputeRunner, build_scheduler
from customers.segments import save_tag_rule
from models import (
    Customer,
    CustomerStats,
    CustomerTag,
    FollowStatus,
    Order,
    OrderStatus,
    Region,
    Staff,
    Store,
    Tag,
    TagRule,
    TagSource,
)
from scrm.settings import Settings
from tests.test_rule_eval import NOW, SETTINGS, add_customer, add_order, add_tag, ago, build_world, follow
from wecom.gateway import WeComGateway
from wecom.simulator.state import SimulatorState


async def _stats(maker: async_sessionmaker[AsyncSession]) -> dict[int, CustomerStats]:
    async with maker() as s:
        return {row.customer_id: row for row in (await s.scalars(select(CustomerStats))).all()}


async def test_totals_rfm_quintiles_and_ties(maker: async_sessionmaker[AsyncSession]) -> None:
    ids = []
    async with maker.begin() as s:
        for i in range(1, 11):
            c = await add_customer(s, f"c{i}")
            ids.append(c.id)
            await add_order(s, c, yuan=i * 100, days=11 - i, channel="tmall")
            if i > 5:  # a second, older order: customers 6..10 tie on frequency
                await add_order(s, c, yuan=1, days=50, channel="jd")
            await add_order(s, c, yuan=5000, days=1, status=OrderStatus.REFUNDED)  # never counts
            await add_order(s, c, yuan=5000, days=1, status=OrderStatus.CREATED)  # never counts
        never = await add_customer(s, "never")
        merged = await add_customer(s, "merged", merged_into=ids[0])
        await add_order(s, merged, yuan=100, days=1)
    written, buyers, stages = await recompute_stats(maker, now=NOW, settings=SETTINGS)
    assert (written, buyers) == (11, 10)  # the merged record gets no row
    stats = await _stats(maker)
    assert merged.id not in stats
    c1, c10 = stats[ids[0]], stats[ids[9]]
    assert (c1.order_count, c1.spend_cents, c1.avg_order_cents) == (1, 10000, 10000)
    assert (c10.order_count, c10.spend_cents, c10.avg_order_cents) == (2, 100100, 50050)
    assert c10.first_purchase_at == ago(50) and c10.last_purchase_at == ago(1)
    assert set(c10.channels.split(",")) == {"jd", "tmall"} and c1.channels == "tmall"
    # 10 buyers: ranks 1..10 -> 1,1,2,2,3,3,4,4,5,5 (5 = most recent / most / highest).
    assert [stats[i].r_score for i in ids] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert [stats[i].m_score for i in ids] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert [stats[i].f_score for i in ids] == [1] * 5 + [3] * 5  # equal frequency, equal score
    assert (stats[never.id].order_count, stats[never.id].r_score, stats[never.id].first_purchase_at) == (0, 0, None)
    assert all(stats[i].computed_at == NOW for i in ids)
    assert stages == {"new": 5, "active": 5, "lost": 1}  # 'never' was created 400 days ago


@pytest.mark.parametrize(
    ("days_later", "buyer", "browser"),
    [(0, "new", "new"), (20, "new", "new"), (21, "active", "silent"), (100, "silent", "silent"),
     (170, "silent", "silent"), (171, "lost", "lost")],
)
async def test_lifecycle_stage_follows_the_clock(
    maker: async_sessionmaker[AsyncSession], days_later: int, buyer: str, browser: str
) -> None:
    async with maker.begin() as s:
        b = await add_customer(s, "buyer", created_days=20)
        await add_order(s, b, days=10)
        v = await add_customer(s, "browser", created_days=400)  # an old record, but added by a guide recently
        guide = Staff(userid="g1")
        s.add(guide)
        await s.flush()
        await follow(s, guide, v, days=10)
    await recompute_stats(maker, now=NOW + dt.timedelta(days=days_later), settings=SETTINGS)
    stats = await _stats(maker)
    assert (stats[b.id].stage, stats[v.id].stage) == (buyer, browser)


async def test_stage_thresholds_come_from_settings(maker: async_sessionmaker[AsyncSession]) -> None:
    async with maker.begin() as s:
        c = await add_customer(s, "c")
        await add_order(s, c, days=10)
    await recompute_stats(maker, now=NOW, settings=SETTINGS.with_(stage_new_days=7, stage_active_days=9,
                                                                  stage_silent_days=11))
    assert (await _stats(maker))[c.id].stage == "silent"


async def test_recompute_a_few_customers(maker: async_sessionmaker[AsyncSession]) -> None:
    async with maker.begin() as s:
        people = [await add_customer(s, f"c{i}") for i in range(5)]
        for i, c in enumerate(people):
            await add_order(s, c, yuan=100 * (i + 1), days=100 - i)
    await recompute_stats(maker, now=NOW, settings=SETTINGS)
    # c0 buys big today: only c0 is recomputed, and ranked against everyone.
    async with maker.begin() as s:
        await add_order(s, people[0], yuan=10000, days=0, channel="jd")
        loser = await add_customer(s, "loser")
        await add_order(s, loser, yuan=10, days=1)
        await s.execute(update(CustomerStats.__table__).where(CustomerStats.customer_id == people[4].id)
                        .values(stage="lost"))
    assert await recompute_customers(maker, [people[0].id, loser.id], now=NOW, settings=SETTINGS) == 2
    stats = await _stats(maker)
    c0 = stats[people[0].id]
    assert (c0.order_count, c0.spend_cents, c0.last_purchase_at, c0.stage) == (2, 1010000, NOW, "active")
    # 6 buyers: c0 is the most recent and the biggest spender (rank 6), loser spent least (rank 1).
    assert (c0.r_score, c0.m_score, c0.f_score) == (1 + 5 * 5 // 6, 1 + 5 * 5 // 6, 1 + 5 * 5 // 6)
    assert stats[loser.id].m_score == 1
    assert stats[people[4].id].stage == "lost"  # untouched
    # A customer merged away loses their stats row.
    async with maker.begin() as s:
        await s.execute(update(Customer).where(Customer.id == people[1].id).values(merged_into_id=people[0].id))
    assert await recompute_customers(maker, [people[1].id], now=NOW, settings=SETTINGS) == 0
    assert people[1].id not in await _stats(maker)


async def test_stores_and_regions_a_customer_is_linked_to(maker: async_sessionmaker[AsyncSession]) -> None:
    async with maker.begin() as s:
        east, north, south = Region(code="EAST", name="华东"), Region(code="NORTH", name="华北"), Region(
            code="SOUTH", name="华南")
        s.add_all([east, north, south])
        await s.flush()
        sh01, bj01 = Store(code="SH01", name="上海一店", region_id=east.id), Store(code="BJ01", name="北京一店",
                                                                                 region_id=north.id)
        gz01, xx01 = Store(code="GZ01", name="广州一店", region_id=south.id), Store(code="XX01", name="无区域店")
        s.add_all([sh01, bj01, gz01, xx01])
        await s.flush()
        guide_sh = Staff(userid="g-sh", store_id=sh01.id)
        guide_north = Staff(userid="g-north", region_id=north.id)  # a region, no store
        guide_gz_east = Staff(userid="g-gz", store_id=gz01.id, region_id=east.id)  # store in another region
        s.add_all([guide_sh, guide_north, guide_gz_east])
        await s.flush()
        buyer = await add_customer(s, "buyer")  # two stores bought in; a refunded order does not count
        await add_order(s, buyer, store=sh01)
        await add_order(s, buyer, store=bj01, days=30)
        await add_order(s, buyer, store=sh01, days=40)
        await add_order(s, buyer, store=gz01, status=OrderStatus.REFUNDED, refunded_yuan=100)
        await add_order(s, buyer, channel="jd")  # online, no store
        fan = await add_customer(s, "fan")  # never bought, followed by the SH01 guide
        await follow(s, guide_sh, fan)
        northern = await add_customer(s, "northern")  # followed by a guide who has only a region
        await follow(s, guide_north, northern)
        both = await add_customer(s, "both")  # the guide's region and their store's region
        await follow(s, guide_gz_east, both)
        await follow(s, guide_sh, both, status=FollowStatus.LOST)  # no longer followed: no link
        gone = await add_customer(s, "gone")
        await follow(s, guide_sh, gone, status=FollowStatus.DELETED)
        nowhere = await add_customer(s, "nowhere")  # a store without a region
        await add_order(s, nowhere, store=xx01)
        merged = await add_customer(s, "merged", merged_into=fan.id)
        await add_order(s, merged, store=gz01)
        await follow(s, guide_north, merged)
    await recompute_stats(maker, now=NOW, settings=SETTINGS)
    stats = await _stats(maker)
    links = {c.name: (stats[c.id].stores, stats[c.id].regions)
             for c in (buyer, fan, northern, both, gone, nowhere)}
    assert links == {
        "buyer": ("BJ01,SH01", "EAST,NORTH"),
        "fan": ("SH01", "EAST"),  # the merged record's store and region stay with it
        "northern": ("", "NORTH"),
        "both": ("GZ01", "EAST,SOUTH"),
        "gone": ("", ""),
        "nowhere": ("XX01", ""),
    }
    assert merged.id not in stats
    # A few customers recomputed: the same definition, and nobody else touched.
    async with maker.begin() as s:
        await add_order(s, fan, store=gz01, days=1)
        await follow(s, guide_north, gone)
    assert await recompute_customers(maker, [fan.id, gone.id], now=NOW, settings=SETTINGS) == 2
    stats = await _stats(maker)
    assert (stats[fan.id].stores, stats[fan.id].regions) == ("GZ01,SH01", "EAST,SOUTH")
    assert (stats[gone.id].stores, stats[gone.id].regions) == ("", "NORTH")
    assert (stats[buyer.id].stores, stats[buyer.id].regions) == ("BJ01,SH01", "EAST,NORTH")


async def _links(maker: async_sessionmaker[AsyncSession], tag_id: int) -> dict[int, str]:
    async with maker() as s:
        rows = await s.execute(select(CustomerTag.customer_id, CustomerTag.source).where(CustomerTag.tag_id == tag_id))
        return {cid: str(getattr(src, "value", src)) for cid, src in rows}


async def test_rule_tags_added_and_removed_rule_source_only(maker: async_sessionmaker[AsyncSession]) -> None:
    w = await build_world(maker)
    recent = await save_tag_rule(maker, "近期购买", "recency_days < 30", now=NOW)
    buyers = await save_tag_rule(maker, "买过", "orders >= 1", now=NOW, tag_group="客户分层", tag_name="有购买")
    broken = await save_tag_rule(maker, "坏规则", "orders >= 1", now=NOW)
    off = await save_tag_rule(maker, "停用", "orders >= 0", now=NOW, enabled=False)
    async with maker.begin() as s:
        # Staff and WeCom put the same tags on some customers; the rules must never take those off.
        s.add(CustomerTag(customer_id=w["carol"], tag_id=recent.tag_id, source=TagSource.STAFF, created_at=NOW))
        s.add(CustomerTag(customer_id=w["dave"], tag_id=recent.tag_id, source=TagSource.WECOM, created_at=NOW))
        s.add(CustomerTag(customer_id=w["gina"], tag_id=buyers.tag_id, source=TagSource.STAFF, created_at=NOW))
        # A rule-sourced link on someone who does not match (left over from an older run): removed.
        s.add(CustomerTag(customer_id=w["erin"], tag_id=buyers.tag_id, source=TagSource.RULE, created_at=NOW))
        await s.execute(update(TagRule).where(TagRule.id == broken.id).values(expression="orders >>> 1"))

    report = await recompute_all(maker, now=NOW, settings=SETTINGS)
    runs = {r.name: r for r in report.rules}
    assert set(runs) == {"近期购买", "买过", "坏规则"}  # disabled rules do not run
    assert "第" in runs["坏规则"].error and report.push_skipped == ""
    assert (runs["近期购买"].matched, runs["近期购买"].added, runs["近期购买"].removed) == (1, 1, 0)
    assert (runs["买过"].matched, runs["买过"].added, runs["买过"].removed) == (3, 2, 1)
    assert await _links(maker, recent.tag_id) == {w["alice"]: "rule", w["carol"]: "staff", w["dave"]: "wecom"}
    assert await _links(maker, buyers.tag_id) == {w["alice"]: "rule", w["bob"]: "rule", w["gina"]: "staff"}
    assert await _links(maker, off.tag_id) == {}

    # Sixty days later alice has not bought again: the rule takes its tag off her, and only hers.
    later = NOW + dt.timedelta(days=60)
    report = await recompute_all(maker, now=later, settings=SETTINGS)
    runs = {r.name: r for r in report.rules}
    assert (runs["近期购买"].matched, runs["近期购买"].added, runs["近期购买"].removed) == (0, 0, 1)
    assert await _links(maker, recent.tag_id) == {w["carol"]: "staff", w["dave"]: "wecom"}
    async with maker() as s:
        rule = await s.get(TagRule, recent.id)
        assert rule is not None and (rule.last_run_at, rule.last_count) == (later, 0)
        assert (await s.get(TagRule, off.id)).last_run_at is None  # type: ignore[union-attr]
    # Running again changes nothing.
    report = await recompute_all(maker, now=later, settings=SETTINGS)
    assert all(r.added == r.removed == 0 for r in report.rules)


async def _wecom_world(maker: async_sessionmaker[AsyncSession], sim_state: SimulatorState) -> dict[str, Any]:
    """A WeCom-backed tag 客户分层/高价值 and customers followed in both the simulator and the database."""
    sim_state.add_tag_group("客户分层", ["高价值", "普通"])
    wecom_tag = sim_state.tag_id("客户分层", "高价值")
    rich_ext = sim_state.add_customer("富人")
    sim_state.add_follow("zhangsan", rich_ext)
    sim_state.add_follow("lisi", rich_ext)
    gone_ext = sim_state.add_customer("走了")  # followed in the DB but no longer in WeCom: push fails
    async with maker.begin() as s:
        await add_tag(s, "客户分层", "高价值", wecom_tag_id=wecom_tag)
        zhangsan, lisi, wangmgr = Staff(userid="zhangsan"), Staff(userid="lisi"), Staff(userid="wangmgr")
        s.add_all([zhangsan, lisi, wangmgr])
        await s.flush()
        rich = await add_customer(s, "rich")
        await follow(s, zhangsan, rich, external_userid=rich_ext)
        await follow(s, lisi, rich, external_userid=rich_ext)
        await follow(s, wangmgr, rich, external_userid=rich_ext, status=FollowStatus.LOST)  # not pushed
        await add_order(s, rich, yuan=2000, days=3)
        gone = await add_customer(s, "gone")
        await follow(s, zhangsan, gone, external_userid=gone_ext)
        await add_order(s, gone, yuan=3000, days=3)
        nobody = await add_customer(s, "nobody")  # matches, but no guide: nothing to push
        await add_order(s, nobody, yuan=5000, days=3)
        ids = {"rich": rich.id, "gone": gone.id, "nobody": nobody.id}
    return {"tag": wecom_tag, "rich_ext": rich_ext, **ids}


async def test_wecom_backed_rule_tag_is_pushed_with_mark_tag(
    maker: async_sessionmaker[AsyncSession], sim_state: SimulatorState, settings: Settings
) -> None:
    w = await _wecom_world(maker, sim_state)
    rule = await save_tag_rule(maker, "高价值客户", "spend >= 1000", now=NOW, tag_group="客户分层", tag_name="高价值")
    assert rule.wecom and rule.tag == "高价值"
    local = await save_tag_rule(maker, "本地", "spend >= 1000", now=NOW)  # a local tag: never pushed
    assert not local.wecom
    progress: list[tuple[str, int, int]] = []
    async with WeComGateway(settings.corp_id, settings.agent_secret, api_base=settings.api_base,
                            agent_id=settings.agent_id, backoff_base=0.01) as gateway:
        report = await recompute_all(maker, now=NOW, settings=SETTINGS, gateway=gateway,
                                     progress=lambda *p: progress.append(p))
        assert (report.pushed, report.push_failed) == (2, 1)
        log = sorted(sim_state.mark_tag_log, key=lambda e: e["userid"])
        assert [(e["userid"], e["external_userid"], e["add_tag"], e["remove_tag"]) for e in log] == [
            ("lisi", w["rich_ext"], [w["tag"]], []), ("zhangsan", w["rich_ext"], [w["tag"]], []),
        ]
        assert w["tag"] in sim_state.follows[("zhangsan", w["rich_ext"])].tag_ids
        assert progress[0] == ("stats", 0, 1) and ("rules", 2, 2) in progress and progress[-1] == ("wecom", 3, 3)

        # Nothing changed: nothing pushed. Then rich's order is refunded: the tag comes off in WeCom too.
        sim_state.mark_tag_log.clear()
        report = await recompute_all(maker, now=NOW, settings=SETTINGS, gateway=gateway)
        assert (report.pushed, report.push_failed, sim_state.mark_tag_log) == (0, 0, [])
        async with maker.begin() as s:
            await s.execute(update(Order).where(Order.customer_id == w["rich"])
                            .values(status=OrderStatus.REFUNDED, refunded_cents=200000))
        report = await recompute_all(maker, now=NOW, settings=SETTINGS, gateway=gateway)
    assert (report.pushed, report.push_failed) == (2, 0)
    assert {(e["userid"], tuple(e["add_tag"]), tuple(e["remove_tag"])) for e in sim_state.mark_tag_log} == {
        ("zhangsan", (), (w["tag"],)), ("lisi", (), (w["tag"],)),
    }
    assert w["tag"] not in sim_state.follows[("zhangsan", w["rich_ext"])].tag_ids


async def test_push_skipped_without_gateway(
    maker: async_sessionmaker[AsyncSession], sim_state: SimulatorState
) -> None:
    await _wecom_world(maker, sim_state)
    await save_tag_rule(maker, "高价值客户", "spend >= 1000", now=NOW, tag_group="客户分层", tag_name="高价值")
    report = await recompute_all(maker, now=NOW, settings=SETTINGS)
    assert report.push_skipped == "未配置企业微信" and report.pushed == 0
    assert report.rules[0].added == 3 and sim_state.mark_tag_log == []
    assert "已跳过" in report.summary() and "新增 3" in report.summary()


async def test_runner_never_overlaps(maker: async_sessionmaker[AsyncSession]) -> None:
    await build_world(maker)
    runner = RecomputeRunner(maker, SETTINGS, clock=lambda: NOW)
    assert runner.start() is True
    assert runner.start() is False and runner.running
    await asyncio.sleep(0)  # the background run takes the lock
    assert await runner.run("nightly") is None  # the admin run holds the lock
    report = await runner.wait()
    assert report is not None and report.customers == 6 and not runner.running
    first, second = await asyncio.gather(runner.run("a"), runner.run("b"))
    assert (first is None) != (second is None)
    status = runner.status()
    assert status["stage"] == "done" and status["last_report"]["customers"] == 6 and status["running"] is False


async def test_nightly_job_at_configured_time_in_brand_timezone(maker: async_sessionmaker[AsyncSession]) -> None:
    settings = SETTINGS.with_(recompute_at="03:30", timezone="Asia/Shanghai")
    scheduler = build_scheduler(RecomputeRunner(maker, settings, clock=lambda: NOW), settings)
    scheduler.start(paused=True)
    try:
        job = scheduler.get_job(JOB_ID)
        after = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc)  # 20:00 in Shanghai
        fire = job.trigger.get_next_fire_time(None, after)
        assert fire.astimezone(dt.timezone.utc) == dt.datetime(2026, 3, 1, 19, 30, tzinfo=dt.timezone.utc)
        assert job.kwargs == {"trigger": "nightly"} and job.max_instances == 1
    finally:
        scheduler.shutdown(wait=False)


async def test_cli_recompute_without_wecom_settings(
    maker: async_sessionmaker[AsyncSession], database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    w = await build_world(maker)
    async with maker.begin() as s:
        await s.execute(update(Tag).values(wecom_tag_id=None))
    rule = await save_tag_rule(maker, "沉睡90天", "recency_days >= 90", now=NOW)
    async with maker.begin() as s:
        await s.execute(update(Tag).where(Tag.id == rule.tag_id).values(wecom_tag_id="etXYZ"))
    out, err = io.StringIO(), io.StringIO()
    assert await tags_recompute(environ={"DATABASE_URL": database_url}, out=out, err=err, now=NOW) == 0
    assert "企业微信设置不完整" in err.getvalue() and "rules" in err.getvalue()
    assert "规则「沉睡90天」" in out.getvalue() and "已跳过（企业微信设置不完整）" in out.getvalue()
    assert "客户统计：6 位客户（其中购买过 3 位）" in out.getvalue()
    assert set(await _links(maker, rule.tag_id)) == {w["bob"], w["gina"]}
