"""Domain errors of pushes: Chinese messages for admins, naming the field in the JSON they sent."""

from __future__ import annotations

from typing import Any


class PushError(Exception):
    """A push request that cannot be honoured; ``message`` is Chinese and names ``field``."""

    status = 400

    def __init__(self, message: str, field: str = "", **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.extra = extra

    def as_json(self) -> dict[str, Any]:
        """The error body the admin API answers."""
        return {"error": self.message, "field": self.field, **self.extra}


class PushNotFound(PushError):
    """No such push or run."""

    status = 404


class PushConflict(PushError):
    """The push or run is in a state that does not allow this (cancelled, already started ...)."""

    status = 409
