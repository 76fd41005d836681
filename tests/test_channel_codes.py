"""Channel codes (渠道活码): a multi-guide contact way in WeCom with a duty roster, its own welcome and tags, counts."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any
from urllib.parse import unquote

import pytest
import zxingcpp
from aiohttp import FormData
from aiohttp.test_utils import TestClient
from PIL import Image
from sqlalchemy import func, select

from bot import sync
from bot.context import BotContext
from models import (
    AuditEntry,
    ChannelCode,
    ChannelCodeAdd,
    ContactWay,
    CustomerTag,
    FollowRelation,
    Order,
    OrderStatus,
    Store,
    Tag,
    TagSource,
)
from scrm import keys
from sharing.channel_code_qr import SHEET_SIZE
from sharing.channel_codes import CHANNEL_CODES, ChannelCodes, state_for
from tests.brand import Brand
from tests.conftest import drain

ADMIN = {"Authorization": "Bearer admin-secret"}
API = "/admin/api/channel-codes"
DAY = 86400
#: Monday 2026-11-23 10:00 in Shanghai (the brand's default zone).
MONDAY_10AM = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.timezone.utc)
WORKDAY = [{"weekday": 0, "start": "09:00", "end": "18:00"}]


@pytest.fixture
def monday(clock: Any) -> Any:
    """Start on a Monday morning so the schedules below mean the same on every run."""
    clock.now = MONDAY_10AM
    return clock


@pytest.fixture
async def tags(app: Any, brand: Brand, sim_state: Any) -> dict[str, Any]:
    """Two WeCom corp tags mirrored here, and one tag of our own (ids; ``*_wecom``: WeCom's tag ids)."""
    sim_state.add_tag_group("渠道来源", ["春季上新", "徐汇门店"])
    ctx = BotContext(app[keys.SESSIONMAKER], app[keys.GATEWAY], app[keys.SETTINGS], app[keys.CLOCK])
    await sync.sync_tag_library(ctx)
    async with app[keys.SESSIONMAKER].begin() as session:
        spring = await session.scalar(select(Tag).where(Tag.name == "春季上新"))
        store = await session.scalar(select(Tag).where(Tag.name == "徐汇门店"))
        local = await sync.local_tag(session, "活动", "扫码进店")
        assert spring and store
        return {"spring": spring.id, "spring_wecom": spring.wecom_tag_id, "store": store.id,
                "store_wecom": store.wecom_tag_id, "local": local.id}


def _png(colour: str = "#3d7be0") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (80, 60), colour).save(out, format="PNG")
    return out.getvalue()


async def _upload(client: TestClient, data: bytes) -> int:
    form = FormData()
    form.add_field("file", data, filename="门店.png", content_type="image/png")
    resp = await client.post("/admin/api/media", data=form, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    return int((await resp.json())["id"])


def _body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "徐汇店·春季上新", "kind": "campaign",
        "members": [{"userid": "zhangsan", "role": "primary", "schedule": WORKDAY},
                    {"userid": "lisi", "role": "primary", "schedule": WORKDAY},
                    {"userid": "wangmgr", "role": "backup"}],
    }
    body.update(changes)
    return body


async def _create(client: TestClient, **changes: Any) -> dict[str, Any]:
    resp = await client.post(API, json=_body(**changes), headers=ADMIN)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def _scan(app: Any, sim_state: Any, sender: Any, config_id: str, name: str = "扫码客") -> tuple[str, str]:
    userid, external_userid, xml = sim_state.ev_customer_scans_contact_way(config_id, name=name)
    assert (await sender.send(xml)).acknowledged
    await drain(app)
    return userid, external_userid


async def _stats(client: TestClient, code_id: int, period: str = "week") -> dict[str, Any]:
    resp = await client.get(f"{API}/{code_id}/stats?period={period}", headers=ADMIN)
    assert resp.status == 200, await resp.text()
    return await resp.json()


def _service(app: Any) -> ChannelCodes:
    return app[CHANNEL_CODES]


async def test_creating_a_code_makes_a_multi_member_contact_way_with_the_guides_on_duty(
    client: TestClient, app: Any, brand: Brand, sim_state: Any, monday: Any, maker: Any
) -> None:
    code = await _create(client)
    assert code["status"] == "active" and code["state"] == state_for(code["id"]) and len(code["state"]) <= 30
    way = sim_state.contact_ways[code["config_id"]]
    assert (way.type, way.scene, way.user, way.state, way.skip_verify) == (2, 2, ["zhangsan", "lisi"], code["state"],
                                                                          True)
    assert code["on_duty"] == ["zhangsan", "lisi"] and code["qr_code"] == way.qr_code
    assert code["members"][0]["schedule"] == [{"weekday": 0, "start": "09:00", "end": "18:00"}]
    async with maker() as session:
        row = await session.scalar(select(ContactWay).where(ContactWay.config_id == code["config_id"]))
        assert row is not None and row.state == code["state"] and row.staff_id is None
    listed = await (await client.get(API, headers=ADMIN)).json()
    assert [c["id"] for c in listed["codes"]] == [code["id"]] and listed["codes"][0]["stats"]["adds"] == 0


async def test_the_roster_follows_the_schedule_and_wecom_is_told_only_of_changes(
    client: TestClient, app: Any, brand: Brand, sim_state: Any, monday: Any
) -> None:
    code = await _create(client)
    service = _service(app)
    calls = lambda: sim_state.calls["externalcontact/update_contact_way"]  # noqa: E731
    assert await service.sync_duty() == 0 and calls() == 0  # still 10:00: nothing to tell WeCom

    monday.advance(9 * 3600)  # 19:00: the primaries are off, the backup takes over
    assert await service.sync_duty() == 1 and calls() == 1
    assert sim_state.contact_ways[code["config_id"]].user == ["wangmgr"]
    assert await service.sync_duty() == 0 and calls() == 1  # unchanged: no call

    monday.advance(14 * 3600)  # Tuesday 09:00: nobody has a Tuesday slot and the backup is all-week
    assert await service.sync_duty() == 0 and calls() == 1

    # An edit pushes the new roster at once: lisi now also works Tuesdays.
    members = _body()["members"]
    members[1]["schedule"] = WORKDAY + [{"weekday": 1, "start": "08:00", "end": "20:00"}]
    resp = await client.put(f"{API}/{code['id']}", json={"members": members}, headers=ADMIN)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["on_duty"] == ["lisi"] and calls() == 2
    assert sim_state.contact_ways[code["config_id"]].user == ["lisi"]
    async with app[keys.SESSIONMAKER]() as session:
        changes = (await session.scalars(select(AuditEntry.detail).where(
            AuditEntry.action == "channel_code_duty_changed"))).all()
    assert changes == [{"previous": ["zhangsan", "lisi"], "on_duty": ["wangmgr"]}]


async def test_scanners_are_handed_out_in_turn(
    client: TestClient, app: Any, brand: Brand, sim_state: Any, sender: Any, monday: Any, maker: Any
) -> None:
    code = await _create(client)
    guides = [(await _scan(app, sim_state, sender, code["config_id"], f"顾客{i}"))[0] for i in range(3)]
    assert guides == ["zhangsan", "lisi", "zhangsan"]
    async with maker() as session:
        adds = (await session.execute(
            select(ChannelCodeAdd.code_id, func.count()).group_by(ChannelCodeAdd.code_id))).all()
    assert adds == [(code["id"], 3)]


async def test_an_add_through_the_code_gets_its_welcome_and_tags_and_is_counted(
    client: TestClient, app: Any, brand: Brand, sim_state: Any, sender: Any, monday: Any, maker: Any, tags: Any
) -> None:
    asset_id = await _upload(client, _png())
    link = {"type": "link", "title": "春季新品手册", "url": "https://shop.example.com/spring", "desc": "点击查看"}
    code = await _create(client, welcome={"text": "{customer_name}您好，我是{guide_name}，送您一张新品图～",
                                          "attachments": [{"type": "image", "asset_id": asset_id}, link]},
                         tag_ids=[tags["spring"], tags["store_wecom"], tags["local"]])
    assert code["tag_ids"] == [tags["spring"], tags["store"], tags["local"]]
    uploads = sim_state.calls["media/upload"]
    assert uploads == 1  # uploaded when the code was saved, not inside the 20-second window

    userid, external_userid = await _scan(app, sim_state, sender, code["config_id"], "王小美")
    assert sim_state.calls["media/upload"] == uploads
    [welcome] = sim_state.welcome_messages
    assert welcome["external_userid"] == external_userid and welcome["userid"] == userid == "zhangsan"
    assert welcome["text"] == {"content": "王小美您好，我是张三，送您一张新品图～"}
    image, sent_link = welcome["attachments"]
    assert image["msgtype"] == "image" and image["image"]["media_id"] in sim_state.media
    assert sent_link == {"msgtype": "link", "link": {k: v for k, v in link.items() if k != "type"}}

    follow = sim_state.follows[(userid, external_userid)]
    assert set(follow.tag_ids) == {tags["spring_wecom"], tags["store_wecom"]}
    async with maker() as session:
        rows = {(t, s) for t, s in (await session.execute(select(CustomerTag.tag_id, CustomerTag.source))).all()}
        relation = await session.scalar(select(FollowRelation).where(FollowRelation.external_userid == external_userid))
    assert {(tags["spring"], TagSource.WECOM), (tags["store"], TagSource.WECOM), (tags["local"], TagSource.BOT)} <= rows
    assert relation is not None and relation.state == code["state"]

    stats = await _stats(client, code["id"])
    assert (stats["adds"], stats["adds_in_period"], stats["eligible_7d"], stats["kept_rate_7d"]) == (1, 1, 0, None)
    assert (await _stats(client, code["id"], "day"))["adds_in_period"] == 1


async def test_an_image_without_a_media_id_leaves_the_text_and_link_and_is_audited(
    client: TestClient, app: Any, brand: Brand, sim_state: Any, sender: Any, monday: Any, maker: Any
) -> None:
    asset_id = await _upload(client, _png("#aa3300"))
    code = await _create(client, welcome={"text": "欢迎光临", "attachments": [
        {"type": "image", "asset_id": asset_id},
        {"type": "link", "title": "门店地址", "url": "https://shop.example.com/store"}]})
    monday.advance(3 * DAY)  # the pre-uploaded id has expired, and WeCom refuses the re-upload
    sim_state.inject_error("media/upload", 45001, times=5)
    await _service(app).sync_duty()  # (Thursday: the backup's turn; the scan below goes to them)
    await _scan(app, sim_state, sender, code["config_id"])
    [welcome] = sim_state.welcome_messages
    assert welcome["text"] == {"content": "欢迎光临"}
    assert [a["msgtype"] for a in welcome["attachments"]] == ["link"]
    async with maker() as session:
        problem = await session.scalar(select(AuditEntry).where(AuditEntry.action == "welcome_attachment_problem"))
    assert problem is not None and "media_id" in problem.detail["problems"][0]


async def test_kept_after_7_days_and_orders_after_the_add(
    client: TestClient, app: Any, brand: Brand, sim_state: Any, sender: Any, monday: Any, maker: Any
) -> None:
    code = await _create(client)
    guide_a, kept = await _scan(app, sim_state, sender, code["config_id"], "留下的")
    guide_b, leaver = await _scan(app, sim_state, sender, code["config_id"], "走掉的")
    monday.advance(3 * DAY)
    assert (await sender.send(sim_state.ev_customer_deletes_member(guide_b, leaver))).acknowledged
    await drain(app)

    async with maker.begin() as session:
        customer_id = await session.scalar(
            select(FollowRelation.customer_id).where(FollowRelation.external_userid == kept))
        assert customer_id is not None
        now = monday.now

        def order(n: int, at: dt.datetime, paid: int, status: OrderStatus = OrderStatus.PAID,
                  refunded: int = 0) -> Order:
            return Order(channel="pos", channel_order_id=f"cc-{n}", customer_id=customer_id, status=status,
                         total_cents=paid, paid_cents=paid, refunded_cents=refunded, ordered_at=at, paid_at=at,
                         received_at=at, updated_at=at, source={})

        session.add_all([
            order(1, MONDAY_10AM - dt.timedelta(days=1), 99_900),  # before the add: not the code's
            order(2, now, 12_800),
            order(3, now, 30_000, OrderStatus.PARTIALLY_REFUNDED, refunded=10_000),
            order(4, now, 50_000, OrderStatus.REFUNDED, refunded=50_000),  # refunded: not counted
        ])
    monday.advance(5 * DAY)  # day 8: both adds are 7 days old
    stats = await _stats(client, code["id"])
    assert (stats["adds"], stats["eligible_7d"], stats["kept_7d"], stats["kept_rate_7d"]) == (2, 2, 1, 0.5)
    assert (stats["orders"], stats["buyers"], stats["gmv"]) == (2, 1, "328.00")
    assert stats["adds_in_period"] == 0 and stats["orders_in_period"] == 0  # this week: nothing new
    last_week = await (await client.get(f"{API}/{code['id']}/stats?period=week&offset=1", headers=ADMIN)).json()
    assert (last_week["adds_in_period"], last_week["orders_in_period"], last_week["gmv_in_period"]) == (2, 2, "328.00")

    page = await client.get("/admin/channel-codes", headers=ADMIN)
    text = await page.text()
    assert page.status == 200 and "徐汇店·春季上新" in text and "1/2（50.0%）" in text and "¥328.00" in text


@pytest.mark.parametrize(("changes", "field", "words"), [
    ({"members": []}, "members", "不能为空"),
    ({"members": [{"userid": "nobody"}]}, "members[0].userid", "不存在"),
    ({"members": [{"userid": "zhangsan", "role": "boss"}]}, "members[0].role", "primary"),
    ({"members": [{"userid": "zhangsan", "role": "backup"}]}, "members", "主导购"),
    ({"members": [{"userid": "zhangsan", "schedule": [{"weekday": 7, "start": "09:00", "end": "18:00"}]}]},
     "members[0].schedule[0]", "weekday"),
    ({"members": [{"userid": "zhangsan", "schedule": [{"weekday": 0, "start": "22:00", "end": "02:00"}]}]},
     "members[0].schedule[0]", "跨午夜"),
    ({"members": [{"userid": "zhangsan", "schedule": [{"weekday": 0, "start": "9点", "end": "18:00"}]}]},
     "members[0].schedule[0]", "HH:MM"),
    ({"tag_ids": [999999]}, "tag_ids[0]", "标签"),
    ({"welcome": {"attachments": [{"type": "image", "asset_id": 424242}]}}, "welcome.attachments[0].asset_id", "素材"),
    ({"welcome": {"attachments": [{"type": "link", "title": "x", "url": "https://e.com/"}] * 10}},
     "welcome.attachments", "最多 9 个"),
    ({"welcome": {"attachments": [{"type": "link", "title": "手册", "url": "ftp://x"}]}},
     "welcome.attachments[0].url", "网址"),
    ({"welcome": {"attachments": [{"type": "video", "media_id": "x"}]}}, "welcome.attachments[0].type", "image"),
    ({"welcome": {"text": "字" * 1400}}, "welcome.text", "4000 字节"),
    ({"name": ""}, "name", "不能为空"),
    ({"kind": "store"}, "store_id", "门店"),
    ({"kind": "store", "store_id": 9999}, "store_id", "不存在"),
])
async def test_bad_requests_are_refused_in_chinese_naming_the_field(
    client: TestClient, brand: Brand, sim_state: Any, changes: dict[str, Any], field: str, words: str
) -> None:
    resp = await client.post(API, json=_body(**changes), headers=ADMIN)
    assert resp.status == 400, await resp.text()
    error = await resp.json()
    assert error["field"] == field and words in error["error"], error
    assert sim_state.calls["externalcontact/add_contact_way"] == 0


async def test_disabling_deletes_the_contact_way_but_keeps_the_code_and_its_counts(
    client: TestClient, app: Any, brand: Brand, sim_state: Any, sender: Any, monday: Any
) -> None:
    code = await _create(client)
    await _scan(app, sim_state, sender, code["config_id"])
    resp = await client.post(f"{API}/{code['id']}/disable", headers=ADMIN)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["status"] == "disabled"
    assert code["config_id"] not in sim_state.contact_ways
    again = await client.post(f"{API}/{code['id']}/disable", headers=ADMIN)
    assert again.status == 200 and sim_state.calls["externalcontact/del_contact_way"] == 1
    got = await (await client.get(f"{API}/{code['id']}", headers=ADMIN)).json()
    assert got["status"] == "disabled" and got["stats"]["adds"] == 1 and got["config_id"] == code["config_id"]
    qr = await client.get(f"{API}/{code['id']}/qr.png", headers=ADMIN)
    assert qr.status == 409 and "停用" in (await qr.json())["error"]
    assert (await client.put(f"{API}/{code['id']}", json={"name": "新名字"}, headers=ADMIN)).status == 409
    assert await _service(app).sync_duty() == 0


async def test_the_qr_downloads_and_prints_and_decodes_to_the_scan_page(
    client: TestClient, app: Any, brand: Brand, sim_state: Any, monday: Any
) -> None:
    code = await _create(client, kind="store", store_id=await _store_id(app, "SH01"))
    resp = await client.get(f"{API}/{code['id']}/qr.png", headers=ADMIN)
    assert resp.status == 200 and resp.content_type == "image/png"
    disposition = resp.headers["Content-Disposition"]
    assert disposition.startswith("attachment;") and unquote(disposition.split("UTF-8''")[1]) == "徐汇店·春季上新.png"
    [decoded] = zxingcpp.read_barcodes(Image.open(io.BytesIO(await resp.read())))
    assert decoded.text.endswith(f"/_sim/scan/{code['config_id']}")

    printed = await client.get(f"{API}/{code['id']}/qr.png?print=1", headers=ADMIN)
    assert printed.status == 200 and "打印版" in unquote(printed.headers["Content-Disposition"])
    sheet = Image.open(io.BytesIO(await printed.read()))
    assert sheet.size == SHEET_SIZE
    [decoded] = zxingcpp.read_barcodes(sheet)
    assert decoded.text.endswith(f"/_sim/scan/{code['config_id']}")
    assert code["store"]["name"] == "上海徐汇店"


async def _store_id(app: Any, code: str) -> int:
    async with app[keys.SESSIONMAKER]() as session:
        store_id = await session.scalar(select(Store.id).where(Store.code == code))
    assert store_id is not None
    return store_id


async def test_a_wecom_error_on_create_leaves_no_half_made_code(
    client: TestClient, app: Any, brand: Brand, sim_state: Any, maker: Any, monday: Any
) -> None:
    sim_state.inject_error("externalcontact/add_contact_way", 84074)
    resp = await client.post(API, json=_body(), headers=ADMIN)
    assert resp.status == 502
    error = await resp.json()
    assert "84074" in error["error"] and "客户联系权限" in error["error"] and error["errcode"] == 84074
    async with maker() as session:
        assert await session.scalar(select(func.count()).select_from(ChannelCode)) == 0
        assert await session.scalar(select(func.count()).select_from(ContactWay)) == 0
        failed = await session.scalar(select(AuditEntry).where(AuditEntry.action == "channel_code_create_failed"))
    assert failed is not None
    assert (await (await client.get(API, headers=ADMIN)).json())["codes"] == []


async def test_a_half_add_is_tagged_in_wecom_once_the_guide_confirms(
    client: TestClient, app: Any, brand: Brand, sim_state: Any, sender: Any, monday: Any, maker: Any, tags: Any
) -> None:
    code = await _create(client, skip_verify=False, tag_ids=[tags["spring"]])
    assert sim_state.contact_ways[code["config_id"]].skip_verify is False
    userid, external_userid = await _scan(app, sim_state, sender, code["config_id"])
    assert sim_state.follows[(userid, external_userid)].tag_ids == []  # WeCom refuses tags on a half add
    assert (await sender.send(sim_state.ev_member_confirms_half(userid, external_userid))).acknowledged
    await drain(app)
    assert sim_state.follows[(userid, external_userid)].tag_ids == [tags["spring_wecom"]]
    async with maker() as session:
        assert await session.scalar(select(func.count()).select_from(ChannelCodeAdd)) == 1  # one add, not two
        assert await session.scalar(select(CustomerTag.source).where(CustomerTag.tag_id == tags["spring"])) \
            is TagSource.WECOM


async def test_the_job_keeps_media_ids_fresh_so_the_welcome_uploads_nothing(
    client: TestClient, app: Any, brand: Brand, sim_state: Any, sender: Any, monday: Any, maker: Any
) -> None:
    image, cover = await _upload(client, _png("#112233")), await _upload(client, _png("#445566"))
    mini = {"type": "miniprogram", "title": "会员中心", "appid": "wx1234567890abcdef", "page": "pages/vip/index",
            "pic_asset_id": cover}
    code = await _create(client, welcome={"attachments": [{"type": "image", "asset_id": image}, mini]})
    assert len(sim_state.media) == 2  # both pictures, when the code was saved
    service = _service(app)
    monday.advance(DAY)
    await service.run_job()
    assert len(sim_state.media) == 2  # a day old: still good
    monday.advance(int(1.6 * DAY))  # 2.6 days: older than 2.5, refreshed before WeCom's 3 days run out
    await service.run_job()
    assert len(sim_state.media) == 4
    monday.advance(int(0.3 * DAY))  # day 2.9: the first uploads would have expired by now, not these
    await _scan(app, sim_state, sender, code["config_id"])
    assert len(sim_state.media) == 4
    [welcome] = sim_state.welcome_messages
    kinds = {a["msgtype"]: a for a in welcome["attachments"]}
    assert kinds["image"]["image"]["media_id"] in sim_state.media
    assert kinds["miniprogram"]["miniprogram"]["pic_media_id"] in sim_state.media
    assert kinds["miniprogram"]["miniprogram"]["appid"] == mini["appid"]
    assert welcome["text"]["content"].startswith("您好，我是")  # no text of its own: the default welcome


async def test_a_row_left_by_a_crash_mid_create_is_cleaned_up(
    client: TestClient, app: Any, brand: Brand, monday: Any, maker: Any
) -> None:
    async with maker.begin() as session:
        session.add(ChannelCode(name="半成品", kind="campaign", created_at=monday.now, updated_at=monday.now))
    listed = await (await client.get(API, headers=ADMIN)).json()
    assert [c["status"] for c in listed["codes"]] == ["creating"]
    await _service(app).run_job()
    async with maker() as session:
        assert await session.scalar(select(func.count()).select_from(ChannelCode)) == 1  # too young to judge
    monday.advance(11 * 60)
    await _service(app).run_job()
    async with maker() as session:
        assert await session.scalar(select(func.count()).select_from(ChannelCode)) == 0
