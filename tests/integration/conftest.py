"""Fixtures of the API contract suites: an organization, and a client of the real app."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest_asyncio

from invoicing.settings import Settings
from invoicing.storage.database import Database
from tests.support.app import api_client
from tests.support.factories import Organization, create_organization


@pytest_asyncio.fixture
async def organization(database: Database) -> Organization:
    return await create_organization(database)


@pytest_asyncio.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(settings) as client:
        yield client
