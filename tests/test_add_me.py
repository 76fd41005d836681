"""「加我」 posters: the guide's contact-way code per content item (state round trip, created once), the
poster carrying WeCom's QR image, and the scan -> add_external_contact -> performance round trip."""

from __future__ import annotations

import asyncio
import dataclasses
import io
from typing import Any

import pytest
import qrcode
import zxingcpp
from aiohttp.test_utils import TestClient
from PIL import Image
from sqlalchemy import select

from bot import sync
from bot.context import BotContext
from models import ContactWay, ContentItem, ContentKind, FollowRelation
from scrm import keys
from sharing.add_me import add_me_state, guide_contact_way, list_add_me_codes, parse_add_me_state
from sharing.fonts import find_cjk_font
from sharing.performance import performance, period_bounds
from sharing.poster_cache import PosterKey
from sharing.posters import DEFAULT_TEMPLATE, PosterTemplate, parse_template, render_poster
from tests.brand import Brand, _as
from tests.conftest import drain

ADMIN = {"Authorization": "Bearer admin-secret"}
ITEM = {"kind": "campaign", "title": "会员日 · 满299减50", "target_url": "https://shop.example.com/member-day"}
BIG = 2**63 - 1  # the largest id a BIGINT holds


def _qr_text(data: bytes) -> str:
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(data)).convert("RGB"))
    assert found, "no QR code on the poster"
    return str(found[0].text)


@pytest.fixture
def ctx(app: Any, client: Any) -> BotContext:
    return BotContext(app[keys.SESSIONMAKER], app[keys.GATEWAY], app[keys.SETTINGS], app[keys.CLOCK])


async def _item(ctx: BotContext, title: str = "春季上新 · 有机纯牛奶") -> ContentItem:
    now = ctx.clock()
    async with ctx.maker.begin() as session:
        item = ContentItem(kind=ContentKind.PRODUCT, title=title, target_url="https://shop.example.com/p/1",
                           created_at=now, updated_at=now)
        session.add(item)
    return item


# -- the state ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("staff_id", "content_id", "state"), [
    (0, 0, "am.0.0"),
    (1, 35, "am.1.z"),
    (47, 1000, "am.1b.rs"),
    (36**6, 2**31 - 1, "am.1000000.zik0zj"),
    (BIG, BIG, "am.1y2p0ij32e8e7.1y2p0ij32e8e7"),
])
def test_state_names_guide_and_item_and_reads_back(staff_id: int, content_id: int, state: str) -> None:
    assert add_me_state(staff_id, content_id) == state
    assert len(state) <= 30
    assert parse_add_me_state(state) == (staff_id, content_id)


def test_the_largest_ids_fill_exactly_thirty_characters() -> None:
    assert len(add_me_state(BIG, BIG)) == 30
    for bad in (BIG + 1, -1, True):  # beyond any BIGINT id; negative; a bool is not an id
        with pytest.raises(ValueError, match="BIGINT"):
            add_me_state(bad, 1)
        with pytest.raises(ValueError, match="BIGINT"):
            add_me_state(1, bad)


@pytest.mark.parametrize("state", [
    None, "", "channel_01", "am.", "am.1b", "am.1b.rs.x", "am.01b.rs", "am.1B.rs", "AM.1b.rs", "am.1b.r s",
    "xam.1b.rs", "am.-1.2",
])
def test_other_states_are_not_add_me_states(state: str | None) -> None:
    assert parse_add_me_state(state) is None


# -- the contact way ----------------------------------------------------------------------------


async def test_one_code_per_guide_and_item_even_when_asked_twice_at_once(ctx: BotContext, sim_state: Any) -> None:
    staff = await sync.ensure_staff(ctx, "zhangsan")
    item = await _item(ctx)
    first, second = await asyncio.gather(guide_contact_way(ctx, staff, item), guide_contact_way(ctx, staff, item))
    again = await guide_contact_way(ctx, staff, item)
    assert first.config_id == second.config_id == again.config_id
    assert sim_state.calls["externalcontact/add_contact_way"] == 1
    remote = sim_state.contact_ways[first.config_id]
    assert remote.user == ["zhangsan"] and remote.state == add_me_state(staff.id, item.id) == first.state
    assert (first.staff_id, first.content_id, first.campaign) == (staff.id, item.id, item.title)
    async with ctx.maker() as session:
        stored = await session.scalar(select(ContactWay).where(ContactWay.config_id == first.config_id))
    assert stored is not None and stored.content_id == item.id

    other_item = await _item(ctx, "会员日")
    lisi = await sync.ensure_staff(ctx, "lisi")
    codes = {(await guide_contact_way(ctx, staff, other_item)).config_id,
             (await guide_contact_way(ctx, lisi, item)).config_id, first.config_id}
    assert len(codes) == 3 and sim_state.calls["externalcontact/add_contact_way"] == 3
    async with ctx.maker() as session:
        mine = await list_add_me_codes(session, staff_id=staff.id)
        for_item = await list_add_me_codes(session, content_id=item.id)
    assert [c["content"]["id"] for c in mine] == [other_item.id, item.id]
    assert {c["staff"]["userid"] for c in for_item} == {"zhangsan", "lisi"}


class _RacingGateway:
    """The gateway, but another process stores the same state while WeCom creates our code."""

    def __init__(self, gateway: Any, ctx: BotContext, staff_id: int) -> None:
        self._gateway, self._ctx, self._staff_id = gateway, ctx, staff_id

    def __getattr__(self, name: str) -> Any:
        return getattr(self._gateway, name)

    async def add_contact_way(self, **kwargs: Any) -> Any:
        async with self._ctx.maker.begin() as session:
            session.add(ContactWay(config_id="made-by-another-process", state=kwargs["state"],
                                   staff_id=self._staff_id, qr_code="https://wework.qpic.cn/wwpic/x/0"))
        return await self._gateway.add_contact_way(**kwargs)


async def test_a_race_with_another_process_is_lost_cleanly(ctx: BotContext, sim_state: Any) -> None:
    staff = await sync.ensure_staff(ctx, "zhangsan")
    item = await _item(ctx)
    racing = dataclasses.replace(ctx, gateway=_RacingGateway(ctx.gateway, ctx, staff.id))  # type: ignore[arg-type]
    way = await guide_contact_way(racing, staff, item)
    # Our insert lost on the unique state: the other process's code is the guide's, now with its item.
    assert way.config_id == "made-by-another-process" and way.content_id == item.id
    assert (await guide_contact_way(ctx, staff, item)).config_id == "made-by-another-process"


# -- the renderer with a QR picture -------------------------------------------------------------


@pytest.fixture(scope="module")
def font() -> str:
    return find_cjk_font()


@pytest.fixture(scope="module")
def template() -> PosterTemplate:
    return parse_template(DEFAULT_TEMPLATE)


def _png(image: Image.Image, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


SCAN = "http://127.0.0.1:43210/_sim/scan/0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("picture", [
    pytest.param(lambda: _png(qrcode.make(SCAN, box_size=8, border=2).get_image()), id="simulator-like"),
    pytest.param(lambda: _png(qrcode.make(SCAN, box_size=3, border=0).get_image()), id="small-no-border"),
    pytest.param(lambda: _png(qrcode.make(SCAN, box_size=11, border=6).get_image().convert("RGB")
                              .resize((431, 431), Image.Resampling.BILINEAR), "JPEG"), id="blurred-jpeg"),
    pytest.param(lambda: _png(qrcode.make(SCAN, box_size=6, border=4).get_image().convert("L")
                              .resize((400, 290), Image.Resampling.NEAREST)), id="stretched-fallback"),
])
def test_a_qr_picture_is_redrawn_into_the_box_and_still_decodes(template: PosterTemplate, font: str,
                                                                 picture: Any) -> None:
    data = render_poster(template, qr_image=picture(), guide_name="王小美", title="会员日", font_path=font)
    assert _qr_text(data) == SCAN
    qr = template.qr
    box = Image.open(io.BytesIO(data)).convert("RGB").crop((qr.x, qr.y, qr.x + qr.size, qr.y + qr.size))
    # Only the template's two colours inside the box: the picture was thresholded, not blended.
    assert {c for _, c in box.getcolors(1 << 16) or []} <= {(0x11, 0x11, 0x11), (0xFF, 0xFF, 0xFF)}


def test_exactly_one_kind_of_qr_code(template: PosterTemplate, font: str) -> None:
    picture = _png(qrcode.make(SCAN).get_image())
    for kwargs in ({}, {"qr_data": SCAN, "qr_image": picture}):
        with pytest.raises(TypeError, match="exactly one"):
            render_poster(template, guide_name="王", title="标题", font_path=font, **kwargs)
    for bad, message in ((b"not an image", "不是可识别的图片"), (_png(Image.new("RGB", (50, 50), "white")), "没有二维码")):
        with pytest.raises(ValueError, match=message):
            render_poster(template, qr_image=bad, guide_name="王", title="标题", font_path=font)


def test_link_and_add_me_posters_are_cached_apart() -> None:
    link = PosterKey(guide=7, item="3:2026", template_version=1, fmt="PNG")
    assert link.kind == "link" and link != link._replace(kind="addme")


# -- the round trip ----------------------------------------------------------------------------


async def test_scan_add_and_count_for_guide_and_item(client: TestClient, app: Any, brand: Brand, clock: Any,
                                                     sim_state: Any, sender: Any) -> None:
    item = await (await client.post("/admin/api/content", json=ITEM, headers=ADMIN)).json()
    guide = _as("zhangsan", clock)
    resp = await client.get(f"/sidebar/api/share/content/{item['id']}/poster?kind=addme", headers=guide)
    assert resp.status == 200 and resp.content_type == "image/png"
    data = await resp.read()
    assert Image.open(io.BytesIO(data)).size == (750, 1334)
    async with app[keys.SESSIONMAKER]() as session:
        way = await session.scalar(select(ContactWay).where(ContactWay.content_id == item["id"]))
    assert way is not None and resp.headers["X-Share-Url"] == way.qr_code
    scan_url = _qr_text(data)
    assert scan_url == f"{sim_state.public_base}/_sim/scan/{way.config_id}"

    # The same poster again: from the cache, no second code; the link poster is a different picture.
    again = await client.get(f"/sidebar/api/share/content/{item['id']}/poster?kind=addme", headers=guide)
    assert await again.read() == data and sim_state.calls["externalcontact/add_contact_way"] == 1
    link_poster = await client.get(f"/sidebar/api/share/content/{item['id']}/poster", headers=guide)
    assert "/s/" in _qr_text(await link_poster.read())
    jpeg = await client.get(f"/sidebar/api/share/content/{item['id']}/poster?kind=addme&format=jpeg", headers=guide)
    assert jpeg.content_type == "image/jpeg" and _qr_text(await jpeg.read()) == scan_url
    for path, status in [(f"/sidebar/api/share/content/{item['id']}/poster?kind=gift", 400),
                         ("/sidebar/api/share/content/424242/poster?kind=addme", 404)]:
        assert (await client.get(path, headers=guide)).status == status

    start, end = period_bounds("day", clock(), app[keys.SETTINGS].timezone)

    async def counts() -> tuple[int, int]:
        async with app[keys.SESSIONMAKER]() as session:
            guides = {r.key: r for r in await performance(session, start=start, end=end, group_by="guide")}
            items = {r.key: r for r in await performance(session, start=start, end=end, group_by="content")}
        return guides["zhangsan"].new_contacts, items[str(item["id"])].new_contacts if str(item["id"]) in items else 0

    guide_before, item_before = await counts()
    assert item_before == 0
    # A customer scans the poster's code: WeCom adds them to the guide and calls back with the state.
    config_id = scan_url.rsplit("/", 1)[1]
    userid, external_userid, xml = sim_state.ev_customer_scans_contact_way(config_id, name="扫码客")
    assert userid == "zhangsan"
    assert (await sender.send(xml)).acknowledged
    await drain(app)
    async with app[keys.SESSIONMAKER]() as session:
        relation = await session.scalar(select(FollowRelation).where(
            FollowRelation.external_userid == external_userid))
    assert relation is not None and relation.contact_way_id == way.id
    assert parse_add_me_state(relation.state) == (way.staff_id, item["id"])
    assert await counts() == (guide_before + 1, 1)

    by_content = await (await client.get("/admin/api/share/performance?by=content&period=day", headers=ADMIN)).json()
    row = next(r for r in by_content["rows"] if r["key"] == str(item["id"]))
    assert row["new_contacts"] == 1 and row["name"] == ITEM["title"]

    # The admin sees the guide's code, and a filter that names nobody is refused.
    listed = await (await client.get(f"/admin/api/share/add-me-codes?content_id={item['id']}", headers=ADMIN)).json()
    assert [(c["config_id"], c["staff"]["userid"]) for c in listed["codes"]] == [(way.config_id, "zhangsan")]
    assert (await client.get("/admin/api/share/add-me-codes?staff=nobody", headers=ADMIN)).status == 404
    assert (await client.get("/admin/api/share/add-me-codes?content_id=x", headers=ADMIN)).status == 400


async def test_the_bot_sends_an_add_me_poster(app: Any, client: TestClient, brand: Brand, sender: Any,
                                              sim_state: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = app[keys.GATEWAY]
    uploads: list[bytes] = []
    upload = gateway.upload_media

    async def keep(kind: str, filename: str, data: bytes, content_type: str) -> str:
        uploads.append(data)
        return str(await upload(kind, filename, data, content_type))

    monkeypatch.setattr(gateway, "upload_media", keep)
    await client.post("/admin/api/content", json=ITEM, headers=ADMIN)
    await client.post("/admin/api/content", json=ITEM | {"title": "春季上新"}, headers=ADMIN)
    await sender.send(sim_state.ev_member_text("zhangsan", "海报 加我 会员日"))
    await drain(app)
    image, text = sim_state.app_messages[-2:]
    assert image["msgtype"] == "image" and image["touser"] == ["zhangsan"]
    assert "「会员日 · 满299减50」的「加我」海报已发送" in str(text)
    [way] = sim_state.contact_ways.values()
    assert _qr_text(uploads[-1]) == f"{sim_state.public_base}/_sim/scan/{way.config_id}"
    assert way.user == ["zhangsan"] and parse_add_me_state(way.state) is not None

    await sender.send(sim_state.ev_member_text("zhangsan", "加我海报 会员日"))  # the same code, cached poster
    await drain(app)
    assert "「加我」海报已发送" in str(sim_state.app_messages[-1])
    assert sim_state.calls["externalcontact/add_contact_way"] == 1 and uploads[-1] == uploads[-2]
    await sender.send(sim_state.ev_member_text("zhangsan", "帮助"))
    await drain(app)
    assert "海报 加我" in str(sim_state.app_messages[-1])

