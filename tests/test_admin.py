"""The admin status page: guarded by the admin token, shows what an admin needs and no secrets."""

from __future__ import annotations

from typing import Any

from tests.conftest import AES_KEY, SECRET, TOKEN, drain


async def test_admin_requires_token(client: Any) -> None:
    resp = await client.get("/admin/status")
    assert resp.status == 401 and "SCRM_ADMIN_TOKEN" in await resp.text()
    resp = await client.get("/admin/login?token=wrong", allow_redirects=False)
    assert resp.status == 401


async def test_login_sets_cookie_and_page_shows_callback_url_and_checks(client: Any, sender: Any, sim_state: Any, app: Any) -> None:
    await sender.send(sim_state.ev_enter_agent("zhangsan"))
    await drain(app)
    resp = await client.get("/admin/login?token=admin-secret")
    assert resp.status == 200 and str(resp.url).endswith("/admin/status")
    page = await resp.text()
    assert "http://127.0.0.1:8080/wecom/callback" in page
    assert "✔ Token" in page and "✔ EncodingAESKey" in page
    assert "enter_agent" in page and "已完成" in page
    for path in ("/admin/pushes", "/admin/share", "/admin/channel-codes"):  # the other admin pages, linked and up
        assert f'href="{path}"' in page and (await client.get(path)).status == 200
    for secret in (TOKEN, AES_KEY, SECRET, "admin-secret"):
        assert secret not in page


async def test_admin_disabled_without_token(aiohttp_client: Any, settings: Any, clock: Any, maker: Any) -> None:
    from scrm.app import create_app

    client = await aiohttp_client(create_app(settings.with_(admin_token=""), clock=clock, run_worker=False))
    resp = await client.get("/admin/status")
    assert resp.status == 403 and "SCRM_ADMIN_TOKEN" in await resp.text()
