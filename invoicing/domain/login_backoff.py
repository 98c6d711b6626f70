"""How long a login must wait after failed attempts: a few free failures, then a doubling wait.

A hard lock after N failures lets anyone lock anyone out. A growing wait instead costs an
honest user nothing until many failures (people take longer than the first waits between two
tries anyway) and makes guessing slower the longer it goes on, up to a cap where a guesser
gets one try per wait. Three counters use it (``invoicing.infra.limits``):

* the client address's: the guesser's own, capped at 15 minutes;
* the account's, for browsers that never logged in to it (unknown devices): capped at
  5 minutes, since anyone can drive it and the account's owner on a new device waits it too;
* a known device's (a browser holding a device cookie for the account, ``invoicing.accounts.devices``):
  free failures, then the device is untrusted, and treated as unknown, for 15 minutes.
"""

from __future__ import annotations

from dataclasses import dataclass

#: How long a counter remembers its failures once the wait the last one imposed is over.
FORGET_AFTER_SECONDS = 15 * 60
FIRST_WAIT_SECONDS = 1
ACCOUNT_MAX_WAIT_SECONDS = 5 * 60
ADDRESS_MAX_WAIT_SECONDS = 15 * 60
#: A device past its free failures is not trusted for this long after its last failure.
UNTRUSTED_DEVICE_SECONDS = 15 * 60


@dataclass(frozen=True, slots=True)
class Backoff:
    """The wait a counter of failed logins imposes on the next attempt."""

    #: Failures that impose no wait (``LOGIN_FAILURES_PER_15_MIN``).
    free_failures: int
    first_wait_seconds: int
    max_wait_seconds: int

    def __post_init__(self) -> None:
        # A first wait of 0 would never grow, and the table below would never reach the cap.
        if not 1 <= self.first_wait_seconds <= self.max_wait_seconds or self.free_failures < 0:
            raise ValueError(f"not a backoff: {self}")

    def wait_after(self, failures: int) -> int:
        """Seconds the next attempt must wait after the last of ``failures`` failures:
        0 for fewer than ``free_failures``, then the first wait, doubled for each failure
        beyond, never more than ``max_wait_seconds``."""
        beyond = failures - self.free_failures
        if beyond < 0:
            return 0
        doubled = self.first_wait_seconds << min(beyond, 32)  # 2^32 s is past any cap
        return min(self.max_wait_seconds, doubled)

    def waits(self) -> list[int]:
        """``wait_after`` from ``free_failures`` failures on, up to the first that reaches the
        cap, which holds for every count past the list (the table Redis reads, so that the
        schedule is written once, here)."""
        waits = [self.wait_after(self.free_failures)]
        while waits[-1] < self.max_wait_seconds:
            waits.append(self.wait_after(self.free_failures + len(waits)))
        return waits


def account_backoff(free_failures: int) -> Backoff:
    return Backoff(free_failures, FIRST_WAIT_SECONDS, ACCOUNT_MAX_WAIT_SECONDS)


def address_backoff(free_failures: int) -> Backoff:
    return Backoff(free_failures, FIRST_WAIT_SECONDS, ADDRESS_MAX_WAIT_SECONDS)


def device_trust(free_failures: int) -> Backoff:
    """A known device's counter: past its free failures it is refused trust (not the login:
    the attempt then goes through the unknown-device counters) for a fixed while."""
    return Backoff(free_failures, UNTRUSTED_DEVICE_SECONDS, UNTRUSTED_DEVICE_SECONDS)
