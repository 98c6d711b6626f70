"""Accounts as the API shows them (the caller, their API tokens): one JSON serializer each and,
beside it, the schema of that JSON in the OpenAPI document."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from invoicing.kernel.json_schema import ID, TEXT, Schema, array, closed_object, enum, ref
from invoicing.kernel.json_values import INSTANT, NULLABLE_INSTANT, iso_time
from invoicing.kernel.principal import Principal


def me_json(principal: Principal, organization_name: str) -> dict[str, Any]:
    """Who the caller is, and in which organization they act."""
    return {
        "user": {"id": str(principal.user_id), "email": principal.email, "role": principal.role},
        "organization": {"id": str(principal.organization_id), "name": organization_name},
    }


#: What ``me_json`` writes.
ME_SCHEMA = closed_object(
    {
        "user": closed_object({"id": ID, "email": TEXT, "role": enum(["admin", "member"])}),
        "organization": closed_object({"id": ID, "name": TEXT}),
    }
)


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A token's record; the token itself is never stored, only its digest (not read here)."""

    id: UUID
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> ApiToken:
        return cls(row["id"], row["name"], row["created_at"], row["last_used_at"], row["revoked_at"])

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "created_at": iso_time(self.created_at),
            "last_used_at": iso_time(self.last_used_at),
            "revoked_at": iso_time(self.revoked_at),
        }


#: What ``ApiToken.to_json`` writes.
API_TOKEN_SCHEMA = closed_object(
    {
        "id": ID,
        "name": TEXT,
        "created_at": INSTANT,
        "last_used_at": NULLABLE_INSTANT,
        "revoked_at": NULLABLE_INSTANT,
    }
)


def token_list_json(tokens: list[ApiToken]) -> dict[str, Any]:
    """The caller's tokens: one bounded list, not paged (see ``api_tokens.LIST_LIMIT``)."""
    return {"items": [token.to_json() for token in tokens]}


#: What ``token_list_json`` writes.
API_TOKEN_LIST_SCHEMA = closed_object({"items": array(ref("ApiToken"))})


@dataclass(frozen=True, slots=True)
class CreatedToken:
    token: str  # shown to the user once, never stored
    item: ApiToken
    organization_id: UUID

    def to_json(self) -> dict[str, Any]:
        """The only JSON that ever carries the token itself."""
        return {"token": self.token, "item": self.item.to_json()}


#: What ``CreatedToken.to_json`` writes.
CREATED_TOKEN_SCHEMA = closed_object(
    {"token": {"type": "string", "description": "Shown this once."}, "item": ref("ApiToken")}
)

#: This module's component schemas of the OpenAPI document, by name.
SCHEMAS: dict[str, Schema] = {
    "Me": ME_SCHEMA,
    "ApiToken": API_TOKEN_SCHEMA,
    "ApiTokenList": API_TOKEN_LIST_SCHEMA,
    "CreatedToken": CREATED_TOKEN_SCHEMA,
}
