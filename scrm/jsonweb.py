"""JSON answers as every area of the service gives them: Chinese left readable, never cached."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


def dumps(obj: Any) -> str:
    """JSON text with non-ASCII (Chinese) characters kept as they are."""
    return json.dumps(obj, ensure_ascii=False)


def json_response(data: Any, status: int = 200) -> web.Response:
    """A JSON response that no cache keeps (answers are per member or per admin)."""
    response = web.json_response(data, status=status, dumps=dumps)
    response.headers["Cache-Control"] = "no-store"
    return response
