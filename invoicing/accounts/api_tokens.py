"""API tokens: create (the plaintext is returned once, only its digest is stored), list, revoke.

A token belongs to one user in one organization and acts only there; a user in several
organizations gets one token per organization, each chosen explicitly.
"""

from __future__ import annotations

from uuid import UUID

from invoicing.accounts import store as accounts
from invoicing.accounts import token_store as tokens
from invoicing.accounts.credentials import hash_token, new_api_token
from invoicing.accounts.views import ApiToken, CreatedToken
from invoicing.domain.emails import normalized_email
from invoicing.domain.request_bodies import json_object
from invoicing.infra.database import Database
from invoicing.kernel.errors import BadRequest, Conflict, NotFound
from invoicing.kernel.json_schema import closed_object
from invoicing.kernel.principal import Principal

MAX_NAME_LENGTH = 100
#: Active (unrevoked) tokens one user may hold in one organization.
MAX_ACTIVE_TOKENS = 50
#: Tokens listed, newest first; revoked ones beyond this are history nobody needs to page.
LIST_LIMIT = 200

_ALLOWED_FIELDS = frozenset({"name"})


def parse_token_name(name: object) -> str:
    """A token's name: a string of 1 to 100 characters, no control characters, edges trimmed."""
    if not isinstance(name, str):
        raise BadRequest("The field 'name' must be a string.", code="invalid_type")
    name = name.strip()
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise BadRequest(
            f"The token name must be 1 to {MAX_NAME_LENGTH} characters long.", code="invalid_name"
        )
    if any(not character.isprintable() for character in name):
        raise BadRequest("The token name must not contain control characters.", code="invalid_name")
    return name


def parse_create_request(body: object) -> str:
    """Validate ``{"name": "..."}`` and return the name.

    Raises :class:`BadRequest` with one of the stable codes ``invalid_body``, ``unknown_field``,
    ``missing_field``, ``invalid_type`` or ``invalid_name``.
    """
    body = json_object(body, _ALLOWED_FIELDS)
    if "name" not in body:
        raise BadRequest("The field 'name' is required.", code="missing_field")
    return parse_token_name(body["name"])


#: What ``parse_create_request`` accepts (it also trims the name and refuses control characters).
TOKEN_REQUEST_SCHEMA = closed_object(
    {"name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME_LENGTH}}
)


async def create_token(database: Database, organization_id: UUID, user_id: UUID, name: str) -> CreatedToken:
    """Create a token for the user in the organization; the plaintext is in the answer only."""
    token = new_api_token()
    async with database.scoped(organization_id) as connection:
        if not await tokens.lock_membership(connection, organization_id, user_id):
            raise NotFound("This user is not a member of that organization.", code="membership_not_found")
        if await tokens.count_active(connection, organization_id, user_id) >= MAX_ACTIVE_TOKENS:
            raise Conflict(
                f"You already have {MAX_ACTIVE_TOKENS} active tokens here; revoke one first.",
                code="too_many_tokens",
            )
        item = await tokens.insert_token(connection, organization_id, user_id, name, hash_token(token))
    return CreatedToken(token, item, organization_id)


async def list_tokens(database: Database, principal: Principal) -> list[ApiToken]:
    async with database.scoped(principal.organization_id) as connection:
        return await tokens.list_tokens(
            connection, principal.organization_id, principal.user_id, limit=LIST_LIMIT
        )


async def revoke_token(database: Database, principal: Principal, token_id: UUID) -> ApiToken:
    """Revoke one of the caller's tokens; anyone else's answers exactly like a missing one."""
    async with database.scoped(principal.organization_id) as connection:
        item = await tokens.revoke_token(connection, principal.organization_id, principal.user_id, token_id)
    if item is None:
        raise NotFound.token()
    return item


async def create_token_for_email(
    database: Database, email: str, name: str, organization: str | None
) -> CreatedToken:
    """The command line's way in: the user by email, and the organization when there are several."""
    name = parse_token_name(name)
    async with database.unscoped() as connection:
        candidate = await accounts.login_candidate(connection, normalized_email(email))
    if candidate is None:
        raise NotFound(f"No user has the email {email.strip()[:320]!r}.", code="user_not_found")
    memberships = {organization_id: org_name for organization_id, org_name, _role in candidate.memberships}
    if not memberships:
        raise BadRequest(f"{candidate.email} belongs to no organization.", code="no_membership")
    chosen = _choose_organization(candidate.email, memberships, organization)
    return await create_token(database, chosen, candidate.user_id, name)


def _choose_organization(email: str, memberships: dict[UUID, str], organization: str | None) -> UUID:
    listing = "; ".join(f"{organization_id} ({name})" for organization_id, name in memberships.items())
    if organization is None:
        if len(memberships) == 1:
            return next(iter(memberships))
        raise BadRequest(
            f"{email} belongs to several organizations; choose one with --organization: {listing}",
            code="organization_required",
        )
    try:
        chosen = UUID(organization)
    except ValueError:
        raise BadRequest(
            f"--organization must be an organization id; {email} belongs to: {listing}",
            code="invalid_organization",
        ) from None
    if chosen not in memberships:
        raise BadRequest(
            f"{email} is not a member of {chosen}; they belong to: {listing}", code="invalid_organization"
        )
    return chosen
