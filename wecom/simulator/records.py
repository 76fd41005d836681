"""The mutable records of the fake corp's graph; SimulatorState owns and mutates them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Member:
    """A corp member (成员)."""

    userid: str
    name: str
    department: list[int]
    position: str = ""
    status: int = 1  # 1 active, 2 disabled, 4 not activated, 5 quit
    customer_contact: bool = True
    visible: bool = True  # inside the app's 可见范围


@dataclass
class Customer:
    """An external contact (客户)."""

    external_userid: str
    name: str
    avatar: str = ""
    type: int = 1  # 1 WeChat user, 2 WeCom user of another corp
    gender: int = 0
    unionid: str = ""
    corp_name: str = ""


@dataclass
class Follow:
    """One member-customer relation (follow_user entry)."""

    userid: str
    external_userid: str
    createtime: int
    remark: str = ""
    description: str = ""
    tag_ids: list[str] = field(default_factory=list)
    personal_tags: list[str] = field(default_factory=list)
    remark_mobiles: list[str] = field(default_factory=list)
    state: str = ""
    oper_userid: str = ""
    add_way: int = 1
    half: bool = False  # add_half_external_contact: not yet confirmed by the member
    deleted_by_customer: bool = False  # del_follow_user: one-way relation, member still sees the customer


@dataclass
class Tag:
    """A corp tag (企业标签)."""

    id: str
    name: str
    group_id: str
    create_time: int
    order: int = 0
    deleted: bool = False
    created_by_app: bool = False


@dataclass
class TagGroup:
    """A corp tag group."""

    group_id: str
    name: str
    create_time: int
    order: int = 0
    deleted: bool = False
    created_by_app: bool = False
    tag_ids: list[str] = field(default_factory=list)


@dataclass
class ChatMember:
    """A customer-group member (groupchat/get member_list[])."""

    userid: str
    type: int  # 1 corp member, 2 external contact
    join_time: int
    join_scene: int  # 1 direct invite, 2 invite link, 3 QR code
    invitor: str = ""
    group_nickname: str = ""
    name: str = ""
    unionid: str = ""
    state: str = ""


@dataclass
class GroupChat:
    """A customer group (客户群)."""

    chat_id: str
    name: str
    owner: str
    create_time: int
    member_version: str
    notice: str = ""
    members: dict[str, ChatMember] = field(default_factory=dict)
    admin_list: list[str] = field(default_factory=list)
    status: int = 0  # 0 normal, 1 owner resigned, 2 transferring, 3 transfer done
    dismissed: bool = False
    version_seq: int = 0


@dataclass
class ContactWay:
    """A 「联系我」 configuration created through the API."""

    config_id: str
    type: int
    scene: int
    created_at: int
    style: int = 1
    remark: str = ""
    skip_verify: bool = True
    state: str = ""
    user: list[str] = field(default_factory=list)
    party: list[int] = field(default_factory=list)
    qr_code: str = ""
    is_temp: bool = False
    expires_in: int = 0
    chat_expires_in: int = 0
    unionid: str = ""
    conclusions: dict[str, Any] = field(default_factory=dict)


@dataclass
class WelcomeCode:
    """A WelcomeCode issued with an add event (valid welcome_code_ttl seconds, single use)."""

    code: str
    userid: str
    external_userid: str
    issued_at: float
    used: bool = False


@dataclass
class MassTask:
    """One sender's task of a mass message (get_groupmsg_task)."""

    userid: str
    targets: list[str]  # external_userids (single) or chat_ids (group)
    status: int = 0  # 0 not sent, 2 sent
    send_time: int = 0
    results: dict[str, int] = field(default_factory=dict)  # target -> 0/1/2/3


@dataclass
class MassMessage:
    """An add_msg_template message (企业群发)."""

    msgid: str
    chat_type: str
    create_time: int
    created_at: float
    text: dict[str, Any] | None
    attachments: list[dict[str, Any]]
    tasks: dict[str, MassTask] = field(default_factory=dict)
    creator: str = ""
    create_type: int = 0  # 0 corp (API), 1 member


@dataclass
class Media:
    """A temporary media upload (valid 3 days)."""

    media_id: str
    type: str
    created_at: int
    size: int
    filename: str = ""


@dataclass
class AccessToken:
    """An issued access_token."""

    token: str
    expires_at: float
    expired: bool = False  # forced by expire_tokens(): answers 42001
    revoked: bool = False  # forced by revoke_tokens(): answers 40014


@dataclass
class OAuthCode:
    """A member-identity code from the authorize page (single use, 5 min)."""

    code: str
    userid: str
    issued_at: float
    used: bool = False
