"""The fake corp's graph and WeCom's rules over it (PROTOCOL.md §1, §3, §4, §8). Pure Python, no I/O.

Three kinds of entry points:

* setup methods (`add_*`) build the graph silently;
* scenario hooks (`ev_*`) mutate the graph as a user in the WeCom client would and return the
  decrypted plaintext XML of the callback WeCom would push (also appended to `events`);
* API operations (named after the API path) implement what `/cgi-bin/<path>` does; they raise
  `SimApiError` and never produce events, because WeCom does not call back for API-made changes.
"""

from __future__ import annotations

import base64
import binascii
import collections
import hashlib
import hmac
import logging
import random
import string
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Literal

from wecom.simulator.errors import SimApiError
from wecom.simulator.records import (
    AccessToken,
    ChatMember,
    ContactWay,
    Customer,
    Follow,
    GroupChat,
    MassMessage,
    MassTask,
    Media,
    Member,
    OAuthCode,
    Tag,
    TagGroup,
    WelcomeCode,
)
from wecom.simulator.xml import XmlValue, build_xml

_LOGGER = logging.getLogger(__name__)

_ALNUM: Final = string.ascii_letters + string.digits
_URLSAFE: Final = _ALNUM + "-_"

OAUTH_CODE_TTL: Final = 300  # §4.14: codes expire after 5 minutes
TICKET_TTL: Final = 7200
MEDIA_TTL: Final = 3 * 86400  # §4.16: media_id valid 3 days
FOLLOW_USER_PAGE: Final = 500  # §4.4: externalcontact/get pages follow_user above 500
MAX_CORP_TAGS: Final = 3000
MAX_MASS_RECIPIENTS: Final = 10_000
MAX_TEXT_BYTES: Final = 4000
MAX_APP_TEXT_BYTES: Final = 2048
MAX_ATTACHMENTS: Final = 9
MAX_STATE_CHARS: Final = 30
# §4.7: link title ≤ 128 bytes, desc ≤ 512, url / picurl ≤ 2048 (§4.8); mini-program title ≤ 64 bytes.
ATTACHMENT_FIELD_BYTES: Final[dict[str, dict[str, int]]] = {
    "link": {"title": 128, "desc": 512, "url": 2048, "picurl": 2048},
    "miniprogram": {"title": 64},
}
MAX_CONTACT_WAY_USERS: Final = 100
MAX_BATCH_USERIDS: Final = 100
MAX_OWNER_FILTER: Final = 100
MAX_GROUPCHAT_SCAN_MEMBERS: Final = 1000
MASS_LIST_MAX_SPAN: Final = 31 * 86400
CHINA_UTC_OFFSET: Final = 8 * 3600  # the mass-message daily quota follows China's natural day

ATTACHMENT_TYPES: Final = frozenset({"image", "link", "miniprogram", "video", "file"})
MEDIA_TYPES: Final = frozenset({"image", "voice", "video", "file"})
MEDIA_MAX_BYTES: Final[dict[str, tuple[int, int]]] = {  # type -> (max bytes, errcode when larger)
    "image": (10 * 1024 * 1024, 40009),
    "voice": (2 * 1024 * 1024, 40010),
    "video": (10 * 1024 * 1024, 40011),
    "file": (20 * 1024 * 1024, 40006),
}
APP_MSGTYPES: Final = frozenset(
    {"text", "image", "voice", "video", "file", "textcard", "news", "mpnews", "markdown",
     "miniprogram_notice", "template_card"}
)
CALLBACK_IPS: Final = ("101.226.103.0/25", "101.226.62.0/26", "182.254.11.0/25", "182.254.78.0/25")


def _json_bool(value: Any, default: bool) -> bool:
    return default if value is None else bool(value)


def _as_int(value: Any, errcode: int = 40058, name: str = "") -> int:
    """WeCom accepts numbers sent as strings; anything else is a bad parameter."""
    try:
        return int(value)
    except (TypeError, ValueError):
        raise SimApiError(errcode, f"{name} must be an integer") from None


def _as_str_list(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    if not isinstance(value, list):
        raise SimApiError(40058, f"{name} must be a list")
    return [str(item) for item in value]


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"sim:{offset}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: Any) -> int:
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(str(cursor) + "=" * (-len(str(cursor)) % 4)).decode()
        prefix, _, offset = text.partition(":")
        if prefix != "sim":
            raise ValueError(text)
        return max(0, int(offset))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise SimApiError(40058, "invalid cursor") from None


def _page(items: Sequence[Any], cursor: Any, limit: int) -> tuple[list[Any], str]:
    """One page of items plus the next cursor ("" when done)."""
    start = _decode_cursor(cursor)
    end = start + limit
    return list(items[start:end]), (_encode_cursor(end) if end < len(items) else "")


def jsapi_signature(ticket: str, noncestr: str, timestamp: str, url: str) -> str:
    """§5.2: sha1 over "jsapi_ticket=..&noncestr=..&timestamp=..&url=.." (url without #fragment)."""
    string1 = f"jsapi_ticket={ticket}&noncestr={noncestr}&timestamp={timestamp}&url={url.split('#', 1)[0]}"
    return hashlib.sha1(string1.encode()).hexdigest()


class SimulatorState:
    """The fake corp: its graph, tokens, tickets, faults and the rules of the WeCom APIs."""

    def __init__(
        self,
        corp_id: str,
        agent_id: int,
        agent_secret: str,
        *,
        token_ttl: int = 7200,
        clock: Callable[[], float] = time.time,
        mass_quota_per_day: int = 1,
        welcome_code_ttl: int = 20,
        seed: int | None = None,
    ) -> None:
        self.corp_id = corp_id
        self.agent_id = agent_id
        self.agent_secret = agent_secret
        self.token_ttl = token_ttl
        self.clock = clock
        self.mass_quota_per_day = mass_quota_per_day
        self.welcome_code_ttl = welcome_code_ttl
        self._rng = random.Random(seed)

        self.members: dict[str, Member] = {}
        self.customers: dict[str, Customer] = {}
        self.follows: dict[tuple[str, str], Follow] = {}
        self.tag_groups: dict[str, TagGroup] = {}
        self.tags: dict[str, Tag] = {}
        self.group_chats: dict[str, GroupChat] = {}
        self.contact_ways: dict[str, ContactWay] = {}
        self.welcome_codes: dict[str, WelcomeCode] = {}
        self.mass_messages: dict[str, MassMessage] = {}
        self.media: dict[str, Media] = {}
        self.tokens: dict[str, AccessToken] = {}
        self.oauth_codes: dict[str, OAuthCode] = {}

        self.corp_jsapi_ticket = self._random_id("", 86, _URLSAFE)
        self.agent_jsapi_ticket = self._random_id("", 86, _URLSAFE)
        self.tickets_expire_at = self.clock() + TICKET_TTL

        # Records of what the app made WeCom do, for tests and the demo.
        self.app_messages: list[dict[str, Any]] = []
        self.welcome_messages: list[dict[str, Any]] = []
        self.mark_tag_log: list[dict[str, Any]] = []
        self.events: list[str] = []  # every callback plaintext the ev_* hooks produced
        self.calls: collections.Counter[str] = collections.Counter()
        self.public_base = ""  # the simulator's own URL, learnt from the first API call
        self._scans: collections.Counter[str] = collections.Counter()

        # Switches (PROTOCOL marks several behaviours [unsure]; the fake makes them configurable).
        self.rotate_tokens_on_gettoken = False
        self.mass_dispatch_delay = 0.0  # seconds during which result APIs answer 41063
        self.customer_contact_authorized = True  # False: customer-contact APIs answer 48002
        self.trusted_ips: set[str] | None = None  # None: any caller IP; else 60020 for others
        self.trusted_redirect_hosts: set[str] | None = None  # None: any OAuth redirect host
        self.reject_unicode_escapes = False  # True: 40033 for bodies containing \uXXXX
        self.strict_tag_ownership = False  # True: the app may only edit/delete tags it created
        self.check_media_format = True  # image JPG/PNG, voice AMR, video MP4 by magic bytes
        self.list_empty_as_84061 = False  # community reports: externalcontact/list with no customers
        self.linked_miniprogram_appids: set[str] | None = None  # None: any appid; else 90206 for others

        self._injected: dict[str, collections.deque[int]] = collections.defaultdict(collections.deque)
        self._mass_receipts: dict[str, list[int]] = collections.defaultdict(list)
        self._next_msgid = 7_300_000_000_000_000_000 + self._rng.randrange(10**15)
        self._app_msg_seq = 0

    # ------------------------------------------------------------------ helpers

    def now(self) -> int:
        """The simulator clock in unix seconds."""
        return int(self.clock())

    def _random_id(self, prefix: str, length: int, alphabet: str = _ALNUM) -> str:
        return prefix + "".join(self._rng.choice(alphabet) for _ in range(length))

    def _unique_id(self, existing: Mapping[str, Any], prefix: str, length: int, alphabet: str = _ALNUM) -> str:
        while True:
            new_id = self._random_id(prefix, length, alphabet)
            if new_id not in existing:
                return new_id

    def _member(self, userid: str) -> Member:
        """For hooks and setup: a programming error in a test, not an API error."""
        try:
            return self.members[userid]
        except KeyError:
            raise ValueError(f"unknown member {userid!r}") from None

    def _api_member(self, userid: str, *, unknown: int = 60111) -> Member:
        """For APIs: WeCom's unknown / out-of-visibility errors."""
        if not userid:
            raise SimApiError(41009)
        member = self.members.get(userid)
        if member is None:
            raise SimApiError(unknown, f"userid {userid!r}")
        if not member.visible:
            raise SimApiError(60011, f"userid {userid!r} is outside the app's visibility")
        return member

    def _visible(self, userid: str) -> bool:
        member = self.members.get(userid)
        return member is not None and member.visible

    def _live_follow(self, userid: str, external_userid: str) -> Follow | None:
        """A relation the APIs can see: exists and is not half-added."""
        follow = self.follows.get((userid, external_userid))
        return follow if follow is not None and not follow.half else None

    def _live_tag(self, tag_id: str) -> Tag | None:
        tag = self.tags.get(tag_id)
        if tag is None or tag.deleted or self.tag_groups[tag.group_id].deleted:
            return None
        return tag

    def _emit(self, fields: Sequence[tuple[str, XmlValue]]) -> str:
        xml = build_xml(fields)
        self.events.append(xml)
        _LOGGER.debug("simulator event: %s", xml)
        return xml

    def _sys_event(self, event: str, fields: Sequence[tuple[str, XmlValue]]) -> str:
        # Customer-contact events come from "sys" and carry no AgentID in the plaintext (§3).
        return self._emit([
            ("ToUserName", self.corp_id),
            ("FromUserName", "sys"),
            ("CreateTime", self.now()),
            ("MsgType", "event"),
            ("Event", event),
            *fields,
        ])

    # ------------------------------------------------------------------ tokens and faults

    def gettoken(self, corpid: str, corpsecret: str) -> dict[str, Any]:
        """§4.1 gettoken: the same token until it expires, unless rotate_tokens_on_gettoken."""
        if not corpid:
            raise SimApiError(41002)
        if not corpsecret:
            raise SimApiError(41004)
        if corpid != self.corp_id:
            raise SimApiError(40013)
        if not hmac.compare_digest(corpsecret.encode(), self.agent_secret.encode()):
            raise SimApiError(40001)
        now = self.clock()
        if not self.rotate_tokens_on_gettoken:
            for token in reversed(self.tokens.values()):
                if not token.expired and not token.revoked and token.expires_at > now:
                    return {"access_token": token.token, "expires_in": int(token.expires_at - now)}
        token = AccessToken(self._unique_id(self.tokens, "", 128, _URLSAFE), now + self.token_ttl)
        self.tokens[token.token] = token
        return {"access_token": token.token, "expires_in": self.token_ttl}

    def check_token(self, access_token: str) -> None:
        """Raise 41001 / 40014 / 42001 unless the token is usable (§1.2, §4.1)."""
        if not access_token:
            raise SimApiError(41001)
        token = self.tokens.get(access_token)
        if token is None or token.revoked:
            raise SimApiError(40014)
        if token.expired or token.expires_at <= self.clock():
            raise SimApiError(42001)

    def expire_tokens(self) -> None:
        """Every existing token answers 42001 from now on."""
        for token in self.tokens.values():
            token.expired = True

    def revoke_tokens(self) -> None:
        """Every existing token answers 40014 from now on."""
        for token in self.tokens.values():
            token.revoked = True

    def inject_error(self, api_path: str, errcode: int, times: int = 1) -> None:
        """The next `times` calls of api_path (e.g. "externalcontact/get") answer errcode."""
        self._injected[api_path.strip("/")].extend([errcode] * times)

    def take_injected_error(self, api_path: str) -> int | None:
        """Consume one injected errcode for api_path, if any is pending."""
        pending = self._injected.get(api_path)
        return pending.popleft() if pending else None

    # ------------------------------------------------------------------ setup (no events)

    def add_member(
        self,
        userid: str,
        name: str,
        *,
        department: Sequence[int] = (1,),
        position: str = "",
        status: int = 1,
        customer_contact: bool = True,
        visible: bool = True,
    ) -> None:
        """Add a corp member."""
        self.members[userid] = Member(userid, name, list(department), position, status, customer_contact, visible)

    def add_customer(
        self,
        name: str,
        *,
        external_userid: str | None = None,
        unionid: str = "",
        gender: int = 0,
        avatar: str = "",
        type: int = 1,  # noqa: A002 - WeCom's field name
        corp_name: str = "",
    ) -> str:
        """Add a customer and return its external_userid ('wm' + 30 chars unless given)."""
        if external_userid is None:
            external_userid = self._unique_id(self.customers, "wm" if type == 1 else "wo", 30)
        if not avatar:
            avatar = f"http://wx.qlogo.cn/mmhead/{self._random_id('', 40)}/0"
        self.customers[external_userid] = Customer(external_userid, name, avatar, type, gender, unionid, corp_name)
        return external_userid

    def add_follow(
        self,
        userid: str,
        external_userid: str,
        *,
        remark: str = "",
        description: str = "",
        state: str = "",
        add_way: int = 1,
        createtime: int | None = None,
        tag_ids: Iterable[str] = (),
        remark_mobiles: Iterable[str] = (),
        personal_tags: Iterable[str] = (),
        oper_userid: str | None = None,
    ) -> None:
        """Add a member-customer relation (by default the customer scanned the member's QR code)."""
        self._member(userid)
        if external_userid not in self.customers:
            raise ValueError(f"unknown customer {external_userid!r}")
        tags = list(dict.fromkeys(tag_ids))
        for tag_id in tags:
            if tag_id not in self.tags:
                raise ValueError(f"unknown tag {tag_id!r}")
        self.follows[(userid, external_userid)] = Follow(
            userid=userid,
            external_userid=external_userid,
            createtime=self.now() if createtime is None else createtime,
            remark=remark,
            description=description,
            tag_ids=tags,
            personal_tags=list(personal_tags),
            remark_mobiles=[str(m) for m in remark_mobiles],
            state=state,
            oper_userid=external_userid if oper_userid is None else oper_userid,
            add_way=add_way,
        )

    def customers_of(self, userid: str) -> list[str]:
        """external_userids the member currently has (half-added relations excluded)."""
        return [f.external_userid for f in self.follows.values() if f.userid == userid and not f.half]

    def add_tag_group(self, name: str, tags: Sequence[str], order: int = 0) -> str:
        """Add a corp tag group with its tags (as the admin would in the console); returns group_id."""
        group = TagGroup(self._unique_id(self.tag_groups, "et", 30), name, self.now(), order)
        self.tag_groups[group.group_id] = group
        for tag_name in tags:
            self._new_tag(group, tag_name)
        return group.group_id

    def _new_tag(self, group: TagGroup, name: str, order: int = 0, *, by_app: bool = False) -> Tag:
        tag = Tag(self._unique_id(self.tags, "et", 30), name, group.group_id, self.now(), order, created_by_app=by_app)
        self.tags[tag.id] = tag
        group.tag_ids.append(tag.id)
        return tag

    def tag_id(self, group_name: str, tag_name: str) -> str:
        """Look up a live tag id by names (a test convenience)."""
        for tag in self.tags.values():
            group = self.tag_groups[tag.group_id]
            if self._live_tag(tag.id) and tag.name == tag_name and group.name == group_name:
                return tag.id
        raise KeyError(f"{group_name}/{tag_name}")

    def add_group_chat(self, owner: str, member_ids: Iterable[str], name: str = "") -> str:
        """Add a customer group owned by `owner` (who is always a member); returns chat_id."""
        self._member(owner)
        now = self.now()
        chat = GroupChat(self._unique_id(self.group_chats, "wr", 28), name, owner, now, member_version="")
        self.group_chats[chat.chat_id] = chat
        chat.members[owner] = self._chat_member(owner, now, join_scene=1)
        for member_id in member_ids:
            if member_id not in chat.members:
                chat.members[member_id] = self._chat_member(member_id, now, join_scene=1, invitor=owner)
        self._bump_member_version(chat)
        return chat.chat_id

    def _chat_member(self, member_id: str, now: int, *, join_scene: int, invitor: str = "") -> ChatMember:
        if member_id in self.members:
            return ChatMember(member_id, 1, now, join_scene, invitor, name=self.members[member_id].name)
        if member_id in self.customers:
            customer = self.customers[member_id]
            return ChatMember(member_id, 2, now, join_scene, invitor, name=customer.name, unionid=customer.unionid)
        raise ValueError(f"{member_id!r} is neither a member nor a customer")

    def _bump_member_version(self, chat: GroupChat) -> str:
        # Opaque md5 like WeCom's; the sequence makes leave-then-rejoin yield a new version too.
        chat.version_seq += 1
        digest_input = f"{chat.chat_id}:{chat.version_seq}:{','.join(sorted(chat.members))}"
        chat.member_version = hashlib.md5(digest_input.encode()).hexdigest()
        return chat.member_version

    def create_oauth_code(self, userid: str) -> str:
        """Issue a single-use OAuth code for a member (what the authorize page does)."""
        self._member(userid)
        code = OAuthCode(self._unique_id(self.oauth_codes, "", 43, _URLSAFE), userid, self.clock())
        self.oauth_codes[code.code] = code
        return code.code

    def confirm_mass_task(self, msgid: str, userid: str) -> None:
        """The member confirms their mass-message task in the client (§4.8, §4.9)."""
        message = self.mass_messages[msgid]
        task = message.tasks[userid]
        now = self.now()
        for target in task.targets:
            if message.chat_type == "single":
                follow = self.follows.get((userid, target))
                if follow is None or follow.half or follow.deleted_by_customer:
                    task.results[target] = 2
                    continue
            elif self.group_chats[target].dismissed:
                task.results[target] = 2
                continue
            task.results[target] = 3 if not self._take_mass_quota(target, now) else 1
        task.status = 2
        task.send_time = now

    def _take_mass_quota(self, recipient: str, now: int) -> bool:
        day = (now + CHINA_UTC_OFFSET) // 86400
        received = self._mass_receipts[recipient]
        if sum(1 for ts in received if (ts + CHINA_UTC_OFFSET) // 86400 == day) >= self.mass_quota_per_day:
            return False
        received.append(now)
        return True

    # ------------------------------------------------------------------ scenario hooks (events)

    def ev_customer_adds_member(
        self,
        userid: str,
        *,
        external_userid: str | None = None,
        name: str = "顾客",
        unionid: str = "",
        state: str = "",
        half: bool = False,
        with_welcome_code: bool = True,
        add_way: int = 1,
    ) -> tuple[str, str]:
        """A customer adds the member (scan/QR by default); returns (external_userid, event XML)."""
        member = self._member(userid)
        if not member.customer_contact:
            raise ValueError(f"member {userid!r} has no customer-contact permission")
        if external_userid is None or external_userid not in self.customers:
            external_userid = self.add_customer(name, external_userid=external_userid, unionid=unionid)
        self.add_follow(userid, external_userid, state=state, add_way=add_way)
        self.follows[(userid, external_userid)].half = half
        fields: list[tuple[str, XmlValue]] = [
            ("ChangeType", "add_half_external_contact" if half else "add_external_contact"),
            ("UserID", userid),
            ("ExternalUserID", external_userid),
        ]
        if state:
            fields.append(("State", state))
        if with_welcome_code:
            code = WelcomeCode(self._unique_id(self.welcome_codes, "", 43, _URLSAFE), userid, external_userid,
                               self.clock())
            self.welcome_codes[code.code] = code
            fields.append(("WelcomeCode", code.code))
        return external_userid, self._sys_event("change_external_contact", fields)

    def ev_customer_scans_contact_way(
        self, config_id: str, *, name: str = "顾客", external_userid: str | None = None
    ) -> tuple[str, str, str]:
        """A customer scans a contact-way QR code; returns (userid, external_userid, event XML).

        A multi-member code hands scanners to its members in turn (WeCom spreads them; turns are
        deterministic here so tests can tell who gets the next one)."""
        way = self.contact_ways.get(config_id)
        if way is None:
            raise KeyError(config_id)
        members = [u for u in way.user if u in self.members and self.members[u].status == 1]
        if not members:
            raise ValueError(f"contact way {config_id} has no active member")
        userid = members[self._scans[config_id] % len(members)]
        self._scans[config_id] += 1
        external_userid, xml = self.ev_customer_adds_member(
            userid, external_userid=external_userid, name=name, state=way.state, half=not way.skip_verify
        )
        return userid, external_userid, xml

    def ev_member_confirms_half(self, userid: str, external_userid: str) -> str:
        """The member accepts a half-added customer: the relation becomes visible to the APIs."""
        follow = self.follows[(userid, external_userid)]
        follow.half = False
        return self._sys_event("change_external_contact", [
            ("ChangeType", "add_external_contact"), ("UserID", userid), ("ExternalUserID", external_userid),
        ])

    def ev_member_edits_customer(
        self,
        userid: str,
        external_userid: str,
        *,
        remark: str | None = None,
        description: str | None = None,
        add_tag_ids: Iterable[str] = (),
        remove_tag_ids: Iterable[str] = (),
    ) -> str:
        """The member edits remark/description/tags in the client (edit_external_contact)."""
        follow = self.follows[(userid, external_userid)]
        if remark is not None:
            follow.remark = remark
        if description is not None:
            follow.description = description
        for tag_id in add_tag_ids:
            if self._live_tag(tag_id) is None:
                raise ValueError(f"unknown tag {tag_id!r}")
            if tag_id not in follow.tag_ids:
                follow.tag_ids.append(tag_id)
        removed = set(remove_tag_ids)
        follow.tag_ids = [t for t in follow.tag_ids if t not in removed]
        return self._sys_event("change_external_contact", [
            ("ChangeType", "edit_external_contact"), ("UserID", userid), ("ExternalUserID", external_userid),
        ])

    def ev_member_deletes_customer(self, userid: str, external_userid: str, *, by_transfer: bool = False) -> str:
        """The member deletes the customer (del_external_contact); the relation is gone."""
        del self.follows[(userid, external_userid)]
        fields: list[tuple[str, XmlValue]] = [
            ("ChangeType", "del_external_contact"), ("UserID", userid), ("ExternalUserID", external_userid),
        ]
        if by_transfer:
            fields.append(("Source", "DELETE_BY_TRANSFER"))
        return self._sys_event("change_external_contact", fields)

    def ev_customer_deletes_member(self, userid: str, external_userid: str) -> str:
        """The customer deletes the member (del_follow_user).

        WeCom keeps a one-way relation: the member still has the customer, so externalcontact/list,
        externalcontact/get and mark_tag keep working; only messages fail (mass results status 2).
        The follow is kept with `deleted_by_customer = True`.
        """
        self.follows[(userid, external_userid)].deleted_by_customer = True
        return self._sys_event("change_external_contact", [
            ("ChangeType", "del_follow_user"), ("UserID", userid), ("ExternalUserID", external_userid),
        ])

    def ev_transfer_fail(self, takeover_userid: str, external_userid: str, reason: str = "customer_refused") -> str:
        """A customer transfer to takeover_userid failed (transfer_fail); the graph is unchanged."""
        return self._sys_event("change_external_contact", [
            ("ChangeType", "transfer_fail"),
            ("FailReason", reason),
            ("UserID", takeover_userid),
            ("ExternalUserID", external_userid),
        ])

    def ev_group_created(self, owner: str, member_ids: Iterable[str], name: str) -> tuple[str, str]:
        """A member creates a customer group; returns (chat_id, event XML)."""
        chat_id = self.add_group_chat(owner, member_ids, name)
        return chat_id, self._sys_event("change_external_chat", [("ChatId", chat_id), ("ChangeType", "create")])

    def _group(self, chat_id: str) -> GroupChat:
        chat = self.group_chats[chat_id]
        if chat.dismissed:
            raise ValueError(f"group {chat_id!r} is dismissed")
        return chat

    def ev_group_members_join(self, chat_id: str, member_ids: Iterable[str], join_scene: int = 3) -> str:
        """Members/customers join (update/add_member); JoinScene 0 = invited, 3 = scanned the QR code."""
        chat = self._group(chat_id)
        now = self.now()
        last = chat.member_version
        added: list[str] = []
        for member_id in member_ids:
            if member_id in chat.members:
                continue
            # The event's JoinScene (0 invite, 3 QR) differs from groupchat/get's (1 direct, 3 QR).
            if join_scene == 3:
                chat.members[member_id] = self._chat_member(member_id, now, join_scene=3)
            else:
                chat.members[member_id] = self._chat_member(member_id, now, join_scene=1, invitor=chat.owner)
            added.append(member_id)
        current = self._bump_member_version(chat)
        return self._sys_event("change_external_chat", [
            ("ChatId", chat_id),
            ("ChangeType", "update"),
            ("UpdateDetail", "add_member"),
            ("JoinScene", join_scene),
            ("QuitScene", 0),
            ("MemChangeCnt", len(added)),
            ("MemChangeList", added),
            ("LastMemVer", last),
            ("CurMemVer", current),
        ])

    def ev_group_members_leave(self, chat_id: str, member_ids: Iterable[str], quit_scene: int = 0) -> str:
        """Members leave (0) or are removed (1) (update/del_member)."""
        chat = self._group(chat_id)
        last = chat.member_version
        removed: list[str] = []
        for member_id in member_ids:
            if member_id == chat.owner:
                raise ValueError("the owner cannot leave; transfer or dismiss the group")
            if chat.members.pop(member_id, None) is not None:
                removed.append(member_id)
                if member_id in chat.admin_list:
                    chat.admin_list.remove(member_id)
        current = self._bump_member_version(chat)
        return self._sys_event("change_external_chat", [
            ("ChatId", chat_id),
            ("ChangeType", "update"),
            ("UpdateDetail", "del_member"),
            ("QuitScene", quit_scene),
            ("MemChangeCnt", len(removed)),
            ("MemChangeList", removed),
            ("LastMemVer", last),
            ("CurMemVer", current),
        ])

    def _group_update(self, chat_id: str, detail: str) -> str:
        return self._sys_event("change_external_chat", [
            ("ChatId", chat_id), ("ChangeType", "update"), ("UpdateDetail", detail),
        ])

    def ev_group_renamed(self, chat_id: str, name: str) -> str:
        """The group is renamed (update/change_name)."""
        self._group(chat_id).name = name
        return self._group_update(chat_id, "change_name")

    def ev_group_notice_changed(self, chat_id: str, notice: str) -> str:
        """The group notice changes (update/change_notice)."""
        self._group(chat_id).notice = notice
        return self._group_update(chat_id, "change_notice")

    def ev_group_owner_changed(self, chat_id: str, new_owner: str) -> str:
        """Ownership moves to another member, who joins if needed (update/change_owner)."""
        chat = self._group(chat_id)
        self._member(new_owner)
        if new_owner not in chat.members:
            chat.members[new_owner] = self._chat_member(new_owner, self.now(), join_scene=1, invitor=chat.owner)
            self._bump_member_version(chat)
        chat.owner = new_owner
        return self._group_update(chat_id, "change_owner")

    def ev_group_dismissed(self, chat_id: str) -> str:
        """The owner dismisses the group; groupchat/get answers 40050 afterwards."""
        self._group(chat_id).dismissed = True
        return self._sys_event("change_external_chat", [("ChatId", chat_id), ("ChangeType", "dismiss")])

    def _tag_event(self, change: str, object_id: str, tag_type: str) -> str:
        return self._sys_event("change_external_tag", [
            ("Id", object_id), ("TagType", tag_type), ("ChangeType", change),
        ])

    def ev_tag_created(self, group_name: str, tag_name: str) -> tuple[str, str]:
        """The admin creates a tag (and its group if missing); returns (tag_id, event XML)."""
        group = next((g for g in self.tag_groups.values() if g.name == group_name and not g.deleted), None)
        if group is None:
            group = self.tag_groups[self.add_tag_group(group_name, [])]
        tag = self._new_tag(group, tag_name)
        return tag.id, self._tag_event("create", tag.id, "tag")

    def ev_tag_renamed(self, tag_id: str, name: str) -> str:
        """The admin renames a tag or a tag group (update)."""
        if tag_id in self.tag_groups:
            self.tag_groups[tag_id].name = name
            return self._tag_event("update", tag_id, "tag_group")
        self.tags[tag_id].name = name
        return self._tag_event("update", tag_id, "tag")

    def ev_tag_deleted(self, tag_or_group_id: str) -> str:
        """The admin deletes a tag, or a whole group (one callback for the group, none for its tags)."""
        if tag_or_group_id in self.tag_groups:
            group = self.tag_groups[tag_or_group_id]
            self._delete_group(group)
            return self._tag_event("delete", group.group_id, "tag_group")
        tag = self.tags[tag_or_group_id]
        self._delete_tags([tag])
        return self._tag_event("delete", tag.id, "tag")

    def _delete_group(self, group: TagGroup) -> None:
        group.deleted = True
        for tag_id in group.tag_ids:
            self.tags[tag_id].deleted = True

    def _delete_tags(self, tags: Iterable[Tag]) -> None:
        for tag in tags:
            tag.deleted = True
            group = self.tag_groups[tag.group_id]
            # A group without live tags disappears with its last tag (§4.11).
            if all(self.tags[t].deleted for t in group.tag_ids):
                group.deleted = True

    def ev_tags_shuffled(self, group_id: str | None = None) -> str:
        """The admin re-orders tags (shuffle); Id is the group, or empty when all groups changed."""
        groups = [self.tag_groups[group_id]] if group_id else [g for g in self.tag_groups.values() if not g.deleted]
        for group in groups:
            live = [t for t in group.tag_ids if not self.tags[t].deleted]
            self._rng.shuffle(live)
            for order, tag_id in enumerate(reversed(live), start=1):
                self.tags[tag_id].order = order
        return self._sys_event("change_external_tag", [("Id", group_id or ""), ("ChangeType", "shuffle")])

    def _next_message_id(self) -> int:
        self._next_msgid += 1 + self._rng.randrange(1000)
        return self._next_msgid

    def ev_member_text(self, userid: str, content: str) -> str:
        """The member sends a text message to the app (MsgType text, with MsgId and AgentID)."""
        self._member(userid)
        return self._emit([
            ("ToUserName", self.corp_id),
            ("FromUserName", userid),
            ("CreateTime", self.now()),
            ("MsgType", "text"),
            ("Content", content),
            ("MsgId", self._next_message_id()),
            ("AgentID", self.agent_id),
        ])

    def ev_enter_agent(self, userid: str) -> str:
        """The member opens the app (enter_agent)."""
        self._member(userid)
        return self._emit([
            ("ToUserName", self.corp_id),
            ("FromUserName", userid),
            ("CreateTime", self.now()),
            ("MsgType", "event"),
            ("Event", "enter_agent"),
            ("EventKey", ""),
            ("AgentID", self.agent_id),
        ])

    # ------------------------------------------------------------------ customer-contact APIs

    def get_follow_user_list(self) -> dict[str, Any]:
        """§4.2 externalcontact/get_follow_user_list."""
        return {"follow_user": [m.userid for m in self.members.values()
                                if m.visible and m.customer_contact and m.status == 1]}

    def list_external_contacts(self, userid: str) -> dict[str, Any]:
        """§4.3 externalcontact/list."""
        member = self._api_member(userid, unknown=40003)
        if not member.customer_contact:
            raise SimApiError(84074)
        ids = self.customers_of(userid)
        if not ids and self.list_empty_as_84061:
            raise SimApiError(84061)
        return {"external_userid": ids}

    def _customer_json(self, customer: Customer) -> dict[str, Any]:
        data: dict[str, Any] = {
            "external_userid": customer.external_userid,
            "name": customer.name,
            "avatar": customer.avatar,
            "type": customer.type,
            "gender": customer.gender,
        }
        if customer.type == 1 and customer.unionid:
            data["unionid"] = customer.unionid
        if customer.type == 2:
            data.update(corp_name=customer.corp_name, corp_full_name=customer.corp_name, position="")
        return data

    def _follow_tags(self, follow: Follow) -> list[dict[str, Any]]:
        tags: list[dict[str, Any]] = []
        for tag_id in follow.tag_ids:
            tag = self._live_tag(tag_id)
            if tag is not None:
                group = self.tag_groups[tag.group_id]
                tags.append({"group_name": group.name, "tag_name": tag.name, "tag_id": tag.id, "type": 1})
        tags.extend({"group_name": "", "tag_name": name, "type": 2} for name in follow.personal_tags)
        return tags

    def _follow_json(self, follow: Follow, *, batch: bool) -> dict[str, Any]:
        data: dict[str, Any] = {
            "userid": follow.userid,
            "remark": follow.remark,
            "description": follow.description,
            "createtime": follow.createtime,
        }
        if batch:
            data["tag_id"] = [t for t in follow.tag_ids if self._live_tag(t) is not None]
            data.update(remark_corp_name="", remark_mobiles=list(follow.remark_mobiles), state=follow.state)
        else:
            data["tags"] = self._follow_tags(follow)
            if follow.remark_mobiles:
                data["remark_mobiles"] = list(follow.remark_mobiles)
            if follow.state:
                data["state"] = follow.state
        data.update(oper_userid=follow.oper_userid, add_way=follow.add_way)
        return data

    def get_external_contact(self, external_userid: str, cursor: str = "") -> dict[str, Any]:
        """§4.4 externalcontact/get."""
        customer = self.customers.get(external_userid)
        if customer is None:
            raise SimApiError(40096)
        follows = [f for f in self.follows.values() if f.external_userid == external_userid]
        if not [f for f in follows if not f.half]:
            raise SimApiError(84061)
        visible = [f for f in follows if not f.half and self._visible(f.userid)]
        if not visible:
            raise SimApiError(40096, "no follower inside the app's visibility")
        page, next_cursor = _page(visible, cursor, FOLLOW_USER_PAGE)
        result: dict[str, Any] = {
            "external_contact": self._customer_json(customer),
            "follow_user": [self._follow_json(f, batch=False) for f in page],
        }
        if next_cursor:
            result["next_cursor"] = next_cursor
        return result

    def batch_get_by_user(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """§4.5 externalcontact/batch/get_by_user (accepts userid_list and the legacy userid)."""
        userids = _as_str_list(body.get("userid_list"), "userid_list") or _as_str_list(body.get("userid"), "userid")
        if not userids:
            raise SimApiError(41009)
        if len(userids) > MAX_BATCH_USERIDS:
            raise SimApiError(40058, f"userid_list holds at most {MAX_BATCH_USERIDS} userids")
        known = [u for u in userids if u in self.members]
        if not known:
            raise SimApiError(40003)
        wanted = [u for u in known if self.members[u].visible]
        if not wanted:
            raise SimApiError(60011)
        limit = min(max(_as_int(body.get("limit") or 50, name="limit"), 1), 100)  # WeCom clamps to 100
        rows = [f for u in dict.fromkeys(wanted) for f in self.follows.values() if f.userid == u and not f.half]
        page, next_cursor = _page(rows, body.get("cursor"), limit)
        return {
            "external_contact_list": [
                {"external_contact": self._customer_json(self.customers[f.external_userid]),
                 "follow_info": self._follow_json(f, batch=True)}
                for f in page
            ],
            "next_cursor": next_cursor,
        }

    # -- contact ways

    def _contact_way_users(self, users: list[str]) -> None:
        for userid in users:
            member = self._api_member(userid, unknown=40003)
            if member.status == 4:
                raise SimApiError(41054, f"userid {userid!r}")
            if not member.customer_contact:
                raise SimApiError(84074, f"userid {userid!r}")

    def _apply_contact_way(self, way: ContactWay, body: Mapping[str, Any]) -> None:
        if "remark" in body:
            way.remark = str(body["remark"] or "")
            if len(way.remark) > MAX_STATE_CHARS:
                raise SimApiError(40058, "remark is at most 30 characters")
        if "state" in body:
            way.state = str(body["state"] or "")
            if len(way.state) > MAX_STATE_CHARS:
                raise SimApiError(40058, "state is at most 30 characters")
        if "style" in body:
            way.style = _as_int(body["style"], name="style")
        if "skip_verify" in body:
            way.skip_verify = _json_bool(body["skip_verify"], True)
        for key in ("expires_in", "chat_expires_in"):
            if key in body:
                setattr(way, key, _as_int(body[key], name=key))
        if "unionid" in body:
            way.unionid = str(body["unionid"] or "")
        if "conclusions" in body and isinstance(body["conclusions"], dict):
            way.conclusions = dict(body["conclusions"])
        if "is_temp" in body:
            way.is_temp = _json_bool(body["is_temp"], False)
        if "user" in body or "party" in body:
            users = _as_str_list(body.get("user"), "user") if "user" in body else way.user
            party = [_as_int(p, name="party") for p in (body.get("party") or [])] if "party" in body else way.party
            if way.type == 1:
                if party:
                    raise SimApiError(40058, "party is only for type 2")
                if not users:
                    raise SimApiError(40063, "type 1 needs exactly one user")
                if len(users) > 1:
                    raise SimApiError(41041, "type 1 takes exactly one user")
            elif not users and not party:
                raise SimApiError(40063, "user and party are both empty")
            if len(users) > MAX_CONTACT_WAY_USERS:
                raise SimApiError(41041)
            self._contact_way_users(users)
            way.user, way.party = users, party
        if way.is_temp and way.type != 1:
            raise SimApiError(40058, "temporary sessions need a single member")

    def add_contact_way(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """§4.6 externalcontact/add_contact_way."""
        if body.get("type") in (None, ""):
            raise SimApiError(41037)
        if body.get("scene") in (None, ""):
            raise SimApiError(41038)
        way_type = _as_int(body["type"], 41039, "type")
        scene = _as_int(body["scene"], 41040, "scene")
        if way_type not in (1, 2):
            raise SimApiError(41039)
        if scene not in (1, 2):
            raise SimApiError(41040)
        config_id = self._unique_id(self.contact_ways, "", 32, "0123456789abcdef")
        way = ContactWay(config_id, way_type, scene, self.now())
        self._apply_contact_way(way, {"user": [], **body})
        if scene == 2:
            # Real WeCom hands out a wework.qpic.cn image; ours is served by the simulator so it can be fetched.
            way.qr_code = (f"{self.public_base}/_sim/qr/{config_id}.png" if self.public_base
                           else f"https://wework.qpic.cn/wwpic/{self._random_id('', 24)}/0")
        self.contact_ways[config_id] = way
        result: dict[str, Any] = {"config_id": config_id}
        if way.qr_code:
            result["qr_code"] = way.qr_code
        return result

    def _contact_way(self, body: Mapping[str, Any]) -> ContactWay:
        config_id = str(body.get("config_id") or "")
        if not config_id:
            raise SimApiError(41043)
        way = self.contact_ways.get(config_id)
        if way is None:
            raise SimApiError(41044)
        return way

    def get_contact_way(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """§4.6 externalcontact/get_contact_way (contact_way as an object, per the current docs)."""
        way = self._contact_way(body)
        return {"contact_way": {
            "config_id": way.config_id, "type": way.type, "scene": way.scene, "style": way.style,
            "remark": way.remark, "skip_verify": way.skip_verify, "state": way.state, "qr_code": way.qr_code,
            "user": list(way.user), "party": list(way.party), "is_temp": way.is_temp,
            "expires_in": way.expires_in, "chat_expires_in": way.chat_expires_in, "unionid": way.unionid,
            "conclusions": dict(way.conclusions),
        }}

    def update_contact_way(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """§4.6 externalcontact/update_contact_way: overwrites the fields given."""
        way = self._contact_way(body)
        updated = ContactWay(**vars(way))
        self._apply_contact_way(updated, body)  # validate fully before changing anything
        self.contact_ways[way.config_id] = updated
        return {}

    def del_contact_way(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """§4.6 externalcontact/del_contact_way."""
        del self.contact_ways[self._contact_way(body).config_id]
        return {}

    def list_contact_way(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """§4.6 externalcontact/list_contact_way."""
        start = _as_int(body.get("start_time") or 0, name="start_time")
        end = _as_int(body.get("end_time") or self.now(), name="end_time")
        limit = min(max(_as_int(body.get("limit") or 100, name="limit"), 1), 1000)
        ways = [w for w in self.contact_ways.values() if start <= w.created_at <= end]
        page, next_cursor = _page(ways, body.get("cursor"), limit)
        return {"contact_way": [{"config_id": w.config_id} for w in page], "next_cursor": next_cursor}

    # -- message content shared by send_welcome_msg and add_msg_template

    def _valid_media(self, media_id: Any) -> None:
        media = self.media.get(str(media_id or ""))
        if media is None or media.created_at + MEDIA_TTL <= self.now():
            raise SimApiError(40007, f"media_id {media_id!r}")

    def _validate_content(self, body: Mapping[str, Any]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        text = body.get("text")
        content = ""
        if text is not None:
            if not isinstance(text, dict):
                raise SimApiError(40058, "text must be an object")
            content = str(text.get("content") or "")
            if len(content.encode()) > MAX_TEXT_BYTES:
                raise SimApiError(45002, f"text.content is at most {MAX_TEXT_BYTES} bytes")
        attachments = body.get("attachments") or []
        if not isinstance(attachments, list):
            raise SimApiError(40058, "attachments must be a list")
        if not content and not attachments:
            raise SimApiError(44004, "text and attachments are both empty")
        if len(attachments) > MAX_ATTACHMENTS:
            raise SimApiError(41064)
        for item in attachments:
            msgtype = item.get("msgtype") if isinstance(item, dict) else None
            payload = item.get(msgtype) if msgtype in ATTACHMENT_TYPES else None
            if not isinstance(payload, dict):
                raise SimApiError(41065, f"attachment {item!r}")
            if msgtype == "image":
                if payload.get("media_id"):
                    self._valid_media(payload["media_id"])
                elif not payload.get("pic_url"):
                    raise SimApiError(40058, "image needs media_id or pic_url")
            elif msgtype == "link":
                if not payload.get("title") or not payload.get("url"):
                    raise SimApiError(40058, "link needs title and url")
            elif msgtype == "miniprogram":
                if not all(payload.get(k) for k in ("title", "pic_media_id", "appid", "page")):
                    raise SimApiError(40058, "miniprogram needs title, pic_media_id, appid and page")
                self._valid_media(payload["pic_media_id"])
                linked = self.linked_miniprogram_appids
                if linked is not None and str(payload["appid"]) not in linked:
                    raise SimApiError(90206, f"appid {payload['appid']!r} is not linked to the corp")
            else:
                self._valid_media(payload.get("media_id"))
            for key, limit in ATTACHMENT_FIELD_BYTES.get(msgtype, {}).items():
                if len(str(payload.get(key) or "").encode()) > limit:
                    raise SimApiError(40058, f"{msgtype}.{key} is at most {limit} bytes")
        return ({"content": content} if content else None), [dict(a) for a in attachments]

    def send_welcome_msg(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """§4.7 externalcontact/send_welcome_msg: the code works once within welcome_code_ttl seconds."""
        code_text = str(body.get("welcome_code") or "")
        if not code_text:
            raise SimApiError(41049)
        code = self.welcome_codes.get(code_text)
        if code is None:
            raise SimApiError(41050, "unknown welcome_code")
        if code.used:
            raise SimApiError(41051, "welcome_code already used")
        if self.clock() - code.issued_at > self.welcome_code_ttl:
            raise SimApiError(41050, "welcome_code expired")
        text, attachments = self._validate_content(body)
        code.used = True
        self.welcome_messages.append({
            "welcome_code": code.code, "userid": code.userid, "external_userid": code.external_userid,
            "text": text, "attachments": attachments, "sent_at": self.now(),
        })
        return {}

    # -- mass messages

    def _sender(self, userid: str) -> Member:
        member = self._api_member(userid, unknown=40003)
        if not member.customer_contact:
            raise SimApiError(84074)
        return member

    def _mass_single_targets(
        self, body: Mapping[str, Any], sender: str
    ) -> tuple[dict[str, list[str]], list[str]]:
        ids = list(dict.fromkeys(_as_str_list(body.get("external_userid"), "external_userid")))
        if len(ids) > MAX_MASS_RECIPIENTS:
            raise SimApiError(40035, f"external_userid holds at most {MAX_MASS_RECIPIENTS} ids")
        tag_filter = body.get("tag_filter") or {}
        tag_lists = [_as_str_list(g.get("tag_list"), "tag_list") for g in tag_filter.get("group_list") or []
                     if isinstance(g, dict)]
        fail_list: list[str] = []
        chosen: list[Follow] = []
        if ids:
            for external_userid in ids:
                if sender:
                    follow = self._live_follow(sender, external_userid)
                else:
                    # WeCom pushes to the member who most recently interacted; newest relation here.
                    candidates = [f for f in self.follows.values()
                                  if f.external_userid == external_userid and not f.half and self._visible(f.userid)
                                  and self.members[f.userid].customer_contact]
                    follow = max(candidates, key=lambda f: f.createtime, default=None)
                if follow is None:
                    fail_list.append(external_userid)
                else:
                    chosen.append(follow)
        elif sender:
            chosen = [f for f in self.follows.values() if f.userid == sender and not f.half]
        targets: dict[str, list[str]] = {}
        for follow in chosen:
            # OR within one tag_list, AND across lists.
            if all(set(tags) & set(follow.tag_ids) for tags in tag_lists if tags):
                targets.setdefault(follow.userid, []).append(follow.external_userid)
        return targets, fail_list

    def add_msg_template(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """§4.8 externalcontact/add_msg_template: creates per-sender tasks; nothing is sent yet."""
        chat_type = str(body.get("chat_type") or "single")
        if chat_type not in ("single", "group"):
            raise SimApiError(40058, "chat_type is single or group")
        sender = str(body.get("sender") or "")
        if sender:
            self._sender(sender)
        text, attachments = self._validate_content(body)
        if chat_type == "single":
            targets, fail_list = self._mass_single_targets(body, sender)
        else:
            if not sender:
                raise SimApiError(40058, "sender is required for chat_type group")
            wanted = _as_str_list(body.get("chat_id_list"), "chat_id_list")
            owned = [c.chat_id for c in self.group_chats.values() if c.owner == sender and not c.dismissed]
            fail_list = [c for c in wanted if c not in owned]
            chats = [c for c in wanted if c in owned] if wanted else owned
            targets = {sender: chats} if chats else {}
        if not targets:
            raise SimApiError(41048)
        msgid = self._unique_id(self.mass_messages, "msg", 25)
        message = MassMessage(msgid, chat_type, self.now(), self.clock(), text, attachments)
        for userid, ids in targets.items():
            message.tasks[userid] = MassTask(userid, ids, results={t: 0 for t in ids})
        self.mass_messages[msgid] = message
        return {"fail_list": fail_list, "msgid": msgid}

    def _mass_message(self, body: Mapping[str, Any]) -> MassMessage:
        msgid = str(body.get("msgid") or "")
        if not msgid:
            raise SimApiError(40063, "msgid is required")
        message = self.mass_messages.get(msgid)
        if message is None:
            raise SimApiError(40058, f"unknown msgid {msgid!r}")
        if self.clock() - message.created_at < self.mass_dispatch_delay:
            raise SimApiError(41063)
        return message

    def get_groupmsg_list_v2(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """§4.9 externalcontact/get_groupmsg_list_v2."""
        chat_type = body.get("chat_type")
        if chat_type not in ("single", "group"):
            raise SimApiError(40058, "chat_type is required: single or group")
        if body.get("start_time") in (None, "") or body.get("end_time") in (None, ""):
            raise SimApiError(40058, "start_time and end_time are required")
        start = _as_int(body["start_time"], name="start_time")
        end = _as_int(body["end_time"], name="end_time")
        if end < start or end - start > MASS_LIST_MAX_SPAN:
            raise SimApiError(40058, "the time span is at most one month")
        filter_type = _as_int(body.get("filter_type", 2), name="filter_type")
        creator = str(body.get("creator") or "")
        limit = min(max(_as_int(body.get("limit") or 50, name="limit"), 1), 100)
        rows = [
            m for m in self.mass_messages.values()
            if m.chat_type == chat_type and start <= m.create_time <= end
            and (filter_type == 2 or m.create_type == filter_type) and (not creator or m.creator == creator)
        ]
        page, next_cursor = _page(rows, body.get("cursor"), limit)
        listed = []
        for m in page:
            item: dict[str, Any] = {"msgid": m.msgid, "create_time": str(m.create_time), "create_type": m.create_type}
            if m.creator:
                item["creator"] = m.creator
            if m.text:
                item["text"] = dict(m.text)
            if m.attachments:
                item["attachments"] = [dict(a) for a in m.attachments]
            listed.append(item)
        return {"next_cursor": next_cursor, "group_msg_list": listed}

    def get_groupmsg_task(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """§4.9 externalcontact/get_groupmsg_task (status 0 not sent, 2 sent)."""
        message = self._mass_message(body)
        limit = min(max(_as_int(body.get("limit") or 500, name="limit"), 1), 1000)
        page, next_cursor = _page(list(message.tasks.values()), body.get("cursor"), limit)
        tasks = []
        for task in page:
            row: dict[str, Any] = {"userid": task.userid, "status": task.status}
            if task.status:
                row["send_time"] = task.send_time
            tasks.append(row)
        return {"next_cursor": next_cursor, "task_list": tasks}

    def get_groupmsg_send_result(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """§4.9 externalcontact/get_groupmsg_send_result (status 0/1/2/3)."""
        message = self._mass_message(body)
        userid = str(body.get("userid") or "")
        if not userid:
            raise SimApiError(41009)
        limit = min(max(_as_int(body.get("limit") or 500, name="limit"), 1), 1000)
        task = message.tasks.get(userid)
        rows: list[dict[str, Any]] = []
        if task is not None:
            key = "external_userid" if message.chat_type == "single" else "chat_id"
            for target, status in task.results.items():
                if message.chat_type == "group" and status == 0:
                    continue  # unsent group rows are not returned: the member has not picked groups yet
                row: dict[str, Any] = {key: target, "userid": userid, "status": status}
                if status == 1:
                    row["send_time"] = task.send_time
                rows.append(row)
        page, next_cursor = _page(rows, body.get("cursor"), limit)
        return {"next_cursor": next_cursor, "send_list": page}

    # -- customer groups

    def groupchat_list(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """§4.10 externalcontact/groupchat/list (cursor paging; limit required)."""
        if body.get("limit") in (None, ""):
            raise SimApiError(40063, "limit is required")
        limit = _as_int(body["limit"], name="limit")
        if not 1 <= limit <= 1000:
            raise SimApiError(40058, "limit must be 1..1000")
        status_filter = _as_int(body.get("status_filter") or 0, name="status_filter")
        owner_filter = body.get("owner_filter") or {}
        owners = _as_str_list(owner_filter.get("userid_list") if isinstance(owner_filter, dict) else None,
                              "owner_filter.userid_list")
        if len(owners) > MAX_OWNER_FILTER:
            raise SimApiError(40058, f"owner_filter holds at most {MAX_OWNER_FILTER} userids")
        if not owners and sum(1 for m in self.members.values() if m.visible) > MAX_GROUPCHAT_SCAN_MEMBERS:
            raise SimApiError(81017)
        chats = [
            c for c in self.group_chats.values()
            if not c.dismissed and self._visible(c.owner) and (not owners or c.owner in owners)
            and (status_filter == 0 or c.status == status_filter)
        ]
        page, next_cursor = _page(chats, body.get("cursor"), limit)
        return {"group_chat_list": [{"chat_id": c.chat_id, "status": c.status} for c in page],
                "next_cursor": next_cursor}

    def groupchat_get(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """§4.10 externalcontact/groupchat/get: 40050 for unknown or dismissed groups."""
        chat_id = str(body.get("chat_id") or "")
        if not chat_id:
            raise SimApiError(40063, "chat_id is required")
        chat = self.group_chats.get(chat_id)
        if chat is None or chat.dismissed:
            raise SimApiError(40050)
        if not self._visible(chat.owner):
            raise SimApiError(60011, "the group owner is outside the app's visibility")
        need_name = bool(_as_int(body.get("need_name") or 0, name="need_name"))
        members = []
        for m in chat.members.values():
            row: dict[str, Any] = {"userid": m.userid, "type": m.type, "join_time": m.join_time,
                                   "join_scene": m.join_scene}
            if m.invitor:
                row["invitor"] = {"userid": m.invitor}
            row["group_nickname"] = m.group_nickname
            if need_name:
                row["name"] = m.name
            if m.type == 2 and m.unionid:
                row["unionid"] = m.unionid
            if m.state:
                row["state"] = m.state
            members.append(row)
        return {"group_chat": {
            "chat_id": chat.chat_id, "name": chat.name, "owner": chat.owner, "create_time": chat.create_time,
            "notice": chat.notice, "member_list": members,
            "admin_list": [{"userid": u} for u in chat.admin_list], "member_version": chat.member_version,
        }}

    # -- corp tags

    @staticmethod
    def _by_order(items: Iterable[Any]) -> list[Any]:
        return sorted(items, key=lambda item: -item.order)  # larger order sorts first; stable otherwise

    def _tag_json(self, tag: Tag, with_deleted: bool) -> dict[str, Any]:
        data: dict[str, Any] = {"id": tag.id, "name": tag.name, "create_time": tag.create_time, "order": tag.order}
        if with_deleted:
            data["deleted"] = tag.deleted or self.tag_groups[tag.group_id].deleted
        return data

    def _group_json(self, group: TagGroup, tags: Iterable[Tag], with_deleted: bool) -> dict[str, Any]:
        data: dict[str, Any] = {"group_id": group.group_id, "group_name": group.name,
                                "create_time": group.create_time, "order": group.order}
        if with_deleted:
            data["deleted"] = group.deleted
        data["tag"] = [self._tag_json(t, with_deleted) for t in self._by_order(tags)]
        return data

    def get_corp_tag_list(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """§4.11 get_corp_tag_list: `deleted` appears only when filtering by ids; group_id wins."""
        group_ids = _as_str_list(body.get("group_id"), "group_id")
        tag_ids = _as_str_list(body.get("tag_id"), "tag_id")
        if group_ids:
            groups = [self.tag_groups[g] for g in dict.fromkeys(group_ids) if g in self.tag_groups]
            return {"tag_group": [self._group_json(g, [self.tags[t] for t in g.tag_ids], True)
                                  for g in self._by_order(groups)]}
        if tag_ids:
            wanted = [self.tags[t] for t in dict.fromkeys(tag_ids) if t in self.tags]
            groups = [g for g in self.tag_groups.values() if any(t.group_id == g.group_id for t in wanted)]
            return {"tag_group": [self._group_json(g, [t for t in wanted if t.group_id == g.group_id], True)
                                  for g in self._by_order(groups)]}
        live = [g for g in self.tag_groups.values() if not g.deleted]
        return {"tag_group": [self._group_json(g, [self.tags[t] for t in g.tag_ids if not self.tags[t].deleted], False)
                              for g in self._by_order(live)]}

    def _live_tag_count(self) -> int:
        return sum(1 for t in self.tags if self._live_tag(t) is not None)

    def add_corp_tag(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """§4.11 add_corp_tag: into group_id, or into the group named group_name (created if new)."""
        wanted = body.get("tag") or []
        if not isinstance(wanted, list) or not wanted:
            raise SimApiError(40063, "tag is required: empty groups are not allowed")
        names: list[tuple[str, int]] = []
        for item in wanted:
            name = str(item.get("name") or "") if isinstance(item, dict) else ""
            if not name or len(name) > MAX_STATE_CHARS:
                raise SimApiError(40058, "tag names are 1..30 characters")
            names.append((name, _as_int(item.get("order") or 0, name="order")))
        group_id = str(body.get("group_id") or "")
        if group_id:
            group = self.tag_groups.get(group_id)
            if group is None or group.deleted:
                raise SimApiError(40068, f"group_id {group_id!r}")
        else:
            group_name = str(body.get("group_name") or "")
            if not group_name or len(group_name) > MAX_STATE_CHARS:
                raise SimApiError(40058, "group_name is 1..30 characters")
            group = next((g for g in self.tag_groups.values() if g.name == group_name and not g.deleted), None)
        existing = {self.tags[t].name: self.tags[t] for t in (group.tag_ids if group else [])
                    if not self.tags[t].deleted}
        new_count = len({n for n, _ in names if n not in existing})
        if self._live_tag_count() + new_count > MAX_CORP_TAGS:
            raise SimApiError(40126)
        if group is None:
            group = TagGroup(self._unique_id(self.tag_groups, "et", 30), str(body["group_name"]), self.now(),
                             _as_int(body.get("order") or 0, name="order"), created_by_app=True)
            self.tag_groups[group.group_id] = group
        result_tags: list[Tag] = []
        for name, order in names:
            tag = existing.get(name)
            if tag is None:  # duplicate names within the group are created once
                tag = existing[name] = self._new_tag(group, name, order, by_app=True)
            if tag not in result_tags:
                result_tags.append(tag)
        return {"tag_group": {
            "group_id": group.group_id, "group_name": group.name, "create_time": group.create_time,
            "order": group.order, "tag": [self._tag_json(t, False) for t in result_tags],
        }}

    def _check_owned(self, obj: Tag | TagGroup) -> None:
        if self.strict_tag_ownership and not obj.created_by_app:
            raise SimApiError(40068, "a self-built app may only change tags it created")

    def edit_corp_tag(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """§4.11 edit_corp_tag: rename / re-order a tag or group; 40071 for a duplicate name."""
        object_id = str(body.get("id") or "")
        if not object_id:
            raise SimApiError(40063, "id is required")
        name = body.get("name")
        if name is not None and (not str(name) or len(str(name)) > MAX_STATE_CHARS):
            raise SimApiError(40058, "names are 1..30 characters")
        group = self.tag_groups.get(object_id)
        if group is not None and not group.deleted:
            self._check_owned(group)
            if name is not None and any(g.name == name and not g.deleted and g is not group
                                        for g in self.tag_groups.values()):
                raise SimApiError(40071)
            target: Tag | TagGroup = group
        else:
            tag = self._live_tag(object_id)
            if tag is None:
                raise SimApiError(40068)
            self._check_owned(tag)
            siblings = self.tag_groups[tag.group_id].tag_ids
            if name is not None and any(self.tags[t].name == name and not self.tags[t].deleted and t != tag.id
                                        for t in siblings):
                raise SimApiError(40071)
            target = tag
        if name is not None:
            target.name = str(name)
        if body.get("order") is not None:
            target.order = _as_int(body["order"], name="order")
        return {}

    def del_corp_tag(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """§4.11 del_corp_tag: deleting every tag of a group deletes the group."""
        tag_ids = _as_str_list(body.get("tag_id"), "tag_id")
        group_ids = _as_str_list(body.get("group_id"), "group_id")
        if not tag_ids and not group_ids:
            raise SimApiError(40063, "tag_id and group_id are both empty")
        tags = []
        for tag_id in tag_ids:
            tag = self._live_tag(tag_id)
            if tag is None:
                raise SimApiError(40068, f"tag_id {tag_id!r}")
            self._check_owned(tag)
            tags.append(tag)
        groups = []
        for group_id in group_ids:
            group = self.tag_groups.get(group_id)
            if group is None or group.deleted:
                raise SimApiError(40068, f"group_id {group_id!r}")
            self._check_owned(group)
            groups.append(group)
        self._delete_tags(tags)
        for group in groups:
            self._delete_group(group)
        return {}

    def mark_tag(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """§4.12 externalcontact/mark_tag (no callback: API-made changes are silent)."""
        userid = str(body.get("userid") or "")
        external_userid = str(body.get("external_userid") or "")
        self._api_member(userid)
        if not external_userid or external_userid not in self.customers:
            raise SimApiError(40096)
        follow = self._live_follow(userid, external_userid)
        if follow is None:
            raise SimApiError(84061)
        add = _as_str_list(body.get("add_tag"), "add_tag")
        remove = _as_str_list(body.get("remove_tag"), "remove_tag")
        if not add and not remove:
            raise SimApiError(40063, "add_tag and remove_tag are both empty")
        for tag_id in add + remove:
            if self._live_tag(tag_id) is None:
                raise SimApiError(40068, f"tag_id {tag_id!r}")
        for tag_id in add:
            if tag_id not in follow.tag_ids:
                follow.tag_ids.append(tag_id)
        follow.tag_ids = [t for t in follow.tag_ids if t not in set(remove)]
        self.mark_tag_log.append({"userid": userid, "external_userid": external_userid, "add_tag": add,
                                  "remove_tag": remove, "at": self.now()})
        return {}

    # ------------------------------------------------------------------ members, OAuth, JS-SDK, media, messages

    def user_get(self, userid: str) -> dict[str, Any]:
        """§4.13 user/get, without the fields new self-built apps no longer receive (mobile, avatar ...)."""
        member = self._api_member(userid)
        return {
            "userid": member.userid,
            "name": member.name,
            "department": list(member.department),
            "order": [0] * len(member.department),
            "position": member.position,
            "is_leader_in_dept": [0] * len(member.department),
            "direct_leader": [],
            "main_department": member.department[0] if member.department else 1,
            "status": member.status,
            "alias": "",
            "telephone": "",
            "extattr": {"attrs": []},
            "external_profile": {"external_attr": []},
        }

    def getuserinfo(self, code: str) -> str:
        """§4.14: consume an OAuth code and return the member's userid (40029 if invalid/used/expired)."""
        if not code:
            raise SimApiError(41008)
        entry = self.oauth_codes.get(code)
        if entry is None or entry.used or self.clock() - entry.issued_at > OAUTH_CODE_TTL:
            raise SimApiError(40029)
        entry.used = True
        return entry.userid

    def _refresh_tickets(self) -> None:
        if self.clock() >= self.tickets_expire_at:
            self.corp_jsapi_ticket = self._random_id("", 86, _URLSAFE)
            self.agent_jsapi_ticket = self._random_id("", 86, _URLSAFE)
            self.tickets_expire_at = self.clock() + TICKET_TTL

    def jsapi_ticket(self, kind: Literal["corp", "agent"]) -> dict[str, Any]:
        """§4.15: the corp ticket (get_jsapi_ticket) or the agent ticket (ticket/get?type=agent_config)."""
        self._refresh_tickets()
        ticket = self.corp_jsapi_ticket if kind == "corp" else self.agent_jsapi_ticket
        return {"ticket": ticket, "expires_in": max(1, int(self.tickets_expire_at - self.clock()))}

    def verify_jsapi_signature(
        self, kind: Literal["corp", "agent"], noncestr: str, timestamp: str, url: str, signature: str
    ) -> bool:
        """Would the WeCom client accept this wx.config (corp) / wx.agentConfig (agent) signature? (§5.2)."""
        self._refresh_tickets()
        ticket = self.corp_jsapi_ticket if kind == "corp" else self.agent_jsapi_ticket
        expected = jsapi_signature(ticket, str(noncestr), str(timestamp), str(url))
        return hmac.compare_digest(expected, str(signature).lower())

    def media_upload(self, media_type: str, filename: str, data: bytes | None) -> dict[str, Any]:
        """§4.16 media/upload: size and format limits per type; created_at is a string."""
        if media_type not in MEDIA_TYPES:
            raise SimApiError(40005)
        if data is None:
            raise SimApiError(41005, "no multipart part named 'media'")
        if not data:
            raise SimApiError(44001)
        if len(data) <= 5:
            raise SimApiError(40006, "files must be larger than 5 bytes")
        max_bytes, errcode = MEDIA_MAX_BYTES[media_type]
        if len(data) > max_bytes:
            raise SimApiError(errcode, f"{media_type} is at most {max_bytes} bytes")
        if self.check_media_format:
            if media_type == "image" and not (data.startswith(b"\xff\xd8\xff") or data.startswith(b"\x89PNG")):
                raise SimApiError(40123, "images must be JPG or PNG")
            if media_type == "voice" and not data.startswith(b"#!AMR"):
                raise SimApiError(40004, "voice must be AMR")
            if media_type == "video" and data[4:8] != b"ftyp":
                raise SimApiError(40004, "video must be MP4")
        media = Media(self._unique_id(self.media, "3", 63, _URLSAFE), media_type, self.now(), len(data), filename)
        self.media[media.media_id] = media
        return {"type": media_type, "media_id": media.media_id, "created_at": str(media.created_at)}

    def message_send(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """message/send: app messages to members, recorded in app_messages."""
        if body.get("agentid") in (None, ""):
            raise SimApiError(41011)
        if _as_int(body["agentid"], 40056, "agentid") != self.agent_id:
            raise SimApiError(40056)
        msgtype = str(body.get("msgtype") or "")
        if msgtype not in APP_MSGTYPES:
            raise SimApiError(40008)
        payload = body.get(msgtype)
        if not isinstance(payload, dict):
            raise SimApiError(40058, f"{msgtype} object is required")
        if msgtype in ("text", "markdown"):
            content = str(payload.get("content") or "")
            if not content:
                raise SimApiError(44004)
            if len(content.encode()) > MAX_APP_TEXT_BYTES:
                raise SimApiError(45002)
        touser = str(body.get("touser") or "")
        toparty = [p for p in str(body.get("toparty") or "").split("|") if p]
        totag = [t for t in str(body.get("totag") or "").split("|") if t]
        if not touser and not toparty and not totag:
            raise SimApiError(40063, "touser, toparty and totag are all empty")
        if touser == "@all":
            valid = [m.userid for m in self.members.values() if m.visible]
            invalid: list[str] = []
        else:
            requested = [u for u in touser.split("|") if u]
            valid = [u for u in requested if self._visible(u)]
            invalid = [u for u in requested if not self._visible(u)]
        parties = {p for p in toparty if p.isdigit()}
        party_members = [m.userid for m in self.members.values()
                         if m.visible and parties & {str(d) for d in m.department}]
        invalid_party = [p for p in toparty if not any(p in map(str, m.department) for m in self.members.values())]
        recipients = list(dict.fromkeys(valid + party_members))
        if not recipients:
            raise SimApiError(81013)
        self._app_msg_seq += 1
        msgid = f"sim{self._app_msg_seq:08d}{self._random_id('', 16)}"
        self.app_messages.append({
            "msgid": msgid, "agentid": self.agent_id, "touser": recipients, "msgtype": msgtype,
            msgtype: dict(payload), "content": str(payload.get("content") or ""), "sent_at": self.now(),
        })
        return {"invaliduser": "|".join(invalid), "invalidparty": "|".join(invalid_party),
                "invalidtag": "|".join(totag), "unlicenseduser": "", "msgid": msgid,
                "response_code": self._random_id("", 32)}

    @staticmethod
    def getcallbackip() -> dict[str, Any]:
        """getcallbackip: the (fake) source ranges of WeCom's callbacks."""
        return {"ip_list": list(CALLBACK_IPS)}

    # ------------------------------------------------------------------ introspection

    def summary(self) -> dict[str, Any]:
        """Counts and records for /_sim/state."""
        return {
            "corp_id": self.corp_id,
            "agent_id": self.agent_id,
            "counts": {
                "members": len(self.members),
                "customers": len(self.customers),
                "follows": len(self.follows),
                "tag_groups": sum(1 for g in self.tag_groups.values() if not g.deleted),
                "tags": self._live_tag_count(),
                "group_chats": sum(1 for c in self.group_chats.values() if not c.dismissed),
                "contact_ways": len(self.contact_ways),
                "mass_messages": len(self.mass_messages),
                "media": len(self.media),
                "tokens": len(self.tokens),
                "events": len(self.events),
            },
            "calls": dict(self.calls),
            "app_messages": list(self.app_messages),
            "welcome_messages": list(self.welcome_messages),
            "mark_tag_log": list(self.mark_tag_log),
        }
