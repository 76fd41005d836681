"""Demo talk scripts for a maternal-and-baby retailer, and the store-map picture one of them sends."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any, Final

from PIL import Image, ImageDraw
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from customers.rules import parse
from media.assets import store_image
from models import TalkScript
from sidebar.scripts import ScriptDraft, check_attachment, check_body, ensure_category, store_draft


def store_map_png() -> bytes:
    """A small stylised street map with a pin (drawn, so the demo needs no network and no font)."""
    image = Image.new("RGB", (640, 400), "#eef3ea")
    draw = ImageDraw.Draw(image)
    for x in (90, 300, 520):
        draw.rectangle((x, 0, x + 36, 400), fill="#ffffff")
    for y in (70, 250):
        draw.rectangle((0, y, 640, y + 30), fill="#ffffff")
    draw.rectangle((150, 120, 280, 230), fill="#cfe3c4")
    draw.rectangle((350, 110, 500, 235), fill="#f3dcc2")
    draw.ellipse((395, 120, 455, 180), fill="#e0533d")
    draw.polygon(((400, 165), (450, 165), (425, 215)), fill="#e0533d")
    draw.ellipse((413, 138, 437, 162), fill="#ffffff")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


_MINIAPP: Final = "wx0000000000demo0"  # placeholder appid: replace with the brand's linked mini-program
DEMO_CATEGORIES: Final = (("复购提醒", 60), ("唤醒关怀", 50), ("会员升级", 40), ("新客欢迎", 30), ("活动邀约", 20),
                          ("日常问候", 10))
DEMO_SCRIPTS: Final[tuple[dict[str, Any], ...]] = (
    {"category": "复购提醒", "title": "奶粉快喝完了吧", "priority": 90,
     "condition": "days_since_bought(category='奶粉') BETWEEN 25 AND 40",
     "body": "{customer_name}您好，我是{store_name}的{guide_name}～您上次买的{last_product}差不多快喝完啦，"
             "需要的话我帮您留一罐，到店自提或者直接下单都可以哦。"},
    {"category": "复购提醒", "title": "纸尿裤该囤货了", "priority": 80,
     "condition": "days_since_bought(category='纸尿裤') BETWEEN 20 AND 35",
     "body": "{customer_name}，宝宝的纸尿裤用得怎么样？算算时间该补货了，本周会员买两包立减20元，要帮您下单吗？"},
    {"category": "复购提醒", "title": "小程序一键复购", "priority": 70,
     "condition": "bought(category='奶粉') AND recency_days BETWEEN 20 AND 45",
     "body": "{customer_name}，点下面的小程序就能一键再买一次{last_product}，送货上门很方便～",
     "attachment": {"type": "miniprogram", "appid": _MINIAPP, "title": "一键复购 · 送货到家",
                    "page": "pages/reorder/index.html", "image_url": "https://example.com/demo/reorder.png"}},
    {"category": "唤醒关怀", "title": "好久不见", "priority": 60, "condition": "recency_days >= 60",
     "body": "{customer_name}好久不见！{store_name}最近上新了不少宝宝用品，给您准备了一张老顾客专属券，"
             "有空来店里坐坐，我是{guide_name}～"},
    {"category": "唤醒关怀", "title": "积分兑换提醒", "priority": 50, "condition": "points >= 500",
     "body": "{customer_name}，您账户里还有{points}积分，可以在店里直接抵现或换购辅食，别浪费啦～"},
    {"category": "会员升级", "title": "银卡升金卡", "priority": 85, "condition": "tier = '银卡会员'",
     "body": "{customer_name}，您现在是{tier}，再消费{tier_gap}元就能升级为{next_tier}，"
             "金卡享9.5折和生日礼包，这次买奶粉正好可以升级哦～"},
    {"category": "新客欢迎", "title": "新客欢迎", "priority": 75, "condition": "stage = 'new'",
     "body": "{customer_name}，欢迎来到{store_name}！我是您的专属育婴顾问{guide_name}，宝宝的喂养和用品有任何问题"
             "随时问我，新客首单还可以领一份试用装哦～"},
    {"category": "活动邀约", "title": "会员日活动", "priority": 40,
     "body": "{customer_name}，本周六是{store_name}会员日，全场母婴用品满299减50，还有宝宝爬行比赛，欢迎带宝宝来玩～",
     "attachment": {"type": "link", "url": "https://example.com/demo/member-day", "title": "会员日 · 满299减50",
                    "desc": "本周六全天，到店或线上均可参加", "image_url": "https://example.com/demo/member-day.png"}},
    {"category": "活动邀约", "title": "宝宝生日礼", "priority": 35,
     "body": "{customer_name}，宝宝生日快到啦，{store_name}给宝宝准备了一份生日礼，凭会员码到店即可领取🎂",
     "attachment": {"type": "link", "url": "https://example.com/demo/birthday", "title": "宝宝生日礼领取",
                    "desc": "会员专享，到店领取"}},
    {"category": "日常问候", "title": "自我介绍", "priority": 30,
     "body": "{customer_name}您好，我是{store_name}的{guide_name}，以后宝宝吃穿用有任何问题都可以找我，看到消息会第一时间回复您～"},
    {"category": "日常问候", "title": "育儿小贴士", "priority": 20,
     "body": "{customer_name}，换季了宝宝容易红屁屁，建议勤换纸尿裤、洗完屁屁晾干再穿。需要护臀膏的话我帮您留一支～"},
    {"category": "日常问候", "title": "门店地址", "priority": 10,
     "body": "这是{store_name}的位置，到店前跟我（{guide_name}）说一声，我提前帮您把东西准备好～",
     "attachment": {"type": "image", "asset": "store-map"}},
)


async def seed_demo_scripts(maker: async_sessionmaker[AsyncSession], now: dt.datetime) -> int:
    """Demo categories and scripts (maternal and baby retail), unless scripts exist; returns how many were added."""
    async with maker.begin() as session:
        if await session.scalar(select(func.count()).select_from(TalkScript)):
            return 0
        for name, order in DEMO_CATEGORIES:
            category = await ensure_category(session, name)
            category.order = order
        for raw in DEMO_SCRIPTS:
            if raw.get("condition"):
                parse(raw["condition"])  # syntax only: categories such as 奶粉 may have no orders yet
            check_body(raw["body"])
            attachment = raw.get("attachment")
            if attachment and attachment.get("asset") == "store-map":
                asset = await store_image(session, "门店位置.png", store_map_png(), now=now)
                attachment = {"type": "image", "asset_id": asset.id}
            draft = ScriptDraft(raw["category"], raw["title"], raw["body"], raw.get("condition"), raw["priority"],
                                True, check_attachment(attachment))
            await store_draft(session, draft, now)
    return len(DEMO_SCRIPTS)
