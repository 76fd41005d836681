"""Domain errors of the sidebar; the sub-app's middleware turns each into an HTTP status."""

from __future__ import annotations

from typing import Any, ClassVar


class SidebarError(Exception):
    """A refusal with a message the guide can act on (Simplified Chinese)."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class InvalidRequest(SidebarError):
    """The request itself is wrong (bad URL, unknown tag ...)."""


class NotSignedIn(SidebarError):
    """No valid session: the page must sign in again."""

    status = 401
    code = "not_signed_in"


class AccessDenied(SidebarError):
    """The signed-in member may not see or change this."""

    status = 403
    code = "forbidden"


class NotFound(SidebarError):
    """Neither we nor WeCom know the customer or group."""

    status = 404
    code = "not_found"


class Conflict(SidebarError):
    """WeCom refused the change because of the relation's state (e.g. not this member's customer)."""

    status = 409
    code = "conflict"


class SidebarDisabled(SidebarError):
    """The service is not configured for the sidebar (SCRM_SESSION_SECRET missing)."""

    status = 503
    code = "sidebar_disabled"


class UpstreamError(SidebarError):
    """WeCom answered with an error we cannot fix here."""

    status = 502
    code = "wecom_error"
