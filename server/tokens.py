"""API tokens of the signed-in user: list, create (shown once), revoke; and the settings page."""

from __future__ import annotations

from starlette.routing import Route

routes: list[Route] = []
