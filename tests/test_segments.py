"""Segments and tag rules: CRUD with validation, live counts, previews, the admin JSON API and the CLI."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from customers import segments as svc
from customers.admin_handlers import routes
from customers.cli_tags import add_tags_parser, segments_count
from customers.rules import RuleError
from customers.scheduler import RUNNER, recompute_scheduler_ctx
from models import CustomerTag, Segment, Tag, TagGroup, TagRule, TagSource
from scrm import keys
from scrm.admin import create_admin_app
from tests.test_rule_eval import NOW, SETTINGS, build_world

AUTH = {"Authorization": "Bearer admin-secret"}


async def test_segment_crud_with_validation(maker: async_sessionmaker[AsyncSession]) -> None:
    await build_world(maker)
    seg = await svc.create_segment(maker, " 高频高客单 ", "orders >= 4 AND aov >= 300", now=NOW, description="VIP 候选")
    assert (seg.name, seg.expression, seg.description) == ("高频高客单", "orders >= 4 AND aov >= 300", "VIP 候选")
    with pytest.raises(svc.NameTaken, match="已有同名分群「高频高客单」"):
        await svc.create_segment(maker, "高频高客单", "orders >= 1", now=NOW)
    with pytest.raises(RuleError) as caught:
        await svc.create_segment(maker, "坏", "orders >= 4 AND spnd >= 1", now=NOW)
    assert caught.value.position == 17 and "未知字段 spnd" in str(caught.value)
    with pytest.raises(RuleError, match="未知门店 'XX'"):
        await svc.create_segment(maker, "坏", "store = 'XX'", now=NOW)
    with pytest.raises(svc.InvalidInput, match="分群名称不能为空"):
        await svc.create_segment(maker, "  ", "orders >= 1", now=NOW)

    other = await svc.create_segment(maker, "只看不买", "orders = 0 AND days_since_added >= 14", now=NOW)
    assert [s.name for s in await svc.list_segments(maker)] == sorted(["只看不买", "高频高客单"])
    with pytest.raises(svc.NameTaken):
        await svc.update_segment(maker, other.id, now=NOW, name="高频高客单")
    with pytest.raises(RuleError, match="第9个字符附近：此处应为orders的取值"):
        await svc.update_segment(maker, other.id, now=NOW, expression="orders >")
    updated = await svc.update_segment(maker, other.id, now=NOW, name="沉睡90天", expression="recency_days >= 90")
    assert (updated.name, updated.expression) == ("沉睡90天", "recency_days >= 90")
    assert (await svc.get_segment(maker, other.id)).name == "沉睡90天"
    await svc.delete_segment(maker, other.id)
    with pytest.raises(svc.SegmentNotFound):
        await svc.delete_segment(maker, other.id)
    with pytest.raises(svc.SegmentNotFound):
        await svc.update_segment(maker, other.id, now=NOW, name="x")


async def test_live_count_and_preview(maker: async_sessionmaker[AsyncSession]) -> None:
    w = await build_world(maker)
    assert await svc.count_segment(maker, "recency_days >= 90", now=NOW) == 2
    seg = await svc.create_segment(maker, "买过奶粉", "bought(category='奶粉')", now=NOW)
    assert await svc.count_segment(maker, seg, now=NOW) == 2
    rows = await svc.preview(maker, seg, now=NOW)
    assert rows == [svc.PreviewRow(w["alice"], "alice"), svc.PreviewRow(w["bob"], "bob")]
    assert await svc.preview(maker, "orders >= 0", now=NOW, limit=2) == [
        svc.PreviewRow(w["alice"], "alice"), svc.PreviewRow(w["bob"], "bob"),
    ]
    with pytest.raises(RuleError, match="未知标签"):
        await svc.count_segment(maker, "tag = '不存在'", now=NOW)


async def test_tag_rule_crud(maker: async_sessionmaker[AsyncSession]) -> None:
    w = await build_world(maker)
    rule = await svc.save_tag_rule(maker, "高频高客单", "orders >= 4 AND aov >= 300", now=NOW, description="d")
    assert (rule.tag, rule.tag_group, rule.wecom, rule.enabled, rule.last_count) == (
        "高频高客单", svc.DEFAULT_RULE_GROUP, False, True, None)
    async with maker() as s:
        tag = await s.get(Tag, rule.tag_id)
        group = await s.get(TagGroup, tag.group_id)  # type: ignore[union-attr]
        assert (tag.name, group.name, tag.wecom_tag_id) == ("高频高客单", "规则标签", None)  # type: ignore[union-attr]
    with pytest.raises(svc.NameTaken, match="已由规则「高频高客单」维护"):
        await svc.save_tag_rule(maker, "另一个", "orders >= 1", now=NOW, tag_name="高频高客单")
    with pytest.raises(RuleError, match="第1个字符附近：未知字段"):
        await svc.save_tag_rule(maker, "坏", "spnd > 1", now=NOW)
    async with maker() as s:  # nothing half-made by the refused save
        assert await s.scalar(select(Tag.id).where(Tag.name == "坏")) is None

    updated = await svc.update_tag_rule(maker, rule.id, now=NOW, expression="orders >= 1", enabled=False, name="买过")
    assert (updated.name, updated.expression, updated.enabled, updated.tag) == ("买过", "orders >= 1", False, "高频高客单")
    with pytest.raises(RuleError):
        await svc.update_tag_rule(maker, rule.id, now=NOW, expression="orders >= 'x'")
    assert [r.id for r in await svc.list_tag_rules(maker)] == [rule.id]

    async with maker.begin() as s:
        s.add(CustomerTag(customer_id=w["alice"], tag_id=rule.tag_id, source=TagSource.RULE, created_at=NOW))
        s.add(CustomerTag(customer_id=w["bob"], tag_id=rule.tag_id, source=TagSource.STAFF, created_at=NOW))
    assert await svc.delete_tag_rule(maker, rule.id) == 1
    async with maker() as s:
        assert (await s.scalars(select(CustomerTag.customer_id).where(CustomerTag.tag_id == rule.tag_id))).all() == [
            w["bob"]]
        assert await s.get(TagRule, rule.id) is None
    with pytest.raises(svc.TagRuleNotFound):
        await svc.delete_tag_rule(maker, rule.id)
    with pytest.raises(svc.TagRuleNotFound):
        await svc.get_tag_rule(maker, rule.id)


@pytest.fixture
async def admin(aiohttp_client: Any, maker: async_sessionmaker[AsyncSession]) -> Any:
    """An app with the admin sub-app (real token check) carrying these routes, as scrm/app.py will."""
    settings = SETTINGS.with_(admin_token="admin-secret")
    app = web.Application()
    app[keys.SETTINGS] = settings
    app[keys.CLOCK] = lambda: NOW

    async def database(app: web.Application) -> Any:
        app[keys.SESSIONMAKER] = maker
        yield

    app.cleanup_ctx.append(database)
    app.cleanup_ctx.append(recompute_scheduler_ctx)
    sub = create_admin_app()
    sub.add_routes(routes)
    app.add_subapp("/admin", sub)
    return await aiohttp_client(app)


async def test_admin_api_needs_the_token(admin: Any, maker: Any) -> None:
    assert (await admin.get("/admin/api/segments")).status == 401
    assert (await admin.post("/admin/api/segments/count", json={"expression": "orders > 1"})).status == 401


async def test_admin_count_endpoint(admin: Any, maker: Any) -> None:
    await build_world(maker)
    resp = await admin.post("/admin/api/segments/count", json={"expression": "orders >= 4 AND aov >= 300"},
                            headers=AUTH)
    assert resp.status == 200 and await resp.json() == {"count": 1}
    resp = await admin.post("/admin/api/segments/count", json={"expression": "orders >= 4 AND spnd >= 1"},
                            headers=AUTH)
    body = await resp.json()
    assert resp.status == 400 and body["position"] == 17 and body["error"].startswith("第17个字符附近：未知字段 spnd")
    resp = await admin.post("/admin/api/segments/count", data="not json", headers=AUTH)
    assert resp.status == 400 and (await resp.json())["error"] == "请求体须为 JSON"
    resp = await admin.post("/admin/api/segments/count", json={}, headers=AUTH)
    assert resp.status == 400 and "缺少字段 expression" in (await resp.json())["error"]
    resp = await admin.post("/admin/api/segments/preview", json={"expression": "channel = 'jd'"}, headers=AUTH)
    assert (await resp.json())["customers"][0]["name"] == "bob"


async def test_admin_segment_endpoints(admin: Any, maker: Any) -> None:
    await build_world(maker)
    resp = await admin.post("/admin/api/segments", json={"name": "沉睡", "expression": "recency_days >= 90"},
                            headers=AUTH)
    assert resp.status == 201
    seg = await resp.json()
    assert seg["name"] == "沉睡" and seg["created_at"].startswith("2026-03-01")
    resp = await admin.post("/admin/api/segments", json={"name": "沉睡", "expression": "orders > 1"}, headers=AUTH)
    assert resp.status == 409
    resp = await admin.put(f"/admin/api/segments/{seg['id']}", json={"expression": "recency_days >= 'x'"},
                           headers=AUTH)
    assert resp.status == 400 and (await resp.json())["position"] == 17
    resp = await admin.put(f"/admin/api/segments/{seg['id']}", json={"description": "90天未购"}, headers=AUTH)
    assert resp.status == 200 and (await resp.json())["description"] == "90天未购"
    resp = await admin.get("/admin/api/segments", headers=AUTH)
    assert [s["name"] for s in (await resp.json())["segments"]] == ["沉睡"]
    assert (await admin.delete(f"/admin/api/segments/{seg['id']}", headers=AUTH)).status == 200
    resp = await admin.delete(f"/admin/api/segments/{seg['id']}", headers=AUTH)
    assert resp.status == 404 and "不存在" in (await resp.json())["error"]
    async with maker() as s:
        assert (await s.scalars(select(Segment))).all() == []


async def test_admin_tag_rule_endpoints_and_recompute(admin: Any, maker: Any) -> None:
    w = await build_world(maker)
    resp = await admin.post("/admin/api/tag-rules", json={"name": "沉睡90天", "expression": "recency_days >= 90"},
                            headers=AUTH)
    assert resp.status == 201
    rule = await resp.json()
    assert (rule["tag_group"], rule["tag"], rule["wecom"], rule["last_run_at"]) == ("规则标签", "沉睡90天", False, None)
    resp = await admin.post("/admin/api/tag-rules", json={"name": "x", "expression": "tag = '无此标签'"}, headers=AUTH)
    assert resp.status == 400 and (await resp.json())["position"] == 7
    resp = await admin.post("/admin/api/tag-rules", json={"name": "y", "expression": "orders > 1", "enabled": "no"},
                            headers=AUTH)
    assert resp.status == 400
    resp = await admin.put(f"/admin/api/tag-rules/{rule['id']}", json={"description": "三个月没买"}, headers=AUTH)
    assert resp.status == 200 and (await resp.json())["description"] == "三个月没买"
    assert (await admin.put("/admin/api/tag-rules/999999", json={}, headers=AUTH)).status == 404

    resp = await admin.get("/admin/api/tags/recompute", headers=AUTH)
    assert (await resp.json())["running"] is False
    resp = await admin.post("/admin/api/tags/recompute", headers=AUTH)
    assert resp.status == 202 and (await resp.json())["running"] is True
    runner = admin.server.app[RUNNER]
    await runner.wait()
    status = await (await admin.get("/admin/api/tags/recompute", headers=AUTH)).json()
    assert status["running"] is False and status["stage"] == "done" and status["last_error"] == ""
    assert status["last_report"]["rules"][0]["matched"] == 2 and status["last_report"]["customers"] == 6

    rules = (await (await admin.get("/admin/api/tag-rules", headers=AUTH)).json())["rules"]
    assert rules[0]["last_count"] == 2 and rules[0]["last_run_at"].startswith("2026-03-01")
    resp = await admin.delete(f"/admin/api/tag-rules/{rule['id']}", headers=AUTH)
    assert await resp.json() == {"deleted": rule["id"], "untagged": 2}
    async with maker() as s:
        assert (await s.scalars(select(CustomerTag).where(CustomerTag.customer_id == w["bob"]))).all() == []


async def test_admin_recompute_refuses_to_overlap(admin: Any, maker: Any) -> None:
    runner = admin.server.app[RUNNER]
    async with runner._lock:  # a nightly run in progress
        resp = await admin.post("/admin/api/tags/recompute", headers=AUTH)
        assert resp.status == 409 and "正在进行" in (await resp.json())["error"]
    await asyncio.sleep(0)


async def test_cli_segments_count(
    maker: async_sessionmaker[AsyncSession], database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    await build_world(maker)
    env = {"DATABASE_URL": database_url}
    out, err = io.StringIO(), io.StringIO()
    assert await segments_count("channel = 'tmall' OR store = 'SH01'", environ=env, out=out, err=err, now=NOW) == 0
    assert out.getvalue() == "3\n"
    out, err = io.StringIO(), io.StringIO()
    assert await segments_count("标签 = '已流失' 且 spnd > 1", environ=env, out=out, err=err, now=NOW) == 2
    assert "规则有误：第14个字符附近：未知字段 spnd" in err.getvalue()
    assert err.getvalue().splitlines()[-1] == "  " + " " * 19 + "^"  # under spnd, CJK counted double


def test_cli_parser_wiring() -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="scrm")
    add_tags_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["tags", "recompute", "--no-push"])
    assert args.no_push and args.func.__name__ == "cmd_tags_recompute"
    args = parser.parse_args(["segments", "count", "orders >= 1"])
    assert args.expression == "orders >= 1" and args.func.__name__ == "cmd_segments_count"
