"""Settings: parsed once from the environment (and an optional .env file), loud on bad input."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from wecom.crypto import aes_key_from_encoding_key

REAL_API_BASE: Final = "https://qyapi.weixin.qq.com/cgi-bin/"
REAL_OAUTH_AUTHORIZE: Final = "https://open.weixin.qq.com/connect/oauth2/authorize"
DEFAULT_DATABASE_URL: Final = "sqlite+aiosqlite:///scrm.db"
CALLBACK_PATH: Final = "/wecom/callback"


class SettingsError(Exception):
    """One or more settings are missing or malformed; the message names each key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid settings:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class Settings:
    """Everything the service needs to run, validated."""

    corp_id: str
    agent_id: int
    agent_secret: str
    token: str
    encoding_aes_key: str
    public_base_url: str
    database_url: str = DEFAULT_DATABASE_URL
    api_base: str = REAL_API_BASE
    # Where guides are sent for silent OAuth (the simulator's page in the demo).
    oauth_authorize_url: str = REAL_OAUTH_AUTHORIZE
    host: str = "127.0.0.1"
    port: int = 8080
    callback_path: str = CALLBACK_PATH
    # How far a callback's timestamp may be from our clock before it is refused as stale.
    callback_max_skew: int = 300
    welcome_text: str = "您好，我是{guide_name}，很高兴为您服务！有任何问题随时找我。"
    admin_token: str = ""
    # Signs the sidebar's session cookie (SCRM_SESSION_SECRET, >= 32 characters).
    session_secret: str = ""
    wecom_threads: int = 8
    inbox_max_attempts: int = 5
    demo: bool = False
    # Lifecycle stages (customers/): bought within NEW days of the first purchase -> new; last purchase
    # within ACTIVE days -> active; within SILENT days -> silent; older -> lost.
    stage_new_days: int = 30
    stage_active_days: int = 90
    stage_silent_days: int = 180
    # When the nightly recompute of scores, stages and rule tags runs (HH:MM, brand time zone).
    recompute_at: str = "03:30"
    timezone: str = "Asia/Shanghai"
    # Per-channel webhook secrets (SCRM_CHANNEL_SECRET_TMALL=... -> {"tmall": ...}).
    channel_secrets: Mapping[str, str] = field(default_factory=dict)
    # Keys the share-link code permutation (SCRM_SHARE_SECRET, >= 32 characters; defaults to the
    # session secret). Changing it changes the codes of new links only.
    share_secret: str = ""
    # Last-touch window for attributing an order to a guide's link click (SCRM_ATTRIBUTION_DAYS).
    attribution_days: int = 7
    # A CJK font file for posters (SCRM_POSTER_FONT); found on the system when empty.
    poster_font: str = ""
    # A guide is told at most once per this many minutes that a known customer opened their link
    # (per guide × customer × link; SCRM_VISITOR_ALERT_MINUTES).
    visitor_alert_minutes: int = 60
    # The brand's WeChat official account (SCRM_OA_APPID / SCRM_OA_SECRET), when it has one: share links
    # opened in WeChat then go through its silent OAuth (snsapi_base) so the opener's unionid names them.
    oa_appid: str = ""
    oa_secret: str = ""
    oa_api_base: str = "https://api.weixin.qq.com/"
    oa_authorize_url: str = "https://open.weixin.qq.com/connect/oauth2/authorize"
    # Group pushes (pushes/): how many of our pushes one customer may receive per natural day, week or
    # month in the brand's time zone (SCRM_PUSH_QUOTA, e.g. 1/day, 7/week, 4/month; the brand sets it
    # to match 群发助手 → 群发规则, so over-quota customers are skipped and counted instead of silently
    # dropped by WeCom).
    push_quota: str = "1/day"
    # Guides must confirm a push's task within this many hours; later it counts as not confirmed.
    push_confirm_hours: int = 24
    # A scheduled run missed while the service was down still runs on start if it is at most this late.
    push_grace_minutes: int = 60
    # How often results of running pushes are polled (seconds).
    push_poll_seconds: int = 300

    @property
    def oa_configured(self) -> bool:
        """Whether share links identify WeChat openers through the official account's OAuth."""
        return bool(self.oa_appid and self.oa_secret)

    @property
    def share_key(self) -> str:
        """The secret behind share-link codes (its own, else the session secret)."""
        return self.share_secret or self.session_secret

    @property
    def callback_url(self) -> str:
        """The URL an admin pastes into the WeCom console."""
        return self.public_base_url.rstrip("/") + self.callback_path

    def with_(self, **changes: object) -> "Settings":
        """A copy with some fields replaced (tests, demo)."""
        return replace(self, **changes)  # type: ignore[arg-type]


def normalise_database_url(url: str) -> str:
    """Pick the async driver for a plain ``sqlite://`` or ``postgresql://`` URL."""
    if url.startswith("sqlite:"):
        return "sqlite+aiosqlite:" + url[len("sqlite:") :]
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def read_dotenv(path: Path) -> dict[str, str]:
    """Parse a simple KEY=VALUE .env file (comments and blank lines ignored)."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :]
        key, sep, value = line.partition("=")
        if not sep:
            raise SettingsError([f"{path}:{lineno}: expected KEY=VALUE, got {line!r}"])
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip()] = value
    return values


_CORP_ID = re.compile(r"^w[wx][0-9a-zA-Z]{8,30}$")
_AES_KEY = re.compile(r"^[A-Za-z0-9]{43}$")


def load_settings(environ: Mapping[str, str] | None = None, dotenv: Path | None = Path(".env")) -> Settings:
    """Read settings from ``environ`` (default ``os.environ``) over an optional .env file."""
    env: dict[str, str] = dict(read_dotenv(dotenv)) if dotenv else {}
    env.update(os.environ if environ is None else environ)
    problems: list[str] = []

    def need(key: str, hint: str) -> str:
        value = env.get(key, "").strip()
        if not value:
            problems.append(f"{key} is missing: {hint}")
        return value

    corp_id = need("WECOM_CORP_ID", "the corp id from 我的企业 → 企业信息 (starts with 'ww')")
    if corp_id and not _CORP_ID.match(corp_id):
        problems.append(f"WECOM_CORP_ID {corp_id!r} does not look like a corp id (e.g. ww1436e0e65a779aee)")
    agent_raw = need("WECOM_AGENT_ID", "the AgentId of the self-built app (应用管理 → your app)")
    agent_id = 0
    if agent_raw:
        if agent_raw.isdigit():
            agent_id = int(agent_raw)
        else:
            problems.append(f"WECOM_AGENT_ID must be a number, got {agent_raw!r}")
    secret = need("WECOM_AGENT_SECRET", "the app's Secret (应用管理 → your app → Secret)")
    token = need("WECOM_TOKEN", "the Token from the app's 接收消息 → 设置API接收 page")
    if token and not re.fullmatch(r"[A-Za-z0-9]{1,32}", token):
        problems.append("WECOM_TOKEN must be 1-32 letters or digits, as the WeCom console generates")
    aes = need("WECOM_ENCODING_AES_KEY", "the EncodingAESKey from the app's 接收消息 → 设置API接收 page")
    if aes:
        if not _AES_KEY.match(aes):
            problems.append(
                f"WECOM_ENCODING_AES_KEY must be exactly 43 letters or digits, got {len(aes)} characters"
            )
        else:
            try:
                aes_key_from_encoding_key(aes)
            except ValueError as exc:
                problems.append(f"WECOM_ENCODING_AES_KEY: {exc}")
    public = need("PUBLIC_BASE_URL", "the https address WeCom reaches this service at, e.g. https://scrm.example.com")
    if public:
        parts = urlsplit(public)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            problems.append(f"PUBLIC_BASE_URL must be an http(s) URL, got {public!r}")
    database_url = normalise_database_url(env.get("DATABASE_URL", "").strip() or DEFAULT_DATABASE_URL)
    if not database_url.startswith(("sqlite+aiosqlite:", "postgresql+asyncpg:")):
        problems.append(
            f"DATABASE_URL must be sqlite:///path or postgresql://user@host/db, got {database_url!r}"
        )
    api_base = env.get("WECOM_API_BASE", "").strip() or REAL_API_BASE
    if urlsplit(api_base).scheme not in ("http", "https"):
        problems.append(f"WECOM_API_BASE must be an http(s) URL, got {api_base!r}")
    if not api_base.endswith("/"):
        api_base += "/"

    oauth_url = env.get("WECOM_OAUTH_AUTHORIZE_URL", "").strip() or REAL_OAUTH_AUTHORIZE
    if urlsplit(oauth_url).scheme not in ("http", "https"):
        problems.append(f"WECOM_OAUTH_AUTHORIZE_URL must be an http(s) URL, got {oauth_url!r}")

    def integer(key: str, default: int, low: int, high: int) -> int:
        raw = env.get(key, "").strip()
        if not raw:
            return default
        if not raw.isdigit() or not low <= int(raw) <= high:
            problems.append(f"{key} must be a whole number from {low} to {high}, got {raw!r}")
            return default
        return int(raw)

    callback_path = env.get("WECOM_CALLBACK_PATH", "").strip() or CALLBACK_PATH
    if not re.fullmatch(r"/[A-Za-z0-9/_\-.]*", callback_path):
        problems.append(f"WECOM_CALLBACK_PATH must be a path starting with '/', got {callback_path!r}")
    port = integer("SCRM_PORT", 8080, 1, 65535)
    skew = integer("WECOM_CALLBACK_MAX_SKEW", 300, 5, 86400)
    threads = integer("WECOM_THREADS", 8, 1, 64)
    attempts = integer("SCRM_INBOX_MAX_ATTEMPTS", 5, 1, 50)
    new_days = integer("SCRM_STAGE_NEW_DAYS", 30, 1, 3650)
    active_days = integer("SCRM_STAGE_ACTIVE_DAYS", 90, 1, 3650)
    silent_days = integer("SCRM_STAGE_SILENT_DAYS", 180, 1, 3650)
    if not new_days <= active_days < silent_days:
        problems.append(
            "lifecycle thresholds must satisfy SCRM_STAGE_NEW_DAYS <= SCRM_STAGE_ACTIVE_DAYS < SCRM_STAGE_SILENT_DAYS, "
            f"got {new_days}, {active_days}, {silent_days}"
        )
    recompute_at = env.get("SCRM_RECOMPUTE_AT", "").strip() or "03:30"
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", recompute_at):
        problems.append(f"SCRM_RECOMPUTE_AT must be HH:MM (24-hour), got {recompute_at!r}")
    timezone = env.get("SCRM_TIMEZONE", "").strip() or "Asia/Shanghai"
    try:
        import zoneinfo

        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        problems.append(f"SCRM_TIMEZONE {timezone!r} is not a known time zone (e.g. Asia/Shanghai)")
    session_secret = env.get("SCRM_SESSION_SECRET", "").strip()
    if session_secret and len(session_secret) < 32:
        problems.append("SCRM_SESSION_SECRET must be at least 32 characters (e.g. `openssl rand -hex 32`)")
    share_secret = env.get("SCRM_SHARE_SECRET", "").strip()
    if share_secret and len(share_secret) < 32:
        problems.append("SCRM_SHARE_SECRET must be at least 32 characters (e.g. `openssl rand -hex 32`)")
    attribution_days = integer("SCRM_ATTRIBUTION_DAYS", 7, 1, 90)
    visitor_alert_minutes = integer("SCRM_VISITOR_ALERT_MINUTES", 60, 1, 7 * 24 * 60)
    oa_appid, oa_secret = env.get("SCRM_OA_APPID", "").strip(), env.get("SCRM_OA_SECRET", "").strip()
    if bool(oa_appid) != bool(oa_secret):
        problems.append("SCRM_OA_APPID and SCRM_OA_SECRET go together (the official account's AppID and AppSecret)")
    elif oa_appid and not oa_appid.startswith("wx"):
        problems.append(f"SCRM_OA_APPID {oa_appid!r} is not an official account AppID (they start with wx)")
    push_quota = env.get("SCRM_PUSH_QUOTA", "").strip() or Settings.push_quota
    if not re.fullmatch(r"[1-9]\d{0,2}/(day|week|month)", push_quota):
        problems.append(f"SCRM_PUSH_QUOTA must be N/day, N/week or N/month (e.g. 1/day), got {push_quota!r}")
    push_confirm_hours = integer("SCRM_PUSH_CONFIRM_HOURS", 24, 1, 24 * 30)
    push_grace_minutes = integer("SCRM_PUSH_GRACE_MINUTES", 60, 1, 7 * 24 * 60)
    push_poll_seconds = integer("SCRM_PUSH_POLL_SECONDS", 300, 5, 24 * 3600)
    poster_font = env.get("SCRM_POSTER_FONT", "").strip()
    if poster_font and not os.path.isfile(poster_font):
        problems.append(f"SCRM_POSTER_FONT {poster_font!r} is not a file (a .ttf/.otf/.ttc font with Chinese glyphs)")
    channel_secrets = {
        key[len("SCRM_CHANNEL_SECRET_"):].lower(): value.strip()
        for key, value in env.items()
        if key.startswith("SCRM_CHANNEL_SECRET_") and value.strip()
    }
    for channel, secret in channel_secrets.items():
        if len(secret) < 16:
            problems.append(f"SCRM_CHANNEL_SECRET_{channel.upper()} must be at least 16 characters")
    if problems:
        raise SettingsError(problems)
    return Settings(
        corp_id=corp_id,
        agent_id=agent_id,
        agent_secret=secret,
        token=token,
        encoding_aes_key=aes,
        public_base_url=public.rstrip("/"),
        database_url=database_url,
        api_base=api_base,
        oauth_authorize_url=oauth_url,
        host=env.get("SCRM_HOST", "").strip() or "127.0.0.1",
        port=port,
        callback_path=callback_path,
        callback_max_skew=skew,
        welcome_text=env.get("SCRM_WELCOME_TEXT", "").strip() or Settings.welcome_text,
        admin_token=env.get("SCRM_ADMIN_TOKEN", "").strip(),
        session_secret=session_secret,
        wecom_threads=threads,
        inbox_max_attempts=attempts,
        stage_new_days=new_days,
        stage_active_days=active_days,
        stage_silent_days=silent_days,
        recompute_at=recompute_at,
        timezone=timezone,
        channel_secrets=channel_secrets,
        share_secret=share_secret,
        attribution_days=attribution_days,
        poster_font=poster_font,
        visitor_alert_minutes=visitor_alert_minutes,
        oa_appid=oa_appid,
        oa_secret=oa_secret,
        oa_api_base=env.get("SCRM_OA_API_BASE", "").strip() or Settings.oa_api_base,
        oa_authorize_url=env.get("SCRM_OA_AUTHORIZE_URL", "").strip() or Settings.oa_authorize_url,
        push_quota=push_quota,
        push_confirm_hours=push_confirm_hours,
        push_grace_minutes=push_grace_minutes,
        push_poll_seconds=push_poll_seconds,
    )
