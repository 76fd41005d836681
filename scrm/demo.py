"""Demo mode: the service plus the built-in simulator on one port, with a seeded brand."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from sqlalchemy import func, select

from bot.contact_ways import create_contact_way
from bot.context import BotContext
from customers.orders import ingest_orders
from customers.recompute import recompute_all
from customers.segments import create_segment, save_tag_rule
from bot.fullsync import full_sync
from models import Region, Staff, StaffRole, Store, utcnow
from scrm import keys
from scrm.app import create_app
from scrm.demo_orders import demo_orders
from pushes.runner import PUSH_RUNNER
from scrm.demo_pushes import seed_pushes
from scrm.demo_sharing import SHOP_PREFIX, seed_channel_code, seed_sharing, shop_app
from scrm.progress import ProgressBar
from scrm.settings import Settings
from sharing.channel_codes import CHANNEL_CODES
from sharing.refresh import REFRESHER
from sidebar.scripts_demo import seed_demo_scripts
from wecom.crypto import CallbackCrypto
from wecom.simulator import demo_data
from wecom.simulator.api import create_simulator_app
from wecom.simulator.callbacks import CallbackSender
from wecom.simulator.scenarios import add_scenario_routes
from wecom.simulator.state import SimulatorState

_LOGGER = logging.getLogger(__name__)
SIM_PREFIX = "/_wecom"
DEMO_RULES = (
    ("高频高客单", "orders >= 4 AND aov >= 300"),
    ("只看不买", "orders = 0 AND days_since_added >= 14"),
    ("沉睡90天", "recency_days >= 90"),
    ("奶粉复购周期到了", "days_since_bought(category='奶粉') BETWEEN 25 AND 40"),
)
DEMO_SEGMENTS = (
    ("天猫高价值客户", "channel = 'tmall' AND spend >= 1000", "天猫渠道累计消费满 1000 元"),
    ("华东沉默客户", "region = 'east' AND stage = 'silent'", "华东区域的沉默客户，适合唤醒"),
)


def demo_settings(port: int, host: str, data_dir: Path) -> Settings:
    """Settings of the demo corp, pointing the gateway at the simulator mounted on this server."""
    corp = demo_data.DEMO_CORP
    base = f"http://{host}:{port}"
    return Settings(
        corp_id=corp["corp_id"],
        agent_id=int(corp["agent_id"]),
        agent_secret=corp["agent_secret"],
        token=corp["token"],
        encoding_aes_key=corp["encoding_aes_key"],
        public_base_url=base,
        database_url=f"sqlite+aiosqlite:///{data_dir / 'scrm-demo.db'}",
        api_base=f"{base}{SIM_PREFIX}/cgi-bin/",
        oauth_authorize_url=f"{base}{SIM_PREFIX}/connect/oauth2/authorize",
        host=host,
        port=port,
        admin_token=secrets.token_urlsafe(16),
        session_secret=secrets.token_hex(32),
        demo=True,
        push_poll_seconds=15,  # a task confirmed in the simulator shows as sent within seconds
    )


def simulator_app(state: SimulatorState, settings: Settings, callback_url: str) -> web.Application:
    """The simulator's API plus scenario routes that push to ``callback_url``."""
    sim = create_simulator_app(state)
    sender = CallbackSender(CallbackCrypto(settings.token, settings.encoding_aes_key, settings.corp_id),
                            settings.agent_id, callback_url)
    add_scenario_routes(sim, state, sender)
    return sim


async def seed_org(app: web.Application) -> bool:
    """Regions, stores and staff roles of the demo brand (once). True if it seeded."""
    maker = app[keys.SESSIONMAKER]
    async with maker.begin() as session:
        if await session.scalar(select(func.count()).select_from(Store)):
            return False
        regions = {r.code: Region(code=r.code, name=r.name) for r in demo_data.REGIONS}
        session.add_all(regions.values())
        await session.flush()
        stores = {
            st.code: Store(code=st.code, name=st.name, region_id=regions[st.region_code].id) for st in demo_data.STORES
        }
        session.add_all(stores.values())
        await session.flush()
        for m in demo_data.MEMBERS:
            store = stores[m.store_code]
            # Managers above store level belong to a region (or to HQ), not to a store.
            in_store = m.role in ("guide", "store_manager")
            session.add(Staff(
                userid=m.userid, name=m.name, role=StaffRole(m.role),
                store_id=store.id if in_store else None,
                region_id=store.region_id if m.role != "hq" else None,
                position=demo_data.ROLE_POSITIONS[m.role],
            ))
    return True


@dataclass(frozen=True)
class Demo:
    """The demo's pieces: the app (service + mounted simulator), its settings, the simulated corp."""

    app: web.Application
    settings: Settings
    state: SimulatorState


def build_demo_app(port: int, host: str, data_dir: Path, *, customers: int = 1200) -> Demo:
    """The demo application: service + simulator with a seeded corp (the database is seeded by seed_demo)."""
    settings = demo_settings(port, host, data_dir)
    state = SimulatorState(settings.corp_id, settings.agent_id, settings.agent_secret)
    demo_data.seed_simulator(state, customers=customers)
    sim = simulator_app(state, settings, settings.callback_url)
    app = create_app(settings, extra_subapps={SIM_PREFIX: sim, SHOP_PREFIX: shop_app()})
    return Demo(app, settings, state)


async def seed_demo(demo: Demo, *, marketplace_buyers: int = 2500) -> str:
    """Seed the org, pull the simulated corp in through the real sync path, ingest orders (server must listen)."""
    app, settings = demo.app, demo.settings
    if not await seed_org(app):
        return "演示数据已存在 / demo data already present"
    ctx = BotContext(app[keys.SESSIONMAKER], app[keys.GATEWAY], settings, utcnow)
    bar = ProgressBar()
    report = await full_sync(ctx, progress=bar)
    guides = [m for m in demo_data.MEMBERS if m.role == "guide"]
    for i, m in enumerate(guides, 1):
        # One store QR code per guide, so the add_customer scenario shows channel attribution.
        await create_contact_way(ctx, m.userid, f"store_qr_{m.userid}"[:30], campaign="门店导购二维码",
                                 remark="门店导购码",
                                 welcome_text="{customer_name}您好，我是{guide_name}，欢迎扫码添加！新客专享礼已为您备好。")
        bar("qr codes", i, len(guides))
    orders = list(demo_orders(demo.state, utcnow(), marketplace_buyers=marketplace_buyers))
    ingested = await ingest_orders(app[keys.SESSIONMAKER], orders, now=utcnow(),
                                   progress=lambda done: bar("orders", done, len(orders)))
    now = utcnow()
    for name, expression in DEMO_RULES:
        await save_tag_rule(app[keys.SESSIONMAKER], name, expression, now=now)
    for name, expression, description in DEMO_SEGMENTS:
        await create_segment(app[keys.SESSIONMAKER], name, expression, now=now, description=description)
    await seed_demo_scripts(app[keys.SESSIONMAKER], now)
    shared = await seed_sharing(app[keys.SESSIONMAKER], base=settings.public_base_url, share_key=settings.share_key,
                                now=now)
    store_code = await seed_channel_code(app[CHANNEL_CODES], app[keys.SESSIONMAKER], base=settings.public_base_url)
    recomputed = await recompute_all(app[keys.SESSIONMAKER], now=now, settings=settings, gateway=app[keys.GATEWAY],
                                     progress=bar)
    bar.close()
    print(recomputed.summary(), flush=True)
    refreshed = await app[REFRESHER].run("demo")  # attribution and commission from the seeded clicks
    if refreshed is not None:
        print(f"分享归因 / attributed orders: {refreshed.attributed}; 提成 / commission: {', '.join(refreshed.months)}",
              flush=True)
    print(await seed_pushes(app[keys.SESSIONMAKER], app[PUSH_RUNNER], demo.state, now=utcnow(),
                            timezone=settings.timezone), flush=True)
    return (f"演示数据已就绪 / demo data ready: {report.members} guides, {report.customers} WeCom customers, "
            f"{report.groups} groups, {report.tags} tags, {len(guides)} contact-way QR codes, "
            f"{ingested.created} orders from 5 channels ({ingested.customers_created} more buyers, "
            f"{ingested.merges} merged), {shared['content']} shareable items, {shared['clicks']} link clicks, "
            f"a store channel code (scan it: {settings.public_base_url}{SIM_PREFIX}/_sim/scan/{store_code})")
