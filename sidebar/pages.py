"""Server-rendered error pages of the sidebar (the page itself is sidebar.page)."""

from __future__ import annotations

import html
from functools import cache
from pathlib import Path
from string import Template
from typing import Final

from aiohttp import web

TEMPLATES: Final = Path(__file__).resolve().parent / "templates"
RETRY_HINT: Final = "请关闭侧边栏后重新打开；如仍有问题，请联系管理员。"


@cache
def _template(name: str) -> Template:
    return Template((TEMPLATES / name).read_text(encoding="utf-8"))


def _page(title: str, body: str, status: int = 200) -> web.Response:
    text = _template("page.html").substitute(title=html.escape(title), body=body)
    response = web.Response(text=text, status=status, content_type="text/html", charset="utf-8")
    response.headers["Cache-Control"] = "no-store"
    return response


def error_page(message: str, status: int, hint: str = RETRY_HINT) -> web.Response:
    """A plain page saying what went wrong and what to do."""
    body = _template("error.html").substitute(message=html.escape(message), hint=html.escape(hint))
    return _page("无法打开客户助手", body, status)
