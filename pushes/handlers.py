"""Admin API of pushes (群发), mounted in the /admin sub-app.

``/admin/api/pushes``: GET lists pushes with their upcoming runs, POST creates one; ``/{id}``: GET
(with recent runs), PATCH (the keys given replace the old ones); ``/{id}/pause|resume|cancel``;
``/{id}/dry-run`` the audience and per-guide split without sending; ``/{id}/run`` starts a run now;
``/{id}/cancel-run`` ``{"scheduled_for": "…"}`` cancels one upcoming run. ``/admin/api/push-runs``
(``?status=``) and ``/admin/api/push-runs/{id}`` (numbers per outcome and per guide, progress);
``/admin/api/push-options``: the segments, tags, stores and group owners an audience can name.
Errors answer ``{"error": "…", "field": "…"}``: 400 bad input, 404 unknown, 409 wrong state.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from models import PushStatus
from pushes import service
from pushes.errors import PushError
from pushes.runner import PUSH_RUNNER, PushRunner
from pushes.scheduler import PUSH_SCHEDULER
from scrm import keys
from scrm.jsonweb import Handler, field_errors, json_object, json_response

routes = web.RouteTableDef()

ADMIN_ACTOR: Final = "admin"
MAX_BODY: Final = 2 * 1024 * 1024  # an explicit audience may list many customer ids
_EXAMPLE: Final = ('{"name": "周三第二杯半价", "audience": {"kind": "tags", "tag_ids": [3]}, '
                   '"content": {"text": "本周三第二杯半价"}, "schedule": {"kind": "once", "at": "2026-11-25T10:00"}}')


def _id(request: web.Request) -> int:
    return int(request.match_info["id"])


def _runner(request: web.Request) -> PushRunner:
    return request.config_dict[PUSH_RUNNER]


def _changed(request: web.Request) -> None:
    """A push changed: this process's scheduler reconciles at once (other processes' within a tick)."""
    scheduler = request.config_dict.get(PUSH_SCHEDULER)  # absent where the app runs no scheduler (tests)
    if scheduler is not None:
        scheduler.notify()


async def _body(request: web.Request) -> dict[str, Any]:
    return await json_object(request, PushError, max_bytes=MAX_BODY, example=_EXAMPLE)


@routes.get("/api/pushes")
@field_errors
async def list_pushes(request: web.Request) -> web.Response:
    """Every push with upcoming runs."""
    now = request.config_dict[keys.CLOCK]()
    return json_response({"pushes": await service.list_pushes(request.config_dict[keys.SESSIONMAKER], now=now)})


@routes.post("/api/pushes")
@field_errors
async def create_push(request: web.Request) -> web.Response:
    """Create a push; 201 with it."""
    app = request.config_dict
    now = app[keys.CLOCK]()
    push = await service.create_push(app[keys.SESSIONMAKER], _runner(request), await _body(request), now=now,
                                     actor=ADMIN_ACTOR, default_tz=app[keys.SETTINGS].timezone)
    _changed(request)
    return json_response(await service.get_push(app[keys.SESSIONMAKER], push.id, now=now), 201)


@routes.get(r"/api/pushes/{id:\d+}")
@field_errors
async def get_push(request: web.Request) -> web.Response:
    """One push with upcoming and recent runs."""
    app = request.config_dict
    return json_response(await service.get_push(app[keys.SESSIONMAKER], _id(request), now=app[keys.CLOCK]()))


@routes.patch(r"/api/pushes/{id:\d+}")
@field_errors
async def update_push(request: web.Request) -> web.Response:
    """Edit a push (the keys given replace the old ones)."""
    app = request.config_dict
    now = app[keys.CLOCK]()
    await service.update_push(app[keys.SESSIONMAKER], _runner(request), _id(request), await _body(request),
                              now=now, actor=ADMIN_ACTOR, default_tz=app[keys.SETTINGS].timezone)
    _changed(request)
    return json_response(await service.get_push(app[keys.SESSIONMAKER], _id(request), now=now))


def _status_route(status: PushStatus) -> Handler:
    @field_errors
    async def handler(request: web.Request) -> web.Response:
        app = request.config_dict
        now = app[keys.CLOCK]()
        await service.set_status(app[keys.SESSIONMAKER], _id(request), status, now=now, actor=ADMIN_ACTOR)
        _changed(request)
        return json_response(await service.get_push(app[keys.SESSIONMAKER], _id(request), now=now))

    return handler


routes.post(r"/api/pushes/{id:\d+}/pause")(_status_route(PushStatus.PAUSED))
routes.post(r"/api/pushes/{id:\d+}/resume")(_status_route(PushStatus.ACTIVE))
routes.post(r"/api/pushes/{id:\d+}/cancel")(_status_route(PushStatus.CANCELLED))


@routes.post(r"/api/pushes/{id:\d+}/cancel-run")
@field_errors
async def cancel_run(request: web.Request) -> web.Response:
    """Cancel one upcoming run ({"scheduled_for": "2026-11-25T10:00+08:00"})."""
    app = request.config_dict
    now = app[keys.CLOCK]()
    body = await _body(request)
    await service.cancel_occurrence(app[keys.SESSIONMAKER], _id(request), body.get("scheduled_for"), now=now,
                                    actor=ADMIN_ACTOR)
    return json_response(await service.get_push(app[keys.SESSIONMAKER], _id(request), now=now))


@routes.post(r"/api/pushes/{id:\d+}/dry-run")
@field_errors
async def dry_run(request: web.Request) -> web.Response:
    """Who it would reach now, and through which guides; nothing is sent."""
    app = request.config_dict
    return json_response(await service.dry_run(app[keys.SESSIONMAKER], _runner(request), _id(request),
                                               now=app[keys.CLOCK]()))


@routes.post(r"/api/pushes/{id:\d+}/run")
@field_errors
async def run_now(request: web.Request) -> web.Response:
    """Start a run now; 202 with the run to follow."""
    app = request.config_dict
    run_id = await service.run_now(app[keys.SESSIONMAKER], _runner(request), _id(request), now=app[keys.CLOCK](),
                                   actor=ADMIN_ACTOR)
    return json_response(await service.run_detail(app[keys.SESSIONMAKER], run_id), 202)


@routes.get("/api/push-options")
@field_errors
async def push_options(request: web.Request) -> web.Response:
    """Segments, tags, stores and group owners an audience can name, with their names (the form's pickers)."""
    return json_response(await service.push_options(request.config_dict[keys.SESSIONMAKER]))


@routes.get("/api/push-runs")
@field_errors
async def list_runs(request: web.Request) -> web.Response:
    """Recent runs (?status=creating|polling|finished|failed|skipped|cancelled)."""
    return json_response({"runs": await service.list_runs(request.config_dict[keys.SESSIONMAKER],
                                                          status=request.query.get("status") or None)})


@routes.get(r"/api/push-runs/{id:\d+}")
@field_errors
async def run_detail(request: web.Request) -> web.Response:
    """One run: progress, numbers by outcome and per guide, failures by reason."""
    return json_response(await service.run_detail(request.config_dict[keys.SESSIONMAKER], _id(request)))
