"""A demo maternal-and-baby retail chain for the simulator: 2 regions, 4 stores, 12 staff, ~200 customers."""

from __future__ import annotations

import logging
import random
import string
from dataclasses import dataclass
from typing import Final, Literal

from wecom.simulator.state import SimulatorState

_LOGGER = logging.getLogger(__name__)

Role = Literal["guide", "store_manager", "region_manager", "hq"]

DEMO_CORP: Final = dict(
    corp_id="ww5a1b2c3d4e5f6a7b",
    agent_id=1000002,
    agent_secret="demo-agent-secret-0123456789",
    token="DemoToken2026",
    encoding_aes_key="huG8GP38g4o5MNJAYKJ1UXXFWXLCpaNfhs0gCa05RFR",  # 43 alnum chars -> 32-byte AES key
)


@dataclass(frozen=True)
class Region:
    """A sales region."""

    code: str
    name: str
    department_id: int


@dataclass(frozen=True)
class Store:
    """A store of the chain."""

    code: str
    name: str
    region_code: str
    department_id: int


@dataclass(frozen=True)
class DemoMember:
    """A staff member: store code is the store they work in (the region's first store for region managers)."""

    userid: str
    name: str
    store_code: str
    role: Role


HQ_DEPARTMENT: Final = 1

REGIONS: Final = (
    Region("east", "华东", 2),
    Region("south", "华南", 3),
)

STORES: Final = (
    Store("SH01", "上海徐汇店", "east", 4),
    Store("HZ01", "杭州西湖店", "east", 5),
    Store("GZ01", "广州天河店", "south", 6),
    Store("SZ01", "深圳南山店", "south", 7),
)

MEMBERS: Final = (
    DemoMember("zhouhui", "周慧", "SH01", "hq"),
    DemoMember("qianlei", "钱磊", "SH01", "region_manager"),
    DemoMember("huangmin", "黄敏", "GZ01", "region_manager"),
    DemoMember("wangfang", "王芳", "SH01", "store_manager"),
    DemoMember("lijing", "李静", "HZ01", "store_manager"),
    DemoMember("chenqiang", "陈强", "GZ01", "store_manager"),
    DemoMember("zhaoli", "赵丽", "SZ01", "store_manager"),
    DemoMember("liuyang", "刘洋", "SH01", "guide"),
    DemoMember("sunting", "孙婷", "SH01", "guide"),
    DemoMember("zhouxue", "周雪", "HZ01", "guide"),
    DemoMember("wuhao", "吴昊", "GZ01", "guide"),
    DemoMember("zhengna", "郑娜", "SZ01", "guide"),
)

ROLE_POSITIONS: Final[dict[str, str]] = {
    "guide": "导购",
    "store_manager": "店长",
    "region_manager": "区域经理",
    "hq": "总部运营",
}

TAG_GROUPS: Final = (
    ("客户等级", ("普通会员", "银卡会员", "金卡会员")),
    ("兴趣偏好", ("奶粉", "纸尿裤", "辅食", "玩具")),
    ("客户状态", ("已流失",)),
)

_SURNAMES: Final = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
_GIVEN: Final = ("静", "敏", "婷", "雪", "丽", "娜", "芳", "琳", "欣怡", "子涵", "雨萱", "思彤", "梦瑶", "佳怡",
                 "晓燕", "海燕", "秀英", "桂英", "伟", "强", "磊", "军", "洋", "杰", "涛", "明", "超", "浩然")
_BABY_NOTES: Final = ("宝宝3个月", "宝宝8个月", "宝宝1岁半", "宝宝2岁", "二胎妈妈", "孕晚期", "关注有机辅食",
                      "偏好进口奶粉", "周末到店", "")
_STORE_DEPARTMENTS: Final = {store.code: store.department_id for store in STORES}
_REGION_DEPARTMENTS: Final = {region.code: region.department_id for region in REGIONS}
_STORE_REGIONS: Final = {store.code: store.region_code for store in STORES}


def _department(member: DemoMember) -> int:
    if member.role == "hq":
        return HQ_DEPARTMENT
    if member.role == "region_manager":
        return _REGION_DEPARTMENTS[_STORE_REGIONS[member.store_code]]
    return _STORE_DEPARTMENTS[member.store_code]


def _random_chars(rng: random.Random, length: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(length))


def seed_simulator(state: SimulatorState, *, customers: int = 200, seed: int = 7) -> None:
    """Fill the simulator with the demo chain: staff, tags, customers following 1-2 guides, groups."""
    rng = random.Random(seed)
    for member in MEMBERS:
        state.add_member(member.userid, member.name, department=(_department(member),),
                         position=ROLE_POSITIONS[member.role])
    tag_ids: dict[str, list[str]] = {}
    for order, (group_name, tag_names) in enumerate(TAG_GROUPS):
        group_id = state.add_tag_group(group_name, list(tag_names), order=len(TAG_GROUPS) - order)
        tag_ids[group_name] = list(state.tag_groups[group_id].tag_ids)

    guides = [m for m in MEMBERS if m.role == "guide"]
    now = state.now()
    for _ in range(customers):
        name = rng.choice(_SURNAMES) + rng.choice(_GIVEN)
        external_userid = "wm" + _random_chars(rng, 30)
        while external_userid in state.customers:
            external_userid = "wm" + _random_chars(rng, 30)
        has_unionid = rng.random() < 0.6  # only if the corp bound a WeChat developer account
        unionid = "o" + _random_chars(rng, 27, string.ascii_letters + string.digits + "-_") if has_unionid else ""
        state.add_customer(name, external_userid=external_userid, unionid=unionid, gender=rng.choice((1, 2, 2, 0)))
        for guide in rng.sample(guides, 1 if rng.random() < 0.8 else 2):
            tags = [rng.choice(tag_ids["客户等级"])]
            tags += rng.sample(tag_ids["兴趣偏好"], rng.randint(0, 2))
            if rng.random() < 0.05:
                tags += tag_ids["客户状态"]
            mobiles = ["1" + rng.choice("3589") + "".join(rng.choice(string.digits) for _ in range(9))] \
                if rng.random() < 0.3 else []
            state.add_follow(
                guide.userid,
                external_userid,
                remark=f"{name}（{guide.store_code}）" if rng.random() < 0.5 else "",
                description=rng.choice(_BABY_NOTES),
                state=f"store_{guide.store_code}" if rng.random() < 0.4 else "",
                add_way=rng.choice((1, 1, 1, 2, 3, 4)),
                createtime=now - rng.randint(1, 365) * 86400 - rng.randint(0, 86399),
                tag_ids=tags,
                remark_mobiles=mobiles,
            )

    stores = {store.code: store for store in STORES}
    for guide in guides[:3]:
        own = state.customers_of(guide.userid)
        members = rng.sample(own, min(len(own), rng.randint(5, 15)))
        manager = next(m.userid for m in MEMBERS if m.role == "store_manager" and m.store_code == guide.store_code)
        state.add_group_chat(guide.userid, [manager, *members], f"{stores[guide.store_code].name}宝妈交流群")
    _LOGGER.info("seeded simulator: %d members, %d customers, %d relations",
                 len(state.members), len(state.customers), len(state.follows))
