"""Typed async facade over wechatpy's synchronous WeCom client (PROTOCOL.md §1, §4, §6, §7).

Only this module touches ``WeChatClient``. Every blocking call runs on the gateway's own bounded
``ThreadPoolExecutor``; errcodes become the domain errors of ``wecom.errors``:

* 40014 / 42001 (token invalid / expired): drop the cached token, fetch one, replay once.
* 45009 / 45033 (rate limits): back off with jitter, retry up to ``max_rate_limit_retries``,
  then ``WeComRateLimited``. -1 (system busy): back off, retry at most 3 times.
* 40001, 40013, 41004, 48002, 60020, 60011 ...: ``WeComConfigError`` with a hint for the admin.
  40001 is *not* retried: in WeCom it means a bad corpsecret (wechatpy's auto retry would loop).
* anything else: ``WeComError(errcode, errmsg, api)``; network errors, timeouts, non-200 HTTP and
  non-JSON bodies: ``WeComUnavailable``.

The access token is cached per process, keyed by (api_base, corp_id, secret), and shared by all
gateway instances; a refresh is single-flight. Neither the token nor the secret is ever logged.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import random
import re
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, TypeVar

import requests
from requests.adapters import HTTPAdapter
from wechatpy.enterprise import WeChatClient
from wechatpy.exceptions import WeChatClientException

from wecom.errors import (
    RATE_LIMIT_ERRCODES,
    TOKEN_ERRCODES,
    WeComConfigError,
    WeComError,
    WeComRateLimited,
    WeComUnavailable,
)
from wecom.types import (
    ContactWayResult,
    CorpTag,
    CorpTagGroup,
    ExternalContact,
    FollowTag,
    FollowUser,
    GroupChat,
    GroupChatMember,
    MassMessageResult,
    Member,
)

_LOGGER = logging.getLogger(__name__)

_T = TypeVar("_T")

DEFAULT_API_BASE: Final = "https://qyapi.weixin.qq.com/cgi-bin/"
#: Refresh the token proactively when fewer than this many seconds remain (PROTOCOL.md §4.1).
TOKEN_REFRESH_MARGIN: Final = 300.0
#: "-1 system busy → retry at most 3 times" (PROTOCOL.md §1.6, §6).
SYSTEM_BUSY_RETRIES: Final = 3
SYSTEM_BUSY: Final = -1
#: ``externalcontact/list`` answers 84061 for a member who has no customers at all.
NO_EXTERNAL_CONTACT: Final = 84061
MEDIA_TYPES: Final = frozenset({"image", "voice", "video", "file"})
#: errcode of the WeComError raised when an OAuth code belongs to a non-member (WeCom said ok).
NON_MEMBER_ERRCODE: Final = 0

#: Errors an admin must fix (PROTOCOL.md §1.8-§1.9, §4.1, §6), with what to do about them.
CONFIG_ERRCODES: Final[Mapping[int, str]] = {
    40001: "invalid corpsecret (or the app was disabled / its secret reset): check the agent secret",
    40013: "invalid CorpID: check the corp id setting",
    40091: "the secret belongs to another corp: check corp id and agent secret",
    41002: "corpid missing: set the corp id",
    41004: "corpsecret missing: set the agent secret",
    48002: "API not authorized for this app: add it to 客户联系 → 可调用接口的应用 and check its permissions",
    60011: "member/department outside the app's visibility (可见范围): widen the app's visibility",
    60020: "this server's IP is not in the app's trusted IPs (企业可信IP): add it in the admin console",
}

_SECRET_IN_TEXT: Final = re.compile(r"(access_token|corpsecret)=[^&\s'\"]+", re.IGNORECASE)


def _redact(text: str) -> str:
    """Mask access tokens and secrets in URLs that requests/urllib3 put into messages."""
    return _SECRET_IN_TEXT.sub(r"\1=***", text)


class _RedactSecrets(logging.Filter):
    """urllib3 logs request URLs (with ``access_token=`` / ``corpsecret=``) at DEBUG; mask them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg = _redact(record.getMessage())
            record.args = None
        elif isinstance(record.msg, str):
            record.msg = _redact(record.msg)
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_RedactSecrets())


# -- the process-wide token cache ----------------------------------------------------------------


class _TokenSlot:
    """One app's access token, shared by every gateway of the process; refresh is single-flight."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: tuple[str, float] = ("", 0.0)  # (token, refresh after this monotonic time)

    def get(self, fetch: Callable[[], Mapping[str, Any]], stale: str | None = None) -> str:
        """Return a usable token; ``stale`` is a token WeCom rejected, which is dropped first."""
        token, refresh_at = self._state
        if token and token != stale and time.monotonic() < refresh_at:
            return token
        with self._lock:  # blocks worker threads only, never the event loop
            token, refresh_at = self._state
            if stale is not None and token == stale:
                self._state = token, refresh_at = ("", 0.0)
            if token and time.monotonic() < refresh_at:
                return token
            result = fetch()
            token = str(result["access_token"])
            expires_in = _int(result.get("expires_in"), 7200)
            margin = min(TOKEN_REFRESH_MARGIN, expires_in / 2)
            self._state = (token, time.monotonic() + expires_in - margin)
            _LOGGER.info("fetched a WeCom access token (expires_in=%s)", expires_in)
            return token

    def clear(self) -> None:
        with self._lock:
            self._state = ("", 0.0)


_TOKEN_SLOTS: dict[tuple[str, str, str], _TokenSlot] = {}
_TOKEN_SLOTS_LOCK: Final = threading.Lock()


def _token_slot(api_base: str, corp_id: str, secret: str) -> _TokenSlot:
    key = (api_base, corp_id, hashlib.sha256(secret.encode()).hexdigest())
    with _TOKEN_SLOTS_LOCK:
        return _TOKEN_SLOTS.setdefault(key, _TokenSlot())


def clear_token_cache() -> None:
    """Forget every cached access token (tests: servers on reused ports must not share tokens)."""
    with _TOKEN_SLOTS_LOCK:
        for slot in _TOKEN_SLOTS.values():
            slot.clear()
        _TOKEN_SLOTS.clear()


# -- the wechatpy client ------------------------------------------------------------------------


class _Client(WeChatClient):
    """``WeChatClient`` with a configurable base URL, a timeout on gettoken and the shared cache."""

    def __init__(self, corp_id: str, secret: str, *, api_base: str, timeout: float, pool_size: int) -> None:
        super().__init__(corp_id, secret, timeout=timeout, auto_retry=False)
        self.API_BASE_URL = api_base
        self._slot = _token_slot(api_base, corp_id, secret)
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size)
        self._http.mount("http://", adapter)
        self._http.mount("https://", adapter)

    def fetch_access_token(self) -> dict[str, Any]:
        """GET gettoken under ``api_base`` (PROTOCOL.md §4.1); raises WeChatClientException on errcode."""
        res = self._http.get(
            url=f"{self.API_BASE_URL}gettoken",
            params={"corpid": self.corp_id, "corpsecret": self.secret},
            timeout=self.timeout,
        )
        try:
            res.raise_for_status()
        except requests.HTTPError as exc:
            raise WeChatClientException(None, None, client=self, request=exc.request, response=exc.response)
        result = self._handle_result(res)  # lenient JSON; raises on errcode != 0 (auto_retry is off)
        if not isinstance(result, dict) or not result.get("access_token"):
            raise WeChatClientException(None, "gettoken answered without an access_token", client=self, response=res)
        return result

    @property
    def access_token(self) -> str:
        # During WeChatClient.__new__ (before __init__) this raises AttributeError, which
        # inspect.getmembers skips: no I/O at construction.
        return self._slot.get(self.fetch_access_token)

    def token(self, stale: str | None = None) -> str:
        return self._slot.get(self.fetch_access_token, stale)


class _Failure(Exception):
    """A WeCom errcode seen in a worker thread; turned into a domain error by the retry loop."""

    def __init__(self, errcode: int, errmsg: str, api: str, token: str | None) -> None:
        super().__init__(errcode, errmsg, api)
        self.errcode = errcode
        self.errmsg = errmsg
        self.api = api
        self.token = token


# -- lenient parsing (PROTOCOL.md §1.5: types are loose) -----------------------------------------


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _str(value: Any) -> str:
    return "" if value is None else str(value)


def _strs(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, (str, int)):
        return (str(value),)
    return tuple(str(v) for v in value)


def _parse_follow_user(raw: Mapping[str, Any], tags: tuple[FollowTag, ...] | None = None) -> FollowUser:
    if tags is None:
        tags = tuple(
            FollowTag(
                group_name=_str(t.get("group_name")),
                tag_name=_str(t.get("tag_name")),
                tag_id=_str(t.get("tag_id")),
                type=_int(t.get("type"), 1),
            )
            for t in raw.get("tags") or ()
        )
    return FollowUser(
        userid=_str(raw.get("userid")),
        remark=_str(raw.get("remark")),
        description=_str(raw.get("description")),
        createtime=_int(raw.get("createtime")),
        tags=tags,
        remark_mobiles=_strs(raw.get("remark_mobiles")),
        state=_str(raw.get("state")),
        oper_userid=_str(raw.get("oper_userid")),
        add_way=_int(raw.get("add_way")),
    )


def _parse_contact(raw: Mapping[str, Any], follow_users: tuple[FollowUser, ...] = ()) -> ExternalContact:
    return ExternalContact(
        external_userid=_str(raw.get("external_userid")),
        name=_str(raw.get("name")),
        type=_int(raw.get("type"), 1),
        gender=_int(raw.get("gender")),
        avatar=_str(raw.get("avatar")),
        unionid=_str(raw.get("unionid")),
        corp_name=_str(raw.get("corp_name")),
        follow_users=follow_users,
    )


def _parse_tag_group(raw: Mapping[str, Any]) -> CorpTagGroup:
    return CorpTagGroup(
        group_id=_str(raw.get("group_id")),
        group_name=_str(raw.get("group_name")),
        order=_int(raw.get("order")),
        create_time=_int(raw.get("create_time")),
        deleted=bool(raw.get("deleted", False)),
        tags=tuple(
            CorpTag(
                id=_str(t.get("id")),
                name=_str(t.get("name")),
                order=_int(t.get("order")),
                create_time=_int(t.get("create_time")),
                deleted=bool(t.get("deleted", False)),
            )
            for t in raw.get("tag") or ()
        ),
    )


def _text_body(text: str | None, attachments: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if text:
        body["text"] = {"content": text}
    if attachments:
        body["attachments"] = [dict(a) for a in attachments]
    return body


# -- the gateway ---------------------------------------------------------------------------------


class WeComGateway:
    """Typed async WeCom API (PROTOCOL.md §4) for one self-built app; construction does no I/O."""

    def __init__(
        self,
        corp_id: str,
        secret: str,
        *,
        api_base: str = DEFAULT_API_BASE,
        agent_id: int,
        max_threads: int = 8,
        timeout: float = 10.0,
        backoff_base: float = 0.5,
        max_rate_limit_retries: int = 4,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if not api_base.endswith("/"):
            api_base += "/"
        self.corp_id = corp_id
        self.agent_id = agent_id
        self.api_base = api_base
        self._backoff_base = backoff_base
        self._max_rate_limit_retries = max_rate_limit_retries
        self._sleep = sleep
        self._client = _Client(corp_id, secret, api_base=api_base, timeout=timeout, pool_size=max_threads)
        self._executor = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="wecom")
        self._closed = False

    def __repr__(self) -> str:
        return f"WeComGateway(corp_id={self.corp_id!r}, agent_id={self.agent_id}, api_base={self.api_base!r})"

    async def close(self) -> None:
        """Wait for running calls, shut the thread pool down and close the HTTP session."""
        if self._closed:
            return
        self._closed = True

        def shutdown() -> None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._client._http.close()

        await asyncio.get_running_loop().run_in_executor(None, shutdown)

    async def __aenter__(self) -> WeComGateway:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- plumbing -------------------------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        return self._backoff_base * 2**attempt * random.uniform(0.5, 1.5)

    async def _retrying(self, api: str, attempt: Callable[[str | None], _T]) -> _T:
        """Run ``attempt(stale_token)`` on the pool, applying the §6 retry policy to its errcodes."""
        loop = asyncio.get_running_loop()
        stale: str | None = None
        token_replayed = False
        rate_limited = 0
        busy = 0
        while True:
            try:
                return await loop.run_in_executor(self._executor, attempt, stale)
            except _Failure as failure:
                code, errmsg, failed_api, used_token = failure.errcode, failure.errmsg, failure.api, failure.token
            if code in TOKEN_ERRCODES and used_token is not None and not token_replayed:
                _LOGGER.info("%s: access token rejected (errcode %s); refreshing it once", api, code)
                token_replayed = True
                stale = used_token
                continue
            if code in RATE_LIMIT_ERRCODES:
                if rate_limited >= self._max_rate_limit_retries:
                    raise WeComRateLimited(code, errmsg, failed_api)
                delay = self._backoff(rate_limited)
                rate_limited += 1
                _LOGGER.warning("%s: rate limited (errcode %s); retry %d in %.2fs", failed_api, code, rate_limited, delay)
                await self._sleep(delay)
                continue
            if code == SYSTEM_BUSY and busy < SYSTEM_BUSY_RETRIES:
                delay = self._backoff(busy)
                busy += 1
                _LOGGER.warning("%s: WeCom busy (-1); retry %d in %.2fs", failed_api, busy, delay)
                await self._sleep(delay)
                continue
            if code in CONFIG_ERRCODES:
                raise WeComConfigError(code, f"{CONFIG_ERRCODES[code]} (WeCom said: {errmsg})", failed_api)
            raise WeComError(code, errmsg, failed_api)

    def _token_sync(self, stale: str | None = None) -> str:
        """Worker thread: a valid token, or _Failure / WeComUnavailable from gettoken."""
        try:
            return self._client.token(stale)
        except WeChatClientException as exc:
            raise self._translate(exc, "gettoken", None) from None
        except requests.RequestException as exc:
            raise WeComUnavailable(f"gettoken: {_redact(str(exc))}") from None

    def _request_sync(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        data: Mapping[str, Any] | None,
        files: Mapping[str, Any] | None,
        stale: str | None,
    ) -> dict[str, Any]:
        """Worker thread: one HTTP call with the current token; errcodes raise _Failure."""
        token = self._token_sync(stale)
        kwargs: dict[str, Any] = {"params": {**(params or {}), "access_token": token}}
        if data is not None:
            kwargs["data"] = dict(data)  # wechatpy dumps it as UTF-8 JSON without \u escapes (§1.3)
            kwargs["headers"] = {"Content-Type": "application/json; charset=utf-8"}
        if files is not None:
            kwargs["files"] = dict(files)
        try:
            result = self._client._request(method=method, url_or_endpoint=path, **kwargs)
        except WeChatClientException as exc:
            raise self._translate(exc, path, token) from None
        except requests.RequestException as exc:
            raise WeComUnavailable(f"{path}: {_redact(str(exc))}") from None
        if not isinstance(result, dict):
            raise WeComUnavailable(f"{path}: WeCom answered with a non-JSON body")
        return result

    @staticmethod
    def _translate(exc: WeChatClientException, api: str, token: str | None) -> Exception:
        if exc.errcode is None:  # non-200 HTTP (or a body without what we need)
            status = getattr(exc.response, "status_code", None)
            return WeComUnavailable(f"{api}: HTTP {status}" if status else f"{api}: {exc.errmsg or 'bad response'}")
        return _Failure(_int(exc.errcode, SYSTEM_BUSY), _str(exc.errmsg), api, token)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        files: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        attempt = functools.partial(self._request_sync, method, path, params, data, files)
        return await self._retrying(path, attempt)

    async def _get(self, path: str, **params: Any) -> dict[str, Any]:
        return await self._call("get", path, params=params)

    async def _post(self, path: str, body: Mapping[str, Any], **params: Any) -> dict[str, Any]:
        return await self._call("post", path, params=params, data=body)

    # -- §4.1 token ---------------------------------------------------------------------------

    async def get_access_token(self) -> str:
        """Cached access token, fetched when missing or near expiry (PROTOCOL.md §4.1)."""
        return await self._retrying("gettoken", self._token_sync)

    # -- §4.2-§4.5 customers -------------------------------------------------------------------

    async def get_follow_user_list(self) -> list[str]:
        """Members with customer contact enabled (PROTOCOL.md §4.2)."""
        result = await self._get("externalcontact/get_follow_user_list")
        return [str(u) for u in result.get("follow_user") or ()]

    async def list_external_contacts(self, userid: str) -> list[str]:
        """external_userids of one member's customers (PROTOCOL.md §4.3)."""
        try:
            result = await self._get("externalcontact/list", userid=userid)
        except WeComError as exc:
            if exc.errcode == NO_EXTERNAL_CONTACT:  # a member without any customer
                return []
            raise
        return [str(u) for u in result.get("external_userid") or ()]

    async def get_external_contact(self, external_userid: str) -> ExternalContact:
        """Customer detail with every follow_user page (PROTOCOL.md §4.4)."""
        follow: list[FollowUser] = []
        cursor = ""
        seen: set[str] = set()
        while True:
            params = {"external_userid": external_userid}
            if cursor:
                params["cursor"] = cursor
            result = await self._get("externalcontact/get", **params)
            contact = result.get("external_contact") or {}
            follow.extend(_parse_follow_user(f) for f in result.get("follow_user") or ())
            cursor = _str(result.get("next_cursor"))
            if not cursor or cursor in seen:
                return _parse_contact(contact, tuple(follow))
            seen.add(cursor)

    async def batch_get_by_user(
        self, userids: Sequence[str], cursor: str = "", limit: int = 100
    ) -> tuple[list[tuple[ExternalContact, FollowUser]], str]:
        """One page of (customer, relation) pairs for ≤ 100 members; tags carry ids only (PROTOCOL.md §4.5)."""
        if isinstance(userids, str):
            userids = [userids]
        body = {"userid_list": list(userids), "cursor": cursor, "limit": limit}
        result = await self._post("externalcontact/batch/get_by_user", body)
        pairs: list[tuple[ExternalContact, FollowUser]] = []
        for item in result.get("external_contact_list") or ():
            info = item.get("follow_info") or {}
            tags = tuple(
                FollowTag(group_name="", tag_name="", tag_id=str(t), type=3 if str(t).startswith("st") else 1)
                for t in info.get("tag_id") or ()
            )
            pairs.append((_parse_contact(item.get("external_contact") or {}), _parse_follow_user(info, tags)))
        return pairs, _str(result.get("next_cursor"))

    # -- §4.6 contact ways ----------------------------------------------------------------------

    async def add_contact_way(
        self,
        *,
        user: str | Sequence[str],
        state: str,
        remark: str = "",
        skip_verify: bool = True,
        scene: int = 2,
    ) -> ContactWayResult:
        """Create a 「联系我」 way (PROTOCOL.md §4.6): one userid makes type 1, a list type 2; state ≤ 30 chars."""
        if len(state) > 30:
            raise ValueError(f"contact-way state must be at most 30 characters, got {len(state)}")
        users = [user] if isinstance(user, str) else list(user)
        if not users:
            raise ValueError("a contact way needs at least one user")
        body = {
            # A list always makes a multi-member way, even of one, so its users can change later.
            "type": 1 if isinstance(user, str) else 2,
            "scene": scene,
            "remark": remark,
            "skip_verify": skip_verify,
            "state": state,
            "user": users,
        }
        result = await self._post("externalcontact/add_contact_way", body)
        return ContactWayResult(config_id=_str(result.get("config_id")), qr_code=_str(result.get("qr_code")))

    async def update_contact_way(
        self,
        config_id: str,
        *,
        users: Sequence[str] | None = None,
        remark: str | None = None,
        skip_verify: bool | None = None,
        state: str | None = None,
    ) -> None:
        """Overwrite the given fields of a 「联系我」 way; the others stay (PROTOCOL.md §4.6 update_contact_way)."""
        body: dict[str, Any] = {"config_id": config_id}
        if users is not None:
            body["user"] = list(users)
        if remark is not None:
            body["remark"] = remark
        if skip_verify is not None:
            body["skip_verify"] = skip_verify
        if state is not None:
            if len(state) > 30:
                raise ValueError(f"contact-way state must be at most 30 characters, got {len(state)}")
            body["state"] = state
        await self._post("externalcontact/update_contact_way", body)

    async def get_contact_way(self, config_id: str) -> dict[str, Any]:
        """The contact_way object, whether WeCom sends an object or a one-element array (PROTOCOL.md §4.6)."""
        result = await self._post("externalcontact/get_contact_way", {"config_id": config_id})
        way = result.get("contact_way") or {}
        if isinstance(way, list):
            way = way[0] if way else {}
        return dict(way)

    async def del_contact_way(self, config_id: str) -> None:
        """Delete a 「联系我」 way (PROTOCOL.md §4.6)."""
        await self._post("externalcontact/del_contact_way", {"config_id": config_id})

    # -- §4.7-§4.9 messages ---------------------------------------------------------------------

    async def send_welcome_msg(
        self, welcome_code: str, text: str | None, attachments: Sequence[Mapping[str, Any]] = ()
    ) -> None:
        """Welcome a new customer within 20 s of the event (PROTOCOL.md §4.7)."""
        body = _text_body(text, attachments)
        if not body:
            raise ValueError("send_welcome_msg needs text or attachments")
        await self._post("externalcontact/send_welcome_msg", {"welcome_code": welcome_code, **body})

    async def add_msg_template(self, body: Mapping[str, Any]) -> MassMessageResult:
        """Create an enterprise mass message; nothing is sent until members confirm (PROTOCOL.md §4.8)."""
        result = await self._post("externalcontact/add_msg_template", body)
        return MassMessageResult(msgid=_str(result.get("msgid")), fail_list=_strs(result.get("fail_list")))

    async def list_group_msgs(
        self, chat_type: str, start_time: int, end_time: int, *, filter_type: int = 0, cursor: str = ""
    ) -> tuple[list[dict[str, Any]], str]:
        """One page of mass messages created in [start_time, end_time] (corp-created by default; PROTOCOL.md §4.9)."""
        body = {"chat_type": chat_type, "start_time": start_time, "end_time": end_time, "filter_type": filter_type,
                "limit": 100, "cursor": cursor}
        result = await self._post("externalcontact/get_groupmsg_list_v2", body)
        return list(result.get("group_msg_list") or ()), _str(result.get("next_cursor"))

    async def get_groupmsg_task(self, msgid: str, cursor: str = "") -> tuple[list[dict[str, Any]], str]:
        """One page of per-member tasks of a mass message (PROTOCOL.md §4.9)."""
        result = await self._post("externalcontact/get_groupmsg_task", {"msgid": msgid, "limit": 1000, "cursor": cursor})
        return list(result.get("task_list") or ()), _str(result.get("next_cursor"))

    async def get_groupmsg_send_result(
        self, msgid: str, userid: str, cursor: str = ""
    ) -> tuple[list[dict[str, Any]], str]:
        """One page of per-recipient results of one member's task (PROTOCOL.md §4.9)."""
        body = {"msgid": msgid, "userid": userid, "limit": 1000, "cursor": cursor}
        result = await self._post("externalcontact/get_groupmsg_send_result", body)
        return list(result.get("send_list") or ()), _str(result.get("next_cursor"))

    # -- §4.10 customer groups ------------------------------------------------------------------

    async def list_group_chats(
        self, owner_userids: Sequence[str] = (), cursor: str = "", limit: int = 1000
    ) -> tuple[list[str], str]:
        """One page of customer-group chat_ids, optionally of ≤ 100 owners (PROTOCOL.md §4.10)."""
        body: dict[str, Any] = {"status_filter": 0, "cursor": cursor, "limit": limit}
        if owner_userids:
            body["owner_filter"] = {"userid_list": list(owner_userids)}
        result = await self._post("externalcontact/groupchat/list", body)
        chats = [_str(c.get("chat_id")) for c in result.get("group_chat_list") or ()]
        return chats, _str(result.get("next_cursor"))

    async def get_group_chat(self, chat_id: str) -> GroupChat:
        """Customer-group detail with member names (PROTOCOL.md §4.10)."""
        result = await self._post("externalcontact/groupchat/get", {"chat_id": chat_id, "need_name": 1})
        raw = result.get("group_chat") or {}
        members = tuple(
            GroupChatMember(
                userid=_str(m.get("userid")),
                type=_int(m.get("type"), 1),
                join_time=_int(m.get("join_time")),
                join_scene=_int(m.get("join_scene")),
                invitor=_str((m.get("invitor") or {}).get("userid")),
                group_nickname=_str(m.get("group_nickname")),
                name=_str(m.get("name")),
                unionid=_str(m.get("unionid")),
            )
            for m in raw.get("member_list") or ()
        )
        return GroupChat(
            chat_id=_str(raw.get("chat_id")) or chat_id,
            name=_str(raw.get("name")),
            owner=_str(raw.get("owner")),
            create_time=_int(raw.get("create_time")),
            notice=_str(raw.get("notice")),
            member_version=_str(raw.get("member_version")),
            members=members,
            admins=tuple(_str(a.get("userid")) for a in raw.get("admin_list") or ()),
        )

    # -- §4.11-§4.12 tags -----------------------------------------------------------------------

    async def get_corp_tags(self, tag_ids: Sequence[str] = (), group_ids: Sequence[str] = ()) -> list[CorpTagGroup]:
        """Corp tag groups, all or filtered by ids (group ids win) (PROTOCOL.md §4.11)."""
        body: dict[str, Any] = {}
        if tag_ids:
            body["tag_id"] = list(tag_ids)
        if group_ids:
            body["group_id"] = list(group_ids)
        result = await self._post("externalcontact/get_corp_tag_list", body)
        return [_parse_tag_group(g) for g in result.get("tag_group") or ()]

    async def add_corp_tags(
        self, group_name: str, tag_names: Sequence[str], group_id: str | None = None
    ) -> CorpTagGroup:
        """Add tags to a group, creating the group by name unless group_id is given (PROTOCOL.md §4.11)."""
        if not tag_names:
            raise ValueError("add_corp_tags needs at least one tag name (WeCom allows no empty groups)")
        body: dict[str, Any] = {"group_name": group_name, "tag": [{"name": n} for n in tag_names]}
        if group_id:
            body["group_id"] = group_id
        result = await self._post("externalcontact/add_corp_tag", body)
        return _parse_tag_group(result.get("tag_group") or {})

    async def edit_corp_tag(self, id: str, name: str | None = None, order: int | None = None) -> None:  # noqa: A002
        """Rename or reorder a corp tag or tag group (PROTOCOL.md §4.11)."""
        body: dict[str, Any] = {"id": id}
        if name is not None:
            body["name"] = name
        if order is not None:
            body["order"] = order
        await self._post("externalcontact/edit_corp_tag", body)

    async def del_corp_tags(self, tag_ids: Sequence[str] = (), group_ids: Sequence[str] = ()) -> None:
        """Delete corp tags and/or whole groups (PROTOCOL.md §4.11)."""
        if not tag_ids and not group_ids:
            raise ValueError("del_corp_tags needs tag_ids or group_ids")
        await self._post("externalcontact/del_corp_tag", {"tag_id": list(tag_ids), "group_id": list(group_ids)})

    async def mark_tag(
        self, userid: str, external_userid: str, add: Sequence[str] = (), remove: Sequence[str] = ()
    ) -> None:
        """Add/remove corp tags on one member's customer; makes no callback (PROTOCOL.md §4.12)."""
        if not add and not remove:
            raise ValueError("mark_tag needs tags to add or remove")
        body = {"userid": userid, "external_userid": external_userid, "add_tag": list(add), "remove_tag": list(remove)}
        await self._post("externalcontact/mark_tag", body)

    # -- §4.13-§4.14 members ---------------------------------------------------------------------

    async def get_user(self, userid: str) -> Member:
        """Member detail (PROTOCOL.md §4.13)."""
        result = await self._get("user/get", userid=userid)
        return Member(
            userid=_str(result.get("userid")) or userid,
            name=_str(result.get("name")),
            department=tuple(_int(d) for d in result.get("department") or ()),
            position=_str(result.get("position")),
            status=_int(result.get("status"), 1),
            direct_leader=_strs(result.get("direct_leader")),
        )

    async def get_userid_by_code(self, code: str) -> str:
        """Member userid from an OAuth code via auth/getuserinfo (PROTOCOL.md §4.14).

        Raises WeComError 40029 for a bad/used/expired code, and WeComError with errcode
        ``NON_MEMBER_ERRCODE`` (0) when the code belongs to someone who is not a corp member.
        """
        result = await self._get("auth/getuserinfo", code=code)
        userid = _str(result.get("userid") or result.get("UserId"))
        if not userid:
            raise WeComError(
                NON_MEMBER_ERRCODE,
                "the OAuth code belongs to a non-member (WeCom returned an openid, no userid)",
                "auth/getuserinfo",
            )
        return userid

    # -- §4.15-§4.16 tickets and media ----------------------------------------------------------

    async def get_jsapi_ticket(self) -> tuple[str, int]:
        """Corp jsapi ticket for wx.config, as (ticket, expires_in); cache it (PROTOCOL.md §4.15)."""
        result = await self._get("get_jsapi_ticket")
        return _str(result.get("ticket")), _int(result.get("expires_in"), 7200)

    async def get_agent_ticket(self) -> tuple[str, int]:
        """App ticket for wx.agentConfig, as (ticket, expires_in); cache it (PROTOCOL.md §4.15)."""
        result = await self._get("ticket/get", type="agent_config")
        return _str(result.get("ticket")), _int(result.get("expires_in"), 7200)

    async def upload_media(self, media_type: str, filename: str, data: bytes, content_type: str) -> str:
        """Upload temporary media (valid 3 days) as the multipart part ``media``; returns media_id (PROTOCOL.md §4.16)."""
        if media_type not in MEDIA_TYPES:
            raise ValueError(f"media_type must be one of {sorted(MEDIA_TYPES)}, got {media_type!r}")
        files = {"media": (filename, data, content_type)}
        result = await self._call("post", "media/upload", params={"type": media_type}, files=files)
        return _str(result.get("media_id"))

    # -- app messages and misc (PROTOCOL.md §1, §2.7, §7) ----------------------------------------

    async def send_app_text(self, touser: str | Sequence[str], content: str) -> None:
        """Send a text app message to members via message/send (PROTOCOL.md §7 limits)."""
        to = touser if isinstance(touser, str) else "|".join(touser)
        body = {"touser": to, "msgtype": "text", "agentid": self.agent_id, "text": {"content": content}}
        result = await self._post("message/send", body)
        if result.get("invaliduser"):
            _LOGGER.warning("message/send: invalid users %s", result["invaliduser"])

    async def send_app_image(self, touser: str, media_id: str) -> None:
        """Send an image app message (a temporary media id) to a member via message/send (PROTOCOL.md §7)."""
        body = {"touser": touser, "msgtype": "image", "agentid": self.agent_id, "image": {"media_id": media_id}}
        result = await self._post("message/send", body)
        if result.get("invaliduser"):
            _LOGGER.warning("message/send: invalid users %s", result["invaliduser"])

    async def get_callback_ip(self) -> list[str]:
        """WeCom's callback source IPs via getcallbackip (PROTOCOL.md §2.7)."""
        result = await self._get("getcallbackip")
        return [str(ip) for ip in result.get("ip_list") or ()]
