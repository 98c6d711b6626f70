"""Email addresses compared as people mean them."""

from __future__ import annotations


def normalized_email(email: str) -> str:
    """An email as login compares it: case and surrounding spaces do not make another account."""
    return email.strip().lower()
