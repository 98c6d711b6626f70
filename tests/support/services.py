"""Service plumbing for tests: database URLs and a private Redis that a test may stop."""

from __future__ import annotations

from urllib.parse import urlsplit

from invoicing.embedded import EmbeddedRedis


def database_url_for(admin_url: str, name: str) -> str:
    """The admin URL pointed at another database (keeps host, socket and credentials)."""
    parts = urlsplit(admin_url)
    return parts._replace(path=f"/{name}").geturl()


class RedisServer(EmbeddedRedis):
    """A redis-server on a fixed port that can be stopped and started again on the same port."""

    def restart(self) -> None:
        self.stop()
        self.start()
