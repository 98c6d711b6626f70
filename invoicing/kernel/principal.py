"""Who is asking: a user acting in one organization with one role."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from invoicing.kernel.errors import Forbidden


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: UUID
    organization_id: UUID
    role: str  # admin | member
    email: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def require_admin(self) -> None:
        if not self.is_admin:
            raise Forbidden("Only administrators of the organization can do this.", code="admin_required")
