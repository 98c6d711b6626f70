"""API tokens of the signed-in user: list, create (shown once), revoke; and the settings page."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from invoicing.accounts import api_tokens as tokens
from invoicing.accounts.views import token_list_json
from invoicing.kernel.errors import NotFound
from server import state
from server.auth import authenticate
from server.pages import account_context, principal_or_none, render_page
from server.requests import path_uuid, read_json

#: A name of 100 characters, escaped, fits many times over.
MAX_BODY_BYTES = 16 * 1024


async def list_tokens(request: Request) -> Response:
    database = state.services(request).database
    principal = await authenticate(request, database)
    found = await tokens.list_tokens(database, principal)
    return JSONResponse(token_list_json(found))


async def create_token(request: Request) -> Response:
    database = state.services(request).database
    principal = await authenticate(request, database)
    name = tokens.parse_create_request(await read_json(request, max_bytes=MAX_BODY_BYTES))
    created = await tokens.create_token(database, principal.organization_id, principal.user_id, name)
    # The only answer that ever carries the token: never cached, never stored.
    return JSONResponse(
        created.to_json(),
        status_code=201,
        headers={"Cache-Control": "no-store"},
    )


async def tokens_collection(request: Request) -> Response:
    # One route for both methods, so a 405 on this path lists both in its Allow header.
    if request.method == "POST":
        return await create_token(request)
    return await list_tokens(request)


async def revoke_token(request: Request) -> Response:
    database = state.services(request).database
    principal = await authenticate(request, database)
    token_id = path_uuid(request, "token_id", NotFound.token)
    item = await tokens.revoke_token(database, principal, token_id)
    return JSONResponse(item.to_json())


async def settings_page(request: Request) -> Response:
    """A shell that settings.js fills from the API; the token list is never rendered here."""
    principal = await principal_or_none(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    return render_page(request, "settings.html", page="settings", **await account_context(request, principal))


routes: list[Route] = [
    Route("/api/tokens", tokens_collection, methods=["GET", "POST"]),
    Route("/api/tokens/{token_id}/revoke", revoke_token, methods=["POST"]),
    Route("/settings", settings_page, methods=["GET"]),
]
