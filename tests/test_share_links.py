"""Share codes, the content library and each guide's own link to an item."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from models import LinkClick, Staff, StaffRole
from sharing import codes
from tests.brand import Brand, _as

ADMIN = {"Authorization": "Bearer admin-secret"}
KEY = "k" * 32
MILK = {"kind": "product", "title": "有机婴儿奶粉 3 段 800g", "target_url": "https://shop.example.com/p/1001?from=wx#top",
        "cover_url": "https://img.example.com/1001.png", "category": "奶粉"}


def test_a_million_ids_give_a_million_distinct_codes() -> None:
    permuted = {codes.permute(i, KEY) for i in range(1, 1_000_001)}
    assert len(permuted) == 1_000_000 and max(permuted) <= codes.MAX_ID


@pytest.mark.parametrize("number", [0, 1, 2, 55, 56, 123_456_789, codes.MAX_ID])
def test_codes_are_seven_characters_and_decode_back(number: int) -> None:
    code = codes.code_for(number, KEY)
    assert len(code) == codes.CODE_LENGTH and codes.looks_like_code(code)
    assert not set(code) & set("0O1lI")
    assert codes.unpermute(codes.decode(code), KEY) == number


def test_consecutive_links_do_not_give_consecutive_codes() -> None:
    values = [codes.permute(i, KEY) for i in range(1, 201)]
    steps = {b - a for a, b in zip(values, values[1:], strict=False)}
    assert len(steps) > 190  # no fixed stride to walk
    assert sum(1 for a, b in zip(values, values[1:], strict=False) if abs(b - a) < 1_000_000) < 3
    assert codes.code_for(1, KEY) != codes.code_for(1, "another-secret-" + "x" * 20)


@pytest.mark.parametrize("bad", ["", "abc", "abcdefgh", "abc0def", "abc-def"])
def test_malformed_codes_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        codes.decode(bad)


@pytest.mark.parametrize(("body", "field", "message"), [
    ({**MILK, "kind": "video"}, "kind", "类型须为"),
    ({**MILK, "title": " "}, "title", "标题不能为空"),
    ({**MILK, "title": "长" * 129}, "title", "最多 128"),
    ({**MILK, "target_url": "javascript:alert(1)"}, "target_url", "须为 http(s) 地址"),
    ({**MILK, "cover_url": "ftp://x/y.png"}, "cover_url", "须为 http(s) 地址"),
    ({**MILK, "kind": "miniprogram"}, "miniprogram_appid", "小程序 appid不能为空"),
    ({**MILK, "interest_tag_ids": [999999]}, "interest_tag_ids", "不存在或已删除"),
    ({**MILK, "interest_tag_ids": "奶粉"}, "interest_tag_ids", "标签编号的列表"),
])
async def test_content_validation(client: TestClient, body: dict[str, Any], field: str, message: str) -> None:
    resp = await client.post("/admin/api/content", json=body, headers=ADMIN)
    answer = await resp.json()
    assert resp.status == 400 and answer["field"] == field and message in answer["error"], answer


async def test_a_guide_gets_the_same_link_every_time_and_sees_its_clicks(client: TestClient, brand: Brand,
                                                                         clock: Any, maker: Any) -> None:
    item = await (await client.post("/admin/api/content", json=MILK, headers=ADMIN)).json()
    assert item["kind_name"] == "商品"
    library = await (await client.get("/sidebar/api/share/content?q=奶粉", headers=_as("zhangsan", clock))).json()
    assert [c["id"] for c in library["content"]] == [item["id"]]

    async def link(userid: str, **body: Any) -> Any:
        resp = await client.post("/sidebar/api/share/links", json={"content_id": item["id"], **body},
                                 headers=_as(userid, clock))
        assert resp.status == 200, await resp.text()
        return await resp.json()

    first = await link("zhangsan", channel="moments")
    again = await link("zhangsan", channel="朋友圈")
    assert again["code"] == first["code"] and first["url"].endswith("/s/" + first["code"])
    assert first["channel_name"] == "朋友圈" and len(first["code"]) == codes.CODE_LENGTH
    other_channel, colleague = await link("zhangsan", channel="group"), await link("lisi", channel="moments")
    assert len({first["code"], other_channel["code"], colleague["code"]}) == 3

    async with maker.begin() as session:
        session.add_all([LinkClick(link_id=first["id"], at=clock.now, visitor_id=v, ua_class="wechat")
                         for v in ("v1", "v1", "v2")])
    mine = await (await client.get("/sidebar/api/share/links", headers=_as("zhangsan", clock))).json()
    assert [(m["code"], m["clicks"], m["visitors"]) for m in mine["links"]] == [
        (first["code"], 3, 2), (other_channel["code"], 0, 0)]
    everyone = await (await client.get("/admin/api/share-links", headers=ADMIN)).json()
    assert {g["userid"] for g in everyone["guides"]} == {"zhangsan", "lisi"}
    lisi = await (await client.get("/admin/api/share-links?staff=lisi", headers=ADMIN)).json()
    assert [(g["userid"], [link["code"] for link in g["links"]]) for g in lisi["guides"]] == [
        ("lisi", [colleague["code"]])]
    assert (await client.get("/admin/api/share-links?staff=nobody", headers=ADMIN)).status == 404


async def test_retired_content_and_bad_requests_are_refused(client: TestClient, brand: Brand, clock: Any,
                                                            maker: Any) -> None:
    item = await (await client.post("/admin/api/content", json=MILK, headers=ADMIN)).json()
    resp = await client.put(f"/admin/api/content/{item['id']}", json={"enabled": False}, headers=ADMIN)
    assert resp.status == 200 and (await resp.json())["enabled"] is False
    assert (await client.get(f"/admin/api/content/{item['id']}", headers=ADMIN)).status == 200
    guide = _as("zhangsan", clock)
    library = await (await client.get("/sidebar/api/share/content", headers=guide)).json()
    assert library["content"] == []
    for body, status, message in [({"content_id": item["id"]}, 404, "不存在或已下架"),
                                  ({"content_id": 424242}, 404, "不存在或已下架"),
                                  ({"content_id": "1"}, 400, "请求体须为 JSON 对象"),
                                  ({"content_id": item["id"], "channel": "weibo"}, 400, "渠道须为")]:
        resp = await client.post("/sidebar/api/share/links", json=body, headers=guide)
        assert resp.status == status and message in (await resp.json())["message"], body
    async with maker.begin() as session:
        session.add(Staff(userid="quit", name="离职", role=StaffRole.GUIDE, wecom_status=5))
    resp = await client.post("/sidebar/api/share/links", json={"content_id": item["id"]}, headers=_as("quit", clock))
    assert resp.status == 403
    assert (await client.put("/admin/api/content/424242", json={}, headers=ADMIN)).status == 404
