"""Shared fixtures: a migrated database (SQLite by default, PostgreSQL via DATABASE_URL), the WeCom
simulator as a real server, the service app, a callback sender and a controllable clock."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import models
from scrm import keys
from scrm.app import create_app
from scrm.db import create_engine, create_sessionmaker, upgrade_database
from scrm.settings import Settings, normalise_database_url
from wecom.crypto import CallbackCrypto
from sidebar.jssdk import clear_ticket_cache
from wecom.gateway import clear_token_cache
from wecom.simulator.api import create_simulator_app
from wecom.simulator.callbacks import CallbackSender
from wecom.simulator.state import SimulatorState

pytest_plugins = ["tests.brand"]

VECTORS_PATH = Path(__file__).resolve().parents[2] / "shared" / "wecom" / "vectors.json"
CORP_ID = "ww5a1b2c3d4e5f6a7b"
AGENT_ID = 1000002
SECRET = "test-agent-secret-0123456789"
TOKEN = "TestToken2026"
AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"


@pytest.fixture(scope="session")
def vectors() -> dict[str, Any]:
    """The verified WeCom test vectors from ../shared/wecom/vectors.json."""
    return json.loads(VECTORS_PATH.read_text(encoding="utf-8"))


class FakeClock:
    """A clock tests can move; starts at the real time so timestamps look real."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)

    def __call__(self) -> dt.datetime:
        return self.now

    def timestamp(self) -> float:
        return self.now.timestamp()

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture(autouse=True)
def _fresh_token_cache() -> Iterator[None]:
    """The gateway shares tokens process-wide; each test starts without one."""
    clear_token_cache()
    clear_ticket_cache()
    yield
    clear_token_cache()
    clear_ticket_cache()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _database_url(tmp_root: Path) -> str:
    raw = os.environ.get("DATABASE_URL", "")
    return normalise_database_url(raw) if raw else f"sqlite+aiosqlite:///{tmp_root / 'test.db'}"


async def _reset_postgres(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database migrated to head once per test session."""
    url = _database_url(tmp_path_factory.mktemp("db"))
    if url.startswith("postgresql"):
        asyncio.run(_reset_postgres(url))
    upgrade_database(url)
    return url


@pytest.fixture
async def maker(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A session factory over an emptied database."""
    engine = create_engine(database_url)
    async with engine.begin() as conn:
        for table in reversed(models.Base.metadata.sorted_tables):
            await conn.execute(table.delete())
    yield create_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
def sim_state(clock: FakeClock) -> SimulatorState:
    """A fake corp with two guides and their store manager."""
    state = SimulatorState(CORP_ID, AGENT_ID, SECRET, clock=clock.timestamp)
    state.add_member("zhangsan", "张三", position="导购")
    state.add_member("lisi", "李四", position="导购")
    state.add_member("wangmgr", "王店长", position="店长")
    return state


@pytest.fixture
async def sim_server(sim_state: SimulatorState) -> AsyncIterator[TestServer]:
    """The simulator listening on 127.0.0.1 (the gateway reaches it over real HTTP)."""
    server = TestServer(create_simulator_app(sim_state), host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
def settings(database_url: str, sim_server: TestServer) -> Settings:
    return Settings(
        corp_id=CORP_ID,
        agent_id=AGENT_ID,
        agent_secret=SECRET,
        token=TOKEN,
        encoding_aes_key=AES_KEY,
        public_base_url="http://127.0.0.1:8080",
        database_url=database_url,
        api_base=str(sim_server.make_url("/cgi-bin/")),
        admin_token="admin-secret",
        session_secret="test-session-secret-0123456789abcdef",
    )


@pytest.fixture
async def app(settings: Settings, clock: FakeClock, maker: async_sessionmaker[AsyncSession]) -> web.Application:
    """The service, with its inbox worker created but not started (tests drive it)."""
    return create_app(settings, clock=clock, run_worker=False)


@pytest.fixture
async def client(app: web.Application, aiohttp_client: Any) -> TestClient:
    return await aiohttp_client(app)


@pytest.fixture
async def sender(client: TestClient, settings: Settings, clock: FakeClock) -> AsyncIterator[CallbackSender]:
    """Sends really encrypted pushes to the service, as WeCom would."""
    crypto = CallbackCrypto(settings.token, settings.encoding_aes_key, settings.corp_id)
    s = CallbackSender(crypto, settings.agent_id, str(client.make_url(settings.callback_path)),
                       clock=clock.timestamp, retries=0)
    yield s
    await s.close()


async def drain(app: web.Application) -> int:
    """Run the inbox worker until nothing is due; returns events processed."""
    total = 0
    while n := await app[keys.WORKER].run_once():
        total += n
    return total
