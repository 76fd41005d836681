"""Image scripts: an admin uploads the picture once; the sidebar gets a WeCom temporary media id to send it."""

from __future__ import annotations

import io
from typing import Any

from aiohttp import FormData, web
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image

from tests.brand import Brand, _as

ADMIN = {"Authorization": "Bearer admin-secret"}
DAY = 86400


def _png(colour: str = "#e0533d") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(out, format="PNG")
    return out.getvalue()


async def _upload(client: TestClient, data: bytes, filename: str = "门店位置.png") -> Any:
    form = FormData()
    form.add_field("file", data, filename=filename, content_type="image/png")
    return await client.post("/admin/api/media", data=form, headers=ADMIN)


async def _image_script(client: TestClient, attachment: dict[str, Any]) -> Any:
    return await client.post("/admin/api/scripts", headers=ADMIN, json={
        "category": "日常问候", "title": "门店地址", "body": "这是{store_name}的位置～", "attachment": attachment})


async def test_an_uploaded_image_is_sent_as_a_fresh_temporary_media_id(client: TestClient, brand: Brand,
                                                                       clock: Any, sim_state: Any) -> None:
    resp = await _upload(client, _png())
    assert resp.status == 201, await resp.text()
    asset = await resp.json()
    assert asset["content_type"] == "image/png" and asset["filename"] == "门店位置.png"
    again = await (await _upload(client, _png(), "copy.png")).json()
    assert again["id"] == asset["id"]  # the same bytes are stored once
    preview = await client.get(asset["url"], headers=ADMIN)
    assert preview.status == 200 and await preview.read() == _png()

    resp = await _image_script(client, {"type": "image", "asset_id": asset["id"]})
    assert resp.status == 201, await resp.text()
    script_id = (await resp.json())["id"]

    url = f"/sidebar/api/scripts/{script_id}/media"
    first = await (await client.post(url, headers=_as("zhangsan", clock))).json()
    media = sim_state.media[first["media_id"]]  # WeCom holds the picture we uploaded
    assert media.type == "image" and media.size == len(_png()) and media.filename == "门店位置.png"
    clock.advance(DAY)
    second = await (await client.post(url, headers=_as("zhangsan", clock))).json()
    assert second["media_id"] == first["media_id"]  # still two days of validity left: no new upload
    clock.advance(2 * DAY)
    third = await (await client.post(url, headers=_as("zhangsan", clock))).json()
    assert third["media_id"] != first["media_id"] and third["media_id"] in sim_state.media


async def test_an_image_url_is_fetched_once_and_kept(client: TestClient, brand: Brand, clock: Any,
                                                     sim_state: Any) -> None:
    hits: list[str] = []

    async def serve(request: web.Request) -> web.Response:
        hits.append(request.path)
        if request.path == "/map.png":
            return web.Response(body=_png("#3d7be0"), content_type="image/png")
        if request.path == "/page.html":
            return web.Response(text="<html>not an image</html>", content_type="text/html")
        return web.Response(status=404)

    images = web.Application()
    images.router.add_get("/{name}", serve)
    async with TestServer(images) as server:
        ids = {}
        for name in ("map.png", "page.html", "gone.png"):
            resp = await _image_script(client, {"type": "image", "media_url": str(server.make_url(f"/{name}"))})
            assert resp.status == 201, await resp.text()
            ids[name] = (await resp.json())["id"]
        for _ in range(2):
            resp = await client.post(f"/sidebar/api/scripts/{ids['map.png']}/media", headers=_as("zhangsan", clock))
            assert resp.status == 200 and (await resp.json())["media_id"] in sim_state.media
        assert hits.count("/map.png") == 1
        resp = await client.post(f"/sidebar/api/scripts/{ids['page.html']}/media", headers=_as("zhangsan", clock))
        assert resp.status == 400 and "只支持 JPG 或 PNG" in (await resp.json())["message"]
        resp = await client.post(f"/sidebar/api/scripts/{ids['gone.png']}/media", headers=_as("zhangsan", clock))
        assert resp.status == 502 and "HTTP 404" in (await resp.json())["message"]


async def test_bad_uploads_and_unknown_assets_get_clear_errors(client: TestClient, brand: Brand, clock: Any) -> None:
    resp = await _upload(client, b"GIF89a-not-supported")
    assert resp.status == 400 and "只支持 JPG 或 PNG" in (await resp.json())["error"]
    resp = await client.post("/admin/api/media", data=b"raw", headers=ADMIN)
    assert resp.status == 400 and "multipart/form-data" in (await resp.json())["error"]
    resp = await _image_script(client, {"type": "image", "asset_id": 424242})
    assert resp.status == 400 and "没有编号为 424242 的图片" in (await resp.json())["error"]
    text_script = await (await client.post("/admin/api/scripts", headers=ADMIN, json={
        "category": "日常问候", "title": "问候", "body": "您好"})).json()
    resp = await client.post(f"/sidebar/api/scripts/{text_script['id']}/media", headers=_as("zhangsan", clock))
    assert resp.status == 400 and "没有图片附件" in (await resp.json())["message"]
    assert (await client.post("/admin/api/media", headers={})).status == 401
