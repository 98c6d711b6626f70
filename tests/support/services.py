"""Service plumbing for tests: database URLs and a private Redis that a test may stop."""

from __future__ import annotations

import os
import signal

from devtools.embedded import EmbeddedRedis
from invoicing.infra.database import with_database_name as database_url_for

__all__ = ["RedisServer", "database_url_for"]


class RedisServer(EmbeddedRedis):
    """A redis-server on a fixed port that can be stopped and started again on the same port."""

    def restart(self) -> None:
        self.stop()
        self.start()

    def freeze(self) -> None:
        """Stop the process (SIGSTOP): connections are accepted by the kernel, then nothing answers."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.thaw()  # a stopped process would not act on SIGTERM
        super().stop()
