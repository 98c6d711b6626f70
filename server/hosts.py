"""Only the configured host names are served (``ALLOWED_HOSTS``): Starlette's TrustedHostMiddleware.

Starlette builds absolute URLs from the ``Host`` header (the redirect of ``/jobs/`` to ``/jobs``
was ``Location: http://evil.example/jobs`` for ``Host: evil.example``), so a forged host could
poison a cache or a link. Any other host answers 400 before routing. The liveness and readiness
probes are the exception: they echo nothing and redirect nowhere, and an orchestrator calls them
by the container's address (compose: ``127.0.0.1``) whatever the public name is.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

PROBE_PATHS = frozenset({"/healthz", "/readyz"})


class AllowedHosts(TrustedHostMiddleware):
    """TrustedHostMiddleware (400 for another host, no www redirect) that lets the probes through."""

    def __init__(self, app: ASGIApp, allowed_hosts: Sequence[str]) -> None:
        super().__init__(app, allowed_hosts=list(allowed_hosts), www_redirect=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path") in PROBE_PATHS:
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)
