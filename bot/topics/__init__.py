"""One module per callback topic; ``build_router`` wires them all."""

from __future__ import annotations

from bot.router import Router
from bot.topics import (
    add_external_contact,
    change_external_chat,
    change_external_tag,
    del_external_contact,
    del_follow_user,
    edit_external_contact,
    enter_agent,
    text_commands,
    transfer_fail,
)

_TOPICS = (
    add_external_contact,
    edit_external_contact,
    del_external_contact,
    del_follow_user,
    transfer_fail,
    change_external_chat,
    change_external_tag,
    text_commands,
    enter_agent,
)


def build_router() -> Router:
    """A router with every topic registered."""
    router = Router()
    for topic in _TOPICS:
        topic.register(router)
    return router
