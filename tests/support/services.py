"""Service plumbing for tests: database URLs and a private Redis that a test may stop."""

from __future__ import annotations

from invoicing.embedded import EmbeddedRedis
from invoicing.storage.database import with_database_name as database_url_for

__all__ = ["RedisServer", "database_url_for"]


class RedisServer(EmbeddedRedis):
    """A redis-server on a fixed port that can be stopped and started again on the same port."""

    def restart(self) -> None:
        self.stop()
        self.start()
