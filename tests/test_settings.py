"""Settings: every missing or malformed key is named, once, with where to find it."""

from __future__ import annotations

from pathlib import Path

import pytest

from scrm.settings import REAL_API_BASE, SettingsError, load_settings

GOOD = {
    "WECOM_CORP_ID": "ww1436e0e65a779aee",
    "WECOM_AGENT_ID": "1000002",
    "WECOM_AGENT_SECRET": "s3cr3t",
    "WECOM_TOKEN": "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo",
    "WECOM_ENCODING_AES_KEY": "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt",
    "PUBLIC_BASE_URL": "https://scrm.example.com/",
}


def test_good_settings_and_defaults() -> None:
    s = load_settings(GOOD, dotenv=None)
    assert s.agent_id == 1000002
    assert s.api_base == REAL_API_BASE
    assert s.callback_url == "https://scrm.example.com/wecom/callback"
    assert s.database_url.startswith("sqlite+aiosqlite:")
    assert (s.host, s.port) == ("127.0.0.1", 8080)


def test_database_url_gets_async_driver() -> None:
    s = load_settings({**GOOD, "DATABASE_URL": "postgresql://u@db:5432/scrm"}, dotenv=None)
    assert s.database_url == "postgresql+asyncpg://u@db:5432/scrm"


def test_every_problem_is_named_at_once() -> None:
    bad = {**GOOD, "WECOM_ENCODING_AES_KEY": "tooshort", "WECOM_AGENT_ID": "abc", "SCRM_PORT": "99999"}
    del bad["WECOM_TOKEN"]
    with pytest.raises(SettingsError) as err:
        load_settings(bad, dotenv=None)
    text = str(err.value)
    assert "WECOM_TOKEN is missing" in text and "接收消息" in text
    assert "WECOM_ENCODING_AES_KEY must be exactly 43" in text and "got 8 characters" in text
    assert "WECOM_AGENT_ID must be a number" in text
    assert "SCRM_PORT" in text
    assert len(err.value.problems) == 4


def test_secrets_never_echoed_in_errors() -> None:
    with pytest.raises(SettingsError) as err:
        load_settings({**GOOD, "WECOM_ENCODING_AES_KEY": "x" * 42 + "!"}, dotenv=None)
    assert "x" * 42 not in str(err.value)


def test_dotenv_is_read_and_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("# comment\n" + "\n".join(f"{k}={v}" for k, v in GOOD.items()) + '\nSCRM_PORT="9000"\n')
    s = load_settings({"SCRM_PORT": "9100"}, dotenv=env_file)
    assert s.port == 9100 and s.corp_id == GOOD["WECOM_CORP_ID"]


def test_malformed_dotenv_line_is_reported(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("WECOM_CORP_ID\n")
    with pytest.raises(SettingsError) as err:
        load_settings({}, dotenv=env_file)
    assert ".env:1" in str(err.value)


def test_callback_path_is_configurable() -> None:
    s = load_settings({**GOOD, "WECOM_CALLBACK_PATH": "/hooks/wecom"}, dotenv=None)
    assert s.callback_url == "https://scrm.example.com/hooks/wecom"
    with pytest.raises(SettingsError, match="WECOM_CALLBACK_PATH"):
        load_settings({**GOOD, "WECOM_CALLBACK_PATH": "hooks"}, dotenv=None)


def test_customer_settings() -> None:
    s = load_settings({**GOOD, "SCRM_CHANNEL_SECRET_TMALL": "0123456789abcdef0123", "SCRM_STAGE_ACTIVE_DAYS": "60"},
                      dotenv=None)
    assert s.channel_secrets == {"tmall": "0123456789abcdef0123"} and s.stage_active_days == 60
    with pytest.raises(SettingsError) as err:
        load_settings({**GOOD, "SCRM_STAGE_SILENT_DAYS": "50", "SCRM_RECOMPUTE_AT": "25:00",
                       "SCRM_CHANNEL_SECRET_JD": "short", "SCRM_TIMEZONE": "Mars/Olympus"}, dotenv=None)
    text = str(err.value)
    assert "SCRM_STAGE_SILENT_DAYS" in text and "SCRM_RECOMPUTE_AT" in text
    assert "SCRM_CHANNEL_SECRET_JD" in text and "Mars/Olympus" in text


def test_the_official_account_is_configured_whole() -> None:
    with pytest.raises(SettingsError, match="SCRM_OA_APPID and SCRM_OA_SECRET go together"):
        load_settings(GOOD | {"SCRM_OA_APPID": "wx5151000000000a0a"}, dotenv=None)
    with pytest.raises(SettingsError, match="not an official account AppID"):
        load_settings(GOOD | {"SCRM_OA_APPID": "gh_123", "SCRM_OA_SECRET": "x" * 32}, dotenv=None)
    configured = load_settings(GOOD | {"SCRM_OA_APPID": "wx5151000000000a0a", "SCRM_OA_SECRET": "x" * 32}, dotenv=None)
    assert configured.oa_configured and not load_settings(GOOD, dotenv=None).oa_configured
