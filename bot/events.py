"""Decrypted callback payloads as frozen dataclasses of our own (PROTOCOL.md §3)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.xmlparse import MalformedXML, flat_fields, item_list, parse_xml


def _int(value: str, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


@dataclass(frozen=True)
class Event:
    """Fields every push has."""

    to_user: str
    from_user: str
    create_time: int
    msg_type: str
    event: str = ""
    change_type: str = ""

    @property
    def route_key(self) -> tuple[str, str]:
        """(event or msg type, change type) -- what the router dispatches on."""
        return (self.event or self.msg_type, self.change_type)


@dataclass(frozen=True)
class ExternalContactEvent(Event):
    """change_external_contact: a customer relation changed (§3.1)."""

    user_id: str = ""
    external_user_id: str = ""
    state: str = ""
    welcome_code: str = ""
    source: str = ""
    fail_reason: str = ""


@dataclass(frozen=True)
class ExternalChatEvent(Event):
    """change_external_chat: a customer group changed (§3.2)."""

    chat_id: str = ""
    update_detail: str = ""
    join_scene: int = 0
    quit_scene: int = 0
    mem_change_cnt: int = 0
    mem_change_list: tuple[str, ...] = ()
    last_mem_ver: str = ""
    cur_mem_ver: str = ""


@dataclass(frozen=True)
class ExternalTagEvent(Event):
    """change_external_tag: the corp tag library changed (§3.3)."""

    id: str = ""
    tag_type: str = ""
    strategy_id: str = ""


@dataclass(frozen=True)
class TextMessage(Event):
    """A member sent the app a text (§3.4)."""

    content: str = ""
    msg_id: str = ""
    agent_id: str = ""


@dataclass(frozen=True)
class AgentEvent(Event):
    """enter_agent and other app events from a member (§3.5)."""

    event_key: str = ""
    agent_id: str = ""


def parse_event(plaintext: str) -> Event:
    """Turn decrypted XML into the matching dataclass; unknown kinds become a plain Event."""
    root = parse_xml(plaintext)
    f = flat_fields(root)
    if "MsgType" not in f:
        raise MalformedXML("decrypted message has no MsgType")
    base = dict(
        to_user=f.get("ToUserName", ""),
        from_user=f.get("FromUserName", ""),
        create_time=_int(f.get("CreateTime", "0")),
        msg_type=f["MsgType"],
        event=f.get("Event", ""),
        change_type=f.get("ChangeType", ""),
    )
    kind = base["event"]
    if kind == "change_external_contact":
        return ExternalContactEvent(
            **base,  # type: ignore[arg-type]
            user_id=f.get("UserID", ""),
            external_user_id=f.get("ExternalUserID", ""),
            state=f.get("State", ""),
            welcome_code=f.get("WelcomeCode", ""),
            source=f.get("Source", ""),
            fail_reason=f.get("FailReason", ""),
        )
    if kind == "change_external_chat":
        return ExternalChatEvent(
            **base,  # type: ignore[arg-type]
            chat_id=f.get("ChatId", ""),
            update_detail=f.get("UpdateDetail", ""),
            join_scene=_int(f.get("JoinScene", "0")),
            quit_scene=_int(f.get("QuitScene", "0")),
            mem_change_cnt=_int(f.get("MemChangeCnt", "0")),
            mem_change_list=item_list(root, "MemChangeList"),
            last_mem_ver=f.get("LastMemVer", ""),
            cur_mem_ver=f.get("CurMemVer", ""),
        )
    if kind == "change_external_tag":
        return ExternalTagEvent(
            **base,  # type: ignore[arg-type]
            id=f.get("Id", ""),
            tag_type=f.get("TagType", ""),
            strategy_id=f.get("StrategyId", ""),
        )
    if base["msg_type"] == "text":
        return TextMessage(
            **base,  # type: ignore[arg-type]
            content=f.get("Content", ""),
            msg_id=f.get("MsgId", ""),
            agent_id=f.get("AgentID", ""),
        )
    if base["msg_type"] == "event":
        return AgentEvent(**base, event_key=f.get("EventKey", ""), agent_id=f.get("AgentID", ""))  # type: ignore[arg-type]
    return Event(**base)  # type: ignore[arg-type]
