"""Two real service processes on one database: a due push runs once, in the process holding the lease."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer, unused_port
from sqlalchemy import func, select

from models import Lease, PushRun, RunStatus
from scrm import keys
from scrm.settings import Settings
from tests.brand import Brand
from wecom.simulator.state import SimulatorState

ROOT = Path(__file__).resolve().parents[1]
ADMIN = {"Authorization": "Bearer admin-secret"}


@pytest.fixture
def services(settings: Settings, sim_server: TestServer, tmp_path: Path) -> Iterator[list[tuple[int, Any]]]:
    """Two `scrm serve` processes with the test's corp, database and simulator (stopped afterwards)."""
    started: list[tuple[int, Any, Any]] = []
    for i in range(2):
        port = unused_port()
        env = dict(os.environ, WECOM_CORP_ID=settings.corp_id, WECOM_AGENT_ID=str(settings.agent_id),
                   WECOM_AGENT_SECRET=settings.agent_secret, WECOM_TOKEN=settings.token,
                   WECOM_ENCODING_AES_KEY=settings.encoding_aes_key, PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
                   DATABASE_URL=settings.database_url, WECOM_API_BASE=settings.api_base, SCRM_PORT=str(port),
                   SCRM_ADMIN_TOKEN="admin-secret", SCRM_SESSION_SECRET=settings.session_secret)
        log = (tmp_path / f"service-{i}.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "scrm", "serve"], cwd=tmp_path, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        started.append((port, proc, log))
    yield [(port, proc) for port, proc, _ in started]
    for _, proc, log in started:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


async def _up(port: int, proc: Any) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            assert proc.poll() is None, "a service process exited during start-up"
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"service on port {port} did not come up")


async def test_two_service_processes_run_a_due_push_once(
        client: TestClient, brand: Brand, sim_state: SimulatorState, maker: Any, clock: Any,
        services: list[tuple[int, Any]], tmp_path: Path) -> None:
    async with maker() as session:
        from models import Customer

        customer_ids = list((await session.scalars(select(Customer.id))).all())
    at = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(seconds=3)
    response = await client.post("/admin/api/pushes", headers=ADMIN, json={
        "name": "两个进程", "audience": {"kind": "customers", "customer_ids": customer_ids},
        "content": {"text": "只发一次"}, "schedule": {"kind": "once", "at": at.isoformat()}})
    assert response.status == 201, await response.json()
    # This test's own app holds the lease (it has no push scheduler): hand it to the two processes.
    await client.app[keys.LEADERSHIP].close()
    await asyncio.gather(*(_up(port, proc) for port, proc in services))
    for _ in range(600):  # the leader's scheduler picks the push up on its next tick and fires at its time
        async with maker() as session:
            statuses = (await session.scalars(select(PushRun.status))).all()
        if statuses and all(s != RunStatus.CREATING for s in statuses):
            break
        await asyncio.sleep(0.1)
    logs = "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(tmp_path.glob("service-*.log")))
    assert statuses == [RunStatus.POLLING], logs
    assert sorted(u for m in sim_state.mass_messages.values() for u in m.tasks) == \
        ["gzguide", "lisi", "zhangsan", "zhaoliu"], logs
    async with maker() as session:
        holder = await session.scalar(select(Lease.holder).where(Lease.name == "scheduler"))
        assert await session.scalar(select(func.count()).select_from(PushRun)) == 1
    pids = {str(proc.pid) for _, proc in services}
    assert holder is not None and holder.split(":")[1] in pids  # one of the two leads
