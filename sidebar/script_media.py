"""The image of an image script as a WeCom temporary media id, so the page can sendChatMessage it."""

from __future__ import annotations

from typing import Any

from bot.context import BotContext
from media.assets import InvalidMedia, MediaUnavailable, asset_for_url, media_id_for
from models import TalkScript
from sidebar.errors import InvalidRequest, NotFound, UpstreamError
from sidebar.permissions import load_viewer


async def script_image_media(ctx: BotContext, userid: str, script_id: int) -> dict[str, Any]:
    """``{"media_id": ...}`` for the script's image: uploaded from the media library (or its URL) when needed."""
    async with ctx.maker() as session:
        await load_viewer(session, userid)
        script = await session.get(TalkScript, script_id)
        if script is None or not script.enabled:
            raise NotFound("话术不存在或已停用。")
        card = dict(script.attachment or {})
    if card.get("type") != "image":
        raise InvalidRequest("这条话术没有图片附件。")
    try:
        if card.get("asset_id"):
            asset_id = int(card["asset_id"])
        elif card.get("media_url"):
            asset_id = await asset_for_url(ctx.maker, card["media_url"], now=ctx.clock())
        else:  # a temporary media id the admin pasted in: valid for 3 days from their upload
            return {"media_id": card["media_id"], "renewed": False}
        media_id = await media_id_for(ctx.maker, ctx.gateway, asset_id, now=ctx.clock())
    except LookupError:
        raise NotFound("话术的图片已从素材库删除，请联系管理员重新上传。") from None
    except InvalidMedia as exc:
        raise InvalidRequest(f"话术的图片不可用：{exc.message}") from None
    except MediaUnavailable as exc:
        raise UpstreamError(f"话术的图片暂时无法获取：{exc.message}") from None
    return {"media_id": media_id, "renewed": True}
