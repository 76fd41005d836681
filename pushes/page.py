"""The admin page of pushes (/admin/pushes)."""

from __future__ import annotations

from aiohttp import web

routes = web.RouteTableDef()
