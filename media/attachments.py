"""Message attachments as admins write them (image / link / mini-program by our asset ids), checked and
turned into WeCom's ``attachments`` (send_welcome_msg §4.7 and add_msg_template §4.8 share the rules)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

MAX_ATTACHMENTS: Final = 9
LINK_LIMITS: Final = {"title": 128, "desc": 512, "url": 2048, "picurl": 2048}  # bytes, §4.7-§4.8
MINIPROGRAM_TITLE_BYTES: Final = 64
_URL: Final = re.compile(r"^https?://[^\s]+$")


class InvalidAttachment(ValueError):
    """An attachment that cannot be sent; ``message`` is Chinese and ``field`` its JSON path."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def _str(item: Mapping[str, Any], key: str, field: str, *, required: bool = False) -> str:
    value = item.get(key)
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidAttachment(f"{field} 须为字符串", field)
    value = value.strip()
    if required and not value:
        raise InvalidAttachment(f"{field} 不能为空", field)
    return value


def _int(value: Any, field: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidAttachment(f"{field} 须为整数", field)
    return value


def _bytes_at_most(value: str, limit: int, field: str) -> None:
    if len(value.encode()) > limit:
        raise InvalidAttachment(f"{field} 不能超过 {limit} 字节（企业微信的限制），当前 {len(value.encode())} 字节",
                                field)


def parse_attachment(item: Any, where: str) -> dict[str, Any]:
    """One attachment, normalised: {type: image, asset_id} | {type: link, ...} | {type: miniprogram, ...}."""
    if not isinstance(item, dict):
        raise InvalidAttachment(f"{where} 须为对象，type 为 image、link 或 miniprogram", where)
    kind = item.get("type")
    if kind == "image":
        return {"type": "image", "asset_id": _int(item.get("asset_id"), f"{where}.asset_id")}
    if kind == "link":
        fields = {key: _str(item, key, f"{where}.{key}", required=key in ("title", "url")) for key in LINK_LIMITS}
        for key, limit in LINK_LIMITS.items():
            _bytes_at_most(fields[key], limit, f"{where}.{key}")
        for key in ("url", "picurl"):
            if fields[key] and not _URL.match(fields[key]):
                raise InvalidAttachment(f"{where}.{key} 须为 http:// 或 https:// 开头的网址", f"{where}.{key}")
        return {"type": "link", **fields}
    if kind == "miniprogram":
        title = _str(item, "title", f"{where}.title", required=True)
        appid = _str(item, "appid", f"{where}.appid", required=True)
        _bytes_at_most(title, MINIPROGRAM_TITLE_BYTES, f"{where}.title")
        if not appid.startswith("wx"):
            raise InvalidAttachment(f"{where}.appid 须为小程序的 AppID（wx 开头）", f"{where}.appid")
        return {"type": "miniprogram", "title": title, "appid": appid,
                "page": _str(item, "page", f"{where}.page", required=True),
                "pic_asset_id": _int(item.get("pic_asset_id"), f"{where}.pic_asset_id")}
    raise InvalidAttachment(f"{where}.type 须为 image（图片）、link（链接）或 miniprogram（小程序）", f"{where}.type")


def parse_attachments(raw: Any, field: str, what: str) -> tuple[dict[str, Any], ...]:
    """A list of at most nine attachments (``what`` names the message in the error: 欢迎语, 群发 ...)."""
    items = raw if raw is not None else []
    if not isinstance(items, list):
        raise InvalidAttachment(f"{field} 须为列表", field)
    if len(items) > MAX_ATTACHMENTS:
        raise InvalidAttachment(f"{field} 最多 {MAX_ATTACHMENTS} 个附件（企业微信{what}的上限），当前 {len(items)} 个",
                                field)
    return tuple(parse_attachment(a, f"{field}[{i}]") for i, a in enumerate(items))


def asset_ids(attachments: Iterable[Mapping[str, Any]]) -> list[int]:
    """The media-library assets the attachments need as WeCom media ids, once each."""
    ids = [a.get("asset_id") if a.get("type") == "image" else a.get("pic_asset_id") for a in attachments]
    return list(dict.fromkeys(int(i) for i in ids if i))


def to_wecom(attachments: Sequence[Mapping[str, Any]], media: Mapping[int, object]
             ) -> tuple[list[dict[str, Any]], list[str]]:
    """WeCom ``attachments`` given each asset's media id (or the exception that stopped it), and what was left out."""
    out: list[dict[str, Any]] = []
    problems: list[str] = []
    for i, item in enumerate(attachments):
        if item["type"] == "link":
            out.append({"msgtype": "link", "link": {k: item[k] for k in ("title", "url", "picurl", "desc") if item.get(k)}})
            continue
        key = "asset_id" if item["type"] == "image" else "pic_asset_id"
        media_id = media.get(int(item[key]))
        if not isinstance(media_id, str) or not media_id:
            reason = f"{type(media_id).__name__}: {media_id}" if isinstance(media_id, Exception) else "无"
            problems.append(f"附件 {i + 1}（{item['type']}，素材 {item[key]}）未能取得企业微信 media_id：{reason}")
            continue
        if item["type"] == "image":
            out.append({"msgtype": "image", "image": {"media_id": media_id}})
        else:
            out.append({"msgtype": "miniprogram", "miniprogram": {
                "title": item["title"], "pic_media_id": media_id, "appid": item["appid"], "page": item["page"]}})
    return out, problems
