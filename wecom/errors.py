"""Domain errors for WeCom API calls: each carries the errcode and errmsg WeCom returned."""

from __future__ import annotations

from typing import Final

TOKEN_ERRCODES: Final = frozenset({40014, 42001})
RATE_LIMIT_ERRCODES: Final = frozenset({45009, 45033})


class WeComError(Exception):
    """WeCom answered with errcode != 0."""

    def __init__(self, errcode: int, errmsg: str, api: str = "") -> None:
        self.errcode = errcode
        self.errmsg = errmsg
        self.api = api
        super().__init__(f"{api or 'WeCom'}: errcode {errcode}: {errmsg}")


class WeComRateLimited(WeComError):
    """45009 / 45033 persisted through our back-off retries."""


class WeComConfigError(WeComError):
    """The corp id / secret / permissions are wrong (40001, 40013, 48002, 60020 ...): an admin must fix it."""


class WeComUnavailable(Exception):
    """WeCom could not be reached (network error, timeout, non-200 HTTP)."""
