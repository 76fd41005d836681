"""The simulator's one domain error: a WeCom errcode that the API layer renders as the JSON envelope."""

from __future__ import annotations

from typing import Final

# English renderings of WeCom's errmsg texts (PROTOCOL.md §6); clients must branch on errcode only.
ERRMSGS: Final[dict[int, str]] = {
    -1: "system busy",
    0: "ok",
    40001: "invalid credential",
    40003: "invalid userid",
    40004: "invalid media type",
    40005: "invalid type",
    40006: "invalid file size",
    40007: "invalid media_id",
    40008: "invalid message type",
    40009: "invalid image size",
    40010: "invalid voice size",
    40011: "invalid video size",
    40013: "invalid corpid",
    40014: "invalid access_token",
    40029: "invalid code",
    40033: "invalid charset. please check your request, if include \\uxxxx will create fail!",
    40035: "invalid args",
    40050: "chatid not found",
    40056: "invalid agentid",
    40058: "invalid parameter",
    40063: "some parameters are empty",
    40068: "invalid tagid",
    40071: "UserTag Name Already Exist",
    40072: "invalid tagname",
    40093: "invalid jsapi_ticket",
    40096: "invalid external userid",
    40123: "invalid image format",
    40126: "tag count exceed the limit",
    41001: "access_token missing",
    41002: "corpid missing",
    41004: "corpsecret missing",
    41005: "media data missing",
    41008: "missing code",
    41009: "missing userid",
    41011: "missing agentid",
    41037: "missing contact way type",
    41038: "missing contact way scene",
    41039: "invalid contact way type",
    41040: "invalid contact way scene",
    41041: "contact way user count exceed limit",
    41043: "missing config_id",
    41044: "invalid config_id",
    41048: "no valid external contact can receive the message",
    41049: "missing welcome code",
    41050: "invalid welcome code",
    41051: "external contact already chatted or welcomed",
    41054: "user not active",
    41063: "message still sending, please try later",
    41064: "attachments count exceed limit",
    41065: "invalid attachment type",
    42001: "access_token expired",
    44001: "empty media data",
    44004: "empty content",
    45001: "media size out of limit",
    45002: "content size out of limit",
    45009: "api freq out of limit",
    45033: "api concurrent out of limit",
    47001: "data format error",
    48002: "api forbidden",
    50001: "redirect_url not in trusted domain",
    60011: "no privilege to access/modify contact/party/agent",
    60020: "not allow to access from your ip",
    60111: "userid not found",
    81013: "user & party & tag all invalid",
    81017: "too many items, please use owner_filter",
    84061: "not external contact",
    84074: "no external contact permission",
}


def errmsg_for(errcode: int) -> str:
    """WeCom-style English errmsg for an errcode (without the hint suffix)."""
    return ERRMSGS.get(errcode, "error")


class SimApiError(Exception):
    """A WeCom API failure: the API layer answers HTTP 200 with this errcode."""

    def __init__(self, errcode: int, detail: str = "") -> None:
        self.errcode = errcode
        self.detail = detail
        super().__init__(f"{errcode}: {errmsg_for(errcode)}{' (' + detail + ')' if detail else ''}")
