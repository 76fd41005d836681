"""Admin JSON endpoints for customers: search, and the unified profile."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import or_, select

from customers.identity import normalise_phone
from customers.profile import CustomerNotFound, load_profile
from models import Customer, CustomerIdentity
from scrm import keys
from scrm.jsonweb import json_response

routes = web.RouteTableDef()
MAX_RESULTS = 50


@routes.get("/api/customers")
async def search_customers(request: web.Request) -> web.Response:
    """Find customers by name, phone or any identity value (?q=...)."""
    q = request.query.get("q", "").strip()
    if not q:
        raise web.HTTPBadRequest(text="请提供查询条件 q（姓名、手机号或渠道ID）")
    phone = normalise_phone(q)
    async with request.config_dict[keys.SESSIONMAKER]() as session:
        by_identity = select(CustomerIdentity.customer_id).where(CustomerIdentity.value.in_([q] + ([phone] if phone else [])))
        rows = (await session.execute(
            select(Customer.id, Customer.name).where(
                Customer.merged_into_id.is_(None), or_(Customer.name.like(f"%{q}%"), Customer.id.in_(by_identity)))
            .order_by(Customer.id).limit(MAX_RESULTS))).all()
    return web.json_response({"customers": [{"id": i, "name": n} for i, n in rows]})


@routes.get("/api/customers/{customer_id:\\d+}")
async def customer_profile(request: web.Request) -> web.Response:
    """The unified profile; admins (HQ-level) see full phone numbers."""
    async with request.config_dict[keys.SESSIONMAKER]() as session:
        try:
            profile = await load_profile(session, int(request.match_info["customer_id"]), show_phone=True)
        except CustomerNotFound as exc:
            raise web.HTTPNotFound(text=str(exc)) from None
    return json_response(profile.as_json())
