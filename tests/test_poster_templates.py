"""Poster templates in the admin API: create, edit, disable, validation naming each bad field, version bumps
reaching the guide's poster, the preview, and the admin token; and a guide picking a template."""

from __future__ import annotations

import copy
import io
from collections.abc import Callable
from typing import Any

import pytest
import zxingcpp
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient
from PIL import Image
from sqlalchemy import func, select

from models import AuditEntry, ShareLink, Staff
from scrm import keys
from sharing.poster_service import TemplateUnavailable, guide_poster, parse_template_param
from sharing.posters import DEFAULT_TEMPLATE
from tests.brand import Brand, _as

ADMIN = {"Authorization": "Bearer admin-secret"}
ITEM = {"kind": "campaign", "title": "会员日 · 满299减50", "target_url": "https://shop.example.com/member-day"}
BASE = "/admin/api/poster-templates"
RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 160, 0)


def _spec(**changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(DEFAULT_TEMPLATE)
    spec.update(changes)
    return spec


def _pixel(data: bytes, xy: tuple[int, int] = (5, 5)) -> tuple[int, ...]:
    image = Image.open(io.BytesIO(data))
    image.load()
    return tuple(image.convert("RGB").getpixel(xy))


def _png(color: tuple[int, int, int], size: tuple[int, int] = (375, 667)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


async def _create(client: TestClient, **body: Any) -> dict[str, Any]:
    resp = await client.post(BASE, json={"name": "会员日红色", "spec": _spec(background="#FF0000")} | body,
                             headers=ADMIN)
    assert resp.status == 201, await resp.text()
    return dict(await resp.json())


async def _audits(maker: Any) -> list[tuple[str, str, dict[str, Any]]]:
    async with maker() as session:
        rows = (await session.scalars(select(AuditEntry).where(AuditEntry.subject_type == "poster_template")
                                      .order_by(AuditEntry.id))).all()
    return [(r.action, r.subject_id, r.detail) for r in rows]


async def test_create_list_edit_and_disable_bump_the_version_and_are_audited(client: TestClient, maker: Any) -> None:
    created = await _create(client)
    assert created["version"] == 1 and created["enabled"] is True and created["spec"]["background"] == "#FF0000"
    listed = await (await client.get(BASE, headers=ADMIN)).json()
    assert [t["name"] for t in listed["templates"]] == ["会员日红色"] and listed["default_spec"] == DEFAULT_TEMPLATE
    path = f"{BASE}/{created['id']}"
    renamed = await (await client.put(path, json={"name": "会员日"}, headers=ADMIN)).json()
    assert renamed["name"] == "会员日" and renamed["version"] == 2 and renamed["spec"] == created["spec"]
    moved = await (await client.put(path, json={"spec": _spec(background="#0000FF")}, headers=ADMIN)).json()
    assert moved["version"] == 3 and moved["spec"]["background"] == "#0000FF"
    resp = await client.delete(path, headers=ADMIN)
    assert resp.status == 200
    disabled = await (await client.get(path, headers=ADMIN)).json()
    assert disabled["enabled"] is False and disabled["version"] == 4 and disabled["name"] == "会员日"
    back = await (await client.put(path, json={"enabled": True}, headers=ADMIN)).json()
    assert back["enabled"] is True and back["version"] == 5
    audits = await _audits(maker)
    assert [a for a, _, _ in audits] == ["poster_template_created", "poster_template_updated",
                                         "poster_template_updated", "poster_template_disabled",
                                         "poster_template_updated"]
    assert all(s == str(created["id"]) for _, s, _ in audits)
    assert audits[1][2]["changed"] == ["name"] and audits[1][2]["previous"] == {"name": "会员日红色"}
    assert audits[2][2]["changed"] == ["spec"] and audits[2][2]["version"] == 3
    assert (await client.get(f"{BASE}/424242", headers=ADMIN)).status == 404
    assert (await client.put(f"{BASE}/424242", json={"name": "x"}, headers=ADMIN)).status == 404
    assert (await client.delete(f"{BASE}/424242", headers=ADMIN)).status == 404


async def test_a_template_without_a_spec_starts_from_the_built_in_layout(client: TestClient) -> None:
    created = await (await client.post(BASE, json={"name": "默认"}, headers=ADMIN)).json()
    assert created["spec"] == DEFAULT_TEMPLATE


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(spec: dict[str, Any]) -> None:
        *boxes, key = path.split(".")
        target = spec
        for box in boxes:
            target = target[box]
        target[key] = value

    return change


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        (_set("size.width", 100), "spec.size.width", "画布宽度"),
        (_set("size.height", 5000), "spec.size.height", "200 到 3000"),
        (_set("background", "#12345"), "spec.background", "#RRGGBB"),
        (_set("qr.x", 500), "spec.qr", "超出画布"),
        (_set("qr.y", -1), "spec.qr.y", "二维码纵坐标"),
        (_set("qr.size", 50), "spec.qr.size", "二维码边长"),
        (_set("qr.color", "#FFFFFF"), "spec.qr.color", "扫不出来"),
        (_set("avatar.x", 700), "spec.avatar", "超出画布"),
        (_set("avatar.size", "大"), "spec.avatar.size", "整数"),
        (_set("name.font_size", 300), "spec.name.font_size", "导购姓名字号"),
        (_set("name.color", "white"), "spec.name.color", "#RRGGBB"),
        (_set("name.max_width", 4000), "spec.name.max_width", "导购姓名最大宽度"),
        (_set("title.x", 400), "spec.title", "超出画布"),
        (_set("title.font_size", 4), "spec.title.font_size", "标题字号"),
        (_set("title.color", "#GGGGGG"), "spec.title.color", "标题颜色"),
        (_set("title.y", 700), "spec.title", "二维码"),
        (_set("qr.shadow", True), "spec.qr.shadow", "不认识的字段"),
    ],
)
async def test_each_bad_spec_field_is_refused_with_its_name(
    client: TestClient, change: Callable[[dict[str, Any]], None], field: str, fragment: str
) -> None:
    spec = _spec()
    change(spec)
    resp = await client.post(BASE, json={"name": "坏模板", "spec": spec}, headers=ADMIN)
    body = await resp.json()
    assert resp.status == 400 and body["field"] == field, body
    assert body["error"].startswith(field) and fragment in body["error"], body


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ({"name": ""}, "name", "不能为空"),
        ({"name": "x" * 65}, "name", "最多 64"),
        ({"spec": "750x1334"}, "spec", "对象"),
        ({"spec": {}}, "spec.size", "缺少必填项"),
        ({"background_asset_id": 999999}, "background_asset_id", "媒体库中没有编号为 999999 的图片"),
        ({"background_asset_id": "bg.png"}, "background_asset_id", "编号"),
        ({"enabled": "yes"}, "enabled", "true 或 false"),
        ({"colour": "#FFFFFF"}, "colour", "不认识的字段"),
    ],
)
async def test_each_bad_field_is_refused_on_create_and_on_edit(client: TestClient, body: dict[str, Any], field: str,
                                                              fragment: str) -> None:
    resp = await client.post(BASE, json={"name": "新模板"} | body, headers=ADMIN)
    answer = await resp.json()
    assert resp.status == 400 and answer["field"] == field and fragment in answer["error"], answer
    existing = await _create(client)
    resp = await client.put(f"{BASE}/{existing['id']}", json=body, headers=ADMIN)
    answer = await resp.json()
    assert resp.status == 400 and answer["field"] == field and fragment in answer["error"], answer
    unchanged = await (await client.get(f"{BASE}/{existing['id']}", headers=ADMIN)).json()
    assert unchanged["version"] == 1  # a refused edit bumps nothing


async def test_names_are_unique_and_bodies_must_be_json_objects(client: TestClient) -> None:
    first = await _create(client)
    other = await _create(client, name="另一个")
    resp = await client.put(f"{BASE}/{other['id']}", json={"name": first["name"]}, headers=ADMIN)
    assert resp.status == 409 and (await resp.json())["field"] == "name"
    assert (await client.post(BASE, json={"name": first["name"]}, headers=ADMIN)).status == 409
    assert (await client.put(f"{BASE}/{first['id']}", json={"name": first["name"]}, headers=ADMIN)).status == 200
    for data in ("not json", "[1, 2]"):
        resp = await client.post(BASE, data=data, headers=ADMIN | {"Content-Type": "application/json"})
        assert resp.status == 400 and "JSON" in (await resp.json())["error"]


async def test_an_edit_changes_the_poster_guides_get(app: web.Application, client: TestClient, brand: Brand,
                                                    clock: Any) -> None:
    item = await (await client.post("/admin/api/content", json=ITEM, headers=ADMIN)).json()
    guide = _as("zhangsan", clock)
    poster_path = f"/sidebar/api/share/content/{item['id']}/poster"
    before = await (await client.get(poster_path, headers=guide)).read()
    assert _pixel(before) == (0xC8, 0x37, 0x2D)  # the built-in layout while no template exists
    template = await _create(client)
    red = await (await client.get(poster_path, headers=guide)).read()
    assert _pixel(red) == RED  # the first enabled template is every guide's default
    path = f"{BASE}/{template['id']}"
    assert (await client.put(path, json={"spec": _spec(background="#0000FF")}, headers=ADMIN)).status == 200
    blue = await (await client.get(poster_path, headers=guide)).read()
    assert _pixel(blue) == BLUE  # a new version: the cached red poster is not served
    form = FormData()
    form.add_field("file", _png(GREEN), filename="bg.png", content_type="image/png")
    asset = await (await client.post("/admin/api/media", data=form, headers=ADMIN)).json()
    resp = await client.put(path, json={"background_asset_id": asset["id"]}, headers=ADMIN)
    assert resp.status == 200 and (await resp.json())["background_url"] == f"/admin/api/media/{asset['id']}"
    green = await (await client.get(poster_path, headers=guide)).read()
    assert _pixel(green) == GREEN and _pixel(green, (700, 1300)) == GREEN  # the picture covers the canvas
    await client.delete(path, headers=ADMIN)
    after = await (await client.get(poster_path, headers=guide)).read()
    assert _pixel(after) == (0xC8, 0x37, 0x2D)  # disabled: guides are back on the built-in layout


async def test_a_guide_may_pick_an_enabled_template_only(app: web.Application, client: TestClient, brand: Brand,
                                                         maker: Any) -> None:
    item = await (await client.post("/admin/api/content", json=ITEM, headers=ADMIN)).json()
    red = await _create(client)
    blue = await _create(client, name="蓝色", spec=_spec(background="#0000FF"))
    async with maker() as session:
        staff_id = await session.scalar(select(Staff.id).where(Staff.userid == "zhangsan"))

    async def poster(template_id: int | None) -> bytes:
        made = await guide_poster(app[keys.SESSIONMAKER], app[keys.SETTINGS], app[keys.POSTER_CACHE],
                                  staff_id=staff_id, content_id=item["id"], template_id=template_id,
                                  now=app[keys.CLOCK]())
        return made.data

    assert _pixel(await poster(None)) == RED and _pixel(await poster(blue["id"])) == BLUE
    await client.delete(f"{BASE}/{blue['id']}", headers=ADMIN)
    with pytest.raises(TemplateUnavailable) as refused:
        await poster(blue["id"])
    assert refused.value.disabled and "已停用" in refused.value.message_zh and str(blue["id"]) in refused.value.message_zh
    with pytest.raises(TemplateUnavailable) as unknown:
        await poster(424242)
    assert not unknown.value.disabled and "不存在" in unknown.value.message_zh
    assert _pixel(await poster(red["id"])) == RED
    assert parse_template_param(None) is None and parse_template_param("") is None
    assert parse_template_param(str(red["id"])) == red["id"]
    for bad in ("abc", "0", "-3"):
        with pytest.raises(ValueError, match="海报模板编号"):
            parse_template_param(bad)


async def test_the_preview_is_a_png_for_a_demo_or_a_real_guide_and_creates_no_link(
    client: TestClient, brand: Brand, clock: Any, maker: Any
) -> None:
    template = await _create(client)
    resp = await client.get(f"{BASE}/{template['id']}/preview", headers=ADMIN)
    assert resp.status == 200 and resp.content_type == "image/png" and resp.headers["Cache-Control"] == "no-store"
    data = await resp.read()
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG" and image.size == (750, 1334) and _pixel(data) == RED
    assert zxingcpp.read_barcodes(image.convert("RGB"))  # the QR code is there and readable
    jpeg = await client.get(f"{BASE}/{template['id']}/preview?format=jpeg", headers=ADMIN)
    assert jpeg.content_type == "image/jpeg" and Image.open(io.BytesIO(await jpeg.read())).format == "JPEG"

    item = await (await client.post("/admin/api/content", json=ITEM, headers=ADMIN)).json()
    mine = await client.get(f"{BASE}/{template['id']}/preview?content_id={item['id']}&staff=zhangsan", headers=ADMIN)
    assert mine.status == 200
    async with maker() as session:
        assert await session.scalar(select(func.count()).select_from(ShareLink)) == 0  # a preview makes no link
    link = await (await client.post("/sidebar/api/share/links", json={"content_id": item["id"]},
                                    headers=_as("zhangsan", clock))).json()
    again = await client.get(f"{BASE}/{template['id']}/preview?content_id={item['id']}&staff=zhangsan",
                             headers=ADMIN)
    assert again.headers["X-Share-Url"] == link["url"]  # the guide's own link once they have one

    await client.delete(f"{BASE}/{template['id']}", headers=ADMIN)
    disabled = await client.get(f"{BASE}/{template['id']}/preview", headers=ADMIN)
    assert disabled.status == 200  # an admin may still look at a disabled template
    for query, status, field in [("staff=nobody", 404, "staff"), ("content_id=424242", 404, "content_id"),
                                 ("content_id=abc", 400, "content_id"), ("format=gif", 400, "format")]:
        resp = await client.get(f"{BASE}/{template['id']}/preview?{query}", headers=ADMIN)
        assert resp.status == status and (await resp.json())["field"] == field
    assert (await client.get(f"{BASE}/424242/preview", headers=ADMIN)).status == 404


async def test_non_admins_are_refused(client: TestClient, brand: Brand, clock: Any, maker: Any) -> None:
    template = await _create(client)
    guide = _as("zhangsan", clock)
    path = f"{BASE}/{template['id']}"
    calls = [("GET", BASE, None), ("POST", BASE, {"name": "越权"}), ("GET", path, None),
             ("PUT", path, {"name": "越权"}), ("DELETE", path, None), ("GET", f"{path}/preview", None)]
    for headers in ({}, {"Authorization": "Bearer wrong"}, guide):
        for method, url, body in calls:
            resp = await client.request(method, url, json=body, headers=headers)
            assert resp.status == 401, (method, url, headers)
    shown = await (await client.get(path, headers=ADMIN)).json()
    assert shown["name"] == template["name"] and shown["version"] == 1 and shown["enabled"] is True
    assert [a for a, _, _ in await _audits(maker)] == ["poster_template_created"]
