"""Typed results of the WeCom APIs we use (PROTOCOL.md §4); parsed leniently from the JSON."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FollowTag:
    """A tag a member put on a customer (externalcontact/get follow_user[].tags)."""

    group_name: str
    tag_name: str
    tag_id: str  # empty for personal tags (type 2)
    type: int  # 1 corp, 2 personal, 3 rule-group


@dataclass(frozen=True)
class FollowUser:
    """One member's relation to a customer (externalcontact/get follow_user[])."""

    userid: str
    remark: str = ""
    description: str = ""
    createtime: int = 0
    tags: tuple[FollowTag, ...] = ()
    remark_mobiles: tuple[str, ...] = ()
    state: str = ""
    oper_userid: str = ""
    add_way: int = 0


@dataclass(frozen=True)
class ExternalContact:
    """A customer as externalcontact/get returns it."""

    external_userid: str
    name: str
    type: int = 1
    gender: int = 0
    avatar: str = ""
    unionid: str = ""
    corp_name: str = ""
    follow_users: tuple[FollowUser, ...] = ()


@dataclass(frozen=True)
class GroupChatMember:
    """groupchat/get member_list[]."""

    userid: str
    type: int  # 1 corp member, 2 external contact
    join_time: int = 0
    join_scene: int = 0
    invitor: str = ""
    group_nickname: str = ""
    name: str = ""
    unionid: str = ""


@dataclass(frozen=True)
class GroupChat:
    """groupchat/get group_chat."""

    chat_id: str
    name: str
    owner: str
    create_time: int
    notice: str = ""
    member_version: str = ""
    members: tuple[GroupChatMember, ...] = ()
    admins: tuple[str, ...] = ()


@dataclass(frozen=True)
class CorpTag:
    """get_corp_tag_list tag_group[].tag[]."""

    id: str
    name: str
    order: int = 0
    create_time: int = 0
    deleted: bool = False


@dataclass(frozen=True)
class CorpTagGroup:
    """get_corp_tag_list tag_group[]."""

    group_id: str
    group_name: str
    order: int = 0
    create_time: int = 0
    deleted: bool = False
    tags: tuple[CorpTag, ...] = ()


@dataclass(frozen=True)
class Member:
    """user/get: a member of the corp."""

    userid: str
    name: str
    department: tuple[int, ...] = ()
    position: str = ""
    status: int = 1
    direct_leader: tuple[str, ...] = ()


@dataclass(frozen=True)
class ContactWayResult:
    """add_contact_way result."""

    config_id: str
    qr_code: str = ""


@dataclass(frozen=True)
class MassMessageResult:
    """add_msg_template result."""

    msgid: str
    fail_list: tuple[str, ...] = field(default_factory=tuple)
