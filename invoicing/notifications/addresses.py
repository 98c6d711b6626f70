"""Where a webhook call may connect, decided on the address it actually connects to.

A URL's host is resolved when the call is made, every address it resolves to is checked, and
the connection goes to a checked address (TLS still names the host): a name that resolved to a
public address when it was registered and to 169.254.169.254 now (DNS rebinding) is refused.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable
from ipaddress import ip_address
from urllib.parse import urlsplit

import httpcore

from invoicing.domain.notices import is_public_address

RESOLVE_TIMEOUT_SECONDS = 5.0


class AddressRefused(Exception):
    """The call may not be made: ``reason`` is ``address_not_allowed`` or ``unresolvable``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


async def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (an address literal: itself)."""
    name = host.strip("[]")
    try:
        return [str(ip_address(name))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
            infos = await loop.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError, UnicodeError) as exc:
        raise AddressRefused("unresolvable", f"{name} does not resolve ({exc})") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def check(addresses: Iterable[str], *, allow_private_networks: bool) -> list[str]:
    """The addresses, unless one of them is not public (and private networks are not allowed):
    a name with one private address among public ones is refused whole, as a resolver could
    hand either to whoever connects."""
    found = list(addresses)
    if not found:
        raise AddressRefused("unresolvable", "the host resolves to no address")
    if not allow_private_networks:
        for address in found:
            if not is_public_address(ip_address(address.split("%", 1)[0])):
                raise AddressRefused("address_not_allowed", f"{address} is not a public address")
    return found


async def resolve_checked(url: str, *, allow_private_networks: bool) -> list[str]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return check(await resolve(parts.hostname or "", port), allow_private_networks=allow_private_networks)


class CheckedNetwork(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to checked addresses of the host."""

    def __init__(self, *, allow_private_networks: bool) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._allow_private_networks = allow_private_networks

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = check(await resolve(host, port), allow_private_networks=self._allow_private_networks)
        last_error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AddressRefused("address_not_allowed", "webhooks do not call unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
