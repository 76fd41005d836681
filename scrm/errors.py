"""The domain error the admin APIs answer with: a Chinese message, the field it is about, an HTTP status."""

from __future__ import annotations

from typing import Any


class FieldError(Exception):
    """A request that cannot be honoured; ``message`` is Chinese and names ``field`` (a JSON path)."""

    status = 400

    def __init__(self, message: str, field: str = "", **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.extra = extra

    def as_json(self) -> dict[str, Any]:
        """The error body an API answers: {"error", "field", ...extra}."""
        return {"error": self.message, "field": self.field, **self.extra}
