"""A guide's poster: from the sidebar as an image, and from the bot by sending 海报 (image message via media upload)."""

from __future__ import annotations

import io
from typing import Any

import zxingcpp
from aiohttp.test_utils import TestClient
from PIL import Image

from tests.brand import Brand, _as
from tests.conftest import drain

ADMIN = {"Authorization": "Bearer admin-secret"}
ITEM = {"kind": "campaign", "title": "会员日 · 满299减50", "target_url": "https://shop.example.com/member-day"}


def _qr_text(data: bytes) -> str:
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(data)).convert("RGB"))
    assert found, "no QR code on the poster"
    return str(found[0].text)


async def test_the_sidebar_poster_carries_the_guides_own_link(client: TestClient, brand: Brand, clock: Any) -> None:
    item = await (await client.post("/admin/api/content", json=ITEM, headers=ADMIN)).json()
    guide = _as("zhangsan", clock)
    resp = await client.get(f"/sidebar/api/share/content/{item['id']}/poster?channel=moments", headers=guide)
    assert resp.status == 200 and resp.content_type == "image/png"
    data = await resp.read()
    link = await (await client.post("/sidebar/api/share/links", json={"content_id": item["id"], "channel": "moments"},
                                    headers=guide)).json()
    assert _qr_text(data) == link["url"] == resp.headers["X-Share-Url"]
    assert Image.open(io.BytesIO(data)).size == (750, 1334)
    again = await client.get(f"/sidebar/api/share/content/{item['id']}/poster?channel=moments", headers=guide)
    assert await again.read() == data  # served from the cache
    jpeg = await client.get(f"/sidebar/api/share/content/{item['id']}/poster?format=jpeg", headers=guide)
    assert jpeg.content_type == "image/jpeg" and _qr_text(await jpeg.read()) != link["url"]  # no channel: own link
    theirs = await client.get(f"/sidebar/api/share/content/{item['id']}/poster?channel=moments",
                              headers=_as("lisi", clock))
    assert _qr_text(await theirs.read()) != link["url"]
    for path, status in [("/sidebar/api/share/content/424242/poster", 404),
                         (f"/sidebar/api/share/content/{item['id']}/poster?format=gif", 400)]:
        assert (await client.get(path, headers=guide)).status == status


async def test_the_bot_sends_a_poster_for_haibao(app: Any, client: TestClient, brand: Brand, sender: Any,
                                                 sim_state: Any) -> None:
    await sender.send(sim_state.ev_member_text("zhangsan", "海报"))
    await drain(app)
    assert "内容库还是空的" in str(sim_state.app_messages[-1])
    await client.post("/admin/api/content", json=ITEM, headers=ADMIN)
    await sender.send(sim_state.ev_member_text("zhangsan", "海报 会员日"))
    await drain(app)
    image, text = sim_state.app_messages[-2:]
    assert image["msgtype"] == "image" and image["touser"] == ["zhangsan"]
    media = sim_state.media[image["image"]["media_id"]]
    assert media.type == "image" and media.size > 10_000
    assert "会员日 · 满299减50" in str(text) and "/s/" in str(text)
