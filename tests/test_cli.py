"""The `scrm` command as an admin uses it: check a deployment, refuse bad settings, drive the simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from scrm import cli
from scrm.app import create_app
from tests.conftest import AES_KEY, AGENT_ID, CORP_ID, SECRET, TOKEN


def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **overrides: str) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    values = {
        "WECOM_CORP_ID": CORP_ID, "WECOM_AGENT_ID": str(AGENT_ID), "WECOM_AGENT_SECRET": SECRET,
        "WECOM_TOKEN": TOKEN, "WECOM_ENCODING_AES_KEY": AES_KEY, **overrides,
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)


async def test_check_passes_against_a_working_deployment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, settings: Any, clock: Any, maker: Any, capsys: Any
) -> None:
    server = TestServer(create_app(settings, run_worker=False), host="127.0.0.1")
    await server.start_server()
    try:
        _env(monkeypatch, tmp_path, WECOM_API_BASE=settings.api_base, PUBLIC_BASE_URL=str(server.make_url("")).rstrip("/"))
        assert await cli._check() == 0
    finally:
        await server.close()
    out = capsys.readouterr().out
    assert "✔ gettoken works" in out and "answers a signed URL verification" in out


async def test_check_names_what_is_wrong(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, settings: Any, maker: Any, capsys: Any
) -> None:
    # The service runs with one Token; the admin's environment has another, and a wrong secret.
    server = TestServer(create_app(settings, run_worker=False), host="127.0.0.1")
    await server.start_server()
    try:
        _env(monkeypatch, tmp_path, WECOM_API_BASE=settings.api_base, WECOM_TOKEN="SomeOtherToken",
             WECOM_AGENT_SECRET="wrong-secret", PUBLIC_BASE_URL=str(server.make_url("")).rstrip("/"))
        assert await cli._check() == 1
    finally:
        await server.close()
    out = capsys.readouterr().out
    assert "✘ gettoken" in out and "40001" in out
    assert "✘" in out and "WECOM_TOKEN" in out


def test_bad_settings_exit_with_every_key_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Any) -> None:
    _env(monkeypatch, tmp_path, WECOM_ENCODING_AES_KEY="short")
    monkeypatch.delenv("PUBLIC_BASE_URL", raising=False)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["serve"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "WECOM_ENCODING_AES_KEY must be exactly 43" in err and "PUBLIC_BASE_URL is missing" in err


async def test_simulate_runs_a_scenario_against_the_service(
    settings: Any, maker: Any, capsys: Any, sim_state: Any, aiohttp_client: Any, clock: Any
) -> None:
    from scrm.demo import simulator_app

    service = TestServer(create_app(settings, run_worker=False), host="127.0.0.1")
    await service.start_server()
    sim = TestServer(simulator_app(sim_state, settings, str(service.make_url(settings.callback_path))), host="127.0.0.1")
    await sim.start_server()
    try:
        args = cli.build_parser().parse_args(["simulate", "add_customer", "--simulator", str(sim.make_url("")),
                                              "--params", '{"userid": "zhangsan"}'])
        assert await cli._simulate(args) == 0
        listing = cli.build_parser().parse_args(["simulate", "--list", "--simulator", str(sim.make_url(""))])
        assert await cli._simulate(listing) == 0
    finally:
        await sim.close()
        await service.close()
    out = capsys.readouterr().out
    assert "✔ add_external_contact" in out and "HTTP 200" in out
    assert "customer_deletes_guide" in out


def test_serve_refuses_an_unmigrated_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Any) -> None:
    _env(monkeypatch, tmp_path, PUBLIC_BASE_URL="http://127.0.0.1:1", DATABASE_URL=f"sqlite:///{tmp_path}/empty.db",
         SCRM_PORT="1")
    assert cli.main(["serve"]) == 2
    assert "scrm db upgrade" in capsys.readouterr().err
