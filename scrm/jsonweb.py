"""JSON answers as every area of the service gives them: Chinese left readable, never cached."""

from __future__ import annotations

import json
import functools
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from scrm.errors import FieldError


def dumps(obj: Any) -> str:
    """JSON text with non-ASCII (Chinese) characters kept as they are."""
    return json.dumps(obj, ensure_ascii=False)


def json_response(data: Any, status: int = 200) -> web.Response:
    """A JSON response that no cache keeps (answers are per member or per admin)."""
    response = web.json_response(data, status=status, dumps=dumps)
    response.headers["Cache-Control"] = "no-store"
    return response


async def json_object(request: web.Request, error: Callable[[str], Exception], *, example: str = "",
                      max_bytes: int = 64 * 1024) -> dict[str, Any]:
    """The request's body as a JSON object, or ``error(message)`` raised with a message in Chinese."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise error(f"请求体过大（最多 {max_bytes // 1024} KB）")
    hint = f"，例如 {example}" if example else ""
    try:
        body = json.loads(await request.text())
    except (ValueError, UnicodeDecodeError):
        raise error(f"请求体须为 JSON{hint}") from None
    if not isinstance(body, dict):
        raise error(f"请求体须为 JSON 对象{hint}")
    return body


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def field_errors(handler: Handler) -> Handler:
    """A JSON handler whose FieldError (scrm/errors.py) becomes its answer: {"error", "field"} with its status."""
    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except FieldError as exc:
            return json_response(exc.as_json(), exc.status)

    return wrapper
