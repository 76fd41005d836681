"""Domain errors of pushes: Chinese messages for admins, naming the field in the JSON they sent."""

from __future__ import annotations

from scrm.errors import FieldError


class PushError(FieldError):
    """A push request that cannot be honoured (400 unless a subclass says otherwise)."""


class PushNotFound(PushError):
    """No such push or run."""

    status = 404


class PushConflict(PushError):
    """The push or run is in a state that does not allow this (cancelled, already started ...)."""

    status = 409
