"""The chat-toolbar sidebar: OAuth sign-in, JS-SDK signatures, profile, group and tag endpoints."""

from sidebar.app import create_sidebar_app

__all__ = ["create_sidebar_app"]
