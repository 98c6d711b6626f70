"""The product (server, a worker, an organization with 60 orders) for the page tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from invoicing.infra.database import Database
from tests.support.browser import Product, running_product


@pytest_asyncio.fixture
async def product(
    database_url: str, redis_url: str, database: Database, tmp_path: Path
) -> AsyncIterator[Product]:
    async with running_product(database_url, redis_url, database, tmp_path, orders=60) as running:
        yield running
